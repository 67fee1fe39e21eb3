"""The health gate: the browser opens only once the dashboard answers /api/health with 200.

Opening the browser before the server is up shows "This site can't be reached" on the wall
until someone reloads it, which is the most common black-or-error screen after a power cut.
So the launcher polls the health URL with a short timeout per request and a capped backoff,
through connection refused, timeouts and 503 (no cache yet), and gives up after a deadline
with a one-line reason; its autostart supervisor then starts it again.

Requests go straight to the dashboard, never through an HTTP proxy from the environment.
"""
from __future__ import annotations

import errno
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import HealthTimeoutError

# The dashboard answers health from a local SQLite read in milliseconds; a Pi busy booting may
# take a second. Longer waits only delay noticing that it is up.
HEALTH_REQUEST_TIMEOUT_S = 2.0
# First retry soon (the server is often seconds away), then back off so a slow boot is not
# hammered; never wait longer than the cap, or the page appears late after the server is up.
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 2.0
REASON_MAX_CHARS = 160

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Probe:
    """The outcome of one health request."""

    ok: bool
    reason: str  # "HTTP 200", "connection refused", "HTTP 503: cache cannot be read", "timed out"
    status: int | None = None


def backoff_delays(first_s: float = BACKOFF_FIRST_S, cap_s: float = BACKOFF_MAX_S) -> Iterator[float]:
    """Doubling delays from first_s, never above cap_s."""
    delay = first_s
    while True:
        yield min(delay, cap_s)
        delay = min(delay * 2, cap_s)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= REASON_MAX_CHARS else line[: REASON_MAX_CHARS - 1] + "…"


def _http_reason(status: int, body: bytes) -> str:
    try:
        detail = json.loads(body.decode("utf-8")).get("error")
    except (ValueError, UnicodeDecodeError, AttributeError):
        detail = None
    return _one_line(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")


def probe_health(url: str, timeout_s: float = HEALTH_REQUEST_TIMEOUT_S) -> Probe:
    """One GET of the health URL; never raises for network or HTTP failures."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read(65536)
            return Probe(True, f"HTTP {response.status}", response.status)
    except urllib.error.HTTPError as exc:
        body = exc.read(65536)
        exc.close()
        return Probe(False, _http_reason(exc.code, body), exc.code)
    except urllib.error.URLError as exc:
        return Probe(False, _network_reason(exc.reason))
    except TimeoutError:
        return Probe(False, "timed out")
    except (OSError, ValueError) as exc:
        return Probe(False, _one_line(str(exc) or type(exc).__name__))


def _network_reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError) or getattr(reason, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    return _one_line(str(getattr(reason, "strerror", None) or reason))


def wait_for_health(
    url: str,
    timeout_s: float,
    *,
    stop: threading.Event | None = None,
    on_probe: Callable[[Probe], None] | None = None,
    request_timeout_s: float = HEALTH_REQUEST_TIMEOUT_S,
    monotonic: Callable[[], float] = time.monotonic,
) -> Probe | None:
    """Poll until a probe is healthy and return it; None when `stop` is set first.

    Raises HealthTimeoutError, naming the last failure, when timeout_s passes without success.
    """
    stop = stop or threading.Event()
    deadline = monotonic() + timeout_s
    delays = backoff_delays()
    while not stop.is_set():
        remaining = deadline - monotonic()
        probe = probe_health(url, max(0.05, min(request_timeout_s, remaining)))
        if on_probe:
            on_probe(probe)
        if probe.ok:
            return probe
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise HealthTimeoutError(
                f"the dashboard at {url} was not healthy after {timeout_s:g} s (last: {probe.reason}); "
                "is `home-energy serve` running?")
        stop.wait(min(next(delays), remaining))
    return None
