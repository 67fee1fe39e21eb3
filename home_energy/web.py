"""The Flask app: the dashboard page and a read-only JSON API over the SQLite cache.

It never imports the upstream client and never calls out: every answer comes from the cache,
opened read-only (one connection per server thread). When the file cannot be read at all,
/api/health answers 503 with a one-line error. Query parameters are parsed strictly (ASCII
digits, exact dates, no repeats); bad input is a 400 with a JSON error, and every error under
/api is JSON, a 500 included, which never carries a trace.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import mimetypes
import os
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, jsonify, render_template, request

from . import publish_status, queries
from .clock import NEM_TZ, now_utc
from .config import Config, load_config
from .db import connect_reader
from .errors import HomeEnergyError
from .plugs import status as plug_status
from .plugs.api import plugs_api
from .redact import Redactor
from .resources import package_folder
from .version import running_version

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOURS = 24
MAX_HOURS = 48
MAX_NUMBER_DIGITS = 4  # longer than any accepted value: rejected before int() sees it
FIRST_DATE = date(2000, 1, 1)  # dates outside these are refused: no arithmetic near date.min/max
LAST_DATE = date(2100, 12, 31)
DEFAULT_USAGE_DAYS = 7
# Five-minute usage is ~600 rows a day: a week keeps the heaviest answer under 1 MB of JSON, so
# it cannot crowd out the page's own endpoints; day totals are a few rows a day and may span 93 days.
MAX_INTERVAL_USAGE_DAYS = 7
GZIP_MIN_BYTES = 1024  # below this the gzip header and CPU are not worth it
GZIP_TYPES = frozenset({"application/json", "text/html", "text/css", "application/javascript", "text/javascript"})

api = Blueprint("api", __name__, url_prefix="/api")
page = Blueprint("page", __name__)


# A static URL that carries the running version (`?v=…`, as the page's links do) never changes
# content, so the browser may keep it for a year; other static URLs (the favicon) for an hour.
VERSIONED_STATIC_MAX_AGE_S = 365 * 24 * 3600
STATIC_MAX_AGE_S = 3600

ANSWER_CACHE_ENTRIES = 16  # prices for a few `hours` values and the summary, over two 5-minute buckets


class BadRequest(HomeEnergyError):
    pass


class _AnswerCache:
    """The last few /api/prices and /api/summary bodies, keyed by what they are computed from:
    the newest fetch, the 5-minute bucket of now, and the request's own parameters.

    Every screen polls every 30 seconds and the answer changes only when the sync writes or a
    5-minute boundary passes, so nearly every poll is served without touching the rows.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: dict[tuple, bytes] = {}


class StaticAsset:
    """One static file held in memory, with its gzip form when that is smaller."""

    def __init__(self, body: bytes, mimetype: str) -> None:
        self.body = body
        self.mimetype = mimetype
        self.etag = hashlib.sha256(body).hexdigest()[:32]
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        self.gzipped = packed if len(body) >= GZIP_MIN_BYTES and len(packed) < len(body) else None


def load_static(folder: str | None) -> dict[str, StaticAsset]:
    """Every file under `folder`, read once at start: a request then costs no stat, open or read.

    The files change only with the installed version, and an update restarts the server.
    """
    assets: dict[str, StaticAsset] = {}
    if folder is None or not os.path.isdir(folder):
        return assets
    root = Path(folder)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            assets[path.relative_to(root).as_posix()] = StaticAsset(path.read_bytes(), mimetype)
    return assets


def create_app(config: Config | None = None) -> Flask:
    app = Flask(__name__, template_folder=package_folder("templates"), static_folder=package_folder("static"))
    config = config or load_config()
    app.config["HOME_ENERGY"] = config
    app.config["VERSION"] = running_version()
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    app.json.compact = True
    app.extensions["home_energy_answers"] = _AnswerCache()
    app.extensions["home_energy_static"] = load_static(app.static_folder)
    # Health carries the sync's and the meter's error lines: served without any configured secret.
    app.extensions["home_energy_redact"] = Redactor.from_config(config)
    if "static" in app.view_functions:
        app.view_functions["static"] = _static_file
    app.register_blueprint(api)
    app.register_blueprint(page)
    app.register_blueprint(plugs_api)
    from .metrics import metrics  # here, not at the top: it imports this module
    app.register_blueprint(metrics)
    app.teardown_appcontext(close_db)

    @app.before_request
    def _query_is_utf8():
        # Werkzeug decodes the query string strictly when a view first reads it: reject it here
        # as a 400 rather than let that decode fail as a 500.
        try:
            request.query_string.decode("utf-8")
        except UnicodeDecodeError:
            message = "the query string is not valid UTF-8"
            return (jsonify(error=message), 400) if _under_api() else (message, 400)
        return None

    @app.after_request
    def _headers(response):
        _gzip(response)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        else:
            # The page may load nothing from another origin; this makes the browser enforce it.
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; media-src 'self' data:; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'",
            )
        return response

    @app.errorhandler(404)
    def _not_found(_exc):
        if _under_api():
            return jsonify(error=f"no such endpoint: {_shown(request.path)}"), 404
        return "not found", 404

    @app.errorhandler(405)
    def _not_allowed(_exc):
        if _under_api():
            return jsonify(error=f"{_shown(request.method)} is not allowed on {_shown(request.path)}"), 405
        return f"{request.method} is not allowed here", 405

    @app.errorhandler(500)
    def _internal_error(_exc):
        # Flask has already logged the exception with its trace; the client gets one line.
        if _under_api():
            return jsonify(error="internal error: see the server log"), 500
        return "internal error: see the server log", 500

    return app


def _shown(text: str) -> str:
    """`text` with control characters escaped, so an error stays one line whatever was asked."""
    return repr(text)[1:-1]


def _under_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _static_file(filename: str):
    """A static file from memory: gzipped once at start for clients that accept it, cached long
    when its URL names the running version, and a 304 when the browser already holds it."""
    asset = current_app.extensions["home_energy_static"].get(filename)
    if asset is None:
        abort(404)
    zipped = asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", "")
    etag = asset.etag + ("-gz" if zipped else "")
    versioned = request.args.get("v") == current_app.config["VERSION"]
    if etag in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        response = _body_response(asset.gzipped if zipped else asset.body, asset.mimetype, zipped)
    response.set_etag(etag)
    if asset.gzipped is not None:
        response.vary.add("Accept-Encoding")
    max_age = f"{VERSIONED_STATIC_MAX_AGE_S}, immutable" if versioned else f"{STATIC_MAX_AGE_S}"
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


def _gzip(response) -> None:
    """Compress JSON and pages for clients that accept it: a day of 5-minute prices is ~10x smaller.

    Level 5: within a percent of level 9's size on this JSON at a third of the CPU, which matters
    on a Pi serving several screens.
    """
    if (
        response.direct_passthrough
        or response.status_code < 200
        or response.status_code in (204, 304)
        or "Content-Encoding" in response.headers
        or "gzip" not in request.headers.get("Accept-Encoding", "")
        or response.mimetype not in GZIP_TYPES
    ):
        return
    body = response.get_data()
    if len(body) < GZIP_MIN_BYTES:
        return
    response.set_data(gzip.compress(body, compresslevel=5, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")


def settings() -> Config:
    return current_app.config["HOME_ENERGY"]


_readers = threading.local()


def get_db() -> sqlite3.Connection:
    """This server thread's read-only connection, kept across requests.

    Opening a connection makes SQLite parse the schema again on its first statement; keeping one
    per Waitress thread saves that on every request. It is reopened when the file at the path is
    a different file (the sync moved a corrupt cache aside and started anew) and after any error.
    """
    path = settings().sqlite_path
    try:
        identity = (str(path), os.stat(path).st_ino)
    except OSError:
        _drop_reader()
        return connect_reader(path)  # raises the one-line "does not exist" error
    if getattr(_readers, "identity", None) != identity:
        _drop_reader()
        _readers.conn = connect_reader(path)
        _readers.identity = identity
    g.db_used = True
    return _readers.conn


def _drop_reader() -> None:
    conn = getattr(_readers, "conn", None)
    _readers.conn = _readers.identity = None
    _readers.answers = {}
    if conn is not None:
        conn.close()


def close_db(exc: BaseException | None = None) -> None:
    if exc is not None and g.pop("db_used", False):
        _drop_reader()


@api.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return jsonify(error=str(exc)), 400


@api.errorhandler(HomeEnergyError)
def _cache_error(exc: HomeEnergyError):
    _drop_reader()
    return jsonify(error=str(exc)), 503


@api.errorhandler(sqlite3.DatabaseError)
def _sqlite_error(exc: sqlite3.DatabaseError):
    log.error("cache read failed: %s", exc)
    _drop_reader()
    return jsonify(error=f"cache cannot be read: {exc}"), 503


def _only(*allowed: str) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(allowed) or 'none'}")
    for name in allowed:
        if len(request.args.getlist(name)) > 1:
            raise BadRequest(f"query parameter {name!r} is given more than once")


def _digits(raw: str) -> bool:
    # str.isdigit() alone accepts "²", "٣" and "𝟏", which int() then rejects or reads as 3.
    return 0 < len(raw) <= MAX_NUMBER_DIGITS and raw.isascii() and raw.isdigit()


def _int_arg(name: str, low: int, high: int) -> int | None:
    """The parameter as an int in [low, high], or None when it is absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if not _digits(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _date_arg(name: str) -> date | None:
    """The parameter as a date between FIRST_DATE and LAST_DATE, or None when it is absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    message = f"{name} must be a date as YYYY-MM-DD from {FIRST_DATE} to {LAST_DATE}"
    year, month, day = raw[:4], raw[5:7], raw[8:]
    if len(raw) != 10 or raw[4] != "-" or raw[7] != "-" or not all(_digits(x) for x in (year, month, day)):
        raise BadRequest(message)
    try:
        value = date(int(year), int(month), int(day))
    except ValueError:
        raise BadRequest(message) from None
    if not FIRST_DATE <= value <= LAST_DATE:
        raise BadRequest(message)
    return value


@api.get("/health")
def health():
    _only()
    cfg = settings()
    conn, now, version = get_db(), now_utc(), current_app.config["VERSION"]

    def build() -> dict[str, Any]:
        body = queries.health(conn, now, cfg.stale_after_seconds, cfg.mode, version)
        if cfg.meter is not None:
            body["meter"] = queries.meter_health(conn, now, cfg.meter, cfg.meter_poll_seconds)
        if cfg.plugs_file is not None:
            body["plugs"] = plug_status.health(conn, now, configured=True)
        if cfg.mqtt_url is not None:
            body["publish"] = publish_status.read_status(status_file, now, cfg.mqtt_url)
        return current_app.extensions["home_energy_redact"].scrub_tree(body)

    # Its ages count whole seconds, so within one second and with no write it cannot change.
    status_file = publish_status.status_path(cfg.sqlite_path)
    published = publish_status.stamp(status_file) if cfg.mqtt_url is not None else None
    key = (int(now.timestamp()), cfg.stale_after_seconds, cfg.mode, version, cfg.meter, published, cfg.plugs_file)
    return _fresh_json(conn, "health", key, build)


@api.get("/current")
def current():
    _only()
    conn, now = get_db(), now_utc()
    # Every interval boundary is on the 5-minute grid, so the interval holding "now", and its
    # kind, are the same for the whole bucket: the answer is a function of (fetch, bucket).
    return _cached_json(("current", *queries.prices_cache_key(conn, now, 0)), lambda: queries.current(conn, now))


@api.get("/prices")
def prices():
    _only("hours")
    hours = _int_arg("hours", 1, MAX_HOURS)
    if hours is None:
        hours = DEFAULT_HOURS
    conn, now = get_db(), now_utc()
    return _cached_json(("prices", *queries.prices_cache_key(conn, now, hours)),
                        lambda: queries.prices(conn, now, hours))


def _cached_json(key: tuple, build):
    """Answer from the cache when `key` was answered before, else build, encode and keep it."""
    zipped = "gzip" in request.headers.get("Accept-Encoding", "")
    key = (*key, zipped)
    cache = current_app.extensions["home_energy_answers"]
    with cache.lock:
        body = cache.answers.get(key)
    if body is None:
        body = current_app.json.dumps(build(), separators=(",", ":")).encode()
        if zipped:
            body = gzip.compress(body, compresslevel=5, mtime=0)
        with cache.lock:
            if len(cache.answers) >= ANSWER_CACHE_ENTRIES:
                cache.answers.pop(next(iter(cache.answers)))
            cache.answers[key] = body
    return _body_response(body, "application/json", zipped)


def _body_response(body: bytes, mimetype: str, zipped: bool):
    """A response for a body encoded ahead of time: gzipped already when `zipped`."""
    response = current_app.response_class(body, mimetype=mimetype)
    if zipped:
        response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept-Encoding")
    return response


@api.get("/usage")
def usage():
    _only("from", "to", "intervals")
    end = _date_arg("to")
    start = _date_arg("from")
    with_intervals = _int_arg("intervals", 0, 1) == 1
    # Each default is computed only when its parameter is absent, so a given date is never moved.
    if end is None:
        end = now_utc().astimezone(NEM_TZ).date() - timedelta(days=1)
    if start is None:
        start = end - timedelta(days=DEFAULT_USAGE_DAYS - 1)
    if start > end:
        raise BadRequest("from must not be after to")
    span = (end - start).days + 1
    if span > queries.MAX_USAGE_DAYS:
        raise BadRequest(f"from..to may span at most {queries.MAX_USAGE_DAYS} days")
    if with_intervals and span > MAX_INTERVAL_USAGE_DAYS:
        raise BadRequest(f"with intervals=1, from..to may span at most {MAX_INTERVAL_USAGE_DAYS} days")
    conn = get_db()
    return _fresh_json(conn, "usage", (start, end, with_intervals),
                       lambda: queries.usage(conn, start, end, intervals=with_intervals))


def _fresh_json(conn: sqlite3.Connection, name: str, key: tuple, build):
    """The answer `build()` gives for `key`, kept by this server thread until the cache is written.

    SQLite's `PRAGMA data_version` changes when any other connection commits, so a kept answer
    is exactly what `build()` would give now. One answer per name and thread: a repeated request
    (every screen's poll, a script asking for the same week) costs one pragma, not the rows.
    """
    full = (conn.execute("PRAGMA data_version").fetchone()[0], *key)
    answers = _readers.answers
    kept = answers.get(name)
    if kept is None or kept[0] != full:
        kept = [full, current_app.json.dumps(build(), separators=(",", ":")).encode(), None]
        answers[name] = kept
    body = kept[1]
    zipped = len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", "")
    if zipped:
        if kept[2] is None:
            kept[2] = gzip.compress(body, compresslevel=5, mtime=0)
        body = kept[2]
    return _body_response(body, "application/json", zipped)


@api.get("/summary")
def summary():
    _only()
    conn, now, budget = get_db(), now_utc(), settings().monthly_budget
    forecast = settings().forecast_price
    return _cached_json(("summary", *queries.summary_cache_key(conn, now), budget, forecast),
                        lambda: queries.summary(conn, now, budget, forecast))


@page.get("/")
def index():
    cfg = settings()
    display: dict[str, Any] = {
        "timezone": cfg.timezone,
        "night_start": cfg.night_start,
        "night_end": cfg.night_end,
        "version": current_app.config["VERSION"],
    }
    # The page depends only on the settings and the version, fixed for the app's life: render
    # and gzip it once per (settings, version) rather than on every load.
    key = tuple(display.values())
    zipped = "gzip" in request.headers.get("Accept-Encoding", "")
    pages = current_app.extensions.setdefault("home_energy_pages", {})
    kept = pages.get(key)
    if kept is None:
        html = render_template("index.html", display=display).encode()
        kept = pages[key] = (html, gzip.compress(html, compresslevel=9, mtime=0))
    response = _body_response(kept[1] if zipped else kept[0], "text/html", zipped)
    response.vary.add("Accept-Encoding")  # also on the plain page: a cache must not serve it to a gzip client
    return response


# --- The home's meter (written by the collector; read here from the cache only) --------------


@api.get("/live")
def live():
    _only()
    cfg = settings()
    return jsonify(queries.live(get_db(), now_utc(), cfg.meter, cfg.meter_poll_seconds))


@api.get("/today")
def today():
    _only("date")
    now = now_utc()
    this_day = now.astimezone(NEM_TZ).date()
    day = _date_arg("date") or this_day
    if day > this_day or (this_day - day).days > settings().retention_days:
        raise BadRequest(f"date must be within the last {settings().retention_days} days, not in the future")
    conn, source = get_db(), settings().meter
    # Every screen asks every 10 s and the answer changes only when the collector or the sync
    # writes: keep the last one until the cache is written.
    return _fresh_json(conn, "today", (day, source), lambda: queries.today(conn, now, source, day))
