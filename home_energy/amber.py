"""The Amber public API client: one requests.Session, timeouts, bearer auth, rate-limit headers.

It returns decoded JSON only; the sync validates every payload (schema.validate_payload) so the
demo simulator's payloads take the same path. Every failure becomes a project error raised
`from` the original, and no message ever contains the token (it lives only in the session's
Authorization header).

A hostile or broken upstream costs one sync, never more:
- every call streams under the client's overall deadline, enforced by a watchdog that shuts the
  sockets down when it passes (headers or a body trickled a byte at a time cannot hold a run);
- at most MAX_BODY_BYTES are read, counted after decompression, inflating gzip with a bounded
  output per step (a gzip bomb costs no more memory than the cap); a Content-Length above the
  cap is refused before reading;
- JSON must be strict (no NaN/Infinity) and nested at most MAX_JSON_DEPTH deep;
- redirects are not followed; rate-limit headers are clamped to sane ranges;
- error bodies are never echoed whole: a short reason with token-like text removed, and URL
  user-info is redacted from every message.
"""
from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .clock import NEM_TZ, monotonic, nem_day_start, now_utc
from .config import Secret
from .errors import RateLimitedError, UpstreamAuthError, UpstreamDataError, UpstreamError, UpstreamSiteMissingError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # a LAN/DNS failure shows within seconds
READ_TIMEOUT_S = 20.0  # Amber answers in well under a second; 20 s only rides out a slow link
# All calls of one client (one sync run) together: with start-up and writing, a run ends within 60 s.
RUN_BUDGET_S = 40.0
RATE_LIMIT_FALLBACK_S = 300  # Amber's 429 has no Retry-After; its window is 5 minutes
FORECAST_HORIZON_H = 24
MAX_INTERVALS_PER_CALL = 2048  # /prices/current rejects next + previous above this with 422
USER_AGENT = "home-energy kitchen display"
MAX_BODY_BYTES = 8 * 1024 * 1024  # after decompression; the largest real answer (2,048 intervals) is ~1.5 MB
MAX_JSON_DEPTH = 32  # Amber's deepest payload nests 4 levels; Python's parser recurses once per level
READ_CHUNK_BYTES = 64 * 1024
# Amber's window is 5 minutes; a far larger value is nonsense. The one ceiling of a rate-limit
# block: the client clamps RateLimit-Reset to it and the sync honours a remembered block up to it.
MAX_RATE_LIMIT_RESET_S = 3600
MAX_REASON_CHARS = 80
_TOKENISH = re.compile(r"(?i)(bearer\s+\S+|psk_[A-Za-z0-9_\-]+|authorization)")
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


@dataclass(frozen=True)
class RateLimit:
    remaining: int | None
    reset_at: float | None  # Unix seconds when the window resets


class Upstream(Protocol):
    """What the sync needs from Amber, or from anything that answers like it (the demo)."""

    calls: int
    rate_limit: RateLimit | None

    def sites(self) -> Any: ...
    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any: ...
    def usage(self, site_id: str, start: date, end: date) -> Any: ...
    def close(self) -> None: ...


def price_window(now: datetime, resolution: int) -> tuple[int, int]:
    """(previous, next) so one /prices/current call holds today's actuals and >= 24 h ahead.

    On a 5-minute site the far forecasts are 30-minute ones, so counting every forecast as 5
    minutes over-covers the horizon rather than falling short of it.
    """
    day_start = nem_day_start(now.astimezone(NEM_TZ).date())
    elapsed_min = (now - day_start).total_seconds() / 60
    previous = math.ceil(elapsed_min / resolution) + 1
    next_ = FORECAST_HORIZON_H * 60 // resolution
    return previous, next_


def _retry() -> Retry:
    return Retry(
        total=2,
        connect=1,  # one more try on a refused/failed connect: routers drop the first after a blip
        read=0,  # a read timeout already cost READ_TIMEOUT_S; the next sync will try again
        status=1,
        # 502/503/504: gateway hiccups during Amber deploys, usually gone within a second.
        # 429 is deliberately absent: Amber blocks for minutes and every retry extends the block.
        # 500 is absent: it has been a persistent server bug, retrying only spends the quota.
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.5,
        respect_retry_after_header=False,
        raise_on_status=False,
    )


class _Watchdog:
    """Shuts down every socket a client opened once its deadline passes, from a timer thread.

    requests' read timeout counts per read, so a server sending a byte every few seconds never
    trips it; shutting the socket down ends the blocked read at once, in whatever thread.
    """

    def __init__(self, seconds: float) -> None:
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.fired = False
        self.timer = threading.Timer(max(0.0, seconds), self.fire)
        self.timer.daemon = True
        self.timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_LIVE: set[_Watchdog] = set()
_LIVE_LOCK = threading.Lock()


def abort_all() -> None:
    """End every call in flight now (SIGTERM under `home-energy run`): the sync then fails fast."""
    with _LIVE_LOCK:
        watchdogs = list(_LIVE)
    for watchdog in watchdogs:
        watchdog.fire()


def _watched_adapter(watchdog: _Watchdog) -> HTTPAdapter:
    """An adapter whose connections hand their sockets to the watchdog."""

    class Http(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.watch(self.sock)

    class Https(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.watch(self.sock)

    class HttpPool(HTTPConnectionPool):
        ConnectionCls = Http

    class HttpsPool(HTTPSConnectionPool):
        ConnectionCls = Https

    adapter = HTTPAdapter(max_retries=_retry())
    adapter.poolmanager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}
    return adapter


def redact_url(url: str) -> str:
    """The URL without user-info (`user:password@`), for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=host).geturl()


class AmberClient:
    """Calls Amber; counts calls and remembers the last rate-limit headers it saw."""

    def __init__(self, base_url: str, token: Secret, session: requests.Session | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S, budget_s: float = RUN_BUDGET_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.read_timeout_s = read_timeout_s
        self.budget_s = budget_s
        self.deadline = monotonic() + budget_s
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token.reveal()}"
        self.session.headers["Accept"] = "application/json"
        self.session.headers["Accept-Encoding"] = "gzip"
        self.session.headers["User-Agent"] = USER_AGENT
        # A hostile server's malformed headers are reported by this client's own one-line error.
        logging.getLogger("urllib3.connection").setLevel(logging.ERROR)
        self.watchdog = _Watchdog(budget_s)
        with _LIVE_LOCK:
            _LIVE.add(self.watchdog)
        adapter = _watched_adapter(self.watchdog)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.calls = 0
        self.rate_limit: RateLimit | None = None

    def close(self) -> None:
        self.watchdog.timer.cancel()
        with _LIVE_LOCK:
            _LIVE.discard(self.watchdog)
        self.session.close()

    def sites(self) -> Any:
        return self._get("/sites")

    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any:
        if next_ + previous > MAX_INTERVALS_PER_CALL:
            raise ValueError(f"next + previous must not exceed {MAX_INTERVALS_PER_CALL}")
        params = {"next": next_, "previous": previous, "resolution": resolution}
        return self._get(f"/sites/{site_id}/prices/current", params)

    def usage(self, site_id: str, start: date, end: date) -> Any:
        if (end - start).days > 7 or end < start:
            raise ValueError("usage ranges must be 0 to 7 days")
        params = {"startDate": start.isoformat(), "endDate": end.isoformat()}
        return self._get(f"/sites/{site_id}/usage", params)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        what = path.split("/")[-1] or path
        remaining = self.deadline - monotonic()
        if remaining < 1.0 or self.watchdog.fired:
            raise UpstreamError(f"sync time budget used up before the {what} call: try again later")
        read_timeout = min(self.read_timeout_s, remaining)
        late = f"Amber did not finish answering {what} within the sync's {self.budget_s:.0f} s"
        self.calls += 1
        try:
            response = self.session.get(self.base_url + path, params=params, stream=True, allow_redirects=False,
                                        timeout=(min(CONNECT_TIMEOUT_S, remaining), read_timeout))
        except requests.Timeout as exc:
            raise UpstreamError(f"Amber did not answer {what} within {read_timeout:.0f} s") from exc
        except requests.ConnectionError as exc:
            if self.watchdog.fired:
                raise UpstreamError(late) from exc
            if _is_read_timeout(exc):  # urllib3's Retry wraps a read timeout as a connection error
                raise UpstreamError(f"Amber did not answer {what} within {read_timeout:.0f} s") from exc
            raise UpstreamError(f"cannot reach Amber at {self.shown_url}: {_reason(exc)}") from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"request to Amber failed: {type(exc).__name__}") from exc
        with response:
            self._remember_rate_limit(response)
            self._check_status(response, what)
            try:
                body = read_capped(response)
            except (requests.RequestException, Urllib3Error, OSError, zlib.error, ValueError) as exc:
                if self.watchdog.fired:
                    raise UpstreamError(late) from exc
                raise UpstreamError(f"Amber's {what} answer broke off: {type(exc).__name__}") from exc
        if self.watchdog.fired:  # cut off mid-answer: what arrived is not the answer
            raise UpstreamError(late)
        return parse_json(body, what)

    def _check_status(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status == 429:
            reset_s = _int_header(response, "RateLimit-Reset", MAX_RATE_LIMIT_RESET_S)
            wait_s = reset_s if reset_s else RATE_LIMIT_FALLBACK_S
            retry_at = now_utc().timestamp() + wait_s
            raise RateLimitedError(f"Amber rate limit reached (429): no calls for {wait_s} s", retry_at)
        if status in (401, 403):
            raise UpstreamAuthError(f"Amber refused the token ({status}): check AMBER_TOKEN")
        if status == 404:
            raise UpstreamSiteMissingError(f"Amber has no such site ({status} on {what}): check AMBER_SITE_ID")
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).hostname or "an unnamed place"
            raise UpstreamError(f"Amber answered {status} on {what}, redirecting to {target[:60]}: not followed")
        if status in (400, 422):
            raise UpstreamDataError(f"Amber refused the {what} request ({status}): {_reason_from(response)}")
        if status >= 500:
            raise UpstreamError(f"Amber is failing ({status}) on {what}")
        raise UpstreamError(f"Amber answered {status} on {what}")

    def _remember_rate_limit(self, response: requests.Response) -> None:
        remaining = _int_header(response, "RateLimit-Remaining", 1_000_000)
        reset_s = _int_header(response, "RateLimit-Reset", MAX_RATE_LIMIT_RESET_S)
        if remaining is None and reset_s is None:
            return
        reset_at = now_utc().timestamp() + reset_s if reset_s is not None else None
        self.rate_limit = RateLimit(remaining, reset_at)


def _int_header(response: requests.Response, name: str, ceiling: int) -> int | None:
    """A non-negative whole number clamped to `ceiling`; anything else is ignored."""
    raw = (response.headers.get(name) or "").strip()
    if not raw or not raw.isascii() or not raw.isdigit():
        return None
    return ceiling if len(raw) > 12 else min(int(raw), ceiling)


def _reason_from(response: requests.Response) -> str:
    """A short reason from an error body, never anything that looks like a credential or header."""
    try:
        message = json.loads(read_capped(response, 4096)).get("message", "")
    except Exception:  # any unreadable body: the status alone is the reason
        return "no details"
    if not isinstance(message, str):
        return "no details"
    text = " ".join(message.split())
    if _TOKENISH.search(text):
        return "details withheld (they echoed the request's credentials)"
    return text[:MAX_REASON_CHARS] or "no details"


def read_capped(response: requests.Response, cap: int = MAX_BODY_BYTES) -> bytes:
    """The body, decompressed, refusing more than `cap` bytes; each inflation step is bounded."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    declared = response.headers.get("Content-Length", "")
    if encoding == "identity" and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise UpstreamDataError(f"Amber's answer is {int(declared)} bytes, above the {cap}-byte limit: refused")
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None and encoding != "identity":
        raise UpstreamDataError(f"Amber's answer uses an unsupported encoding ({encoding[:20]})")
    out = bytearray()
    inflater = zlib.decompressobj(wbits) if wbits else None
    for raw in response.raw.stream(READ_CHUNK_BYTES, decode_content=False):
        data = raw
        while data and len(out) <= cap:
            if inflater is None:
                out += data
                break
            out += inflater.decompress(data, cap + 1 - len(out))
            data = inflater.unconsumed_tail
            if inflater.eof:  # another gzip member may follow: inflate it too, within the same cap
                data = inflater.unused_data + data
                inflater = zlib.decompressobj(wbits)
        if len(out) > cap:
            raise UpstreamDataError(f"Amber's answer is larger than the {cap}-byte limit: refused")
    return bytes(out)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(body: bytes, what: str) -> Any:
    """Strict JSON: no NaN or Infinity, nested at most MAX_JSON_DEPTH levels (checked first)."""
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise UpstreamDataError(f"Amber {what} response nests deeper than {MAX_JSON_DEPTH} levels: refused")
        elif token in (b"]", b"}"):
            depth -= 1
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise UpstreamDataError(f"Amber {what} response is not valid JSON ({len(body)} bytes): "
                                f"{str(exc)[:MAX_REASON_CHARS]}") from exc


def _is_read_timeout(exc: Exception) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "Network is unreachable", "No route to host", "Connection reset"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
