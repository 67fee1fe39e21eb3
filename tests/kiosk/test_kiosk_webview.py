"""The pywebview backend, checked with a stand-in `webview` module.

The real Qt backend is about 560 MB of wheels, too much for CI's `make test`, and the GTK one
needs Debian packages outside the venv; docs/kiosk.md says how the real window was checked.
Here a fake module records what the kiosk asks of pywebview, both in-process and end to end
through `home-energy-kiosk --browser webview`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from kiosk.errors import EX_UNAVAILABLE
from kiosk.webview_window import open_window, pick_gui, window_arguments
from tests.kiosk.kiosk_helpers import end_group, free_port

URL = "http://127.0.0.1:5050/?kiosk=1"


class FakeWebview:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_window(self, **kwargs):
        self.calls.append(("create_window", kwargs))

    def start(self, **kwargs):
        self.calls.append(("start", kwargs))


def _spec(*present: str):
    return lambda name: object() if name in present else None


def test_the_window_is_fullscreen_frameless_and_opens_the_kiosk_page():
    fake = FakeWebview()
    open_window(URL, webview=fake, find_spec=_spec("gi"))
    assert fake.calls == [
        ("create_window", {"title": "home-energy", "url": URL, "fullscreen": True, "frameless": True,
                           "resizable": False}),
        ("start", {"gui": "gtk", "private_mode": True}),
    ]


@pytest.mark.parametrize(("present", "gui"), [
    (("gi", "PyQt6"), "gtk"),  # a Pi: Debian's python3-gi
    (("PyQt6",), "qt"),
    (("PyQt5",), "qt"),
    ((), None),  # let pywebview report what is missing
])
def test_gtk_is_preferred_then_qt(present, gui):
    assert pick_gui(_spec(*present)) == gui


def test_window_arguments_never_show_a_frame_or_a_window_smaller_than_the_screen():
    arguments = window_arguments(URL)
    assert arguments["fullscreen"] is True and arguments["frameless"] is True
    assert "width" not in arguments and "height" not in arguments


def test_a_missing_pywebview_is_one_line_and_exit_69():
    program = ("import sys; sys.modules['webview'] = None\n"
               "from kiosk.webview_window import main\n"
               f"sys.exit(main([{URL!r}]))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == EX_UNAVAILABLE
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: pywebview cannot be used")


FAKE_MODULE = textwrap.dedent('''
    """Stand-in for pywebview: records calls; the first window closes at once, later ones stay."""
    import json, os, time

    RECORD = os.environ["FAKE_WEBVIEW_RECORD"]

    def _append(entry):
        with open(RECORD, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\\n")

    def create_window(**kwargs):
        _append({"call": "create_window", "pid": os.getpid(), "kwargs": kwargs})

    def start(**kwargs):
        with open(RECORD, encoding="utf-8") as handle:
            launches = sum(1 for line in handle if '"create_window"' in line)
        _append({"call": "start", "pid": os.getpid(), "kwargs": kwargs})
        if launches > 1 or os.environ.get("FAKE_WEBVIEW_CLOSE_FIRST") != "1":
            time.sleep(120)
''')


def _launcher(tmp_path: Path, port: int, close_first: bool) -> tuple[subprocess.Popen, Path]:
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir(exist_ok=True)
    (fake_dir / "webview.py").write_text(FAKE_MODULE, encoding="utf-8")
    record = tmp_path / "record.jsonl"
    record.touch()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY") and not k.startswith("KIOSK_")}
    env.update(PYTHONPATH=os.pathsep.join([str(fake_dir), *filter(None, [os.environ.get("PYTHONPATH")])]),
               FAKE_WEBVIEW_RECORD=str(record), FAKE_WEBVIEW_CLOSE_FIRST="1" if close_first else "0",
               XDG_RUNTIME_DIR=str(tmp_path))
    launcher = subprocess.Popen([sys.executable, "-m", "kiosk.launcher", "--browser", "webview",
                                 "--url", f"http://127.0.0.1:{port}", "--health-timeout", "10"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    return launcher, record


def _entries(record: Path, call: str) -> list[dict]:
    return [e for e in map(json.loads, record.read_text(encoding="utf-8").splitlines()) if e["call"] == call]


def _lines_of(stream: IO[str]) -> list[str]:
    """The lines `stream` has given so far, filled by a reader thread until it ends."""
    lines: list[str] = []

    def read() -> None:
        try:
            for line in stream:
                lines.append(line)
        except (OSError, ValueError):  # closed by the test's clean-up while still reading
            pass

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for_windows(record: Path, count: int, timeout_s: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(_entries(record, "start")) < count:
        time.sleep(0.1)
    return _entries(record, "create_window")


def test_launcher_supervises_the_webview_window_like_a_browser(tmp_path: Path, health_server):
    port = free_port()
    health_server(port, [200])
    launcher, record = _launcher(tmp_path, port, close_first=True)
    try:
        windows = _wait_for_windows(record, 2)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(15) == 0
        stderr = launcher.stderr.read()
    finally:
        end_group(launcher)
        launcher.stderr.close()

    assert len(windows) == 2, stderr  # the closed window was opened again
    assert windows[0]["pid"] != windows[1]["pid"]
    for window in windows:
        assert window["kwargs"]["url"] == f"http://127.0.0.1:{port}/?kiosk=1"
        assert window["kwargs"]["fullscreen"] is True
        assert window["kwargs"]["frameless"] is True
    assert all(e["kwargs"]["private_mode"] is True for e in _entries(record, "start"))
    with pytest.raises(ProcessLookupError):  # the window still open at SIGTERM was closed with the launcher
        os.kill(windows[1]["pid"], 0)
    assert "browser: webview" in stderr
    assert "Traceback" not in stderr


def test_a_second_launcher_on_the_same_display_waits_then_takes_over(tmp_path: Path, health_server):
    port = free_port()
    health_server(port, [200])
    first, record = _launcher(tmp_path, port, close_first=False)
    second = None
    try:
        assert len(_wait_for_windows(record, 1)) == 1
        second, _ = _launcher(tmp_path, port, close_first=False)
        said = _lines_of(second.stderr)
        deadline = time.monotonic() + 20
        while not any("waiting to take over" in line for line in said) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any("waiting to take over" in line for line in said), said
        assert second.poll() is None
        assert len(_entries(record, "create_window")) == 1  # one display, one window

        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
        windows = _wait_for_windows(record, 2)
        assert len(windows) == 2
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        for launcher in (first, second):
            if launcher is not None:
                end_group(launcher)
                launcher.stderr.close()
