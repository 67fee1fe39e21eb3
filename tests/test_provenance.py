"""Where every number comes from: the demo's simulated figures are never served once a token is
set, health says both what the sync is configured for and where the cached prices came from, the
dashboard's start-up line says the same, a failure's cause is logged once per cause, and totals
over days are the days as served, added up."""
from __future__ import annotations

import logging
import sqlite3
from datetime import date

import pytest
from freezegun import freeze_time

from home_energy import store
from home_energy.clock import nem_day_start
from home_energy.models import UsageRow
from home_energy.sync import run_sync
from tests.fake_amber import SITE_ID, TOKEN
from tests.ports import free_port

NOW = "2026-11-23T01:07:30Z"


def health(app_for, config) -> dict:
    return app_for(config).test_client().get("/api/health").get_json()


def counts(config) -> tuple[int, int, int]:
    with sqlite3.connect(config.sqlite_path) as conn:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("prices", "usage", "daily_usage"))


@freeze_time(NOW)
def test_a_token_with_amber_unreachable_serves_no_simulated_number(make_config, demo_config, app_for):
    assert run_sync(demo_config).exit_code == 0
    assert all(counts(demo_config))
    demo = health(app_for, demo_config)
    assert (demo["mode"], demo["prices_source"]) == ("demo", "demo")

    unreachable = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{free_port()}/v1")
    report = run_sync(unreachable)
    assert report.exit_code == 75
    assert counts(unreachable) == (0, 0, 0)  # the demo's figures are gone, though Amber was never reached
    # The dashboard holds no token (its service unsets it): what it says comes from the cache.
    body = health(app_for, demo_config)
    assert (body["mode"], body["prices_source"], body["prices_cached_at"]) == ("amber", None, None)
    assert body["problem"] == "upstream_unreachable" and body["status"] == "unknown"
    client = app_for(demo_config).test_client()
    assert client.get("/api/current").get_json() == {"channels": {}}
    summary = client.get("/api/summary").get_json()
    assert summary["yesterday"]["cost_dollars"] is None and summary["month_to_date"] is None
    assert summary["renewables"] == {"now_percent": None, "today_avg_percent": None}


@freeze_time(NOW)
def test_a_refused_token_then_amber_brings_amber_prices(make_config, demo_config, fake_amber, app_for):
    run_sync(demo_config)
    refused = make_config(AMBER_TOKEN="psk_thisisnotthetoken000000000000", AMBER_API_URL=fake_amber.url)
    assert run_sync(refused).exit_code == 78
    body = health(app_for, demo_config)
    assert (body["mode"], body["prices_source"], body["problem"]) == ("amber", None, "token_refused")
    good = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake_amber.url)
    assert run_sync(good).exit_code == 0
    body = health(app_for, demo_config)
    assert (body["mode"], body["prices_source"], body["problem"]) == ("amber", "amber", None)
    with sqlite3.connect(good.sqlite_path) as conn:
        assert [r[0] for r in conn.execute("SELECT DISTINCT site_id FROM prices")] == [SITE_ID]
        assert [r[0] for r in conn.execute("SELECT id FROM sites")] == [SITE_ID]


@freeze_time(NOW)
def test_amber_runs_never_remove_amber_data(amber_config, amber_client, make_config, app_for):
    assert run_sync(amber_config, amber_client()).exit_code == 0
    before = counts(amber_config)
    unreachable = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{free_port()}/v1")
    assert run_sync(unreachable).exit_code == 75
    assert counts(amber_config) == before  # the last known prices are Amber's: they stay
    assert health(app_for, amber_config)["prices_source"] == "amber"


@freeze_time(NOW)
def test_the_mode_is_recorded_at_the_start_of_a_run_that_fails(make_config, app_for):
    config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{free_port()}/v1")
    run_sync(config)
    body = health(app_for, config)
    assert (body["mode"], body["prices_source"]) == ("amber", None)


@freeze_time(NOW)
def test_the_dashboards_start_up_line_says_what_health_says(make_config, demo_config, app_for):
    from home_energy.cli import _provenance

    run_sync(demo_config)
    run_sync(make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{free_port()}/v1"))
    body = health(app_for, demo_config)
    assert _provenance(demo_config) == (body["mode"], body["prices_source"]) == ("amber", None)


def test_a_new_failure_cause_is_a_warning_once_and_the_same_cause_is_quiet(make_config, fake_amber, caplog):
    unreachable = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{free_port()}/v1")
    refused = make_config(AMBER_TOKEN="psk_thisisnotthetoken000000000000", AMBER_API_URL=fake_amber.url)
    good = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake_amber.url)

    def lines(config) -> list[tuple[int, str]]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="home_energy"):
            run_sync(config)
        return [(r.levelno, r.getMessage()) for r in caplog.records
                if r.name == "home_energy.sync" and r.getMessage().startswith("sync ")]

    first = lines(unreachable)
    assert [level for level, _ in first] == [logging.ERROR]
    assert [level for level, _ in lines(unreachable)] == [logging.DEBUG]  # the same cause: not again
    changed = lines(refused)
    assert [level for level, _ in changed] == [logging.WARNING]
    assert changed[0][1].startswith("sync failing for another reason: ")
    assert [level for level, _ in lines(refused)] == [logging.DEBUG]
    recovered = lines(good)
    assert [(level, text.split(":")[0]) for level, text in recovered] == [(logging.INFO, "sync recovered")]
    assert lines(good) == []  # a good run after a good one says nothing


def _seed_days(config, cents_per_day: list[float]) -> None:
    conn = store.open_cache(config.sqlite_path)
    try:
        usage = []  # each day: 48 half-hours of general (1 kWh, 3/4 of the cost) and controlled load
        for number, cents in enumerate(cents_per_day, start=1):
            day = date(2026, 11, number)
            t0 = int(nem_day_start(day).timestamp())
            for start in range(t0, t0 + 86400, 1800):
                for identifier, channel, kwh, share in (("E1", "general", 1.0, 0.75),
                                                        ("E2", "controlledLoad", 0.5, 0.25)):
                    usage.append(UsageRow("01SITE", identifier, channel, start, start + 1800, 30, day.isoformat(),
                                          kwh / 48, cents * share / 48, 30.0, "billable"))
        with store.transaction(conn):
            store.set_meta(conn, "site_id", "01SITE")
            store.save_usage(conn, usage, int(nem_day_start(date(2026, 11, 1)).timestamp()))
    finally:
        conn.close()


@freeze_time("2026-11-06T01:00:00Z")
def test_month_to_date_is_the_days_as_served_added_up(demo_config, app_for):
    # Each day is 100.4 c: served as $1.00; five of them are $5.00, not round(502 c) = $5.02.
    # 100.5 c rounds up (half away from zero), as does −100.5 c (a day that earned) down.
    _seed_days(demo_config, [100.4, 100.4, 100.4, 100.5, -100.5])
    client = app_for(demo_config).test_client()
    days = client.get("/api/usage?from=2026-11-01&to=2026-11-05").get_json()["days"]
    assert [d["cost_dollars"] for d in days] == [1.0, 1.0, 1.0, 1.01, -1.01]
    summary = client.get("/api/summary").get_json()
    assert summary["month_to_date"]["cost_dollars"] == round(sum(d["cost_dollars"] for d in days), 2) == 3.0
    assert summary["yesterday"] == {"date": "2026-11-05", "cost_dollars": -1.01}


@pytest.mark.parametrize("meter", [None, "fronius"])
def test_api_live_has_every_documented_field_in_every_state(make_config, app_for, meter):
    env = {"METER": meter, "METER_URL": "http://127.0.0.1:9"} if meter else {}
    config = make_config(**env)
    store.init_cache(config.sqlite_path)
    body = app_for(config).test_client().get("/api/live").get_json()
    assert set(body) == {"at", "age_seconds", "grid_w", "solar_w", "battery_w", "battery_soc_percent", "load_w",
                         "cost_cents_per_hour", "source", "status", "not_answering_since"}
    assert body["status"] == ("waiting" if meter else "none") and body["not_answering_since"] is None
    today = app_for(config).test_client().get("/api/today").get_json()
    assert set(today) == {"date", "from", "to", "import_kwh", "export_kwh", "cost_dollars", "estimated", "basis",
                          "unpriced_kwh", "meter_estimate", "source"}


def test_a_days_cost_is_rounded_once_half_away_from_zero_for_every_float():
    from home_energy.queries import day_cents

    assert [day_cents(x) for x in (2.5, -2.5, 12.5, 1.4999999, 0.0)] == [3, -3, 13, 1, 0]
    # Absurd but schema-valid costs: the largest float is exact, an overflowed sum is held there.
    assert day_cents(1e308) == 10**308  # the float as written (its repr), as for every cost
    assert day_cents(float("inf")) == day_cents(1.7976931348623157e308) > 0
    assert day_cents(float("-inf")) < 0
