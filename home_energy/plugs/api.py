"""/api/plugs: how every plug stands, from the cache only (the controller writes it).

A blueprint of its own, registered by `web.create_app`; it reads through `status` on the web's
read-only connection and keeps the web's rules (no query parameters, JSON errors, answers kept
until the cache is written).
"""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Response

from ..clock import now_utc
from ..errors import HomeEnergyError
from . import status

plugs_api = Blueprint("plugs_api", __name__, url_prefix="/api")


@plugs_api.get("/plugs")
def plugs() -> Response:
    from ..web import _fresh_json, _only, get_db, settings

    _only()
    conn, now, configured = get_db(), now_utc(), settings().plugs_file is not None
    # `controller` turns `stopped` with the clock, so the kept answer is keyed on the half-minute too.
    key = (int(now.timestamp()) // 30, configured)
    return _fresh_json(conn, "plugs", key, lambda: status.plugs(conn, now, configured))


@plugs_api.errorhandler(HomeEnergyError)
def _error(exc: HomeEnergyError) -> Any:
    from ..web import BadRequest, _bad_request, _cache_error

    return _bad_request(exc) if isinstance(exc, BadRequest) else _cache_error(exc)


@plugs_api.errorhandler(sqlite3.DatabaseError)
def _sqlite(exc: sqlite3.DatabaseError) -> Any:
    from ..web import _sqlite_error

    return _sqlite_error(exc)
