"""Latency, throughput and memory of a real `home-energy serve` on one dataset.

Order, on one server process: memory after start; a warm-up; memory after it; every path with 1
client then with 8 concurrent clients; then a mixed load until 10,000 requests have been served
since the warm-up, with memory read at checkpoints. Growth from warm-up to 10,000 is what a leak
would show as.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .load import LatencyStats, measure, run_phase
from .server import Server, rss_mb

PATHS = ("/api/health", "/api/current", "/api/prices", "/api/summary", "/api/usage", "/")
STATIC_FILES = ("dashboard.css", "dashboard.js", "favicon.svg")
WARMUP_REQUESTS_PER_CLIENT = 40  # each of 8 clients round-robin over PATHS
SINGLE_CLIENT_REQUESTS = 300
CONCURRENT_CLIENTS = 8
REQUESTS_PER_CLIENT = 100  # with 8 clients: 800 requests per path
MEMORY_RUN_REQUESTS = 10_000
MEMORY_CHECKPOINT_REQUESTS = 2_000
MEMORY_RUN_TIMEOUT_S = 120.0  # a slow server still ends the run in time; the count reached is reported


@dataclass(frozen=True)
class ServerRun:
    days: int
    latencies: tuple[LatencyStats, ...]
    rss_start_mb: float
    rss_warm_mb: float
    rss_after_mb: float
    rss_peak_mb: float
    requests_after_warmup: int
    memory_errors: int
    checkpoints: tuple[tuple[int, float], ...]

    @property
    def growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_warm_mb


def bench_server(sqlite_path: Path, days: int, log_path: Path,
                 progress: Callable[[str], None] = print) -> ServerRun:
    with Server(sqlite_path, days, log_path) as server:
        time.sleep(0.5)  # let start-up allocations settle before the first reading
        rss_start = rss_mb(server.pid)
        warm_up = run_phase(server.port, list(PATHS), CONCURRENT_CLIENTS, WARMUP_REQUESTS_PER_CLIENT)
        errors = warm_up[1]
        if errors:
            raise RuntimeError(f"{errors} errors during warm-up on {days} days: see {log_path}")
        rss_warm = rss_mb(server.pid)
        served = 0
        latencies = []
        for path in PATHS:
            single = measure(server.port, path, 1, SINGLE_CLIENT_REQUESTS)
            many = measure(server.port, path, CONCURRENT_CLIENTS, REQUESTS_PER_CLIENT)
            latencies += [single, many]
            served += single.requests + many.requests
            progress(f"  {days:>3} days {path:<13} p99 {single.p99_ms:7.2f} ms (1 client) "
                     f"{many.p99_ms:7.2f} ms (8 clients), {many.requests_per_s:6.0f} req/s")
        checkpoints = [(served, rss_mb(server.pid))]
        memory_errors = 0
        deadline = time.monotonic() + MEMORY_RUN_TIMEOUT_S
        while served < MEMORY_RUN_REQUESTS and time.monotonic() < deadline:
            batch = min(MEMORY_CHECKPOINT_REQUESTS, MEMORY_RUN_REQUESTS - served)
            per_client = math.ceil(batch / CONCURRENT_CLIENTS)
            lat, errors, _bytes, _wall = run_phase(server.port, list(PATHS), CONCURRENT_CLIENTS, per_client)
            served += len(lat)
            memory_errors += errors
            checkpoints.append((served, rss_mb(server.pid)))
        return ServerRun(
            days=days, latencies=tuple(latencies), rss_start_mb=rss_start, rss_warm_mb=rss_warm,
            rss_after_mb=checkpoints[-1][1], rss_peak_mb=rss_mb(server.pid, "VmHWM"),
            requests_after_warmup=served, memory_errors=memory_errors, checkpoints=tuple(checkpoints),
        )
