"""The Flask app: the dashboard page and a read-only JSON API over the SQLite cache.

It never imports the upstream client and never calls out: every answer comes from the cache,
opened read-only (one connection per server thread, in `answers`). Every answer that can be
kept is kept through `answers.kept_answer` (or `kept_body` for the page), never by a cache of a
view's own. When the file cannot be read at all, /api/health answers 503 with a one-line error.
Query parameters are parsed strictly (ASCII digits, exact dates, no repeats); bad input is a 400
with a JSON error. Every answer under /api is JSON: an error, a 500 (which never carries a trace),
OPTIONS and a method the path does not take (with `Allow`). A request for a Host that is not one
of the dashboard's names is a JSON 400 (`hosts`).
"""
from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Flask, abort, current_app, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider

from . import publish_status, queries
from .answers import (
    GZIP_LEVEL_ONCE,
    accepts_gzip,
    bucket,
    close_db,
    compress_for_client,
    compressed_form,
    drop_reader,
    encoded_response,
    kept_answer,
    kept_body,
)
from .clock import NEM_TZ, now_utc
from .config import Config, load_config
from .errors import HomeEnergyError
from .hosts import HostGuard
from .numbers import whole_number
from .plugs import status as plug_status
from .plugs.api import plugs_api
from .redact import Redactor
from .resources import package_folder
from .version import running_version

log = logging.getLogger(__name__)

DEFAULT_HOURS = 24
MAX_HOURS = 48
FIRST_DATE = date(2000, 1, 1)  # dates outside these are refused: no arithmetic near date.min/max
LAST_DATE = date(2100, 12, 31)
DEFAULT_USAGE_DAYS = 7
# Five-minute usage is ~600 rows a day: a week keeps the heaviest answer under 1 MB of JSON, so
# it cannot crowd out the page's own endpoints; day totals are a few rows a day and may span 93 days.
MAX_INTERVAL_USAGE_DAYS = 7
# How long each answer holds, as the time slice passed to `kept_answer`: ages are whole seconds;
# every interval boundary (and so the current interval and each `kind`) is on the 5-minute grid;
# the meter's energy is kept per minute.
AGES_SLICE_S = 1
INTERVAL_GRID_S = 300
METER_MINUTE_S = 60

api = Blueprint("api", __name__, url_prefix="/api")
page = Blueprint("page", __name__)


# A static URL that carries the running version (`?v=…`, as the page's links do) never changes
# content, so the browser may keep it for a year; other static URLs (the favicon) for an hour.
VERSIONED_STATIC_MAX_AGE_S = 365 * 24 * 3600
STATIC_MAX_AGE_S = 3600


class BadRequest(HomeEnergyError):
    pass


class StaticAsset:
    """One static file held in memory, with its gzip form when the one rule gives one."""

    def __init__(self, body: bytes, mimetype: str) -> None:
        self.body = body
        self.mimetype = mimetype
        self.etag = hashlib.sha256(body).hexdigest()[:32]
        self.gzipped = compressed_form(body, mimetype, GZIP_LEVEL_ONCE)


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
    json_provider = cast(DefaultJSONProvider, app.json)  # the class Flask installs unless told otherwise
    json_provider.sort_keys = False
    json_provider.compact = True
    app.extensions["home_energy_static"] = load_static(app.static_folder)
    hosts = app.extensions["home_energy_hosts"] = HostGuard(config)
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
    def _known_host() -> Any:
        # First of all: a page from another origin learns nothing, not even whether a path exists.
        header = request.environ.get("HTTP_HOST")
        if hosts.allows(header):
            return None
        return jsonify(error=hosts.refusal(header or "")), 400

    @app.before_request
    def _query_is_utf8() -> Any:
        # Werkzeug decodes the query string strictly when a view first reads it: reject it here
        # as a 400 rather than let that decode fail as a 500.
        try:
            request.query_string.decode("utf-8")
        except UnicodeDecodeError:
            message = "the query string is not valid UTF-8"
            return (jsonify(error=message), 400) if _under_api() else (message, 400)
        return None

    @app.before_request
    def _api_options() -> Any:
        # Flask answers OPTIONS itself with an empty body; under /api every answer is JSON.
        if request.method != "OPTIONS":
            return None
        rule = request.url_rule
        if not _under_api() or rule is None or rule.methods is None:
            return None
        allowed = sorted(rule.methods)
        response = jsonify(allow=allowed)
        response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.after_request
    def _headers(response: Any) -> Any:
        compress_for_client(response)
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
    def _not_found(_exc: Exception) -> Any:
        if _under_api():
            return jsonify(error=f"no such endpoint: {_shown(request.path)}"), 404
        return "not found", 404

    @app.errorhandler(405)
    def _not_allowed(exc: Exception) -> Any:
        valid = sorted(getattr(exc, "valid_methods", None) or ())
        if _under_api():
            response = jsonify(error=f"{_shown(request.method)} is not allowed on {_shown(request.path)}")
        else:
            response = current_app.response_class(f"{_shown(request.method)} is not allowed here",
                                                  mimetype="text/plain")
        response.status_code = 405
        if valid:
            response.headers["Allow"] = ", ".join(valid)
        return response

    @app.errorhandler(500)
    def _internal_error(_exc: Exception) -> Any:
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


def _static_file(filename: str) -> Any:
    """A static file from memory: gzipped once at start for clients that accept it, cached long
    when its URL names the running version, and a 304 when the browser already holds it."""
    asset = current_app.extensions["home_energy_static"].get(filename)
    if asset is None:
        abort(404)
    zipped = asset.gzipped is not None and accepts_gzip()
    etag = asset.etag + ("-gz" if zipped else "")
    versioned = request.args.get("v") == current_app.config["VERSION"]
    if etag in request.if_none_match:
        response = current_app.response_class(status=304)
        if asset.gzipped is not None:
            response.vary.add("Accept-Encoding")
    else:
        response = encoded_response(asset.body, asset.gzipped, asset.mimetype, zipped)
    response.set_etag(etag)
    max_age = f"{VERSIONED_STATIC_MAX_AGE_S}, immutable" if versioned else f"{STATIC_MAX_AGE_S}"
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


def settings() -> Config:
    return current_app.config["HOME_ENERGY"]


@api.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> Any:
    return jsonify(error=str(exc)), 400


@api.errorhandler(HomeEnergyError)
def _cache_error(exc: HomeEnergyError) -> Any:
    drop_reader()
    return jsonify(error=str(exc)), 503


@api.errorhandler(sqlite3.DatabaseError)
def _sqlite_error(exc: sqlite3.DatabaseError) -> Any:
    log.error("cache read failed: %s", exc)
    drop_reader()
    return jsonify(error=f"cache cannot be read: {exc}"), 503


def _only(*allowed: str) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(allowed) or 'none'}")
    for name in allowed:
        if len(request.args.getlist(name)) > 1:
            raise BadRequest(f"query parameter {name!r} is given more than once")


def _int_arg(name: str, low: int, high: int) -> int | None:
    """The parameter as an int in [low, high], or None when it is absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    value = whole_number(raw, low, high)
    if value is None:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return value


def _date_arg(name: str) -> date | None:
    """The parameter as a date between FIRST_DATE and LAST_DATE, or None when it is absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    message = f"{name} must be a date as YYYY-MM-DD from {FIRST_DATE} to {LAST_DATE}"
    year, month, day = (whole_number(x, 1, 9999) for x in (raw[:4], raw[5:7], raw[8:]))
    if len(raw) != 10 or raw[4] != "-" or raw[7] != "-" or year is None or month is None or day is None:
        raise BadRequest(message)
    try:
        value = date(year, month, day)
    except ValueError:
        raise BadRequest(message) from None
    if not FIRST_DATE <= value <= LAST_DATE:
        raise BadRequest(message)
    return value


@api.get("/health")
def health() -> Any:
    _only()
    cfg = settings()
    version = current_app.config["VERSION"]

    def build(conn: sqlite3.Connection, at: datetime) -> dict[str, Any]:
        body = queries.health(conn, at, cfg.stale_after_seconds, cfg.mode, version)
        if cfg.meter is not None:
            body["meter"] = queries.meter_health(conn, at, cfg.meter, cfg.meter_poll_seconds)
        if cfg.plugs_file is not None:
            body["plugs"] = plug_status.health(conn, at, configured=True)
        if cfg.mqtt_url is not None:
            body["publish"] = publish_status.read_status(status_file, at, cfg.mqtt_url)
        return current_app.extensions["home_energy_redact"].scrub_tree(body)

    # The publisher's status is a file beside the cache, not in it: its stamp is an input.
    status_file = publish_status.status_path(cfg.sqlite_path)
    published = publish_status.stamp(status_file) if cfg.mqtt_url is not None else None
    return kept_answer("health", (published,), build, at=bucket(now_utc(), AGES_SLICE_S))


@api.get("/current")
def current() -> Any:
    _only()
    return kept_answer("current", (), queries.current, at=bucket(now_utc(), INTERVAL_GRID_S))


@api.get("/prices")
def prices() -> Any:
    _only("hours")
    hours = _int_arg("hours", 1, MAX_HOURS)
    if hours is None:
        hours = DEFAULT_HOURS
    return kept_answer("prices", (hours,), lambda conn, at: queries.prices(conn, at, hours),
                     at=bucket(now_utc(), INTERVAL_GRID_S))


@api.get("/usage")
def usage() -> Any:
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
    # The dates are the answer's whole input: it does not depend on the time.
    return kept_answer("usage", (start, end, with_intervals),
                     lambda conn, _at: queries.usage(conn, start, end, intervals=with_intervals), at=None)


@api.get("/summary")
def summary() -> Any:
    _only()
    budget, forecast = settings().monthly_budget, settings().forecast_price
    return kept_answer("summary", (budget, forecast),
                     lambda conn, at: queries.summary(conn, at, budget, forecast),
                     at=bucket(now_utc(), INTERVAL_GRID_S))


@page.get("/")
def index() -> Any:
    cfg = settings()
    display: dict[str, Any] = {
        "timezone": cfg.timezone,
        "night_start": cfg.night_start,
        "night_end": cfg.night_end,
        "version": current_app.config["VERSION"],
    }
    # The page depends only on the settings and the version, fixed for the app's life.
    return kept_body("page", tuple(display.values()), lambda: render_template("index.html", display=display),
                     "text/html")


# --- The home's meter (written by the collector; read here from the cache only) --------------


@api.get("/live")
def live() -> Any:
    _only()
    cfg = settings()
    return kept_answer("live", (cfg.meter, cfg.meter_poll_seconds),
                     lambda conn, at: queries.live(conn, at, cfg.meter, cfg.meter_poll_seconds),
                     at=bucket(now_utc(), AGES_SLICE_S))


@api.get("/today")
def today() -> Any:
    _only("date")
    now = now_utc()
    this_day = now.astimezone(NEM_TZ).date()
    day = _date_arg("date") or this_day
    if day > this_day or (this_day - day).days > settings().retention_days:
        raise BadRequest(f"date must be within the last {settings().retention_days} days, not in the future")
    source = settings().meter
    return kept_answer("today", (day, source),
                     lambda conn, at: queries.today(conn, at, source, day),
                     at=bucket(now, METER_MINUTE_S))
