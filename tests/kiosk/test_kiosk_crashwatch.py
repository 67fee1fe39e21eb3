"""The "Aw, Snap!" watch: which DevTools messages mean the dashboard page crashed, and the
fd 3/4 plumbing Chromium's --remote-debugging-pipe needs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kiosk.crashwatch import CrashWatch


def _message(method: str, **params) -> bytes:
    return json.dumps({"method": method, "params": params}).encode()


@pytest.fixture
def watch():
    created = CrashWatch()
    yield created
    created.close()


def test_a_crashed_page_target_is_reported(watch):
    watch.handle(_message("Target.targetCreated", targetInfo={"targetId": "P", "type": "page"}))
    assert not watch.page_crashed.is_set()
    watch.handle(_message("Target.targetCrashed", targetId="P", status="killed", errorCode=9))
    assert watch.page_crashed.is_set()


def test_crashes_of_the_browsers_own_ui_or_unknown_targets_are_not_the_page(watch):
    watch.handle(_message("Target.targetCreated", targetInfo={"targetId": "U", "type": "browser_ui"}))
    watch.handle(_message("Target.targetCrashed", targetId="U", status="killed", errorCode=9))
    watch.handle(_message("Target.targetCrashed", targetId="never-seen", status="crashed", errorCode=11))
    watch.handle(_message("Target.targetCreated", targetInfo={"targetId": "P", "type": "page"}))
    watch.handle(_message("Target.targetDestroyed", targetId="P"))
    watch.handle(_message("Target.targetCrashed", targetId="P", status="killed", errorCode=9))
    assert not watch.page_crashed.is_set()


def test_a_target_that_becomes_a_page_counts(watch):
    watch.handle(_message("Target.targetCreated", targetInfo={"targetId": "T", "type": "other"}))
    watch.handle(_message("Target.targetInfoChanged", targetInfo={"targetId": "T", "type": "page"}))
    watch.handle(_message("Target.targetCrashed", targetId="T", status="crashed", errorCode=139))
    assert watch.page_crashed.is_set()


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"method": "Target.targetCrashed", "params": 5}'])
def test_unreadable_messages_are_ignored(watch, raw):
    watch.handle(raw)
    assert not watch.page_crashed.is_set()


# Chromium's side of the pipe, reduced: read the launcher's command on fd 3, report a page and its
# crash on fd 4.
CHROMIUM_WHOSE_PAGE_CRASHES = """
import json, os
request = json.loads(os.read(3, 4096).rstrip(b"\\0"))
assert request["method"] == "Target.setDiscoverTargets" and request["params"] == {"discover": True}
for message in ({"method": "Target.targetCreated", "params": {"targetInfo": {"targetId": "P", "type": "page"}}},
                {"method": "Target.targetCrashed", "params": {"targetId": "P", "status": "killed", "errorCode": 9}}):
    os.write(4, json.dumps(message).encode() + b"\\0")
"""


def test_the_watch_hears_a_crash_over_the_real_pipe():
    watch = CrashWatch()
    argv, pass_fds = watch.wrap([sys.executable, "-c", CHROMIUM_WHOSE_PAGE_CRASHES])
    assert argv[1:3] == ["-m", "kiosk.fdexec"]
    child = subprocess.Popen(argv, pass_fds=pass_fds)
    try:
        watch.start()
        assert child.wait(20) == 0
        assert watch.page_crashed.wait(10)
    finally:
        watch.close()


@pytest.mark.parametrize("swap", [False, True])
def test_fdexec_moves_any_two_descriptors_onto_3_and_4(swap, tmp_path):
    # Whatever numbers the pipe ends have (even 4 and 3, crossed), the program finds them on 3 and 4.
    out = tmp_path / "out"
    program = (f"import os; os.write(4, os.read(3, 100)); open({str(out)!r}, 'w').write('ok')")
    inner = (
        "import os, subprocess, sys\n"
        "a_r, a_w = os.pipe(); b_r, b_w = os.pipe()\n"
        "r, w = (a_r, b_w)\n"
        f"if {swap}:\n"
        "    os.dup2(a_r, 9); os.dup2(b_w, 8); r, w = 9, 8\n"
        "os.write(a_w, b'ping')\n"
        "fdexec = [sys.executable, '-m', 'kiosk.fdexec', str(r), str(w)]\n"
        f"child = subprocess.Popen([*fdexec, sys.executable, '-c', {program!r}],"
        " pass_fds=(r, w))\n"
        "os.close(w)\n"
        "assert child.wait(20) == 0\n"
        "print(os.read(b_r, 100).decode())\n")
    result = subprocess.run([sys.executable, "-c", inner], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ping"
    assert out.read_text() == "ok"


def test_fdexec_reports_a_missing_program_in_one_line():
    read_fd, write_fd = os.pipe()
    try:
        command = [sys.executable, "-m", "kiosk.fdexec", str(read_fd), str(write_fd), "/nonexistent/chromium"]
        result = subprocess.run(command,
                                pass_fds=(read_fd, write_fd), capture_output=True, text=True, timeout=30, check=False)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert result.returncode == 127
    assert result.stderr == "error: cannot start /nonexistent/chromium: No such file or directory\n"
