"""Kept answers are never older than the cache: whatever was written, however soon after the last
write, and whatever file is now at the path, every kept endpoint answers what a server started
afresh on the same cache would answer, in every encoding.

The writes come from the store called directly, from two `home-energy sync` processes whose
clock is pinned to the same second (through the clock seam), and from a cache file replaced by
rename. Each write changes something every endpoint shows, so a kept old answer cannot pass.
"""
from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from home_energy import store
from home_energy.clock import NEM_TZ
from home_energy.models import PriceRow, Reading, UsageRow
from home_energy.sync import run_sync
from tests.fake_amber import TOKEN, FakeAmber, price_interval
from tests.reliability.helpers import cli_env, pinned_cli

NOW = datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC)  # every clock in this file: the same second
ENDPOINTS = ("/api/health", "/api/current", "/api/prices", "/api/prices?hours=48", "/api/summary", "/api/usage",
             "/api/usage?intervals=1", "/api/today", "/api/live")
GZIP = {"Accept-Encoding": "gzip, deflate, br"}
SYNC_TIMEOUT_S = 60


def _answers(client: Any) -> dict[tuple[str, bool], Any]:
    """Every kept endpoint's answer, asked plain and with gzip (both forms are kept)."""
    out = {}
    for path in ENDPOINTS:
        for zipped in (False, True):
            response = client.get(path, headers=GZIP if zipped else {})
            assert response.status_code == 200, (path, response.data[:200])
            body = response.data
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            out[(path, zipped)] = json.loads(body)
    return out


def _fresh_answers(app_for: Callable[[Any], Any], config: Any) -> dict[tuple[str, bool], Any]:
    """What a server started afresh on the same cache answers: a new app, in a thread of its own
    (each server thread has its own connection and kept answers)."""
    found: list[dict] = []
    thread = threading.Thread(target=lambda: found.append(_answers(app_for(config).test_client())))
    thread.start()
    thread.join(timeout=60)
    assert found, "the fresh app did not answer"
    return found[0]


def _assert_follows_the_cache(client: Any, before: dict, app_for: Callable[[Any], Any], config: Any) -> None:
    after = _answers(client)
    assert after == _fresh_answers(app_for, config)
    unchanged = sorted({path for (path, _zipped), body in after.items() if before[(path, _zipped)] == body})
    assert unchanged == [], "the write changed nothing these endpoints show, so the test cannot tell"


def _current_general(answers: dict) -> float:
    return answers[("/api/current", False)]["channels"]["general"]["per_kwh"]


def _meter_reading(conn: sqlite3.Connection, grid_w: float, import_wh: float) -> None:
    reading = Reading(at=NOW, source="fronius", grid_w=grid_w, solar_w=500.0, battery_w=None,
                      battery_soc_percent=None, load_w=grid_w + 500.0)
    minute = int(NOW.timestamp()) // 60 * 60
    store.save_reading(conn, reading, store.open_minute(conn, minute).add(reading), (import_wh, 0.0))


def _second_write(conn: sqlite3.Connection) -> None:
    """Within the same second as the first: other prices (same fetch second), other usage costs,
    a failed run, another meter reading; each through the store, as the writers do it."""
    stamp = int(NOW.timestamp())
    prices = [PriceRow(*row[:11], None if row[11] is None else bool(row[11]), *row[12:]) for row in conn.execute(
        "SELECT site_id, channel, start, end, duration, kind, per_kwh + 7.5, spot_per_kwh, 77.0, descriptor, "
        "spike_status, estimate, adv_low, adv_predicted + 7.5, adv_high, range_min, range_max, tariff FROM prices")]
    usage = [UsageRow(*row) for row in conn.execute(
        "SELECT site_id, channel_identifier, channel, start, end, duration, day, kwh, cost_cents * 2 + 1, per_kwh, "
        "quality FROM usage")]
    assert prices and usage
    with store.transaction(conn):
        store.save_prices(conn, prices, stamp)
        store.save_usage(conn, usage, stamp)
    run_id = store.start_run(conn, "amber")
    store.record_failure(conn, run_id, store.RunRecord("error", "Amber answered 500", 1))
    _meter_reading(conn, grid_w=2500.0, import_wh=40.0)


@pytest.fixture
def config(make_config, fake_amber):
    # A meter is configured so /api/live and /api/today show its rows; the web never contacts it.
    return make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake_amber.url, METER="fronius",
                       METER_URL="http://127.0.0.1:9")


@freeze_time(NOW)
def test_two_writes_in_one_second_through_the_store_are_both_seen(config, amber_client, app_for):
    run_sync(config, amber_client())
    conn = store.open_writer(config.sqlite_path)
    try:
        _meter_reading(conn, grid_w=1200.0, import_wh=20.0)
        client = app_for(config).test_client()
        before = _answers(client)
        _answers(client)  # now answered from what was kept
        _second_write(conn)
        _assert_follows_the_cache(client, before, app_for, config)
        assert _current_general(_answers(client)) == _current_general(before) + 7.5
    finally:
        conn.close()


@freeze_time(NOW)
def test_a_cache_file_replaced_by_rename_is_followed(config, amber_client, app_for, tmp_path):
    run_sync(config, amber_client())
    conn = store.open_writer(config.sqlite_path)
    _meter_reading(conn, grid_w=1200.0, import_wh=20.0)
    conn.close()
    client = app_for(config).test_client()
    before = _answers(client)
    _answers(client)
    # The new file: a copy of the old one with the second write in it, complete before the rename.
    staged = tmp_path / "staged.sqlite"
    with sqlite3.connect(config.sqlite_path) as source, sqlite3.connect(staged) as target:
        source.backup(target)
    source.close()
    target.close()
    conn = store.open_writer(staged)
    _second_write(conn)
    conn.close()
    store.move_aside(config.sqlite_path, "replaced in a test")
    staged.rename(config.sqlite_path)
    _assert_follows_the_cache(client, before, app_for, config)


def _prices_at(per_kwh: float) -> Callable[[Any], bool]:
    """A /prices/current answer (the fake's fault hook) whose every general price is `per_kwh`."""
    current = NOW.replace(minute=NOW.minute - NOW.minute % 30, second=0)

    def answer(handler: Any) -> bool:
        body = []
        for channel, sign in (("general", 1), ("feedIn", -1)):
            body.append(price_interval("ActualInterval", channel, current - timedelta(minutes=30), 30, sign * per_kwh))
            body.append(price_interval("CurrentInterval", channel, current, 30, sign * per_kwh, advanced=True))
            for i in range(1, 12):
                body.append(price_interval("ForecastInterval", channel, current + timedelta(minutes=30 * i), 30,
                                           sign * (per_kwh + i), advanced=True))
        handler._send(200, json.dumps(body).encode(), handler._rate_headers())
        return True

    return answer


def test_two_sync_processes_in_one_second_are_both_seen(make_config, app_for, tmp_path):
    with FakeAmber() as amber, freeze_time(NOW):
        config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=amber.url)
        env = cli_env(config.sqlite_path, AMBER_TOKEN=TOKEN, AMBER_API_URL=amber.url)

        def sync(per_kwh: float) -> None:
            amber.state.faults["prices"] = _prices_at(per_kwh)
            done = subprocess.run(pinned_cli(NOW, "sync"), env=env, capture_output=True, text=True,
                                  timeout=SYNC_TIMEOUT_S, cwd=Path(__file__).resolve().parents[1])
            assert done.returncode == 0, done.stderr

        sync(31.25)
        client = app_for(config).test_client()
        first = client.get("/api/current").get_json()["channels"]["general"]["per_kwh"]
        kept = {path: client.get(path).get_json() for path in ("/api/current", "/api/prices", "/api/summary",
                                                               "/api/health")}
        sync(12.5)  # a manual sync right after the timer's, the same second, other prices
        second = client.get("/api/current").get_json()["channels"]["general"]["per_kwh"]
        prices = client.get("/api/prices").get_json()["channels"]["general"]
        now_interval = [p for p in prices if p["kind"] == "current"]
        fresh = _fresh_answers(app_for, config)
        again = {path: client.get(path).get_json() for path in kept}
    assert (first, second) == (31.25, 12.5)
    assert [p["per_kwh"] for p in now_interval] == [12.5]
    assert again == {path: fresh[(path, False)] for path in kept}
    assert again["/api/summary"] != kept["/api/summary"]  # the cheapest windows moved


def test_a_kept_answer_is_dropped_with_its_connection_when_the_file_is_replaced(config, amber_client, app_for,
                                                                                 tmp_path):
    """The reconnect itself drops what was kept: a replacement whose first read would give the
    same `PRAGMA data_version` as the old connection's still gets its own answers."""
    with freeze_time(NOW):
        run_sync(config, amber_client())
        staged = tmp_path / "staged.sqlite"
        shutil.copyfile(config.sqlite_path, staged)
        client = app_for(config).test_client()
        kept = client.get("/api/current").get_json()
        assert kept["channels"]["general"]["per_kwh"] is not None
        conn = store.open_writer(staged)
        with store.transaction(conn):
            conn.execute("UPDATE prices SET per_kwh = -99.0")
        conn.close()
        store.move_aside(config.sqlite_path, "replaced in a test")
        staged.rename(config.sqlite_path)
        assert client.get("/api/current").get_json()["channels"]["general"]["per_kwh"] == -99.0


def test_time_slices_hold_the_answer_only_as_long_as_it_is_true(config, amber_client, app_for):
    """/api/current is kept per 5-minute slice, /api/health per second: a second later health has
    aged, and the next interval boundary makes a new current interval."""
    with freeze_time(NOW) as frozen:
        run_sync(config, amber_client())
        client = app_for(config).test_client()
        health = client.get("/api/health").get_json()
        current = client.get("/api/current").get_json()["channels"]["general"]
        frozen.tick(timedelta(seconds=1))
        assert client.get("/api/health").get_json()["cache_age_seconds"] == health["cache_age_seconds"] + 1
        assert client.get("/api/current").get_json()["channels"]["general"] == current
        boundary = NOW.replace(minute=NOW.minute - NOW.minute % 30, second=0) + timedelta(minutes=30)
        frozen.move_to(boundary)
        moved = client.get("/api/current").get_json()["channels"]["general"]
    assert moved["start"] != current["start"] and moved["start"] == boundary.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert boundary.astimezone(NEM_TZ).date() == NOW.astimezone(NEM_TZ).date()


def test_a_new_endpoint_is_kept_correctly_just_by_using_the_helper(config, amber_client, app_for):
    """A blueprint of its own (as a metrics endpoint would be), text rather than JSON: the helper
    alone makes its answers follow the cache, the time slice and the encoding."""
    from flask import Blueprint

    from home_energy.answers import bucket, kept_answer
    from home_energy.clock import now_utc

    extra = Blueprint("extra", __name__)
    builds = []

    @extra.get("/api/price-rows")
    def price_rows() -> Any:
        def build(conn: sqlite3.Connection, at: datetime) -> str:
            builds.append(at)
            count = conn.execute("SELECT COUNT(*), SUM(per_kwh) FROM prices").fetchone()
            return f"price_rows {count[0]}\nprice_sum {count[1]:.2f}\n" + "# padding\n" * 200

        return kept_answer("price-rows", (), build, at=bucket(now_utc(), 60), mimetype="text/plain")

    with freeze_time(NOW):
        run_sync(config, amber_client())
        app = app_for(config)
        app.register_blueprint(extra)
        client = app.test_client()
        first = client.get("/api/price-rows").data
        packed = client.get("/api/price-rows", headers=GZIP)
        assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.data) == first
        assert client.get("/api/price-rows").data == first and len(builds) == 1  # kept
        conn = store.open_writer(config.sqlite_path)
        _second_write(conn)
        conn.close()
        second = client.get("/api/price-rows").data
        assert gzip.decompress(client.get("/api/price-rows", headers=GZIP).data) == second
    assert first.splitlines()[0] == second.splitlines()[0]  # same rows, other prices
    assert first.splitlines()[1] != second.splitlines()[1]
    assert len(builds) == 2
