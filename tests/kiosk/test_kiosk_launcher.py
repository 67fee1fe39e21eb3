"""The `home-energy-kiosk` process: exit codes, one-line errors and stopping while it waits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from kiosk.errors import EX_CONFIG, EX_OSERR
from tests.kiosk.kiosk_helpers import end_group, free_port


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "HOME_ENERGY_ENV_FILE") and not k.startswith("KIOSK_")}
    env.update({"XDG_RUNTIME_DIR": str(tmp_path), **extra})
    return env


def test_a_bad_setting_is_one_line_naming_it_and_exit_78(tmp_path):
    result = subprocess.run([sys.executable, "-m", "kiosk.launcher"], env=_env(tmp_path, KIOSK_HEALTH_TIMEOUT="soon"),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == EX_CONFIG
    assert result.stderr == "error: KIOSK_HEALTH_TIMEOUT must be a number of seconds from 1 to 86400, e.g. 120\n"


def test_sigterm_while_waiting_for_the_dashboard_exits_0_at_once(tmp_path):
    launcher = subprocess.Popen(
        [sys.executable, "-m", "kiosk.launcher", "--url", f"http://127.0.0.1:{free_port()}/",
         "--browser", "chromium", "--health-timeout", "60"],
        env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (tmp_path / "home-energy-kiosk-none.lock").exists():
            time.sleep(0.05)
        time.sleep(0.5)
        sent = time.monotonic()
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(10) == 0
        assert time.monotonic() - sent < 4
        stderr = launcher.stderr.read()
    finally:
        end_group(launcher)
        launcher.stderr.close()
    assert "INFO kiosk: stopping on SIGTERM" in stderr
    assert "started chromium" not in stderr


def test_no_sandbox_is_warned_about_whenever_it_is_passed(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kiosk.launcher", "--url", f"http://127.0.0.1:{free_port()}/", "--browser", "chromium",
         "--health-timeout", "1", "--chromium-flag=--no-sandbox"],
        env=_env(tmp_path), capture_output=True, text=True, timeout=30, check=False)
    assert "WARNING kiosk: Chromium runs with --no-sandbox: for tests as root only, never on a Pi" in result.stderr


def test_a_missing_runtime_directory_is_one_line_and_exit_71(tmp_path):
    missing = tmp_path / "no-such-dir"
    result = subprocess.run(
        [sys.executable, "-m", "kiosk.launcher", "--url", f"http://127.0.0.1:{free_port()}/", "--browser", "chromium",
         "--health-timeout", "1"],
        env=_env(tmp_path, XDG_RUNTIME_DIR=str(missing)), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == EX_OSERR
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"error: No such file or directory ({missing}/home-energy-kiosk-none.lock)"
