"""Supervision: keep exactly one browser showing the dashboard, and bring it back when it dies.

The loop is: wait until the dashboard is healthy, start the browser on a fresh profile, watch
it (and the night hours) until it exits or a stop is requested, clean up its whole process
group and profile, and start again. Relaunching has a budget (MAX_RESTARTS in
RESTART_WINDOW_S): a browser that dies over and over is broken in a way relaunching cannot fix,
so the launcher exits non-zero and its autostart supervisor decides what next. A stop request
(SIGTERM, SIGINT, SIGHUP) ends the browser, then the launcher, cleanly.
"""
from __future__ import annotations

import collections
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime

from home_energy.clock import now_utc

from .browser import Backend, build_command
from .crashwatch import CrashWatch
from .errors import CrashLoopError
from .health import Probe, wait_for_health
from .screen import ScreenControl, is_night, local_time
from .settings import KioskSettings

log = logging.getLogger("kiosk")

# Five relaunches in five minutes covers a renderer that crashes now and then and a dashboard
# restart by the OS; more than that is a crash loop.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0
RELAUNCH_PAUSE_S = 1.0  # lets the display server release the old window before the new one
WATCH_INTERVAL_S = 0.5  # how soon a dead browser or a stop request is noticed
NIGHT_CHECK_INTERVAL_S = 30.0  # night hours are minutes apart; checking twice a minute is plenty
STOP_GRACE_S = 5.0  # Chromium saves nothing we need, but give it a moment to close its windows
PROFILE_PREFIX = "home-energy-kiosk-"


class Supervisor:
    def __init__(
        self,
        settings: KioskSettings,
        backend: Backend,
        screen: ScreenControl,
        stop: threading.Event,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now_utc: Callable[[], datetime] = now_utc,
        spawn: Callable[..., subprocess.Popen] = subprocess.Popen,
        max_restarts: int = MAX_RESTARTS,
        restart_window_s: float = RESTART_WINDOW_S,
        relaunch_pause_s: float = RELAUNCH_PAUSE_S,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.screen = screen
        self.stop = stop
        self._monotonic = monotonic
        self._now_utc = now_utc
        self._spawn = spawn
        self._max_restarts = max_restarts
        self._restart_window_s = restart_window_s
        self._relaunch_pause_s = relaunch_pause_s
        self._last_night_check = float("-inf")
        self.launches = 0

    def check_night(self, force: bool = False) -> None:
        now = self._monotonic()
        if not force and now - self._last_night_check < NIGHT_CHECK_INTERVAL_S:
            return
        self._last_night_check = now
        s = self.settings
        self.screen.apply_night(is_night(local_time(self._now_utc(), s.timezone), s.night_start, s.night_end))

    def _on_probe(self, probe: Probe) -> None:
        if not probe.ok:
            log.debug("dashboard not healthy yet: %s", probe.reason)
        self.check_night()

    def run(self) -> int:
        """Supervise until a stop is requested (returns 0); raises HealthTimeoutError or CrashLoopError."""
        self.screen.keep_awake()
        self.check_night(force=True)
        self.screen.start_cursor_hider()
        health_url = f"{self.settings.url}api/health"
        exits: collections.deque[float] = collections.deque()
        while not self.stop.is_set():
            log.info("waiting for the dashboard at %s", health_url)
            if wait_for_health(health_url, self.settings.health_timeout_s, stop=self.stop,
                               on_probe=self._on_probe) is None:
                break
            outcome = self._run_browser_once()
            if outcome is None:
                break
            now = self._monotonic()
            exits.append(now)
            while exits and now - exits[0] > self._restart_window_s:
                exits.popleft()
            if len(exits) > self._max_restarts:
                raise CrashLoopError(
                    f"the {self.backend.name} browser stopped {len(exits)} times in "
                    f"{self._restart_window_s:g} s (last: {outcome}); not relaunching")
            log.warning("the %s browser stopped (%s); relaunching once the dashboard is healthy",
                        self.backend.name, outcome)
            self.stop.wait(self._relaunch_pause_s)
        return 0

    def _run_browser_once(self) -> str | None:
        """Start the browser and watch it; why it stopped, or None when a stop was requested."""
        profile = None
        if self.backend.uses_profile_dir:
            profile = tempfile.mkdtemp(prefix=PROFILE_PREFIX, dir=self.settings.runtime_dir)
        watch = CrashWatch() if self.backend.name == "chromium" else None
        try:
            command = build_command(self.backend, self.settings, profile)
            argv, pass_fds = watch.wrap(command) if watch else (command, ())
            try:
                process = self._spawn(argv, stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds)
            except OSError as exc:
                log.error("cannot start %s: %s", command[0], exc.strerror or exc)
                return "could not start"
            if watch:
                watch.start()
            self.launches += 1
            log.info("started %s (pid %d) on %s", self.backend.name, process.pid, command[-1])
            try:
                while not self.stop.wait(WATCH_INTERVAL_S):
                    code = process.poll()
                    if code is not None:
                        return f"exit code {code}"
                    if watch and watch.page_crashed.is_set():
                        return "the page crashed"
                    self.check_night()
                return None
            finally:
                _end_process_group(process)
        finally:
            if watch:
                watch.close()
            if profile:
                shutil.rmtree(profile, ignore_errors=True)


def _end_process_group(process: subprocess.Popen) -> None:
    """Stop the browser and every helper it started (zygote, renderers, GPU process)."""
    if process.poll() is None:
        try:
            process.terminate()
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("pid %d did not exit after SIGKILL", process.pid)
