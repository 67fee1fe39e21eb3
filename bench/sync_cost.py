"""The sync's own cost: processing time and peak memory with the upstream taken out.

A run is first recorded against the demo upstream (a 5-minute site with general and feed-in
channels, Amber-shaped payloads) on a scratch copy of the cache, keeping each answer as the JSON
text the network would have carried. It is then replayed on fresh copies: the replaying upstream
only parses that text, so the time measured is decoding, validation, the transaction, roll-ups
and pruning, never the simulator or a socket.

Each measurement runs in its own child process (`python -m bench.sync_cost`), so its peak
resident memory (VmHWM, reset through /proc/self/clear_refs just before the run) is the sync's
and not the harness's.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from home_energy.amber import RateLimit

from .datasets import server_env

REPEATS = 3
CHILD_TIMEOUT_S = 120.0
SCENARIOS = {
    # name: (what it is, how to prepare the copy)
    "steady": "5-minute run: current prices and forecasts only",
    "hourly": "hourly run: prices plus the last days of usage and their daily roll-ups",
    "first": "first run on an empty cache: sites, prices, recent usage and three backfill chunks",
}


@dataclass(frozen=True)
class SyncCost:
    scenario: str
    days: int
    rows_written: int
    calls: int
    median_s: float
    max_s: float
    peak_rss_mb: float
    heap_peak_mb: float


class RecordingUpstream:
    """Wraps the demo upstream and keeps every answer as the JSON text Amber would have sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.rate_limit: RateLimit | None = None
        self.answers: list[tuple[str, str]] = []

    def _keep(self, method: str, payload: Any) -> Any:
        self.calls += 1
        self.answers.append((method, json.dumps(payload)))
        return payload

    def sites(self) -> Any:
        return self._keep("sites", self.inner.sites())

    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any:
        return self._keep("current_prices", self.inner.current_prices(site_id, next_=next_, previous=previous,
                                                                      resolution=resolution))

    def usage(self, site_id: str, start: Any, end: Any) -> Any:
        return self._keep("usage", self.inner.usage(site_id, start, end))

    def close(self) -> None:
        pass


class ReplayUpstream:
    """Answers each call with the recorded text of the same call, parsed as the real client does."""

    def __init__(self, answers: list[tuple[str, str]]) -> None:
        self.queue = {method: [text for m, text in answers if m == method] for method, _ in answers}
        self.calls = 0
        self.rate_limit: RateLimit | None = None

    def _next(self, method: str) -> Any:
        remaining = self.queue.get(method)
        if not remaining:
            raise RuntimeError(f"the replayed sync made a call the recording did not: {method}")
        self.calls += 1
        return json.loads(remaining.pop(0))

    def sites(self) -> Any:
        return self._next("sites")

    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any:
        return self._next("current_prices")

    def usage(self, site_id: str, start: Any, end: Any) -> Any:
        return self._next("usage")

    def close(self) -> None:
        pass


def prepare_copy(source: Path, target: Path, scenario: str) -> None:
    """A fresh copy of `source` at `target`, set up so the next sync does `scenario`'s work."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(target.name + "*"):
        stale.unlink()
    if scenario == "first":
        return
    shutil.copyfile(source, target)
    from home_energy import store

    conn = store.open_writer(target)
    try:
        if scenario == "hourly":  # usage is due: forget when it was last fetched
            keys = [key for (key,) in conn.execute("SELECT key FROM meta WHERE key LIKE 'usage_fetched_at:%'")]
            with store.transaction(conn):
                for key in keys:
                    store.set_meta(conn, key, None)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import os

    from home_energy.config import load_config
    from home_energy.demo import DemoUpstream
    from home_energy.sync import run_sync

    config = load_config(env=server_env(Path(args.db), args.days))
    if args.mode == "record":
        upstream = RecordingUpstream(DemoUpstream())
        report = run_sync(config, upstream)
        Path(args.answers).write_text(json.dumps(upstream.answers))
        return {"outcome": report.outcome, "rows": report.rows_written, "calls": report.upstream_calls}
    replay = ReplayUpstream([tuple(a) for a in json.loads(Path(args.answers).read_text())])
    if args.mode == "heap":
        tracemalloc.start()
        report = run_sync(config, replay)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"outcome": report.outcome, "heap_peak_mb": peak / 1e6}
    with open(f"/proc/{os.getpid()}/clear_refs", "w") as handle:
        handle.write("5")  # reset VmHWM: the peak measured is the sync's
    started = time.perf_counter()
    report = run_sync(config, replay)
    elapsed = time.perf_counter() - started
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"outcome": report.outcome, "rows": report.rows_written, "calls": report.upstream_calls, "seconds": elapsed,
            "peak_rss_mb": peak_kib * 1024 / 1e6}


def _run_child(mode: str, db: Path, days: int, answers: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.sync_cost", mode, str(db), str(days), str(answers)],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=server_env(db, days),
    )
    if result.returncode != 0:
        raise RuntimeError(f"sync child ({mode}) failed: {result.stderr.strip()[-500:]}")
    body = json.loads(result.stdout.strip().splitlines()[-1])
    if body["outcome"] not in ("ok", "partial"):
        raise RuntimeError(f"sync child ({mode}) ended {body['outcome']}")
    return body


def measure_sync(dataset_path: Path, days: int, scenario: str, work: Path) -> SyncCost:
    answers = work / f"answers-{scenario}-{days}d.json"
    db = work / f"sync-{scenario}-{days}d" / "cache.sqlite"
    prepare_copy(dataset_path, db, scenario)
    _run_child("record", db, days, answers)
    runs = []
    for _ in range(REPEATS):
        prepare_copy(dataset_path, db, scenario)
        runs.append(_run_child("time", db, days, answers))
    prepare_copy(dataset_path, db, scenario)
    heap = _run_child("heap", db, days, answers)
    seconds = [r["seconds"] for r in runs]
    return SyncCost(
        scenario=scenario, days=days, rows_written=runs[0]["rows"], calls=runs[0]["calls"],
        median_s=statistics.median(seconds), max_s=max(seconds),
        peak_rss_mb=max(r["peak_rss_mb"] for r in runs), heap_peak_mb=heap["heap_peak_mb"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_cost", description="one measured sync (child)")
    parser.add_argument("mode", choices=("record", "time", "heap"))
    parser.add_argument("db")
    parser.add_argument("days", type=int)
    parser.add_argument("answers")
    print(json.dumps(_child(parser.parse_args())))


if __name__ == "__main__":
    main()
