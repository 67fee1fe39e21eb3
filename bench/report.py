"""docs/performance.md: every figure beside its target, the detail behind it, and the machine.

The file is written whole by `make bench` and never edited by hand; what it says about a missed
target (where the time goes) comes from the measurements of the same run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .datasets import Dataset
from .http_bench import MEMORY_RUN_REQUESTS, ServerRun
from .machine import Machine
from .page import PageStats
from .sync_cost import SCENARIOS, SyncCost
from .where import Breakdown

TARGET_API_P99_MS = 15.0  # at 365 days with 8 concurrent clients
TARGET_API_DAYS = 365
TARGET_API_CLIENTS = 8
TARGET_RSS_MB = 60.0
TARGET_RSS_GROWTH_MB = 2.0  # "flat": warm-up to 10,000 requests grows by no more than this
TARGET_SYNC_S = 0.5
TARGET_PAGE_BYTES = 200_000
TARGET_FCP_MS = 500.0
API_PATHS = ("/api/health", "/api/current", "/api/prices", "/api/summary")


@dataclass(frozen=True)
class Verdict:
    figure: str
    measured: str
    target: str
    passed: bool | None  # None: not measured in this run


@dataclass(frozen=True)
class Results:
    machine: Machine
    load_average: str
    load_average_end: str
    datasets: tuple[Dataset, ...]
    servers: tuple[ServerRun, ...]
    syncs: tuple[SyncCost, ...]
    page: PageStats | None
    page_days: int | None
    breakdown: tuple[Breakdown, ...]
    breakdown_days: int | None
    elapsed_s: float


def _mark(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "not measured"}[passed]


def verdicts(results: Results) -> list[Verdict]:
    out: list[Verdict] = []
    target_run = next((s for s in results.servers if s.days == TARGET_API_DAYS), None)
    for path in API_PATHS:
        figure = f"`{path}` p99, {TARGET_API_DAYS} days, {TARGET_API_CLIENTS} clients"
        stats = None if target_run is None else next(
            (x for x in target_run.latencies if x.path == path and x.clients == TARGET_API_CLIENTS), None)
        if stats is None:
            out.append(Verdict(figure, "—", f"≤ {TARGET_API_P99_MS:g} ms", None))
        else:
            ok = stats.p99_ms <= TARGET_API_P99_MS and stats.errors == 0
            errors = f", {stats.errors} errors" if stats.errors else ""
            out.append(Verdict(figure, f"{stats.p99_ms:.1f} ms{errors}", f"≤ {TARGET_API_P99_MS:g} ms", ok))
    for run in results.servers:
        reached = run.requests_after_warmup >= MEMORY_RUN_REQUESTS
        note = "" if reached else f" (only {run.requests_after_warmup:,} requests within the time limit)"
        out.append(Verdict(f"server RSS, highest of the run (VmHWM), {run.days} days",
                           f"{run.rss_peak_mb:.1f} MB", f"≤ {TARGET_RSS_MB:g} MB", run.rss_peak_mb <= TARGET_RSS_MB))
        out.append(Verdict(f"server RSS growth, warm-up → {MEMORY_RUN_REQUESTS:,} requests, {run.days} days",
                           f"{run.growth_mb:+.1f} MB{note}", f"flat (≤ {TARGET_RSS_GROWTH_MB:g} MB)",
                           run.growth_mb <= TARGET_RSS_GROWTH_MB and reached))
    for cost in results.syncs:
        if cost.days != max(s.days for s in results.syncs):
            continue
        out.append(Verdict(f"sync processing, {cost.scenario} run, {cost.days} days (median of runs)",
                           f"{cost.median_s:.3f} s", f"≤ {TARGET_SYNC_S:g} s", cost.median_s <= TARGET_SYNC_S))
    page = results.page
    out.append(Verdict("page bytes transferred (page, assets, start-up API calls)",
                       "—" if page is None else f"{page.bytes / 1000:.1f} KB", f"≤ {TARGET_PAGE_BYTES / 1000:g} KB",
                       None if page is None else page.bytes <= TARGET_PAGE_BYTES))
    fcp = None if page is None else page.fcp_median_ms
    out.append(Verdict("page first contentful paint (median of cold loads)",
                       "—" if fcp is None else f"{fcp:.0f} ms", f"≤ {TARGET_FCP_MS:g} ms",
                       None if fcp is None else fcp <= TARGET_FCP_MS))
    return out


def render(results: Results) -> str:
    m = results.machine
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand, run it again. Sizes and memory are",
        "in decimal units (1 MB = 10^6 bytes, 1 KB = 10^3 bytes); latency is from sending a request to",
        "reading the last byte of its answer, over a kept-alive loopback connection.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m.cpu} |",
        f"| cores | {m.cores} |",
        f"| RAM | {m.ram_gib} GiB |",
        f"| OS | {m.os} |",
        f"| Python | {m.python} |",
        f"| SQLite | {m.sqlite} |",
        f"| date | {m.date} |",
        f"| commit | `{m.commit}` |",
        f"| load average at start and end (1, 5, 15 min) | {results.load_average}; {results.load_average_end} |",
        f"| bench run time | {results.elapsed_s:.0f} s |",
        "",
        "The load average shows what else the machine was doing: the clients run on the same cores as",
        "the server, so figures from a busy machine are worse than the server alone would give.",
        "",
        "## Against the targets",
        "",
        "| figure | measured | target | result |",
        "|---|---|---|---|",
    ]
    for v in verdicts(results):
        lines.append(f"| {v.figure} | {v.measured} | {v.target} | {_mark(v.passed)} |")

    lines += ["", "## Latency and throughput", "",
              "A real `home-energy serve` (Waitress, 4 threads) per dataset. 1 client: requests one after another;",
              "8 clients: eight threads with a connection each, started together. Requests per second are for",
              "the whole phase. Requests carry `Accept-Encoding: gzip, deflate` as Chromium's do; body bytes are",
              "as sent.", "",
              "| days | path | clients | requests | errors | p50 ms | p99 ms | max ms | req/s | body bytes |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for run in results.servers:
        for s in run.latencies:
            lines.append(f"| {run.days} | `{s.path}` | {s.clients} | {s.requests} | {s.errors} | {s.p50_ms:.2f} | "
                         f"{s.p99_ms:.2f} | {s.max_ms:.2f} | {s.requests_per_s:.0f} | {s.body_bytes:,} |")

    lines += ["", "## Server memory", "",
              "VmRSS of the server process from /proc: after start (before any API request), after a warm-up of",
              "every path, and after a mixed load of every path with 8 clients until 10,000 requests had been",
              "served since the warm-up. Checkpoints: requests served → RSS.", "",
              "| days | start MB | warm-up MB | after MB | growth MB | peak (VmHWM) MB | requests | errors | checkpoints |",
              "|---|---|---|---|---|---|---|---|---|"]
    for run in results.servers:
        points = ", ".join(f"{n:,}→{mb:.1f}" for n, mb in run.checkpoints)
        lines.append(f"| {run.days} | {run.rss_start_mb:.1f} | {run.rss_warm_mb:.1f} | {run.rss_after_mb:.1f} | "
                     f"{run.growth_mb:+.1f} | {run.rss_peak_mb:.1f} | {run.requests_after_warmup:,} | "
                     f"{run.memory_errors} | {points} |")

    lines += ["", "## Sync processing", "",
              "`run_sync` on a copy of each cache, with the upstream's answers recorded beforehand from the demo",
              "upstream (a 5-minute site, general and feed-in channels) and replayed as JSON text: the time is",
              "parsing, validation, the transaction, roll-ups, pruning and the cache's integrity check, in a",
              "fresh process as the systemd timer runs it; no network and no simulator. Peak RSS is the child",
              "process's VmHWM, reset just before the run (it includes the interpreter and imports); heap peak",
              "is Python's own allocations during the run (tracemalloc, a separate run).", ""]
    for name, what in SCENARIOS.items():
        lines.append(f"- **{name}**: {what}.")
    lines += ["", "| days | run | rows written | upstream calls | median s | max s | peak RSS MB | heap peak MB |",
              "|---|---|---|---|---|---|---|---|"]
    for c in results.syncs:
        lines.append(f"| {c.days} | {c.scenario} | {c.rows_written:,} | {c.calls} | {c.median_s:.3f} | {c.max_s:.3f} | "
                     f"{c.peak_rss_mb:.1f} | {c.heap_peak_mb:.1f} |")

    lines += ["", "## Cache size on disk", "",
              "Each dataset is written by `home-energy seed-demo --days N` (validation, upserts and daily roll-ups,",
              "then one demo sync), its WAL checkpointed into the file before measuring.", "",
              "| days | rows | size MB | KB per day of retention | seed time s |", "|---|---|---|---|---|"]
    for d in results.datasets:
        lines.append(f"| {d.days} | {d.rows:,} | {d.size_bytes / 1e6:.1f} | {d.bytes_per_day / 1000:.0f} | {d.seed_s:.1f} |")

    lines += ["", "## The page in Chromium", ""]
    page = results.page
    if page is None:
        lines.append("Not measured in this run.")
    else:
        lines += [f"Debian's Chromium, headless, through Playwright; {page.loads} cold loads, each in a new browser",
                  f"context with the cache disabled, on the {results.page_days}-day cache. Bytes are the DevTools",
                  "protocol's encoded lengths (headers and bodies) of everything fetched from load until 2 s after",
                  "the `load` event; any request off the loopback server is refused.", "",
                  "| first contentful paint, median | worst | bytes | requests | failed requests |",
                  "|---|---|---|---|---|",
                  f"| {_ms(page.fcp_median_ms)} | {_ms(page.fcp_max_ms)} | {page.bytes:,} | {page.requests} | "
                  f"{page.failed} |", "", "Requests of the last load: " + ", ".join(
                      f"`{_local(u)}`" for u in page.urls) + "."]

    if results.breakdown:
        lines += ["", f"## Where a request's time goes ({results.breakdown_days} days)", "",
                  "Each path requested in-process through Flask's test client with every SQL statement timed",
                  "(execute and fetch), beside SQLite's query plan. What is not SQL is Python: routing, building",
                  "and serialising the JSON; the last column is where that goes, from cProfile (own time per",
                  "request under the profiler, which inflates Python more than C: compare shares, not sums).", "",
                  "| path | request ms | of it SQL ms | slowest statements (ms per request: plan) | top functions (own ms) |",
                  "|---|---|---|---|---|"]
        for b in results.breakdown:
            shown = "<br>".join(f"{s.ms_per_request:.2f}: `{s.sql[:110]}{'…' if len(s.sql) > 110 else ''}` — {s.plan}"
                                for s in b.statements if s.ms_per_request >= 0.05) or "—"
            functions = "<br>".join(f"{ms:.2f}: `{name}`" for name, ms in b.functions)
            lines.append(f"| `{b.path}` | {b.request_ms:.2f} | {b.sql_ms:.2f} | {shown} | {functions} |")
    lines.append("")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _local(url: str) -> str:
    return "/" + url.split("/", 3)[3] if url.count("/") >= 3 else url


def write(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results), encoding="utf-8")
