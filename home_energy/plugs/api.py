"""/api/plugs: how every plug stands, from the cache only (the controller writes it).

A blueprint of its own, registered by `web.create_app`; it reads through `status` on the web's
read-only connection and keeps the web's rules (no query parameters, JSON errors, answers kept
until the cache is written).
"""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Response, current_app

from ..answers import bucket, kept_answer
from ..clock import now_utc
from ..errors import HomeEnergyError
from . import status

plugs_api = Blueprint("plugs_api", __name__, url_prefix="/api")


# `controller` turns `stopped` with the clock: the answer holds for a half-minute slice.
PLUGS_SLICE_S = 30


@plugs_api.get("/plugs")
def plugs() -> Response:
    from ..web import _only

    _only()
    return kept_answer("plugs", (), lambda conn, at: status.plugs(conn, at, _configured()),
                       at=bucket(now_utc(), PLUGS_SLICE_S))


def _configured() -> bool:
    return current_app.config["HOME_ENERGY"].plugs_file is not None


@plugs_api.errorhandler(HomeEnergyError)
def _error(exc: HomeEnergyError) -> Any:
    from ..web import BadRequest, _bad_request, _cache_error

    return _bad_request(exc) if isinstance(exc, BadRequest) else _cache_error(exc)


@plugs_api.errorhandler(sqlite3.DatabaseError)
def _sqlite(exc: sqlite3.DatabaseError) -> Any:
    from ..web import _sqlite_error

    return _sqlite_error(exc)
