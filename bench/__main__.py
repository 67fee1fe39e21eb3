"""`python -m bench` (`make bench`): measure the server, the sync and the page; write docs/performance.md.

Datasets are seeded once per run into a temporary folder (or `--work DIR`, kept and reused with
`--reuse`); the report is written even when targets are missed, and `--check` turns a missed
target into exit status 1 for whoever wants a gate.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from . import fresh_install, meter_cost, publish_cost, report
from .burst import BareServer, Burst, Crowding, measure_bursts, measure_crowding, wrk_available
from .datasets import Dataset, measure_dataset, seed_all
from .http_bench import PATHS, bench_server
from .machine import describe_machine
from .page import measure_page
from .server import Server
from .slow_clients import measure_slow_clients
from .sync_cost import SCENARIOS, measure_sync
from .timing import GilShare, Phases, measure_phases
from .where import Breakdown, break_down

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DAYS = (30, 90, 365)
DEFAULT_OUT = ROOT / "docs" / "performance.md"
# The heaviest answers a client may ask for: a week of 5-minute usage, 93 days of day totals.
HEAVY_PATHS = ("/api/usage?intervals=1", "/api/usage?from=2000-01-01&to=2000-04-02")


def _days(text: str) -> tuple[int, ...]:
    values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    if not values or any(not 1 <= v <= 3650 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of day counts from 1 to 3650")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=_days, default=DEFAULT_DAYS, help="datasets to measure (default 30,90,365)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report path (default docs/performance.md)")
    parser.add_argument("--work", type=Path, help="keep datasets and logs here instead of a temporary folder")
    parser.add_argument("--reuse", action="store_true", help="reuse datasets already seeded under --work")
    parts = ("http", "burst", "slow", "sync", "page", "where", "meter", "publish")
    parser.add_argument("--skip", action="append", default=[], choices=parts, help="leave out a part (repeatable)")
    parser.add_argument("--burst-rounds", type=int, default=3, help="alternating wrk rounds per path (default 3)")
    parser.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # the fake upstream and the CLI are imported from the checkout
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        return _run(args, args.work)
    with tempfile.TemporaryDirectory(prefix="home-energy-bench-") as work:
        return _run(args, Path(work))


def _run(args: argparse.Namespace, work: Path) -> int:
    started = time.monotonic()
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = describe_machine()
    print(f"bench: {machine.cpu}, {machine.cores} cores, load {load_average}; work in {work}", flush=True)

    datasets = _datasets(args, work)
    largest = max(datasets, key=lambda d: d.days)
    for d in datasets:
        print(f"dataset {d.days:>3} days: {d.rows:,} rows, {d.size_bytes / 1e6:.1f} MB "
              f"({d.bytes_per_day / 1000:.0f} KB/day), seeded in {d.seed_s:.1f} s", flush=True)

    servers = []
    if "http" not in args.skip:
        for d in datasets:
            print(f"server on {d.days} days:", flush=True)
            run = bench_server(d.path, d.days, work / f"serve-{d.days}d.log", progress=lambda s: print(s, flush=True))
            print(f"  RSS {run.rss_start_mb:.1f} → {run.rss_warm_mb:.1f} → {run.rss_after_mb:.1f} MB "
                  f"after {run.requests_after_warmup:,} requests", flush=True)
            servers.append(run)

    bursts: tuple[Burst, ...] = ()
    crowding: tuple[Crowding, ...] = ()
    phases: tuple[Phases, ...] = ()
    burst_load: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    gil: GilShare | None = None
    if "burst" not in args.skip:
        if not wrk_available():
            raise SystemExit("error: wrk is not installed: apt-get install -y wrk (or --skip burst)")
        paths = burst_paths(server_version())
        before = os.getloadavg()
        print(f"bursts with wrk on {largest.days} days, {args.burst_rounds} alternating rounds:", flush=True)
        server = Server(largest.path, largest.days, work / "serve-burst.log")
        with BareServer(work / "bare.log") as bare, server:
            bursts = tuple(measure_bursts(server.port, bare.port, paths, rounds=args.burst_rounds,
                                          progress=lambda s: print(s, flush=True)))
            crowding = tuple(measure_crowding(server.port, heavy, probe) for heavy in HEAVY_PATHS
                             for probe in ("/api/health", "/api/prices"))
        burst_load = (before, os.getloadavg())
        for c in crowding:
            print(f"  {c.probe_path} p99 {c.alone_p99_ms:.1f} ms alone, {c.probe_p99_ms:.1f} ms while "
                  f"{c.heavy_connections} connections ask {c.heavy_path}", flush=True)
        for b in bursts:
            print(f"  {b.path:<40} {b.connections} conn: p99 {b.p99_ms:7.2f} ms ({b.p99_ratio:.2f}x bare), "
                  f"{b.requests_per_s:6.0f} req/s ({b.throughput_ratio:.0%} of bare)", flush=True)
        found, gil = measure_phases(largest.path, largest.days, paths, work)
        phases = tuple(found)

    slow = None
    if "slow" not in args.skip:
        with Server(largest.path, largest.days, work / "serve-slow.log") as server:
            slow = measure_slow_clients(server.port)
        print(f"{slow.tricklers} tricklers: /api/health max {slow.health_max_ms:.1f} ms over {slow.probes} probes, "
              f"{slow.failed_probes} failed; {slow.closed_by_server} closed by the server", flush=True)

    syncs = []
    if "sync" not in args.skip:
        for d in datasets:
            for scenario in SCENARIOS:
                cost = measure_sync(d.path, d.days, scenario, work / "sync")
                print(f"sync {scenario:<6} on {d.days:>3} days: median {cost.median_s:.3f} s, max {cost.max_s:.3f} s, "
                      f"peak RSS {cost.peak_rss_mb:.1f} MB", flush=True)
                syncs.append(cost)

    page = None
    if "page" not in args.skip:
        with Server(largest.path, largest.days, work / "serve-page.log") as server:
            page = measure_page(f"http://127.0.0.1:{server.port}/")
        print(f"page: FCP {page.fcp_median_ms} ms, {page.bytes:,} bytes, {page.requests} requests", flush=True)

    breakdown: tuple[Breakdown, ...] = ()
    if "where" not in args.skip:
        breakdown = tuple(break_down(largest.path, largest.days, list(PATHS)))

    results = report.Results(
        machine=machine, load_average=load_average, load_average_end=", ".join(f"{x:.2f}" for x in os.getloadavg()),
        datasets=tuple(datasets), servers=tuple(servers),
        syncs=tuple(syncs), page=page, page_days=largest.days, breakdown=breakdown,
        breakdown_days=largest.days if breakdown else None, elapsed_s=time.monotonic() - started,
        bursts=bursts, burst_days=largest.days if bursts else None, burst_load=burst_load,
        burst_rounds=args.burst_rounds, phases=phases, gil=gil, slow=slow, crowding=crowding,
    )
    report.write(results, args.out)
    fresh_install.measure_and_report(args.out, work)
    if "publish" not in args.skip:  # before the meter part, which writes meter rows into the largest dataset
        publish = publish_cost.measure_publish(work / "publish", progress=lambda s: print(s, flush=True))
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        fresh_install.write_section(args.out, "\n".join(publish_cost.markdown(publish, load)))
    if "meter" not in args.skip:  # last: it writes meter rows into the largest dataset
        meter = meter_cost.measure_meter(work / "meter", dataset=largest.path)
        fresh_install.write_section(args.out, "\n".join(meter_cost.markdown(meter)))
    verdicts = report.verdicts(results)
    missed = [v for v in verdicts if v.passed is False]
    for v in verdicts:
        print(f"{'PASS' if v.passed else 'FAIL' if v.passed is False else '----'}  {v.figure}: {v.measured} "
              f"(target {v.target})")
    print(f"wrote {args.out} in {results.elapsed_s:.0f} s: {len(missed)} of {len(verdicts)} targets missed")
    return 1 if args.check and missed else 0


def server_version() -> str:
    from home_energy.version import running_version

    return running_version()


def burst_paths(version: str) -> list[str]:
    """Every endpoint (and /api/usage both ways) and every static file, as the page asks for them."""
    from .http_bench import STATIC_FILES

    # The page links its stylesheet and script with ?v=<version>; the favicon has no version.
    static = [f"/static/{name}" + ("" if name == "favicon.svg" else f"?v={version}") for name in STATIC_FILES]
    return [*PATHS, "/api/usage?intervals=1", "/api/today", "/api/live", *static]


def _datasets(args: argparse.Namespace, work: Path) -> list[Dataset]:
    if args.reuse:
        found = [measure_dataset(days, work / f"demo-{days}d" / "cache.sqlite", 0.0) for days in args.days
                 if (work / f"demo-{days}d" / "cache.sqlite").exists()]
        if len(found) == len(args.days):
            return found
    return seed_all(work, args.days)


if __name__ == "__main__":
    sys.exit(main())
