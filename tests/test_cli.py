"""The `home-energy` command as the timer, systemd and a person use it."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from home_energy.demo import DEMO_SITE_ID
from home_energy.sync import run_sync
from tests.fake_amber import TOKEN
from tests.ports import free_port

CLI = [sys.executable, "-m", "home_energy.cli"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMBER_", "PORT", "SQLITE_PATH"))}
    env.update(SQLITE_PATH=str(tmp_path / "cache.sqlite"), **extra)
    return env


def get_json(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def test_sync_command_prints_one_line_and_exits_0(tmp_path):
    result = subprocess.run(CLI + ["sync"], env=env_for(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sync ok: ") and len(result.stdout.splitlines()) == 1


def test_sync_against_unreachable_amber_exits_75_without_the_token(tmp_path):
    env = env_for(tmp_path, AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{free_port()}/v1")
    result = subprocess.run(CLI + ["sync"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 75
    assert "cannot reach Amber" in result.stderr and TOKEN not in result.stderr + result.stdout


def test_second_sync_waits_then_exits_75_while_the_first_holds_the_lock(tmp_path, monkeypatch):
    import home_energy.store as store

    monkeypatch.setattr(store.cache, "LOCK_WAIT_S", 0.5)
    lock_path = tmp_path / "cache.sqlite.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        from home_energy.config import load_config
        from home_energy.errors import CacheBusyError

        with pytest.raises(CacheBusyError, match="another writer is still using"):
            run_sync(load_config(env={"SQLITE_PATH": str(tmp_path / "cache.sqlite")}))
    finally:
        os.close(fd)


def test_demo_cache_is_replaced_when_a_token_arrives_and_real_data_refuses_the_demo(make_config, fake_amber,
                                                                                    amber_client):
    demo = make_config()
    assert run_sync(demo).exit_code == 0
    real = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake_amber.url)
    assert run_sync(real, amber_client()).exit_code == 0
    import sqlite3

    with sqlite3.connect(real.sqlite_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM prices WHERE site_id = ?", (DEMO_SITE_ID,)).fetchone()[0] == 0
    report = run_sync(demo)
    assert report.exit_code == 78 and "holds real Amber data" in report.error


def test_serve_on_a_taken_port_says_so_and_exits_nonzero(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(CLI + ["serve"], env=env_for(tmp_path, PORT=str(port)), capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 69
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_run_serves_demo_health_ok_quickly_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(CLI + ["run"], env=env_for(tmp_path, PORT=str(port)), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline:
            try:
                body = get_json(f"http://127.0.0.1:{port}/api/health")
                if body.get("status") == "ok":
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert body is not None and (body["status"], body["mode"], body["source"]) == ("ok", "demo", "live")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "serving on http://127.0.0.1:" in text and "(mode demo, " in text and "Traceback" not in text
