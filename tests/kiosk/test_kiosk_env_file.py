"""The kiosk finds the dashboard where the dashboard's own env file says it listens.

Started exactly as the autostart line starts it (`home-energy-kiosk --env-file FILE`, nothing
else), with a real `home-energy serve` reading the same file on a port that is not the default:
changing PORT once moves both. The browser is a stand-in `chromium` on PATH that records the URL
it was asked to open.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.kiosk.kiosk_helpers import end_group, free_port

BIN = Path(sys.executable).parent
CLEAN = ("HOST", "PORT", "SQLITE_PATH", "HOME_ENERGY_ENV_FILE", "DISPLAY", "WAYLAND_DISPLAY", "METER")


def _env(tmp_path: Path, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in CLEAN and not k.startswith(("KIOSK_", "AMBER_", "METER_"))}
    env.update(XDG_RUNTIME_DIR=str(tmp_path), PATH=path)
    return env


def _wait(predicate, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_the_kiosk_started_with_only_the_env_file_finds_a_dashboard_on_another_port(tmp_path):
    port = free_port()
    assert port != 5050
    env_file = tmp_path / "dashboard.env"
    env_file.write_text(f"SQLITE_PATH={tmp_path / 'cache.sqlite'}\nHOST=0.0.0.0\nPORT={port}\n", encoding="utf-8")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    opened = tmp_path / "opened"
    chromium = fake_bin / "chromium"
    chromium.write_text(f'#!/bin/sh\nfor a in "$@"; do last="$a"; done\necho "$last" > {opened}\nexec sleep 60\n',
                        encoding="utf-8")
    chromium.chmod(0o755)
    env = _env(tmp_path, f"{fake_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    subprocess.run([str(BIN / "home-energy"), "init-db", "--env-file", str(env_file)], env=env, check=True,
                   capture_output=True, timeout=60)
    kiosk = subprocess.Popen([str(BIN / "home-energy-kiosk"), "--env-file", str(env_file), "--browser", "chromium"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    server = None
    try:
        time.sleep(0.5)  # the kiosk is waiting before the dashboard exists, as at boot
        assert kiosk.poll() is None
        server = subprocess.Popen([str(BIN / "home-energy"), "serve", "--env-file", str(env_file)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = _wait(lambda: opened.exists() and opened.read_text().strip(), timeout_s=45)
        assert url == f"http://127.0.0.1:{port}/?kiosk=1"
        kiosk.send_signal(signal.SIGTERM)
        assert kiosk.wait(15) == 0
        stderr = kiosk.stderr.read()
        assert f"waiting for the dashboard at http://127.0.0.1:{port}/api/health" in stderr
        assert "5050" not in stderr
    finally:
        end_group(kiosk)
        end_group(server)
        kiosk.stderr.close()
