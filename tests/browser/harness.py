"""Start the real server on a demo cache and Debian's Chromium, for the browser tests and screenshots.

Chromium is always /usr/bin/chromium (never a downloaded browser), launched with the flags that
keep it from reaching for the network on its own, so "no request leaves the origin" is testable.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SERVE_SCRIPT = Path(__file__).with_name("serve_with_version.py")
SERVER_START_TIMEOUT_S = 15
BIN = Path(sys.executable).parent


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def sync_demo(sqlite_path: Path, **env: str) -> None:
    """Fill a cache from the built-in demo upstream, as `home-energy sync` does on a Pi."""
    subprocess.run(
        [str(BIN / "home-energy"), "sync"],
        env=_env(sqlite_path, None, env), check=True, capture_output=True, timeout=60,
    )


def _env(sqlite_path: Path, port: int | None, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMBER_TOKEN", "MONTHLY_BUDGET")}
    env["SQLITE_PATH"] = str(sqlite_path)
    if port is not None:
        env["PORT"] = str(port)
        env["HOST"] = "127.0.0.1"
    env.update(extra)
    return env


class Server:
    """`home-energy serve` as a subprocess; with `version`, the same app reporting that version."""

    def __init__(self, sqlite_path: Path, port: int | None = None, version: str | None = None,
                 start_timeout_s: float = SERVER_START_TIMEOUT_S, **env: str):
        self.sqlite_path = sqlite_path
        self.start_timeout_s = start_timeout_s
        self.port = port or free_port()
        self.version = version
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        if self.version is None:
            cmd = [str(BIN / "home-energy"), "serve"]
        else:
            cmd = [sys.executable, str(SERVE_SCRIPT), self.version]
        self.proc = subprocess.Popen(
            cmd, env=_env(self.sqlite_path, self.port, self.env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer on {self.url} within {self.start_timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
