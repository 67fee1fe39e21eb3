"""A corrupt or truncated cache file: the web says so (503, one clear line), the next sync moves
the bad file aside, says so in the log, and rebuilds a working cache.
"""
from __future__ import annotations

import logging
import sqlite3

import pytest

from home_energy.sync import run_sync
from tests.reliability.helpers import integrity

GARBAGE = b"not a database, a half-written file from a dying SD card\n" * 300


def _real_cache(config) -> bytes:
    assert run_sync(config).exit_code == 0
    conn = sqlite3.connect(config.sqlite_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return config.sqlite_path.read_bytes()


def _truncate(config) -> bytes:
    good = _real_cache(config)
    bad = good[: len(good) // 3]
    config.sqlite_path.write_bytes(bad)
    return bad


def _scribble_over_pages(config) -> bytes:
    """Header intact, b-tree pages from the third onward overwritten: opens fine, reads garbage."""
    good = bytearray(_real_cache(config))
    page = int.from_bytes(good[16:18], "big")
    for offset in range(2 * page, len(good), page):
        good[offset:offset + 64] = b"\xff" * 64
    config.sqlite_path.write_bytes(bytes(good))
    return bytes(good)


def _garbage(config) -> bytes:
    config.sqlite_path.write_bytes(GARBAGE)
    return GARBAGE


DAMAGE = {"garbage": _garbage, "truncated": _truncate, "scribbled": _scribble_over_pages}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "scribbled"])
def test_health_answers_503_with_one_clear_line_on_a_damaged_cache(damage, demo_config, app_for):
    DAMAGE[damage](demo_config)
    response = app_for(demo_config).test_client().get("/api/health")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error.startswith(("cache ", f"cache {demo_config.sqlite_path}")) and "\n" not in error
    assert any(word in error for word in ("not a database", "malformed", "cannot be read")), error


@pytest.mark.parametrize("damage", ["garbage", "truncated", "scribbled"])
def test_next_sync_moves_a_damaged_cache_aside_and_rebuilds(damage, demo_config, app_for, caplog):
    bad = DAMAGE[damage](demo_config)
    with caplog.at_level(logging.ERROR, logger="home_energy.store"):
        report = run_sync(demo_config)
    assert report.outcome == "ok" and report.rows_written > 0
    aside = list(demo_config.sqlite_path.parent.glob("cache.sqlite.corrupt-*"))
    aside_main = [p for p in aside if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside_main) == 1 and aside_main[0].read_bytes() == bad  # kept, untouched, for inspection
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    moved = [message for message in errors if "moved it aside" in message]
    assert len(moved) == 1 and aside_main[0].name in moved[0]
    assert moved[0].count(str(demo_config.sqlite_path)) == 1 and "\n" not in moved[0]
    assert integrity(demo_config.sqlite_path) == "ok"
    client = app_for(demo_config).test_client()
    health = client.get("/api/health")
    assert health.status_code == 200 and health.get_json()["last_sync"]["outcome"] == "ok"
    assert client.get("/api/current").get_json()["channels"]["general"]["per_kwh"] is not None
