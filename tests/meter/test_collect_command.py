"""`home-energy collect`: the collector service's command, and the collector inside `run`."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.fake_meters import FakeShelly

BIN = Path(sys.executable).parent / "home-energy"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METER", "AMBER"))}
    env.update(SQLITE_PATH=str(tmp_path / "cache.sqlite"), **extra)
    return env


def _wait_for_reading(path: Path, timeout_s: float = 20) -> sqlite3.Row | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            conn = sqlite3.connect(path)
            try:
                row = conn.execute("SELECT grid_w, source FROM meter_latest").fetchone()
            except sqlite3.OperationalError:
                row = None
            finally:
                conn.close()
            if row:
                return row
        time.sleep(0.2)
    return None


def test_collect_without_a_meter_says_so_and_exits_0(tmp_path):
    result = subprocess.run([str(BIN), "collect"], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "no meter configured (METER is unset): nothing to collect\n"


def test_collect_polls_until_sigterm_and_never_logs_the_password(tmp_path):
    with FakeShelly(password="pa55-word-xyz") as fake:
        env = _env(tmp_path, METER="shelly", METER_URL=fake.url, METER_PASSWORD="pa55-word-xyz",
                   METER_POLL_SECONDS="5", DEBUG="1")
        proc = subprocess.Popen([str(BIN), "collect"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            row = _wait_for_reading(tmp_path / "cache.sqlite")
            assert row == (2413.825, "shelly")
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
            assert time.monotonic() - sent < 5
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert "pa55-word-xyz" not in out + err
    assert "collecting from the shelly meter every 5 s" in err


def test_collect_with_a_bad_meter_setting_is_exit_78(tmp_path):
    result = subprocess.run([str(BIN), "collect"], env=_env(tmp_path, METER="enphase"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78 and result.stderr.startswith("error: METER must be one of fronius, shelly")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_serves_live_power_within_20_seconds_of_start(tmp_path):
    port = _free_port()
    with FakeShelly() as fake:
        env = _env(tmp_path, METER="shelly", METER_URL=fake.url, PORT=str(port))
        started = time.monotonic()
        proc = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            body = None
            while time.monotonic() - started < 20:
                try:
                    body = requests.get(f"http://127.0.0.1:{port}/api/live", timeout=2).json()
                    if body.get("grid_w") is not None:
                        break
                except (requests.RequestException, ValueError):
                    pass
                time.sleep(0.3)
            assert body is not None and body["grid_w"] == 2413.825 and body["source"] == "shelly"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=15)
    assert proc.returncode == 0
