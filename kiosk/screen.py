"""The display itself: awake by day, off at night, no cursor.

A wall display that blanks after ten minutes is broken, and one that glows all night in a dark
kitchen is a nuisance, so the kiosk switches the screen off between NIGHT_START and NIGHT_END
(the same hours as the page's night theme, in the household's TIMEZONE) and keeps it on
otherwise. Each session type has its own tools: `xset` on X11, `wlopm` on Wayland (labwc,
wayfire), `unclutter` for the cursor on X11 when installed. A missing or failing tool is one
warning, never a crash: the dashboard on a screen that may blank is better than no dashboard.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime, time
from zoneinfo import ZoneInfo

from .settings import Session

log = logging.getLogger("kiosk")

TOOL_TIMEOUT_S = 5.0  # xset and wlopm answer at once; a hung display server must not hang us
CURSOR_IDLE_S = "1"  # unclutter hides the pointer after one second without movement
INSTALL_HINTS = {
    "xset": "sudo apt install x11-xserver-utils",
    "wlopm": "sudo apt install wlopm",
}


def is_night(now: time, start: time, end: time) -> bool:
    """Whether `now` falls in [start, end), a window that may wrap past midnight; start == end: never."""
    if start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end


def local_time(now_utc: datetime, timezone: str) -> time:
    return now_utc.astimezone(ZoneInfo(timezone)).time()


def keep_awake_commands(session: Session) -> list[list[str]]:
    """Disable the X screen saver and DPMS; Wayland compositors are configured instead (docs)."""
    if session.kind == "x11":
        return [["xset", "s", "off", "-dpms"], ["xset", "s", "noblank"]]
    return []


def display_power_commands(session: Session, on: bool) -> list[list[str]]:
    """Switch every output on or off."""
    if session.kind == "wayland":
        return [["wlopm", "--on" if on else "--off", "*"]]
    if session.kind == "x11":
        if on:
            return [["xset", "dpms", "force", "on"], *keep_awake_commands(session)]
        # DPMS must be enabled for `force off` to take; the morning's keep-awake disables it again.
        return [["xset", "+dpms"], ["xset", "dpms", "force", "off"]]
    return []


def cursor_hider_command(session: Session, which: Callable[[str], str | None] = shutil.which) -> list[str] | None:
    """`unclutter` on X11 when installed; the page's ?kiosk=1 hides the cursor everywhere else."""
    if session.kind == "x11" and which("unclutter"):
        return ["unclutter", "-idle", CURSOR_IDLE_S]
    return None


def _run_tool(argv: Sequence[str]) -> tuple[int, str]:
    result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=TOOL_TIMEOUT_S, check=False)
    return result.returncode, (result.stderr or "").strip()


class ScreenControl:
    """Runs the screen commands for one session, warning once per tool or command that fails."""

    def __init__(self, session: Session, *, which: Callable[[str], str | None] = shutil.which,
                 run: Callable[[Sequence[str]], tuple[int, str]] = _run_tool,
                 spawn: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        self.session = session
        self._which = which
        self._run = run
        self._spawn = spawn
        self._warned: set[str] = set()
        self._night: bool | None = None
        self._cursor: subprocess.Popen | None = None
        if session.kind == "none":
            self._warn_once("session", "neither WAYLAND_DISPLAY nor DISPLAY is set: cannot control the screen; "
                                       "start the kiosk from the desktop session's autostart")

    @property
    def night(self) -> bool | None:
        return self._night

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def run_commands(self, commands: list[list[str]]) -> bool:
        """Run each command; True when all ran cleanly (exit 0 and nothing on stderr)."""
        clean = True
        for argv in commands:
            tool = argv[0]
            if self._which(tool) is None:
                hint = INSTALL_HINTS.get(tool, "install it")
                self._warn_once(tool, f"{tool} not found ({hint}): the screen may blank or stay on")
                clean = False
                continue
            try:
                code, err = self._run(argv)
            except (OSError, subprocess.SubprocessError) as exc:
                code, err = -1, str(exc)
            # xset exits 0 even when the server lacks the extension, but says so on stderr.
            if code != 0 or err:
                first = err.splitlines()[0] if err else f"exit code {code}"
                self._warn_once(" ".join(argv), f"`{' '.join(argv)}` failed: {first}")
                clean = False
        return clean

    def keep_awake(self) -> None:
        self.run_commands(keep_awake_commands(self.session))

    def apply_night(self, night: bool) -> None:
        """Switch the display when the night state changes (and on the first call)."""
        if night == self._night:
            return
        self._night = night
        log.info("%s: display %s", "night hours" if night else "day hours", "off" if night else "on")
        self.run_commands(display_power_commands(self.session, on=not night))

    def start_cursor_hider(self) -> None:
        argv = cursor_hider_command(self.session, self._which)
        if argv is None:
            if self.session.kind == "x11":
                log.info("unclutter not installed: the page hides the cursor itself (?kiosk=1)")
            return
        try:
            self._cursor = self._spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        except OSError as exc:
            self._warn_once("unclutter", f"unclutter could not start: {exc.strerror}")

    def close(self, restore_display: bool) -> None:
        """Stop the cursor hider; on a requested stop also switch the display back on.

        After a failure the display is left as it is: the supervisor starts the kiosk again at
        once, and switching on just to switch off again would flash the screen all night.
        """
        if self._cursor is not None and self._cursor.poll() is None:
            self._cursor.terminate()
            try:
                self._cursor.wait(TOOL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._cursor.kill()
                self._cursor.wait()
        self._cursor = None
        if restore_display and self._night:
            self.run_commands(display_power_commands(self.session, on=True))
            self._night = False
