"""The Pi test harness: a fake Pi with stub systemctl and sudo, for pi/update.sh end to end.

The update tests run pi/update.sh for real in temporary git repositories: a bare "origin" and a
"Pi" checkout cloned from it. `systemctl` and `sudo` on PATH are stubs that record their calls;
the stub `systemctl restart home-energy-dashboard.service` runs what the unit runs (init-db, then a
real `home-energy serve` from the Pi checkout on a free port), so the health check sees the
version the checkout really serves. The Pi's `.venv/bin/python` runs this project's interpreter
on the Pi checkout's sources and records pip installs instead of doing them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
PI = REPO / "pi"

SUDO_STUB = """#!/usr/bin/env bash
# Test stand-in for sudo: records the call, then runs the command as the current user.
set -euo pipefail
printf 'sudo %s\\n' "$*" >>"$STUB_LOG"
if [[ -n "${STUB_SUDO_NEEDS_PASSWORD:-}" ]]; then
  echo "sudo: a password is required" >&2
  exit 1
fi
while (($#)); do
  case "$1" in
    -u) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
"""

SYSTEMCTL_STUB = """#!/usr/bin/env bash
# Test stand-in for systemctl: records the call; the dashboard and the sync run what their units run.
set -euo pipefail
printf 'systemctl %s\\n' "$*" >>"$STUB_LOG"
py="$PI_CHECKOUT/.venv/bin/python"

stop_dashboard() {
  if [[ -f "$SERVER_PID" ]]; then
    local pid
    pid="$(cat "$SERVER_PID")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$SERVER_PID"
  fi
}

start_dashboard() {
  stop_dashboard
  (cd "$PI_CHECKOUT" && "$py" -m home_energy.cli init-db) >>"$SERVER_LOG" 2>&1 || return 1
  (cd "$PI_CHECKOUT" && exec "$py" -m home_energy.cli serve) </dev/null >>"$SERVER_LOG" 2>&1 &
  echo "$!" >"$SERVER_PID"
}

command="$1"
shift
case "$command" in
  start|restart|stop|try-restart)
    for unit in "$@"; do
      case "$command:$unit" in
        start:home-energy-dashboard.service|restart:home-energy-dashboard.service) start_dashboard ;;
        stop:home-energy-dashboard.service) stop_dashboard ;;
        start:home-energy-sync-cache.service)
          printf 'sync started\n' >>"$SERVER_LOG"
          sleep "${STUB_SYNC_DELAY_S:-0}"
          (cd "$PI_CHECKOUT" && "$py" -m home_energy.cli sync) >>"$SERVER_LOG" 2>&1 ;;
        *) ;;
      esac
    done ;;
  is-active)
    for unit in "$@"; do
      if [[ " ${STUB_INACTIVE:-} " == *" $unit "* ]]; then
        [[ " $* " == *" --quiet "* ]] || echo inactive
        exit 3
      fi
    done
    [[ " $* " == *" --quiet "* ]] || echo active ;;
  list-timers)
    echo "NEXT                        LEFT LAST PASSED UNIT                         ACTIVATES"
    echo "Mon 2026-11-23 10:05:20 UTC 4min -    -      home-energy-sync-cache.timer home-energy-sync-cache.service" ;;
  *) ;;
esac
"""

VENV_PYTHON_STUB = """#!/bin/sh
# Test stand-in for the Pi's virtualenv python: pip installs are recorded, not done; everything
# else runs this project's interpreter on the Pi checkout's sources.
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "$*" >>"$PIP_LOG"
  exit 0
fi
PYTHONPATH="{checkout}" exec "{python}" "$@"
"""

VENV_PROGRAM_STUB = """#!/bin/sh
# Test stand-in for the Pi's virtualenv `home-energy`: the Pi checkout's command line.
PYTHONPATH="{checkout}" exec "{python}" -m home_energy.cli "$@"
"""


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return result.stdout.strip()


def copy_project(dest: Path) -> None:
    """The project's files as this checkout has them (committed or not, never ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked archive): copy the sources
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", "data", ".pytest_cache", ".hypothesis"))
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@dataclass
class FakePi:
    root: Path
    src: Path          # where new commits are made and pushed from
    checkout: Path     # the Pi's clone of origin
    env: dict[str, str]
    port: int

    @property
    def stub_log(self) -> Path:
        return Path(self.env["STUB_LOG"])

    @property
    def pip_log(self) -> Path:
        return Path(self.env["PIP_LOG"])

    @property
    def cache(self) -> Path:
        return Path(self.env["SQLITE_PATH"])

    def head(self) -> str:
        return git(self.checkout, "rev-parse", "HEAD")

    def push_commit(self, message: str, edit) -> str:
        """Change the source tree with edit(src), commit, push to origin; returns the commit."""
        edit(self.src)
        git(self.src, "add", "-A")
        git(self.src, "commit", "-q", "-m", message)
        git(self.src, "push", "-q", "origin", "main")
        return git(self.src, "rev-parse", "HEAD")

    def systemctl(self, *args: str) -> None:
        subprocess.run(["systemctl", *args], env=self.env, check=True, timeout=30)

    def update(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.checkout / "pi" / "update.sh"), *args], cwd=self.checkout, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/health"

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.health_url, timeout=3) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def wait_for_version(self, version: str, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        body = None
        while time.monotonic() < deadline:
            body = self.health()
            if body and body.get("version") == version:
                return body
            time.sleep(0.2)
        raise AssertionError(f"health never reported {version}; last answer: {body}")

    def stop_server(self) -> None:
        pid_file = Path(self.env["SERVER_PID"])
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            pid_file.unlink()


@pytest.fixture
def fake_pi(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    copy_project(src)
    git(src, "init", "-q", "-b", "main")
    git(src, "config", "user.email", "test@example.invalid")
    git(src, "config", "user.name", "test")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "first")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(origin))
    git(src, "remote", "add", "origin", str(origin))
    git(src, "fetch", "-q", "origin")
    checkout = tmp_path / "pi-checkout"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(checkout))
    git(checkout, "config", "user.email", "pi@example.invalid")
    git(checkout, "config", "user.name", "pi")

    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(VENV_PYTHON_STUB.format(checkout=checkout, python=sys.executable))
    (venv_bin / "python").chmod(0o755)
    (venv_bin / "home-energy").write_text(VENV_PROGRAM_STUB.format(checkout=checkout, python=sys.executable))
    (venv_bin / "home-energy").chmod(0o755)
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("# the services' env file; the test's environment sets the rest\n")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in (("sudo", SUDO_STUB), ("systemctl", SYSTEMCTL_STUB)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)

    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in {"AMBER_TOKEN", "AMBER_SITE_ID", "AMBER_API_URL", "HOME_ENERGY_ENV_FILE",
                          "HOST", "PORT", "SQLITE_PATH", "DEBUG", "HEALTH_URL", "HOME_ENERGY_UPDATE_KILL_AT"}}
    env.update(
        PATH=f"{stubs}:{env.get('PATH', '/usr/bin:/bin')}",
        PI_CHECKOUT=str(checkout),
        STUB_LOG=str(tmp_path / "stub.log"),
        PIP_LOG=str(tmp_path / "pip.log"),
        SERVER_LOG=str(tmp_path / "server.log"),
        SERVER_PID=str(tmp_path / "server.pid"),
        SQLITE_PATH=str(tmp_path / "state" / "cache.sqlite"),
        HOST="127.0.0.1",
        PORT=str(port),
        # update.sh finds the dashboard with `home-energy config --health-url`, which sees PORT.
        HOME_ENERGY_ENV_FILE=str(env_file),
        HEALTH_TIMEOUT_S="20",
    )
    pi = FakePi(root=tmp_path, src=src, checkout=checkout, env=env, port=port)
    yield pi
    pi.stop_server()
