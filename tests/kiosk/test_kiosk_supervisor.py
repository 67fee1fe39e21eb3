"""Supervision with real child processes standing in for the browser: relaunch, crash-loop
budget, clean stop, fresh profiles, and the night schedule."""
from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from datetime import time as time_of_day

import pytest

from kiosk.browser import Backend
from kiosk.errors import EX_SOFTWARE, CrashLoopError, HealthTimeoutError
from kiosk.screen import ScreenControl
from kiosk.settings import KioskSettings, Session
from kiosk.supervisor import Supervisor
from tests.kiosk.kiosk_helpers import free_port

WAYLAND = Session("wayland", None, "wayland-0")
DAY = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # 12:00 in Brisbane
NIGHT = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)  # 22:30 in Brisbane
EXIT_AT_ONCE = "raise SystemExit(3)"
RUN_LONG = "import time; time.sleep(60)"
# Answers like Chromium whose page renderer was killed: reads the launcher's first command from
# fd 3, then reports a page target and its crash on fd 4, and stays running (as Chromium does).
PAGE_CRASHES = """
import json, os, time
command = os.read(3, 4096)
assert json.loads(command.rstrip(b"\\0"))["method"] == "Target.setDiscoverTargets"
for message in ({"method": "Target.targetCreated", "params": {"targetInfo": {"targetId": "T1", "type": "page"}}},
                {"method": "Target.targetCrashed", "params": {"targetId": "T1", "status": "killed", "errorCode": 9}}):
    os.write(4, json.dumps(message).encode() + b"\\0")
time.sleep(60)
"""


class StandInBrowser:
    """Records the command the supervisor built, and runs a short Python program instead.

    Chromium is started through `python -m kiosk.fdexec R W chromium ...` so that its DevTools
    pipe lands on fds 3 and 4; the stand-in keeps that wrapper, so the program gets the same fds.
    """

    def __init__(self, *programs: str) -> None:
        self.programs = list(programs)
        self.commands: list[list[str]] = []
        self.processes: list[subprocess.Popen] = []

    def __call__(self, command, **kwargs):
        self.commands.append(list(command))
        program = self.programs.pop(0) if len(self.programs) > 1 else self.programs[0]
        wrapper = list(command[:5]) if command[1:3] == ["-m", "kiosk.fdexec"] else []
        process = subprocess.Popen([*wrapper, sys.executable, "-c", program], **kwargs)
        self.processes.append(process)
        return process

    def profiles(self) -> list[str]:
        flag = "--user-data-dir="
        return [re.sub(f"^{flag}", "", a) for c in self.commands for a in c if a.startswith(flag)]


class Commands:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return 0, ""


def _supervisor(port, browser, stop, profiles, *, now=DAY, health_timeout_s=10.0, **kwargs):
    settings = KioskSettings(url=f"http://127.0.0.1:{port}/", browser="chromium", health_timeout_s=health_timeout_s,
                             night_start=time_of_day(22, 0), night_end=time_of_day(6, 0),
                             timezone="Australia/Brisbane", session=WAYLAND, runtime_dir=str(profiles))
    commands = Commands()
    screen = ScreenControl(WAYLAND, which=lambda name: f"/usr/bin/{name}", run=commands)
    supervisor = Supervisor(settings, Backend("chromium", "/usr/bin/chromium", True), screen, stop,
                            now_utc=lambda: now, spawn=browser, relaunch_pause_s=0, **kwargs)
    return supervisor, commands


def _stop_when(condition, stop: threading.Event, timeout_s: float = 20) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not condition():
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_browser_that_keeps_dying_stops_the_launcher_with_exit_70(health_server, tmp_path):
    port = free_port()
    health_server(port, [200])
    browser = StandInBrowser(EXIT_AT_ONCE)
    supervisor, _ = _supervisor(port, browser, threading.Event(), tmp_path, max_restarts=2)

    with pytest.raises(CrashLoopError) as caught:
        supervisor.run()

    assert len(browser.commands) == 3
    assert str(caught.value) == "the chromium browser stopped 3 times in 300 s (last: exit code 3); not relaunching"
    assert caught.value.exit_code == EX_SOFTWARE
    profiles = browser.profiles()
    assert len(set(profiles)) == 3  # a fresh profile every launch: no "restore pages?" bubble
    assert all(p.startswith(str(tmp_path)) for p in profiles)
    assert list(tmp_path.iterdir()) == []  # and each one removed after its browser exited


def test_a_dead_browser_is_relaunched_and_a_stop_ends_the_running_one(health_server, tmp_path):
    port = free_port()
    health_server(port, [200])
    browser = StandInBrowser(EXIT_AT_ONCE, RUN_LONG)
    stop = threading.Event()
    supervisor, _ = _supervisor(port, browser, stop, tmp_path)
    watcher = _stop_when(lambda: len(browser.processes) == 2, stop)

    started = time.monotonic()
    assert supervisor.run() == 0
    watcher.join()

    assert len(browser.commands) == 2
    assert browser.processes[0].returncode == 3
    assert browser.processes[1].returncode is not None and browser.processes[1].returncode < 0  # signalled
    assert time.monotonic() - started < 15
    assert list(tmp_path.iterdir()) == []


def test_exits_spread_wider_than_the_window_never_exhaust_the_budget(health_server, tmp_path):
    port = free_port()
    health_server(port, [200])
    browser = StandInBrowser(EXIT_AT_ONCE)
    stop = threading.Event()
    ticks = itertools.count(step=1000)  # every clock reading is 1000 s after the last
    supervisor, _ = _supervisor(port, browser, stop, tmp_path, max_restarts=1, restart_window_s=500,
                                monotonic=lambda: float(next(ticks)))
    watcher = _stop_when(lambda: len(browser.processes) >= 4, stop)

    assert supervisor.run() == 0
    watcher.join()
    assert len(browser.commands) >= 4


def test_the_display_goes_off_at_night_before_the_browser_starts(health_server, tmp_path):
    port = free_port()
    health_server(port, [200])
    browser = StandInBrowser(RUN_LONG)
    stop = threading.Event()
    supervisor, commands = _supervisor(port, browser, stop, tmp_path, now=NIGHT)
    watcher = _stop_when(lambda: len(browser.processes) == 1, stop)

    assert supervisor.run() == 0
    watcher.join()
    assert commands.calls == [["wlopm", "--off", "*"]]
    assert supervisor.screen.night is True


def test_no_browser_starts_while_the_dashboard_is_unhealthy(health_server, tmp_path):
    port = free_port()
    health_server(port, [503])
    browser = StandInBrowser(RUN_LONG)
    supervisor, _ = _supervisor(port, browser, threading.Event(), tmp_path, health_timeout_s=1.0)

    with pytest.raises(HealthTimeoutError, match="last: HTTP 503"):
        supervisor.run()
    assert browser.commands == []


def test_a_crashed_page_restarts_the_browser_through_the_devtools_pipe(health_server, tmp_path, caplog):
    port = free_port()
    health_server(port, [200])
    browser = StandInBrowser(PAGE_CRASHES, RUN_LONG)
    stop = threading.Event()
    supervisor, _ = _supervisor(port, browser, stop, tmp_path)
    watcher = _stop_when(lambda: len(browser.processes) == 2, stop)

    assert supervisor.run() == 0
    watcher.join()
    assert len(browser.commands) == 2
    assert "--remote-debugging-pipe" in browser.commands[0]
    assert browser.processes[0].returncode is not None  # the "Aw, Snap!" browser was ended
    messages = [r.getMessage() for r in caplog.records]
    assert "the dashboard page crashed (killed, code 9)" in messages
    assert any("stopped (the page crashed)" in m for m in messages)
