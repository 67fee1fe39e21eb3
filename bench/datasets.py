"""Demo caches of 30, 90 and 365 days, made once per bench run through `home-energy seed-demo`.

Seeding a year takes tens of seconds, so every dataset is built once (in parallel) and every
measurement reuses it; servers open it read-only, and the sync measurements work on copies.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SEED_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Dataset:
    days: int
    path: Path
    seed_s: float
    rows: int
    size_bytes: int

    @property
    def bytes_per_day(self) -> float:
        return self.size_bytes / self.days


def server_env(path: Path, days: int, **extra: str) -> dict[str, str]:
    """The environment of a demo-mode process on `path`: no token, retention that keeps `days`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AMBER_", "HOME_ENERGY_", "SQLITE_PATH", "PORT", "HOST", "RETENTION_DAYS"))}
    env.update(SQLITE_PATH=str(path), RETENTION_DAYS=str(max(days, 90)), HOST="127.0.0.1", **extra)
    return env


def seed_all(root: Path, days_list: tuple[int, ...]) -> list[Dataset]:
    """Seed one cache per entry of `days_list` under `root`, all at once; raise if any fails."""
    started: dict[int, tuple[subprocess.Popen, float, Path]] = {}
    for days in days_list:
        path = root / f"demo-{days}d" / "cache.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        log = (path.parent / "seed.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "home_energy.cli", "seed-demo", "--days", str(days)],
            env=server_env(path, days), stdout=log, stderr=subprocess.STDOUT,
        )
        started[days] = (proc, time.monotonic(), path)
    datasets = []
    for days, (proc, t0, path) in started.items():
        code = proc.wait(timeout=SEED_TIMEOUT_S)
        elapsed = time.monotonic() - t0
        if code != 0:
            raise RuntimeError(f"seed-demo --days {days} failed ({code}): see {path.parent / 'seed.log'}")
        datasets.append(measure_dataset(days, path, elapsed))
    return datasets


def measure_dataset(days: int, path: Path, seed_s: float) -> Dataset:
    # Fold the WAL into the file first: its size on disk is what the SD card holds for good.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                   for t in ("prices", "usage", "daily_usage", "sync_runs", "sites", "meta"))
    finally:
        conn.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if not p.name.endswith(".lock"))
    return Dataset(days, path, seed_s, rows, size)
