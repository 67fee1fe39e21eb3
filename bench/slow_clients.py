"""70 connections trickling a request a byte every 10 s, and how fast /api/health answers meanwhile.

Waitress counts only silence towards its idle timeout, so a trickler that never finishes its
request used to hold a connection for ever; enough of them and the server stopped accepting.
Here the tricklers connect first, then /api/health is asked on fresh connections every half
second; the figures are its slowest and median answer times and how many tricklers the server
had closed by the end (home_energy.server closes a request head that is overdue).
"""
from __future__ import annotations

import http.client
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from home_energy.server import REQUEST_HEAD_DEADLINE_S

TRICKLERS = 70
TRICKLE_EVERY_S = 10.0
PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 5.0
OBSERVE_S = REQUEST_HEAD_DEADLINE_S + 4.0  # long enough to see the deadline close them
REQUEST = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64


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


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextmanager
def trickling(port: int) -> Iterator[list[socket.socket]]:
    """TRICKLERS connections, each sending REQUEST one byte every TRICKLE_EVERY_S, never finishing."""
    tricklers = [socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) for _ in range(TRICKLERS)]
    stop = threading.Event()

    def trickle() -> None:
        sent = 0
        while not stop.is_set() and sent < len(REQUEST):
            for sock in tricklers:
                try:
                    sock.send(REQUEST[sent:sent + 1])
                except OSError:
                    pass  # closed by the server: what its head deadline is for
            sent += 1
            stop.wait(TRICKLE_EVERY_S)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        yield tricklers
    finally:
        stop.set()
        sender.join(timeout=PROBE_TIMEOUT_S)
        for sock in tricklers:
            sock.close()


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
