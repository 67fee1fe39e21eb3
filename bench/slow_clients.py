"""70 connections trickling a request a byte every 10 s, and how fast /api/health answers meanwhile.

Waitress counts only silence towards its idle timeout, so a trickler that never finishes its
request used to hold a connection for ever; enough of them and the server stopped accepting.
Here the tricklers connect first, then /api/health is asked on fresh connections every half
second; the figures are its slowest and median answer times and how many tricklers the server
had closed by the end (home_energy.server closes a request head that is overdue).
"""
from __future__ import annotations

import http.client
import statistics
import time
from dataclasses import dataclass

from home_energy.server import REQUEST_HEAD_DEADLINE_S
from tests.tricklers import TRICKLERS, closed_by_server, trickling

PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 5.0
OBSERVE_S = REQUEST_HEAD_DEADLINE_S + 4.0  # long enough to see the deadline close them


@dataclass(frozen=True)
class SlowClients:
    tricklers: int
    probes: int
    failed_probes: int
    health_median_ms: float
    health_max_ms: float
    closed_by_server: int
    observed_s: float


def _probe(port: int) -> float | None:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        response.read()
        return time.perf_counter() - started if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def measure_slow_clients(port: int) -> SlowClients:
    took: list[float | None] = []
    began = time.monotonic()
    with trickling(port) as tricklers:
        time.sleep(PROBE_EVERY_S)
        while time.monotonic() - began < OBSERVE_S:
            took.append(_probe(port))
            time.sleep(PROBE_EVERY_S)
        closed = sum(closed_by_server(sock) for sock in tricklers)
    answered = [t for t in took if t is not None]
    return SlowClients(
        tricklers=TRICKLERS, probes=len(took), failed_probes=len(took) - len(answered),
        health_median_ms=statistics.median(answered) * 1000 if answered else float("nan"),
        health_max_ms=max(answered) * 1000 if answered else float("nan"),
        closed_by_server=closed, observed_s=time.monotonic() - began,
    )
