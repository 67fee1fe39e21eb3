"""Sync against the fake Amber server end to end, then read the web API and compare values."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from home_energy.sync import RATE_LIMIT_RESERVE, price_window, run_sync
from tests.fake_amber import SITE_ID, general_price_at, site

NOW = "2026-11-23T01:07:30Z"  # 11:07 NEM time


def rows(config, sql):
    with sqlite3.connect(config.sqlite_path) as conn:
        return conn.execute(sql).fetchall()


@freeze_time(NOW)
def test_sync_fills_cache_and_web_serves_the_same_values(amber_config, amber_client, fake_amber, app_for):
    report = run_sync(amber_config, amber_client())
    assert (report.outcome, report.exit_code) == ("ok", 0)
    client = app_for(amber_config).test_client()

    current = client.get("/api/current").get_json()["channels"]
    assert set(current) == {"general", "feedIn"}
    general = current["general"]
    # 30-minute site: the interval holding 01:07:30Z starts on the 01:00 boundary, not 01:00:01.
    assert general["start"] == "2026-11-23T01:00:00Z"
    assert general["end"] == "2026-11-23T01:30:00Z"
    assert general["kind"] == "current"
    assert general["per_kwh"] == general_price_at(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    assert general["advanced_price"] == {"low": general["per_kwh"] - 2, "predicted": general["per_kwh"],
                                         "high": general["per_kwh"] + 3}
    assert general["estimate"] is True
    # Feed-in keeps Amber's sign: negative means the household is paid.
    assert current["feedIn"]["per_kwh"] == -(general["per_kwh"] - 4)

    prices = client.get("/api/prices?hours=24").get_json()["channels"]["general"]
    starts = [p["start"] for p in prices]
    assert starts == sorted(starts)
    assert starts[0] == "2026-11-22T14:00:00Z"  # NEM midnight
    last_end = datetime.fromisoformat(prices[-1]["end"].replace("Z", "+00:00"))
    assert last_end >= datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # >= 24 h ahead
    assert {p["kind"] for p in prices} == {"actual", "current", "forecast"}


@freeze_time(NOW)
def test_usage_cost_cents_become_dollars_once(amber_config, amber_client, app_for):
    run_sync(amber_config, amber_client())
    summary = app_for(amber_config).test_client().get("/api/summary").get_json()
    # Fake usage per day: 48 × 0.5 kWh × 20 c = 480 c general, minus 24 × 0.25 × 6 c = 36 c earned.
    assert summary["yesterday"] == {"date": "2026-11-22", "cost_dollars": 4.44}
    # The first sync backfills the whole month: 1st to 22nd, "to yesterday".
    assert summary["month_to_date"] == {"from": "2026-11-01", "to": "2026-11-22", "cost_dollars": 97.68, "days": 22}
    client = app_for(amber_config).test_client()
    usage = client.get("/api/usage?from=2026-11-22&to=2026-11-22&intervals=1").get_json()
    day = usage["days"][0]
    assert day["cost_cents"] == pytest.approx(444.0)
    assert day["kwh"] == {"feedIn": -6.0, "general": 24.0}
    assert {i["cost_cents"] for i in usage["intervals"]} == {10.0, -1.5}


@freeze_time(NOW)
def test_five_minute_site_gets_mixed_forecast_covering_24_hours(make_config, fake_amber, amber_client):
    fake_amber.state.sites = [site(interval_length=5)]
    config = make_config(AMBER_TOKEN=fake_amber_token(), AMBER_API_URL=fake_amber.url)
    assert run_sync(config, amber_client()).outcome == "ok"
    path, query = next(r for r in fake_amber.state.requests if r[0].endswith("/prices/current"))
    assert query["resolution"] == ["5"]
    previous, next_ = int(query["previous"][0]), int(query["next"][0])
    assert previous + next_ <= 2048
    assert (previous, next_) == price_window(datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC), 5)
    durations = rows(config, "SELECT duration, COUNT(*) FROM prices WHERE channel='general' AND kind='forecast' "
                             "GROUP BY 1")
    # Amber's shape: 5-minute forecasts for the first hour, then 30-minute ones.
    # (The fake finishes the half hour in 5-minute steps before switching, as Amber does.)
    assert 12 <= dict(durations)[5] < 18
    assert dict(durations)[5] + dict(durations)[30] == next_
    newest_end = rows(config, "SELECT MAX(end) FROM prices")[0][0]
    assert newest_end - datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC).timestamp() >= 24 * 3600


def fake_amber_token():
    from tests.fake_amber import TOKEN

    return TOKEN


def test_price_window_covers_today_and_a_day_ahead():
    now = datetime(2026, 11, 23, 13, 55, tzinfo=UTC)  # 23:55 NEM
    # The current interval starts at 23:55 (23:30): 287 (47) earlier ones today, plus one spare.
    assert price_window(now, 5) == (288, 288)
    assert price_window(now, 30) == (49, 48)


@freeze_time(NOW)
def test_site_is_chosen_when_one_is_active(make_config, fake_amber, amber_client):
    fake_amber.state.sites = [site("01CLOSED00000000000000000A", status="closed"), site()]
    config = make_config(AMBER_TOKEN=fake_amber_token(), AMBER_API_URL=fake_amber.url)
    assert run_sync(config, amber_client()).outcome == "ok"
    assert rows(config, "SELECT DISTINCT site_id FROM prices") == [(SITE_ID,)]


@freeze_time(NOW)
def test_several_active_sites_without_a_choice_is_a_config_error_listing_them(make_config, fake_amber, amber_client):
    fake_amber.state.sites = [site("01SITEA0000000000000000000"), site("01SITEB0000000000000000000")]
    config = make_config(AMBER_TOKEN=fake_amber_token(), AMBER_API_URL=fake_amber.url)
    report = run_sync(config, amber_client())
    assert report.exit_code == 78
    assert "01SITEA0000000000000000000" in report.error and "01SITEB0000000000000000000" in report.error
    assert "AMBER_SITE_ID" in report.error
    chosen = make_config(AMBER_TOKEN=fake_amber_token(), AMBER_API_URL=fake_amber.url,
                         AMBER_SITE_ID="01SITEB0000000000000000000")
    assert run_sync(chosen, amber_client()).outcome == "ok"


@freeze_time(NOW)
def test_unknown_site_id_is_a_config_error(make_config, fake_amber, amber_client):
    config = make_config(AMBER_TOKEN=fake_amber_token(), AMBER_API_URL=fake_amber.url, AMBER_SITE_ID="01NOPE")
    report = run_sync(config, amber_client())
    assert report.exit_code == 78 and "01NOPE" in report.error


def test_sites_daily_usage_hourly_prices_every_run(amber_config, amber_client, fake_amber):
    with freeze_time(NOW) as frozen:
        run_sync(amber_config, amber_client())
        first = (fake_amber.calls("sites"), fake_amber.calls("usage"), fake_amber.calls("prices"))
        assert first[0] == 1 and first[2] == 1 and first[1] >= 1
        frozen.tick(timedelta(minutes=5))
        run_sync(amber_config, amber_client())
        assert (fake_amber.calls("sites"), fake_amber.calls("usage"), fake_amber.calls("prices")) == (
            1, first[1], 2)
        frozen.tick(timedelta(minutes=56))
        run_sync(amber_config, amber_client())
        assert fake_amber.calls("usage") > first[1]
        assert fake_amber.calls("sites") == 1
        frozen.tick(timedelta(hours=24))
        run_sync(amber_config, amber_client())
        assert fake_amber.calls("sites") == 2


def test_usage_backfill_reaches_90_days_in_7_day_chunks_inside_the_rate_limit(amber_config, amber_client, fake_amber):
    with freeze_time(NOW) as frozen:
        for _ in range(12):
            run_sync(amber_config, amber_client())
            frozen.tick(timedelta(minutes=61))
    ranges = [(q["startDate"][0], q["endDate"][0]) for p, q in fake_amber.state.requests if p.endswith("/usage")]
    for first, last in ranges:
        span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days
        assert 0 <= span <= 7
    oldest = min(first for first, _ in ranges)
    assert oldest == "2026-08-25"  # 90 days before 2026-11-23
    calls_per_run = rows(amber_config, "SELECT upstream_calls FROM sync_runs")
    assert max(c for (c,) in calls_per_run) <= 6  # sites + prices + recent usage + 3 backfill chunks
    days = rows(amber_config, "SELECT COUNT(DISTINCT day) FROM daily_usage")[0][0]
    assert days == 90  # 2026-08-25 .. 2026-11-22 (today has no usage yet)


@freeze_time(NOW)
def test_rate_limit_headers_are_remembered(amber_config, amber_client, fake_amber):
    fake_amber.state.remaining = 30
    run_sync(amber_config, amber_client())
    meta = dict(rows(amber_config, "SELECT key, value FROM meta"))
    assert int(meta["rate_limit_remaining"]) == 30 - fake_amber.calls()
    reset_at = int(meta["rate_limit_reset_at"])
    assert reset_at == int(datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC).timestamp()) + 240
    run = rows(amber_config, "SELECT rate_limit_remaining, upstream_calls FROM sync_runs")[-1]
    assert run == (30 - fake_amber.calls(), fake_amber.calls())


@freeze_time(NOW)
def test_low_quota_skips_backfill_but_not_prices(amber_config, amber_client, fake_amber):
    fake_amber.state.remaining = RATE_LIMIT_RESERVE + 2
    report = run_sync(amber_config, amber_client())
    assert report.outcome == "ok"
    assert fake_amber.calls("prices") == 1
    assert fake_amber.calls("usage") == 1  # the recent days only, no backfill chunks


def test_429_blocks_every_call_until_reset_across_runs(amber_config, amber_client, fake_amber):
    with freeze_time(NOW) as frozen:
        fake_amber.state.faults["sites"] = "429"
        fake_amber.state.reset_s = 180
        report = run_sync(amber_config, amber_client())
        assert report.exit_code == 75
        assert fake_amber.calls() == 1
        fake_amber.state.faults.clear()
        frozen.tick(timedelta(seconds=170))
        report = run_sync(amber_config, amber_client())
        assert report.exit_code == 75 and "rate-limited" in report.error
        assert fake_amber.calls() == 1  # no call before the reset
        frozen.tick(timedelta(seconds=15))
        assert run_sync(amber_config, amber_client()).exit_code == 0


def test_429_without_headers_waits_300_seconds(amber_config, amber_client, fake_amber):
    with freeze_time(NOW) as frozen:
        fake_amber.state.faults["sites"] = "429-no-headers"
        assert run_sync(amber_config, amber_client()).exit_code == 75
        fake_amber.state.faults.clear()
        frozen.tick(timedelta(seconds=295))
        assert run_sync(amber_config, amber_client()).exit_code == 75
        assert fake_amber.calls() == 1
        frozen.tick(timedelta(seconds=10))
        assert run_sync(amber_config, amber_client()).exit_code == 0


@freeze_time(NOW)
def test_usage_failure_after_good_prices_keeps_prices_and_says_partial(amber_config, amber_client, fake_amber):
    fake_amber.state.faults["usage"] = 503
    report = run_sync(amber_config, amber_client())
    assert (report.outcome, report.exit_code) == ("partial", 0)
    assert "503" in report.error
    assert rows(amber_config, "SELECT COUNT(*) FROM prices")[0][0] > 0
    assert rows(amber_config, "SELECT COUNT(*) FROM usage")[0][0] == 0


@freeze_time(NOW)
def test_the_token_never_reaches_the_cache_or_errors(amber_config, amber_client, fake_amber):
    from tests.fake_amber import TOKEN

    fake_amber.state.faults["prices"] = 500
    report = run_sync(amber_config, amber_client())
    assert TOKEN not in (report.error or "")
    assert TOKEN not in repr(amber_config) and TOKEN not in str(amber_config)
    assert TOKEN.encode() not in amber_config.sqlite_path.read_bytes()
