"""What the reliability tests share: a whole-cache fingerprint, a real server process, an upstream
that answers from prepared payloads, and the loopback plumbing.

Every wait here is bounded in time, and every socket is on 127.0.0.1.
"""
from __future__ import annotations

import copy
import hashlib
import http.client
import os
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tests.ports import free_port

ALL_TABLES = ("sites", "prices", "usage", "daily_usage", "sync_runs", "meta")
DATA_TABLES = ("sites", "prices", "usage", "daily_usage")
SERVER_START_S = 20.0
SERVER_STOP_S = 10.0


def table_rows(path: Path, tables: tuple[str, ...] = ALL_TABLES) -> dict[str, list[tuple]]:
    """Every row of `tables`, in a stable order, read through SQLite (so the WAL counts)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        out = {}
        for table in tables:
            width = len(conn.execute(f"PRAGMA table_info({table})").fetchall())
            order = ", ".join(str(i) for i in range(1, width + 1))
            out[table] = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        return out
    finally:
        conn.close()


def fingerprint(path: Path, tables: tuple[str, ...] = ALL_TABLES) -> str:
    return hashlib.sha256(repr(table_rows(path, tables)).encode()).hexdigest()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check").fetchall())
    finally:
        conn.close()


# `home-energy` with the project's clock seam pinned to an instant (argv[1]): a subprocess whose
# dates do not depend on today's. (libfaketime would do it from outside, but its clock_nanosleep
# fails with EINVAL under Python's time.sleep.)
_PINNED_CLI = (
    "import sys\n"
    "from datetime import datetime\n"
    "import home_energy.clock as clock\n"
    "at = datetime.fromisoformat(sys.argv[1])\n"
    "clock.now_utc = lambda: at\n"
    "import home_energy.cli\n"
    "sys.exit(home_energy.cli.main(sys.argv[2:]))\n"
)


def pinned_cli(at: datetime, *args: str) -> list[str]:
    """The command line of `home-energy ARGS` whose clock reads `at` (aware UTC)."""
    return [sys.executable, "-c", _PINNED_CLI, at.isoformat(), *args]


def cli_env(sqlite_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AMBER_", "HOME_ENERGY_", "SQLITE_PATH", "PORT", "HOST", "RETENTION_DAYS"))}
    env.update(SQLITE_PATH=str(sqlite_path), HOST="127.0.0.1", **extra)
    return env


class ServeProcess:
    """`home-energy serve` in a subprocess: `with ServeProcess(path, log) as server: server.port`."""

    def __init__(self, sqlite_path: Path, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = cli_env(sqlite_path, PORT=str(self.port))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServeProcess:
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "serve"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise AssertionError(f"home-energy serve did not listen within {SERVER_START_S} s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=SERVER_STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=SERVER_STOP_S)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text()


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def _dated(item: Any) -> bool:
    try:
        date.fromisoformat(item["date"])
    except (TypeError, KeyError, ValueError):
        return False
    return True


class PayloadUpstream:
    """An upstream that answers sites, prices and usage from payloads given to it (deep-copied)."""

    def __init__(self, sites: Any, prices: Any, usage: Any = ()) -> None:
        self.payloads = {"sites": sites, "prices": prices, "usage": list(usage) if isinstance(usage, tuple) else usage}
        self.calls = 0
        self.rate_limit = None
        self.asked: list[str] = []

    def _answer(self, name: str) -> Any:
        self.calls += 1
        self.asked.append(name)
        return copy.deepcopy(self.payloads[name])

    def sites(self) -> Any:
        return self._answer("sites")

    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any:
        return self._answer("prices")

    def usage(self, site_id: str, start: Any, end: Any) -> Any:
        """The payload's rows of the dates asked for, as Amber answers (every call the same rows
        would put a day into ranges it is not in); a row whose date does not parse is kept, so the
        sync's own checks meet it."""
        answer = self._answer("usage")
        if not isinstance(answer, list):
            return answer
        return [item for item in answer if not _dated(item) or start.isoformat() <= item["date"] <= end.isoformat()]

    def close(self) -> None:
        pass
