"""What the home's meter costs on the Pi: the collector's CPU and memory, the cache, /api/live.

`python -m bench.meter_cost` (or from `python -m bench`) measures, against the targets:
- `home-energy collect` polling a fake Fronius (the real samples, over real HTTP) every 10 s:
  CPU as a share of one core over the steady state, and peak resident memory (VmHWM);
- a year of 1-minute aggregates written in the collector's own row shape and packed by the hour
  as its hourly prune does, worst case (every quantity present, noisy, as on a Fronius with a
  battery) and grid-only (a Shelly): bytes on disk;
- `/api/live` and `/api/today` p99 with 8 clients beside `/api/current`, on a demo cache with a
  meter configured;
- the worst answers under the door's caps (`worst_answers`): `home-energy sync` against an Amber
  answering each shape below its 8 MB cap, and `home-energy collect` against a meter answering
  each shape below its 256 KB cap; the peak RSS of each process, measured from outside, and the
  shape that cost most (`--worst-only` measures just these).
Figures are printed and returned as Markdown for docs/performance.md.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from home_energy.models import Reading
from tests.raw_http import RawServer, request_path

from .load import measure, run_phase
from .server import Server, rss_mb

ROOT = Path(__file__).resolve().parents[1]
TARGET_CPU_PERCENT = 1.0  # of one core, at a 10 s poll
TARGET_RSS_MB = 30.0
TARGET_YEAR_MB = 10.0  # 1-minute aggregates for a year
TARGET_API_P99_MS = 15.0  # the other endpoints' budget (bench/report.py), 8 clients
TARGET_WORST_SYNC_RSS_MB = 150.0  # docs/architecture.md: no answer under the cap takes a sync above this
TARGET_WORST_COLLECTOR_RSS_MB = 64.0  # the meter unit's MemoryMax
WORST_POLLS = 2  # hostile polls each collector shape gets before its peak is read
# Runs a command and prints its peak RSS (kB): RUSAGE_CHILDREN of this one-off parent is the command's.
PEAK_RSS = ("import resource, subprocess, sys; subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
POLL_S = 10
COLLECT_S = 120.0  # 12 polls: enough to see the steady state past start-up
API_CLIENTS = 8
API_REQUESTS_PER_CLIENT = 250
WARMUP_REQUESTS_PER_CLIENT = 30  # first connections and first queries are not what a screen sees
MINUTES_PER_YEAR = 365 * 24 * 60


@dataclass(frozen=True)
class Worst:
    """Peak RSS (MB) of a sync and of a collector per hostile answer shape, under the door's caps."""

    sync_mb: dict[str, float] = field(default_factory=dict)
    collector_mb: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def top(figures: dict[str, float]) -> tuple[str, float]:
        return max(figures.items(), key=lambda item: item[1])


@dataclass(frozen=True)
class MeterCost:
    cpu_percent: float
    rss_peak_mb: float
    polls: int
    year_mb_full: float
    year_mb_grid_only: float
    live_p99_ms: float
    today_p99_ms: float
    current_p99_ms: float
    worst: Worst | None = None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _env(path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMBER_", "METER", "SQLITE_PATH", "PORT"))}
    env.update(SQLITE_PATH=str(path), PYTHONPATH=str(ROOT), **extra)
    return env


def measure_collector(work: Path, seconds: float = COLLECT_S) -> tuple[float, float, int]:
    """(CPU % of one core in the steady state, peak RSS MB, polls) of `home-energy collect`."""
    sys.path.insert(0, str(ROOT))
    from tests.fake_meters import FakeFronius

    cache = work / "collector.sqlite"
    with FakeFronius() as meter:
        proc = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "collect"],
                                env=_env(cache, METER="fronius", METER_URL=meter.url, METER_POLL_SECONDS=str(POLL_S)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not any("PowerFlow" in r for r in meter.requests):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the collector did not poll the fake meter")
                time.sleep(0.05)
            time.sleep(1.0)  # past the first poll's imports and migration
            cpu0, t0, polls0 = _cpu_seconds(proc.pid), time.monotonic(), len(meter.requests)
            time.sleep(seconds)
            cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
            polls = sum("PowerFlow" in r for r in meter.requests[polls0:])
            peak = rss_mb(proc.pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
    return (cpu1 - cpu0) / (t1 - t0) * 100, peak, polls


def measure_year(work: Path, grid_only: bool) -> float:
    """MB that a year of 1-minute rows takes in the cache, written as the collector writes them:
    through the store, a reading a minute, old minutes packed by the daily compaction."""
    from home_energy.store import COMPACT_AFTER_S, compact_meter, open_minute, open_writer, save_reading

    path = work / f"year-{'grid' if grid_only else 'full'}.sqlite"
    conn = open_writer(path)
    rng = random.Random(7)
    start = 1_790_000_000 - 1_790_000_000 % 60

    def reading(i: int) -> Reading:
        minute = start + 60 * i
        hour = (i // 60) % 24
        grid = rng.randint(-4000, 6000)
        at = datetime.fromtimestamp(minute, UTC)
        if grid_only:
            return Reading(at, "fronius", grid, None, None, None, None)
        solar = rng.randint(0, 6500) if 6 <= hour < 19 else None
        return Reading(at, "fronius", grid, solar, rng.randint(-3000, 3000), None, rng.randint(150, 7000))

    for i in range(MINUTES_PER_YEAR):
        poll = reading(i)
        grid = poll.grid_w or 0.0
        minute = start + 60 * i
        save_reading(conn, poll, open_minute(conn, minute).add(poll), (max(grid, 0) / 60, max(-grid, 0) / 60))
        if i % 1440 == 1439:
            compact_meter(conn, minute)  # daily here; hourly in the collector, to the same result
    compact_meter(conn, start + MINUTES_PER_YEAR * 60 + COMPACT_AFTER_S)
    size = conn.execute("SELECT SUM(pgsize) FROM dbstat WHERE name IN ('meter_minutes', 'meter_hours')").fetchone()[0]
    conn.close()
    return size / 1e6


def measure_api(work: Path, dataset: Path | None = None) -> tuple[float, float, float]:
    """p99 ms of /api/live, /api/today and /api/current with a meter configured and a reading cached."""
    cache = dataset or work / "api.sqlite"
    if dataset is None:
        subprocess.run([sys.executable, "-m", "home_energy.cli", "seed-demo", "--days", "30"],
                       env=_env(cache, RETENTION_DAYS="90"), check=True, capture_output=True, timeout=600)
    from home_energy.clock import nem_date, nem_day_start, now_utc
    from home_energy.store import open_minute, open_writer, save_reading

    conn = open_writer(cache)  # migrates a dataset seeded by an older schema
    now = now_utc()
    day_start = int(nem_day_start(nem_date(now)).timestamp())
    # A whole day so far of minutes, so /api/today prices every one of them; the last is the latest reading.
    for minute in range(day_start, int(now.timestamp()) // 60 * 60, 60):
        poll = Reading(datetime.fromtimestamp(minute, UTC), "fronius", 1703.74, 1111.0, None, None, 2814.74)
        save_reading(conn, poll, open_minute(conn, minute).add(poll), (28.0, 0.0))
    conn.close()
    server = Server(cache, 365, work / "meter-serve.log")
    server.env.update(METER="fronius", METER_URL="http://127.0.0.1:9")
    paths = ["/api/live", "/api/today", "/api/current"]
    with server:
        run_phase(server.port, paths, API_CLIENTS, WARMUP_REQUESTS_PER_CLIENT)
        results = [measure(server.port, path, API_CLIENTS, API_REQUESTS_PER_CLIENT) for path in paths]
    return tuple(r.p99_ms for r in results)  # type: ignore[return-value]


# -- the worst answers under the door's caps -------------------------------------------------------

def _http(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers,
             "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


def _answering(answer: Callable[[str, socket.socket], None]) -> RawServer:
    """A raw server: `answer(path, conn)` writes the whole answer to each request."""
    return RawServer(lambda request, conn: answer(request_path(request), conn))


def _filled(item: bytes, per_item: int, values: int, cap: int) -> bytes:
    """A JSON list of `item`, as many as stay within `values` (counted as the door counts) and `cap`."""
    count = min(values // per_item - 1, (cap - 2) // (len(item) + 1))
    return b"[" + b",".join([item] * count) + b"]"


def amber_shapes() -> dict[str, bytes]:
    """Answers to /prices/current at the Amber client's limits: each one's most of something."""
    from home_energy import amber
    from home_energy.demo import DemoUpstream

    cap, values = amber.MAX_ANSWER_BYTES, amber.MAX_JSON_VALUES
    interval = json.dumps(DemoUpstream().current_prices("x", next_=1, previous=0, resolution=30)[0]).encode()
    per_interval = 1 + sum(interval.count(c) for c in (b"[", b"{", b",", b":"))
    return {
        "two million tiny objects (refused on the count)": b"[" + b'{"":{}},' * (cap // 8 - 1) + b"{}]",
        "objects at the value limit": _filled(b'{"":{}}', 4, values, cap),
        "lists at the value limit": _filled(b"[[]]", 3, values, cap),
        "one object with the most keys": b"{" + b",".join(b'"k%d":0' % i for i in range(values // 3)) + b"}",
        "strings filling the cap": _filled(b'"' + b"x" * 4000 + b'"', 1, values, cap),
        "valid intervals at the value limit": _filled(interval, per_interval, values, cap),
    }


def meter_shapes() -> dict[str, Callable[[socket.socket], None]]:
    """What a hostile meter sends on its data call, at the meter's limits (sources.base)."""
    from home_energy.sources import base

    cap, values = base.MAX_STATUS_BYTES, base.MAX_JSON_VALUES
    bomb = gzip.compress(b" " * (10 * 1024 * 1024), compresslevel=9) * 50

    def send(body: bytes, *headers: str) -> Callable[[socket.socket], None]:
        return lambda conn: conn.sendall(_http("200 OK", body, *headers))

    def stream(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[")
        for _ in range(500 * 16):  # 500 MB
            conn.sendall(b" " * 65536)

    return {
        "objects at the value limit": send(_filled(b'{"":{}}', 4, values, cap)),
        "lists at the value limit": send(_filled(b"[[]]", 3, values, cap)),
        "a string filling the cap": send(b'"' + b"x" * (cap - 2) + b'"'),
        "JSON 10,000 deep": send(b"[" * 10_000 + b"]" * 10_000),
        "gzip bomb (500 MB inflated)": send(bomb, "Content-Encoding: gzip"),
        "500 MB streamed": stream,
    }


def _sync_peak_mb(work: Path, name: str, body: bytes) -> float:
    sys.path.insert(0, str(ROOT))
    from tests.fake_amber import TOKEN, site

    sites = json.dumps([site()]).encode()

    def answer(path: str, conn: socket.socket) -> None:
        if path.startswith("/v1/sites?") or path == "/v1/sites":
            conn.sendall(_http("200 OK", sites))
        elif "/prices/current" in path:
            conn.sendall(_http("200 OK", body))
        else:
            conn.sendall(_http("200 OK", b"[]"))

    server = _answering(answer)
    try:
        cache = work / "worst-sync" / name.replace(" ", "-") / "cache.sqlite"
        cache.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "home_energy.cli", "sync"],
                                env=_env(cache, AMBER_TOKEN=TOKEN, AMBER_API_URL=server.url + "/v1"),
                                capture_output=True, text=True, timeout=180, check=True)
    finally:
        server.close()
    return int(result.stdout.strip()) * 1024 / 1e6


def _collector_peak_mb(work: Path, name: str, behaviour: Callable[[socket.socket], None]) -> float:
    sys.path.insert(0, str(ROOT))
    from tests.fake_meters import FakeFronius

    good = FakeFronius()  # only its bodies: the answers other than the data call stay real

    def answer(path: str, conn: socket.socket) -> None:
        if path.startswith("/solar_api/v1/GetPowerFlowRealtimeData.fcgi"):
            behaviour(conn)
        else:
            conn.sendall(_http("200 OK", json.dumps(good.meter).encode()))

    good.server.server_close()
    server = _answering(answer)
    cache = work / "worst-collector" / name.replace(" ", "-") / "cache.sqlite"
    cache.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "collect"],
                            env=_env(cache, METER="fronius", METER_URL=server.url, METER_POLL_SECONDS="5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while server.hits < 2 * WORST_POLLS:  # a poll is the data call and, now and then, the counters
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the collector did not poll the hostile meter ({name})")
            time.sleep(0.1)
        time.sleep(1.0)
        return rss_mb(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        server.close()


def worst_answers(work: Path, progress: Callable[[str], object] = print) -> Worst:
    """Peak RSS of a sync and of a collector for each worst answer under the door's caps."""
    worst = Worst()
    for name, body in amber_shapes().items():
        worst.sync_mb[name] = _sync_peak_mb(work, name, body)
        progress(f"sync, {name} ({len(body) / 1e6:.1f} MB): peak RSS {worst.sync_mb[name]:.1f} MB")
    for name, behaviour in meter_shapes().items():
        worst.collector_mb[name] = _collector_peak_mb(work, name, behaviour)
        progress(f"collector, {name}: peak RSS {worst.collector_mb[name]:.1f} MB")
    return worst


def measure_meter(work: Path, dataset: Path | None = None, progress: Callable[[str], None] = print) -> MeterCost:
    work.mkdir(parents=True, exist_ok=True)
    cpu, rss, polls = measure_collector(work)
    progress(f"meter collector: {cpu:.2f} % of one core, peak RSS {rss:.1f} MB over {polls} polls at {POLL_S} s")
    full, grid = measure_year(work, grid_only=False), measure_year(work, grid_only=True)
    progress(f"meter: a year of 1-minute aggregates {full:.1f} MB (every quantity), {grid:.1f} MB (grid only)")
    live, today, current = measure_api(work, dataset)
    progress(f"meter API p99 ({API_CLIENTS} clients): /api/live {live:.2f} ms, /api/today {today:.2f} ms, "
             f"/api/current {current:.2f} ms")
    worst = worst_answers(work, progress)
    return MeterCost(cpu, rss, polls, full, grid, live, today, current, worst)


def markdown(cost: MeterCost) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    return [
        "## The home's meter",
        "",
        "| figure | measured | target | result |",
        "|---|---|---|---|",
        f"| collector CPU at a {POLL_S} s poll | {cost.cpu_percent:.2f} % of one core | ≤ {TARGET_CPU_PERCENT:g} % "
        f"| {mark(cost.cpu_percent <= TARGET_CPU_PERCENT)} |",
        f"| collector peak RSS | {cost.rss_peak_mb:.1f} MB | ≤ {TARGET_RSS_MB:g} MB "
        f"| {mark(cost.rss_peak_mb <= TARGET_RSS_MB)} |",
        f"| 1-minute aggregates, a year, every quantity | {cost.year_mb_full:.1f} MB | ≤ {TARGET_YEAR_MB:g} MB "
        f"| {mark(cost.year_mb_full <= TARGET_YEAR_MB)} |",
        f"| 1-minute aggregates, a year, grid only | {cost.year_mb_grid_only:.1f} MB | ≤ {TARGET_YEAR_MB:g} MB "
        f"| {mark(cost.year_mb_grid_only <= TARGET_YEAR_MB)} |",
        f"| `/api/live` p99, {API_CLIENTS} clients | {cost.live_p99_ms:.2f} ms | ≤ {TARGET_API_P99_MS:g} ms "
        f"| {mark(cost.live_p99_ms <= TARGET_API_P99_MS)} |",
        f"| `/api/today` p99, {API_CLIENTS} clients | {cost.today_p99_ms:.2f} ms | ≤ {TARGET_API_P99_MS:g} ms "
        f"| {mark(cost.today_p99_ms <= TARGET_API_P99_MS)} |",
        "",
        f"`/api/current` on the same server and load: p99 {cost.current_p99_ms:.2f} ms. The collector was measured "
        f"over {cost.polls} polls of a fake Fronius (real samples over HTTP, counters read as on a device).",
        "",
        *(worst_markdown(cost.worst) if cost.worst else []),
    ]


def worst_markdown(worst: Worst) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    sync_shape, sync_mb = Worst.top(worst.sync_mb)
    meter_shape, meter_mb = Worst.top(worst.collector_mb)
    lines = [
        "## The worst answers under the door's caps",
        "",
        "Each process started as its unit starts it, against a local server answering the data call with the shape",
        "named; peak RSS measured from outside (the sync's `ru_maxrss`, the collector's `VmHWM`).",
        "",
        "| figure | measured | target | result |",
        "|---|---|---|---|",
        f"| sync peak RSS, worst answer under the 8 MB cap ({sync_shape}) | {sync_mb:.1f} MB "
        f"| ≤ {TARGET_WORST_SYNC_RSS_MB:g} MB | {mark(sync_mb <= TARGET_WORST_SYNC_RSS_MB)} |",
        f"| collector peak RSS, worst answer under the 256 KB cap ({meter_shape}) | {meter_mb:.1f} MB "
        f"| ≤ {TARGET_WORST_COLLECTOR_RSS_MB:g} MB | {mark(meter_mb <= TARGET_WORST_COLLECTOR_RSS_MB)} |",
        "",
        "| process | answer | peak RSS MB |",
        "|---|---|---|",
    ]
    lines += [f"| sync | {name} | {mb:.1f} |" for name, mb in worst.sync_mb.items()]
    lines += [f"| collector | {name} | {mb:.1f} |" for name, mb in worst.collector_mb.items()]
    return [*lines, ""]


def worst_ok(worst: Worst) -> bool:
    return (Worst.top(worst.sync_mb)[1] <= TARGET_WORST_SYNC_RSS_MB
            and Worst.top(worst.collector_mb)[1] <= TARGET_WORST_COLLECTOR_RSS_MB)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.meter_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="keep files here instead of a temporary folder")
    parser.add_argument("--worst-only", action="store_true", help="measure only the worst answers under the caps")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="home-energy-meter-bench-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.worst_only:
            worst = worst_answers(work)
            print("\n".join(worst_markdown(worst)))
            return 0 if worst_ok(worst) else 1
        cost = measure_meter(work)
    print("\n".join(markdown(cost)))
    ok = (cost.cpu_percent <= TARGET_CPU_PERCENT and cost.rss_peak_mb <= TARGET_RSS_MB
          and cost.year_mb_full <= TARGET_YEAR_MB and cost.live_p99_ms <= TARGET_API_P99_MS
          and (cost.worst is None or worst_ok(cost.worst)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
