"""A real `home-energy serve` (Waitress) subprocess on a free loopback port, and its memory.

The server is started exactly as systemd starts it (the CLI, demo mode, one SQLite file), so the
figures include Waitress, Flask and the per-request read-only connection. Its resident memory is
read from /proc/<pid>/status (VmRSS), the kernel's own count, without extra dependencies.
"""
from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

from .datasets import server_env

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of `pid` in MB (10^6 bytes) (`VmHWM` gives the peak instead)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Server:
    """`with Server(path, days) as server:` starts the CLI's serve and waits until it answers."""

    def __init__(self, sqlite_path: Path, days: int, log_path: Path, python: str = sys.executable,
                 prefix: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = server_env(sqlite_path, days, PORT=str(self.port))
        self.command = [python, *prefix, "-m", "home_energy.cli", "serve"]
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"home-energy serve exited {self.proc.returncode}: see {self.log_path}")
            if self._answers():
                return self
            time.sleep(POLL_INTERVAL_S)
        self.stop()
        raise RuntimeError(f"home-energy serve did not answer within {START_TIMEOUT_S:.0f} s: see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            # A plain static path: the first figure taken is the memory before any API request.
            conn.request("GET", "/favicon-probe-that-does-not-exist")
            conn.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
