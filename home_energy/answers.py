"""Kept answers, and how every body is encoded for its client: the one way the web keeps anything.

Why it exists: every screen asks the same few questions every 10 to 30 seconds, and an answer
changes only when a writer commits to the cache or a time boundary passes. Building it from the
rows on every poll would cost most of each request (see docs/performance.md).

The rule it keeps: **a kept answer is byte for byte what building it now would give.** A view
never keeps anything itself; it calls `kept_answer(name, inputs, build, at=...)` and the key is
made here from everything the answer can depend on:

- what is in the cache: SQLite's `PRAGMA data_version` on this thread's connection, which changes
  whenever any other connection commits (two syncs in the same second included: it counts
  commits, not clock seconds). It is read inside the same read transaction as `build` runs in, so
  the version and the rows it is stored with are one snapshot;
- which file: the answers belong to one connection and go with it, so when the file at the path
  is replaced (a damaged cache moved aside, a copy restored by rename) the reconnect drops them;
- the request's own inputs (`name`, `inputs`), and the time (`at`, the start of the time slice the
  answer holds for, also the only "now" `build` is given);
- the app's settings and version, fixed for an app's life: a thread that serves another app's
  settings (tests build many apps in one process) starts afresh;
- the negotiated encoding: both forms are made from the same plain body.

What it costs per request: one `stat` of the cache path (in `get_db`), one `PRAGMA data_version`
(a read of SQLite's shared WAL index, a few microseconds), a dict lookup and the response object.
A miss costs the build, inside BEGIN … COMMIT of a read transaction. Memory: at most
KEPT_BYTES_PER_READER per server thread, least recently used answers dropped first.

Content negotiation is Werkzeug's parsed `Accept-Encoding` (q-values honoured: `gzip;q=0` gets no
gzip), and one rule (`compressed_form`) decides when a body is compressed, for kept answers,
static files and every other response alike.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, overload

from flask import Response, current_app, g, request
from werkzeug.http import parse_accept_header

from .db import connect_reader

JSON = "application/json"
GZIP_MIN_BYTES = 1024  # below this the gzip header and the CPU are not worth it
GZIP_TYPES = frozenset({JSON, "text/html", "text/css", "text/plain", "application/javascript",
                        "text/javascript", "image/svg+xml"})
# Level 5: within a percent of level 9's size on this JSON at a third of the CPU, which matters on
# a Pi serving several screens. Bodies compressed once for the process's life use level 9.
GZIP_LEVEL = 5
GZIP_LEVEL_ONCE = 9
# Per server thread (4 threads): the page's answers are a few KB each; a week of 5-minute usage,
# the largest answer, is under 1 MB. A body larger than this is served but not kept.
KEPT_BYTES_PER_READER = 2 * 1024 * 1024


def accepts_gzip() -> bool:
    """Whether this request's client takes gzip, by Werkzeug's parse of Accept-Encoding.

    Explicit q-values win over `*` and a q of 0 refuses (`gzip;q=0`, `*;q=0`); when identity is
    asked for with a higher q than gzip, identity is sent. No header at all: no gzip.
    """
    return _gzip_accepted(request.headers.get("Accept-Encoding", ""))


@lru_cache(maxsize=64)
def _gzip_accepted(header: str) -> bool:
    # Each client sends the same header on every request: parse each distinct one once.
    accepted = parse_accept_header(header)
    return accepted.best_match(("gzip", "identity"), default="identity") == "gzip"


def compressed_form(body: bytes, mimetype: str, level: int = GZIP_LEVEL) -> bytes | None:
    """The one rule for compressing: the body's gzip form when its type compresses, it is at least
    GZIP_MIN_BYTES and gzip makes it smaller; otherwise None (it is always sent as it is)."""
    if not may_compress(body, mimetype):
        return None
    packed = gzip.compress(body, compresslevel=level, mtime=0)
    return packed if len(packed) < len(body) else None


def may_compress(body: bytes, mimetype: str) -> bool:
    """Whether `compressed_form` could give a gzip form: then the answer varies by Accept-Encoding.
    `mimetype` may carry parameters (`text/plain; version=0.0.4`)."""
    return mimetype.partition(";")[0].strip() in GZIP_TYPES and len(body) >= GZIP_MIN_BYTES


def encoded_response(plain: bytes, packed: bytes | None, mimetype: str, zipped: bool) -> Response:
    """A response for a body encoded ahead of time: `packed` is its gzip form, or None.
    A `mimetype` with parameters is sent as the whole Content-Type, as given."""
    use_packed = zipped and packed is not None
    body = packed if use_packed else plain
    if ";" in mimetype:
        response = current_app.response_class(body, content_type=mimetype)
    else:
        response = current_app.response_class(body, mimetype=mimetype)
    response.encoded_ahead = True  # type: ignore[attr-defined]  # compress_for_client leaves it be
    if use_packed:
        response.headers["Content-Encoding"] = "gzip"
    if packed is not None:
        response.vary.add("Accept-Encoding")
    return response


def compress_for_client(response: Response) -> None:
    """After a view: compress what was not encoded ahead of time, by the same rule."""
    if (
        getattr(response, "encoded_ahead", False)
        or response.direct_passthrough
        or response.status_code < 200
        or response.status_code in (204, 304)
        or "Content-Encoding" in response.headers
        or response.mimetype not in GZIP_TYPES
    ):
        return
    body = response.get_data()
    if not may_compress(body, response.mimetype):
        return
    response.vary.add("Accept-Encoding")
    if accepts_gzip():
        packed = compressed_form(body, response.mimetype)
        if packed is not None:
            response.set_data(packed)
            response.headers["Content-Encoding"] = "gzip"


@dataclass
class _Kept:
    """One kept answer: its plain body and, once a client has asked for it, its gzip form."""

    plain: bytes
    mimetype: str
    packed: bytes | None = None
    packed_done: bool = False

    def size(self) -> int:
        return len(self.plain) + (len(self.packed) if self.packed else 0)

    def respond(self, zipped: bool) -> tuple[Response, int]:
        """The response, and how many bytes the answer grew by (its gzip form made just now)."""
        grown = 0
        if zipped and not self.packed_done:
            self.packed = compressed_form(self.plain, self.mimetype)
            self.packed_done = True
            grown = len(self.packed or b"")
        response = encoded_response(self.plain, self.packed, self.mimetype, zipped)
        if not self.packed_done and may_compress(self.plain, self.mimetype):
            response.vary.add("Accept-Encoding")
        return response, grown


@dataclass
class _Reader:
    """One server thread's read-only connection and the answers kept for it."""

    conn: sqlite3.Connection | None = None
    identity: tuple[int, int] | None = None  # (device, inode) of the file the connection has open
    config: Any = None  # the settings of the app the answers were built for
    version: int | None = None  # PRAGMA data_version every kept answer was built at
    answers: OrderedDict[Hashable, _Kept] = field(default_factory=OrderedDict)
    size: int = 0

    def forget(self, version: int | None) -> None:
        self.answers.clear()
        self.size = 0
        self.version = version

    def keep(self, key: Hashable, kept: _Kept) -> None:
        if kept.size() > KEPT_BYTES_PER_READER:
            return
        self.answers[key] = kept
        self.size += kept.size()
        self.trim()

    def trim(self) -> None:
        while self.size > KEPT_BYTES_PER_READER and self.answers:
            _key, oldest = self.answers.popitem(last=False)
            self.size -= oldest.size()


_local = threading.local()


def _reader() -> _Reader:
    reader = getattr(_local, "reader", None)
    if reader is None:
        reader = _local.reader = _Reader()
    return reader


def get_db() -> sqlite3.Connection:
    """This server thread's read-only connection, kept across requests.

    Opening a connection makes SQLite parse the schema again on its first statement; keeping one
    per Waitress thread saves that on every request. It is reopened, and its kept answers dropped,
    when the file at the path is a different file (a damaged cache moved aside and started anew,
    a copy restored by rename) and after any error. The connection holds the old file open, so
    its inode cannot be reused by the new one: (device, inode) tells them apart.
    """
    config = current_app.config["HOME_ENERGY"]
    path = config.sqlite_path
    reader = _reader()
    try:
        info = os.stat(path)
    except OSError:
        drop_reader()
        return connect_reader(path)  # raises the one-line "does not exist" error
    identity = (info.st_dev, info.st_ino)
    # The settings are part of every answer's inputs: they are fixed for an app's life, and a
    # thread that serves another app (tests build many) starts afresh.
    if reader.conn is None or reader.identity != identity or reader.config is not config:
        drop_reader()
        reader.conn = connect_reader(path)
        reader.identity = identity
        reader.config = config
    g.db_used = True
    return reader.conn


def drop_reader() -> None:
    """Close this thread's connection and forget every answer kept for it."""
    reader = _reader()
    conn = reader.conn
    reader.conn = reader.identity = reader.config = None
    reader.forget(None)
    if conn is not None:
        conn.close()


def close_db(exc: BaseException | None = None) -> None:
    """Teardown: a request that failed while using the connection leaves it to be reopened."""
    if exc is not None and g.pop("db_used", False):
        drop_reader()


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def bucket(now: datetime, seconds: int) -> datetime:
    """The start of the `seconds`-long slice of Unix time that holds `now`.

    Slices are aligned on Unix time: 300 s slices are Amber's 5-minute interval grid, 60 s slices
    whole minutes, 1 s slices whole seconds (an age in whole seconds is the same for all of one).
    """
    t = int(now.timestamp())
    return datetime.fromtimestamp(t - t % seconds, UTC)


@overload
def kept_answer(name: str, inputs: Hashable, build: Callable[[sqlite3.Connection, datetime], Any], *,
                at: datetime, mimetype: str = JSON) -> Response: ...


@overload
def kept_answer(name: str, inputs: Hashable, build: Callable[[sqlite3.Connection, None], Any], *,
                at: None, mimetype: str = JSON) -> Response: ...


def kept_answer(name: str, inputs: Hashable, build: Callable[[sqlite3.Connection, Any], Any], *,
                at: datetime | None, mimetype: str = JSON) -> Response:
    """The answer `build(conn, at)` gives, kept until the cache, the file or `at` changes: JSON
    (`build` returns what `jsonify` would take), or with another `mimetype` the text or bytes
    `build` returns.

    `name` and `inputs` must hold everything of the request the answer depends on (parameters, a
    NEM day; the settings are covered already); `at` is the instant it is computed for: None when
    it does not depend on the time, else the start of the slice it holds for (`bucket(now, 300)`
    for the 5-minute grid, `bucket(now, 1)` for ages in whole seconds). `build` is given the
    connection and `at`, and must use no other clock and no other connection: then a kept answer
    cannot be stale. A new endpoint (a blueprint of its own too) needs nothing more:

        return kept_answer("current", (), queries.current, at=bucket(now_utc(), 300))
    """
    conn = get_db()
    reader = _reader()
    zipped = accepts_gzip()
    key = (name, inputs, at)
    version = _data_version(conn)
    if version != reader.version:
        reader.forget(version)
    kept = reader.answers.get(key)
    if kept is not None:
        reader.answers.move_to_end(key)
    else:
        conn.execute("BEGIN")  # one read snapshot for the version and every row `build` reads
        try:
            version = _data_version(conn)
            value = build(conn, at)
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the error that got here is the one to report
                    conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if version != reader.version:
            reader.forget(version)
        if mimetype == JSON:
            value = current_app.json.dumps(value, separators=(",", ":"))
        kept = _Kept(value.encode() if isinstance(value, str) else value, mimetype)
        reader.keep(key, kept)
    response, grown = kept.respond(zipped)
    if grown and reader.answers.get(key) is kept:
        reader.size += grown
        reader.trim()
    return response


class _Fixed:
    """Answers that depend on no cache data (the page): per app, built once per inputs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: dict[Hashable, _Kept] = {}


FIXED_ANSWERS_KEPT = 8  # the page for a few (settings, version): they are fixed for the app's life


def kept_body(name: str, inputs: Hashable, build: Callable[[], str | bytes], mimetype: str) -> Response:
    """An answer that reads nothing from the cache (the page): built once per (name, inputs) for
    the app's life and compressed once at GZIP_LEVEL_ONCE. `inputs` must hold everything it
    depends on (settings, the running version)."""
    fixed = current_app.extensions.setdefault("home_energy_fixed_answers", _Fixed())
    key = (name, inputs)
    with fixed.lock:
        kept = fixed.answers.get(key)
    if kept is None:
        body = build()
        plain = body.encode() if isinstance(body, str) else body
        kept = _Kept(plain, mimetype, compressed_form(plain, mimetype, GZIP_LEVEL_ONCE), True)
        with fixed.lock:
            if len(fixed.answers) >= FIXED_ANSWERS_KEPT:
                fixed.answers.pop(next(iter(fixed.answers)))
            fixed.answers[key] = kept
    response, _grown = kept.respond(accepts_gzip())
    return response
