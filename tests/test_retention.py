"""Retention: old rows go, daily totals stay, and a wrong clock never empties the cache."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from home_energy import store
from home_energy.store import prune
from home_energy.sync import run_sync


def count(config, table):
    with sqlite3.connect(config.sqlite_path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_prune_removes_rows_older_than_retention_but_keeps_daily_totals(make_config):
    config = make_config(RETENTION_DAYS="10")
    with freeze_time("2026-10-01T00:00:00Z"):
        assert run_sync(config).exit_code == 0
    old_days = count(config, "daily_usage")
    with freeze_time("2026-10-20T00:00:00Z"):
        assert run_sync(config).exit_code == 0
    cutoff = int(datetime(2026, 10, 10, tzinfo=UTC).timestamp())
    with sqlite3.connect(config.sqlite_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM prices WHERE end < ?", (cutoff,)).fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM usage WHERE end < ?", (cutoff,)).fetchone()[0] == 0
        oldest_day = conn.execute("SELECT MIN(day) FROM daily_usage").fetchone()[0]
    assert count(config, "daily_usage") >= old_days  # roll-ups outlive the interval rows
    assert oldest_day < "2026-10-01"


def test_clock_jumping_years_forward_prunes_nothing(demo_config):
    with freeze_time("2026-11-23T01:00:00Z"):
        run_sync(demo_config)
    prices, usage = count(demo_config, "prices"), count(demo_config, "usage")
    conn = store.open_cache(demo_config.sqlite_path)
    with store.transaction(conn):
        removed = prune(conn, 90, datetime(2031, 1, 1, tzinfo=UTC))
    conn.close()
    assert removed == 0
    assert (count(demo_config, "prices"), count(demo_config, "usage")) == (prices, usage)


def test_clock_jumping_years_back_prunes_nothing_and_ages_are_not_negative(demo_config, app_for):
    with freeze_time("2026-11-23T01:00:00Z"):
        run_sync(demo_config)
    prices = count(demo_config, "prices")
    with freeze_time("2019-01-01T00:00:00Z"):
        conn = store.open_cache(demo_config.sqlite_path)
        with store.transaction(conn):
            assert prune(conn, 90, datetime(2019, 1, 1, tzinfo=UTC)) == 0
        conn.close()
        body = app_for(demo_config).test_client().get("/api/health").get_json()
    assert count(demo_config, "prices") == prices
    assert body["price_age_seconds"] == 0 and body["cache_age_seconds"] == 0


def test_a_full_sync_with_the_clock_years_ahead_keeps_the_old_data(amber_config, amber_client, fake_amber):
    with freeze_time("2026-11-23T01:00:00Z"):
        run_sync(amber_config, amber_client())
    kept = count(amber_config, "usage")
    fake_amber.state.faults["prices"] = 503  # whatever upstream says, the old rows stay
    with freeze_time("2036-11-23T01:00:00Z"):
        run_sync(amber_config, amber_client())
    assert count(amber_config, "usage") == kept


def test_sync_runs_are_kept_for_a_month(demo_config):
    with freeze_time("2026-11-01T00:00:00Z") as frozen:
        run_sync(demo_config)
        frozen.tick(timedelta(days=31))
        run_sync(demo_config)
    assert count(demo_config, "sync_runs") == 1
