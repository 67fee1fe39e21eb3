"""A small keep-alive HTTP client run in threads, and the latency statistics taken from it.

Each client holds one HTTP/1.1 connection (as the page's fetches do), asks for gzip as Chromium
does, and times every request from sending it to reading the last byte of the body (as sent: the
client does not spend time unzipping). Any status other than 200 counts as an
error; the figures are only reported alongside the error count.
"""
from __future__ import annotations

import http.client
import math
import threading
import time
from dataclasses import dataclass

CLIENT_TIMEOUT_S = 10.0
# What Chromium sends, so the server answers the kiosk's way (gzip where it compresses).
REQUEST_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
PHASE_TIMEOUT_S = 120.0  # one phase of one endpoint never runs longer than this


@dataclass(frozen=True)
class LatencyStats:
    path: str
    clients: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests_per_s: float
    body_bytes: int


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class KeepAliveClient:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT_S)

    def get(self, path: str) -> tuple[int, int, float]:
        """(status, body bytes, seconds) of one GET over the kept-alive connection."""
        started = time.perf_counter()
        try:
            self.conn.request("GET", path, headers=REQUEST_HEADERS)
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT_S)
            return 0, 0, time.perf_counter() - started
        elapsed = time.perf_counter() - started
        if response.will_close:
            self.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT_S)
        return response.status, len(body), elapsed

    def close(self) -> None:
        self.conn.close()


def run_phase(port: int, paths: list[str], clients: int,
              requests_per_client: int) -> tuple[list[float], int, int, float]:
    """`clients` threads each GET `paths` round-robin `requests_per_client` times, started together.

    Returns (latencies in seconds, errors, bytes of the last body, wall seconds).
    """
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    last_bytes = [0] * clients
    start_line = threading.Barrier(clients + 1)
    deadline = time.monotonic() + PHASE_TIMEOUT_S

    def work(index: int) -> None:
        client = KeepAliveClient(port)
        try:
            start_line.wait(timeout=CLIENT_TIMEOUT_S)
            for number in range(requests_per_client):
                if time.monotonic() > deadline:
                    errors[index] += requests_per_client - number
                    return
                status, size, seconds = client.get(paths[(number + index) % len(paths)])
                latencies[index].append(seconds)
                last_bytes[index] = size
                if status != 200:
                    errors[index] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait(timeout=CLIENT_TIMEOUT_S)
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=PHASE_TIMEOUT_S + CLIENT_TIMEOUT_S)
    wall = time.perf_counter() - began
    return [x for per in latencies for x in per], sum(errors), max(last_bytes), wall


def measure(port: int, path: str, clients: int, requests_per_client: int) -> LatencyStats:
    latencies, errors, body_bytes, wall = run_phase(port, [path], clients, requests_per_client)
    ordered = sorted(latencies)
    return LatencyStats(
        path=path,
        clients=clients,
        requests=len(ordered),
        errors=errors,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] if ordered else math.nan) * 1000,
        requests_per_s=len(ordered) / wall if wall > 0 else math.nan,
        body_bytes=body_bytes,
    )
