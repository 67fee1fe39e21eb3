"""The one door to the network: every exchange with a peer (Amber, the home's meter, a plug).

Why it exists: a limit that lives at one call site leaves the next door soft. Every byte from
outside comes through here, so each guarantee below holds for a new source on its first day.

Rules it keeps, for every exchange:
- One deadline for the whole exchange, name resolution, connect and TLS to the last body byte,
  headers included: a reaper thread shuts the socket down when it passes, so a peer trickling a
  byte a second cannot hold a caller (per-read timeouts alone never trip on a trickle).
- `abort()` ends every exchange in flight at once and fails every later one: the process is
  stopping (SIGTERM). `stop_on_signals()` installs that for a command.
- The body is capped after decompression (gzip and deflate inflated in bounded steps, every
  gzip member counted); a larger Content-Length is refused before reading. A non-2xx body is
  read only up to `Limits.error_bytes`, for a reason to quote.
- Redirects are never followed (a 3xx is a failure naming the other host); a non-2xx answer is
  never data (`Answer.json()` refuses it).
- JSON is parsed under a bounded cost: before parsing, nesting depth and the number of values
  (keys included) are counted on the bytes, so memory is proportional to an answer's size and
  no answer under the cap can exhaust a process. NaN, Infinity, numbers that overflow a float,
  integers longer than MAX_NUMBER_CHARS, lone UTF-16 surrogates and duplicate object keys are
  refused (a parser keeps the first or the last of two keys; either is a guess, so neither is
  used). Any parse failure (ValueError, RecursionError, OverflowError, UnicodeError) becomes the
  caller's data error.
- Failures are one line, of the caller's own error kinds (`Faults`), and never contain URL
  user-info; bodies are never echoed whole.

Public API:
    Limits(deadline_s, connect_s, read_s, max_bytes, max_depth, max_values, error_bytes)
    Faults(unavailable, data)           the caller's HomeEnergyError subclasses
    Client(base_url, label=..., faults=..., limits=Limits(), headers=None, digest=None)
        .request(method, path, *, params=None, json_body=None, headers=None, limits=None,
                 deadline=None) -> Answer          any status but 3xx; 3xx raises
        .get_json(path, **same) -> Any             2xx JSON, else the caller's error
        .close()
    Answer(status, headers, body, ...)  .ok, .json(), .reason(max_chars)
    parse_json(body, *, what, limits, error, label="the answer") -> Any
    abort(), aborted() -> bool, stop_on_signals(then=None), now() -> float
    redact_url(url) -> str

`deadline` is an absolute `fetch.now()` time that caps the exchange's own deadline (a
sync's budget for all its calls). One Client keeps one connection alive to one origin and runs
one exchange at a time; a kept-alive connection the peer closed while idle is reopened once.
Only this module opens network connections to peers (tests/test_door.py walks the imports).
"""
from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import json
import math
import re
import signal
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlencode, urlsplit

from .digest import DigestAuth
from .errors import HomeEnergyError

READ_CHUNK_BYTES = 64 * 1024
MAX_NUMBER_CHARS = 40  # a JSON number longer than this is not a measurement (a float has 17 digits)
MAX_REASON_CHARS = 80
RESOLVE_POLL_S = 0.2  # how often a name lookup in progress looks at the deadline and abort()
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # JSON strings, escapes included (unrolled loop)
_KEEP_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the brackets
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # present only when a text may hold a surrogate
_SURROGATE = re.compile("[\ud800-\udfff]")
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass(frozen=True)
class Limits:
    """What one exchange may cost; every figure has a unit."""

    deadline_s: float = 10.0  # the whole exchange, name lookup to last byte
    connect_s: float = 5.0  # a LAN or DNS failure shows within seconds
    read_s: float = 5.0  # the longest silence between two reads
    max_bytes: int = 256 * 1024  # body, after decompression
    max_depth: int = 32  # JSON nesting
    max_values: int = 50_000  # JSON values, object keys included
    error_bytes: int = 4096  # read of a non-2xx body, for its reason


@dataclass(frozen=True)
class Faults:
    """The caller's error kinds: `unavailable` (try again later) and `data` (the answer is bad)."""

    unavailable: type[HomeEnergyError]
    data: type[HomeEnergyError]


@dataclass(frozen=True)
class Answer:
    """One answer: status, lower-cased headers and the (capped, decompressed) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    what: str
    label: str
    limits: Limits = field(repr=False)
    faults: Faults = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as bounded JSON; a non-2xx answer is never data."""
        if not self.ok:
            raise self.faults.unavailable(f"{self.label} answered HTTP {self.status} at {self.what}")
        return parse_json(self.body, what=self.what, limits=self.limits, error=self.faults.data, label=self.label)

    def reason(self, max_chars: int = MAX_REASON_CHARS) -> str:
        """A short reason from an error body (a JSON `message`, else nothing), on one line."""
        try:
            parsed = parse_json(self.body, what=self.what, limits=Limits(max_values=1000), error=ValueError)
        except ValueError:
            return ""
        message = parsed.get("message") if isinstance(parsed, dict) else None
        return " ".join(message.split())[:max_chars] if isinstance(message, str) else ""


# -- abort and deadlines ---------------------------------------------------------------------

def now() -> float:
    """Seconds on the real monotonic clock, the one every deadline here is on. Deadlines guard
    against real stalls, so a test's frozen clock (freezegun patches time.monotonic) must not
    hold them: clock_gettime is read directly."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


_ABORTED = threading.Event()


class _Exchange:
    """The sockets of one exchange, shut down when its deadline passes or on abort()."""

    def __init__(self, deadline: float) -> None:
        self.started = now()
        self.deadline = deadline
        self.sockets: list[socket.socket] = []
        self.fired: str | None = None  # "deadline" | "abort"
        self.connected = False  # a connection to the peer is open (new or kept alive)
        self.answered = False  # the status line and headers have arrived

    def watch(self, sock: socket.socket) -> None:
        self.sockets.append(sock)
        if _ABORTED.is_set():
            self.fire("abort")
        elif self.fired:
            _shut(sock)

    def fire(self, why: str) -> None:
        self.fired = self.fired or why
        for sock in list(self.sockets):
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Reaper:
    """One daemon thread that fires exchanges whose deadline has passed."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.heap: list[tuple[float, int, _Exchange]] = []
        self.order = itertools.count()
        self.thread: threading.Thread | None = None

    def add(self, exchange: _Exchange) -> None:
        with self.cond:
            heapq.heappush(self.heap, (exchange.deadline, next(self.order), exchange))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="fetch-deadlines", daemon=True)
                self.thread.start()
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.heap or self.heap[0][0] > now():
                    self.cond.wait(None if not self.heap else self.heap[0][0] - now())
                _, _, exchange = heapq.heappop(self.heap)
            if exchange in _LIVE:
                exchange.fire("deadline")


_REAPER = _Reaper()
_LIVE: set[_Exchange] = set()  # touched without a lock: abort() may run inside a signal handler


def abort() -> None:
    """The process is stopping: end every exchange in flight now and refuse every later one."""
    _ABORTED.set()
    for exchange in list(_LIVE):
        exchange.fire("abort")


def aborted() -> bool:
    return _ABORTED.is_set()


def stop_on_signals(then: Callable[[int], None] | None = None) -> None:
    """On SIGTERM and SIGINT: abort(), then `then(signum)` (e.g. set a stop event)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        abort()
        if then is not None:
            then(signum)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


# -- the client ------------------------------------------------------------------------------

def redact_url(url: str) -> str:
    """The URL without user-info (`user:password@`), for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=host).geturl()


class _Stop(Exception):
    """Raised inside an exchange when its deadline passed or the process is stopping."""


class Client:
    """Exchanges with one origin over one kept-alive connection, one at a time, no retries."""

    def __init__(self, base_url: str, *, label: str, faults: Faults, limits: Limits | None = None,
                 headers: Mapping[str, str] | None = None, digest: DigestAuth | None = None) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the door speaks http(s) to a named host only")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path
        self.shown = redact_url(base_url.rstrip("/"))
        self.label = label
        self.faults = faults
        self.limits = limits or Limits()
        self.headers = dict(headers or {})
        self.digest = digest
        self.conn: http.client.HTTPConnection | None = None
        self.exchanges = 0
        self.last_failure: str | None = None  # of the last request: connect | exchange | stopped

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET `path` and return its JSON; a non-2xx status is the caller's unavailable error."""
        return self.request("GET", path, **kwargs).json()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, headers: Mapping[str, str] | None = None, limits: Limits | None = None,
                deadline: float | None = None) -> Answer:
        """One exchange (answering one Digest challenge when a `digest` is set). Returns any
        status but 3xx; raises the caller's errors for every network, size or redirect fault."""
        limits = limits or self.limits
        what = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or path
        uri = self.prefix + path + (("&" if "?" in path else "?") + urlencode(params) if params else "")
        body = None
        sent = {"Accept": "application/json", "Accept-Encoding": "gzip", **self.headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body, allow_nan=False, separators=(",", ":")).encode()
            sent["Content-Type"] = "application/json"
        end = now() + limits.deadline_s
        if deadline is not None:
            end = min(end, deadline)
        answer = self._exchange(method, uri, body, sent, limits, end, what)
        if answer.status == 401 and self.digest is not None and \
                self.digest.learn(answer.headers.get("www-authenticate", "")):
            answer = self._exchange(method, uri, body, sent, limits, end, what)
        return answer

    def _exchange(self, method: str, uri: str, body: bytes | None, headers: dict[str, str], limits: Limits,
                  end: float, what: str) -> Answer:
        if self.digest is not None:
            authorization = self.digest.header(method, uri)
            if authorization:
                headers = {**headers, "Authorization": authorization}
        self.last_failure = None
        for attempt in (1, 2):
            reused = self.conn is not None and self.conn.sock is not None
            exchange = _Exchange(end)
            exchange.connected = reused
            _LIVE.add(exchange)
            _REAPER.add(exchange)
            try:
                if _ABORTED.is_set() or end <= now():
                    raise _Stop
                return self._send(method, uri, body, headers, limits, exchange, what)
            except _Stop:
                self.close()
                raise self._failed(exchange, what, limits, None) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1 and not exchange.answered and not (exchange.fired or _ABORTED.is_set()):
                    continue  # the peer closed an idle kept-alive connection: open a new one once
                raise self._failed(exchange, what, limits, exc) from exc
            except (OSError, http.client.HTTPException, zlib.error, ValueError) as exc:
                self.close()
                raise self._failed(exchange, what, limits, exc) from exc
            except HomeEnergyError:
                self.close()
                raise
            finally:
                _LIVE.discard(exchange)
        raise AssertionError("unreachable")

    def _failed(self, exchange: _Exchange, what: str, limits: Limits, exc: BaseException | None) -> HomeEnergyError:
        """The one-line error for a failed exchange; `last_failure` says at which stage it failed."""
        if exchange.fired or _ABORTED.is_set() or exc is None:
            self.last_failure = "stopped"
            return self._stopped(exchange, what)
        self.last_failure = "exchange" if exchange.connected else "connect"
        if isinstance(exc, TimeoutError):
            if not exchange.connected:
                return self.faults.unavailable(f"{self.label} at {self.shown} did not accept a connection within "
                                               f"{limits.connect_s:g} s")
            if exchange.answered:
                return self.faults.unavailable(f"{self.label} went silent for {limits.read_s:g} s in its {what} answer")
            return self.faults.unavailable(f"{self.label} did not answer {what} within {limits.read_s:g} s")
        if isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError) \
                and exchange.connected:
            return self.faults.unavailable(f"{self.label} at {self.shown} closed the connection")
        return self.faults.unavailable(self._network_reason(exc, what))

    def _stopped(self, exchange: _Exchange, what: str) -> HomeEnergyError:
        if _ABORTED.is_set() or exchange.fired == "abort":
            return self.faults.unavailable(f"{self.label}: the {what} exchange was stopped (the program is stopping)")
        allowed = round(max(0.0, exchange.deadline - exchange.started), 1)
        if exchange.answered:
            return self.faults.unavailable(f"{self.label} did not finish answering {what} within {allowed:g} s")
        return self.faults.unavailable(f"{self.label} did not answer {what} within {allowed:g} s")

    def _network_reason(self, exc: BaseException, what: str) -> str:
        text = str(exc)
        for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                       "No address associated with hostname", "Network is unreachable", "No route to host",
                       "Connection reset", "certificate verify failed"):
            if marker in text:
                return f"cannot reach {self.label} at {self.shown}: {marker.lower()}"
        if isinstance(exc, http.client.HTTPException | ValueError | zlib.error):
            return f"{self.label}'s {what} answer is not valid HTTP ({type(exc).__name__})"
        return f"cannot reach {self.label} at {self.shown}: {type(exc).__name__}"

    def _connection(self, exchange: _Exchange, limits: Limits) -> http.client.HTTPConnection:
        if self.conn is None:
            if self.https:
                self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=limits.read_s,
                                                        context=ssl.create_default_context())
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=limits.read_s)
        conn = self.conn

        def connect(address: tuple[str, int], timeout: object = None, source_address: object = None) -> socket.socket:
            return _open_socket(address, exchange, limits)

        conn._create_connection = connect  # type: ignore[attr-defined]
        conn.timeout = limits.read_s
        if conn.sock is not None:
            exchange.watch(conn.sock)
            conn.sock.settimeout(limits.read_s)
        return conn

    def _send(self, method: str, uri: str, body: bytes | None, headers: dict[str, str], limits: Limits,
              exchange: _Exchange, what: str) -> Answer:
        conn = self._connection(exchange, limits)
        self.exchanges += 1
        conn.request(method, uri, body=body, headers=headers)
        if conn.sock is not None:
            exchange.watch(conn.sock)  # the TLS socket, once wrapped
            conn.sock.settimeout(limits.read_s)
        response = conn.getresponse()
        exchange.answered = True
        try:
            return self._read(response, limits, exchange, what)
        finally:
            response.close()  # a kept-alive connection stays open; otherwise the socket is released

    def _read(self, response: http.client.HTTPResponse, limits: Limits, exchange: _Exchange, what: str) -> Answer:
        status = response.status
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        if exchange.fired or _ABORTED.is_set():
            raise _Stop
        if 300 <= status < 400:
            target = urlsplit(answer_headers.get("location", "")).hostname or "an unnamed place"
            self.close()
            raise self.faults.unavailable(f"{self.label} answered {status} on {what}, redirecting to "
                                          f"{target[:60]}: not followed")
        cap = limits.max_bytes if 200 <= status < 300 else limits.error_bytes
        data, whole = _read_capped(response, answer_headers, cap, truncate=not 200 <= status < 300,
                                   refuse=lambda text: self.faults.data(f"{self.label}'s {what} answer {text}"))
        if exchange.fired or _ABORTED.is_set():
            raise _Stop  # cut off mid-answer: what arrived is not the answer
        if not whole or response.will_close:
            self.close()  # an error body left unread, or the peer closes: not reusable
        return Answer(status, answer_headers, data, what, self.label, limits, self.faults)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __del__(self) -> None:
        # A kept-alive connection of a client nobody closed is released with it (as urllib3's pools are).
        self.close()


def _open_socket(address: tuple[str, int], exchange: _Exchange, limits: Limits) -> socket.socket:
    """Resolve and connect under the exchange's deadline; the socket is watched from the start."""
    host, port = address
    infos = _resolve(host, port, exchange)
    error: OSError | None = None
    for family, kind, proto, _name, target in infos:
        sock = socket.socket(family, kind, proto)
        exchange.watch(sock)
        try:
            remaining = exchange.deadline - now()
            if remaining <= 0 or exchange.fired:
                sock.close()
                raise _Stop
            sock.settimeout(min(limits.connect_s, remaining))
            sock.connect(target)
            sock.settimeout(limits.read_s)
            exchange.connected = True
            return sock
        except OSError as exc:
            sock.close()
            if exchange.fired:
                raise _Stop from exc
            error = exc
    raise error if error is not None else OSError(f"no address for {host}")


def _resolve(host: str, port: int, exchange: _Exchange) -> list[Any]:
    """getaddrinfo within the deadline: a numeric address at once, a name in a helper thread (the
    C resolver cannot be interrupted, so the caller stops waiting instead)."""
    try:
        ipaddress.ip_address(host)
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError:
        pass
    result: list[Any] = []
    failure: list[OSError] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failure.append(exc)
        done.set()

    threading.Thread(target=look_up, name="fetch-resolve", daemon=True).start()
    while not done.wait(RESOLVE_POLL_S):
        if exchange.fired or _ABORTED.is_set() or now() >= exchange.deadline:
            raise _Stop
    if failure:
        raise failure[0]
    return result


def _read_capped(response: http.client.HTTPResponse, headers: Mapping[str, str], cap: int, *, truncate: bool,
                 refuse: Callable[[str], HomeEnergyError]) -> tuple[bytes, bool]:
    """(body, whole) decompressed, refusing (or, for an error body, cutting at) more than `cap` bytes."""
    encoding = headers.get("content-encoding", "identity").strip().lower() or "identity"
    declared = headers.get("content-length", "").strip()
    if not truncate and encoding == "identity" and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise refuse(f"is {int(declared)} bytes, above the {cap}-byte limit: refused")
    wbits = _ENCODINGS.get(encoding, 0)  # 0: no inflating (identity)
    if not wbits and encoding != "identity":
        raise refuse(f"uses an unsupported encoding ({encoding[:20]})")
    out = bytearray()
    inflater = zlib.decompressobj(wbits) if wbits else None
    while len(out) <= cap:
        raw = response.read1(READ_CHUNK_BYTES)
        if not raw:
            break
        data = raw
        while data and len(out) <= cap:
            if inflater is None:
                out += data
                break
            out += inflater.decompress(data, cap + 1 - len(out))
            data = inflater.unconsumed_tail
            if inflater.eof and wbits is not None:  # another gzip member may follow: inflate it, same cap
                data = inflater.unused_data + data
                inflater = zlib.decompressobj(wbits)
    if len(out) > cap:
        if truncate:
            return bytes(out[:cap]), False
        raise refuse(f"is larger than the {cap}-byte limit: refused")
    return bytes(out), True


# -- bounded JSON ----------------------------------------------------------------------------

class _Refused(ValueError):
    """Well-formed JSON holding what the door refuses: NaN, Infinity, a huge number, a repeated key."""


def _reject_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a {len(text)}-digit integer")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER_CHARS or not math.isfinite(value):
        raise _Refused(f"the number {text[:20]}… does not fit a float" if len(text) > 20 else
                       f"the number {text} does not fit a float")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Refused(f"the key {key[:30]!r} appears twice in one object")
            seen.add(key)
    return out


def _depth(skeleton: bytes | bytearray) -> int:
    deepest = depth = 0
    for byte in skeleton.translate(None, _KEEP_BRACKETS):
        depth += 1 if byte in (0x5B, 0x7B) else -1
        deepest = max(deepest, depth)
    return deepest


def _refuse_lone_surrogates(parsed: Any) -> None:
    """A `\\ud800` escape alone decodes to text no UTF-8 file or database can hold: refused."""
    stack = [parsed]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise _Refused("a string holds half of a UTF-16 surrogate pair")


def parse_json(body: bytes, *, what: str, limits: Limits, error: type[Exception], label: str = "the peer") -> Any:
    """Strict JSON under `limits`; any failure is `error`.

    Values and depth are counted on the bytes first, strings taken out: every value and key but
    the first is preceded by one of `[{,:`, so their count bounds what parsing would allocate.
    """
    refused = error(f"{label} answered more than {limits.max_values} JSON values at {what}: refused")
    skeleton = bytearray()  # the text without its strings, built a piece at a time (re.sub's list of
    view = memoryview(body)  # pieces would cost ~200 bytes per string)
    start = strings = 0
    for match in _STRINGS.finditer(body):
        strings += 1
        if strings > limits.max_values:
            raise refused
        skeleton += view[start:match.start()]
        start = match.end()
    skeleton += view[start:]
    values = 1 + sum(skeleton.count(c) for c in (b"[", b"{", b",", b":"))
    if values > limits.max_values:
        raise refused
    if _depth(skeleton) > limits.max_depth:
        raise error(f"{label} answered JSON nested deeper than {limits.max_depth} levels at {what}: refused")
    del skeleton
    try:
        parsed = json.loads(body, parse_constant=_reject_constant, parse_int=_bounded_int, parse_float=_finite_float,
                            object_pairs_hook=_no_duplicates)
        if _SURROGATE_ESCAPE.search(body):
            _refuse_lone_surrogates(parsed)
        return parsed
    except (ValueError, RecursionError, OverflowError, UnicodeError, TypeError) as exc:
        kind = "JSON it cannot use" if isinstance(exc, _Refused) else \
            "HTML" if body.lstrip()[:1] == b"<" else "text that is not JSON"
        detail = " ".join(str(exc).split())[:MAX_REASON_CHARS]
        raise error(f"{label} answered {kind} at {what} ({len(body)} bytes): {detail}") from exc
