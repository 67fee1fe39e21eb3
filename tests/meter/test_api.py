"""/api/live, /api/today and the meter in /api/health: signs, nulls, prices, reconciliation."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from home_energy.clock import nem_day_start
from home_energy.collector import Collector
from home_energy.sources.fronius import FroniusSource
from home_energy.sources.shelly import ShellySource
from home_energy.store import open_writer
from tests.fake_meters import FakeFronius, load_fixture
from tests.meter.helpers import seed_amber_day, seed_prices

NOW = datetime(2026, 11, 23, 1, 0, 5, tzinfo=UTC)  # 11:00 NEM time
DAY_START = nem_day_start(NOW.date())
LIVE_KEYS = ["at", "age_seconds", "grid_w", "solar_w", "battery_w", "battery_soc_percent", "load_w",
             "cost_cents_per_hour", "source"]


def _prices(config, general=30.0, feed_in=-8.0):
    conn = open_writer(config.sqlite_path)
    rows = []
    for i in range(48):
        start = DAY_START + timedelta(minutes=30 * i)
        rows += [("general", start, 30, general + i), ("feedIn", start, 30, feed_in)]
    seed_prices(conn, rows)
    conn.close()


def _collect(config, source, polls=1, step_s=10, frozen=None):
    collector = Collector(config, source)
    for _ in range(polls):
        collector.poll_once()
        if frozen is not None:
            frozen.tick(timedelta(seconds=step_s))
    collector.close()


def test_without_a_meter_live_and_today_are_null_and_200(demo_config, app_for):
    open_writer(demo_config.sqlite_path).close()
    client = app_for(demo_config).test_client()
    with freeze_time(NOW):
        live = client.get("/api/live")
        today = client.get("/api/today")
        health = client.get("/api/health").get_json()
    assert live.status_code == 200 and today.status_code == 200
    body = live.get_json()
    assert list(body)[:len(LIVE_KEYS)] == LIVE_KEYS
    assert all(body[k] is None for k in LIVE_KEYS)
    assert today.get_json()["source"] is None and today.get_json()["cost_dollars"] is None
    assert "meter" not in health


def test_live_importing_costs_import_kw_times_the_general_price(make_config, fronius, app_for):
    config = make_config(METER="fronius", METER_URL=fronius.url)
    _prices(config)
    with freeze_time(NOW) as frozen:
        _collect(config, FroniusSource(fronius.url, 10))
        frozen.tick(timedelta(seconds=4))
        body = app_for(config).test_client().get("/api/live").get_json()
    # 11:00 NEM is the 23rd half-hour of the day: general 30 + 22 = 52 c/kWh
    assert body == {**body, "at": "2026-11-23T01:00:05Z", "age_seconds": 4, "grid_w": 1703.74, "solar_w": 1111.0,
                    "battery_w": None, "battery_soc_percent": None, "load_w": pytest.approx(2814.74),
                    "cost_cents_per_hour": round(1.70374 * 52, 2), "source": "fronius", "status": "ok"}


def test_live_exporting_earns_a_negative_cost(make_config, fronius, app_for):
    config = make_config(METER="fronius", METER_URL=fronius.url)
    _prices(config, feed_in=-8.0)
    fronius.set_site(P_Grid=-2389.0, P_PV=4000, P_Load=-1611.0)
    with freeze_time(NOW):
        _collect(config, FroniusSource(fronius.url, 10))
        body = app_for(config).test_client().get("/api/live").get_json()
    assert body["grid_w"] == -2389.0 and body["cost_cents_per_hour"] == round(2.389 * -8.0, 2) < 0


def test_live_keeps_the_devices_nulls_at_night_and_for_a_battery(make_config, app_for):
    with FakeFronius(flow="ha_symo_GetPowerFlowRealtimeData_night.json") as fake:
        config = make_config(METER="fronius", METER_URL=fake.url)
        with freeze_time(NOW):
            _collect(config, FroniusSource(fake.url, 10))
            body = app_for(config).test_client().get("/api/live").get_json()
    assert body["solar_w"] is None and body["battery_w"] is None and body["battery_soc_percent"] is None
    assert body["load_w"] == pytest.approx(975.31) and body["cost_cents_per_hour"] is None  # no prices cached


def test_live_battery_charging_and_discharging(make_config, app_for):
    with FakeFronius(flow="ha_gen24_storage_GetPowerFlowRealtimeData.json", meter=None) as fake:
        config = make_config(METER="fronius", METER_URL=fake.url)
        client = app_for(config).test_client()
        with freeze_time(NOW) as frozen:
            fake.set_site(P_Akku=-2000.0, P_PV=5000.0, P_Grid=-500.0, P_Load=-2500.0)
            _collect(config, FroniusSource(fake.url, 10))
            charging = client.get("/api/live").get_json()
            frozen.tick(timedelta(seconds=10))
            fake.set_site(P_Akku=1500.0, P_PV=None, P_Grid=100.0, P_Load=-1600.0)
            _collect(config, FroniusSource(fake.url, 10))
            discharging = client.get("/api/live").get_json()
    assert (charging["battery_w"], charging["battery_soc_percent"], charging["grid_w"]) == (-2000.0, 4.6, -500.0)
    assert (discharging["battery_w"], discharging["solar_w"], discharging["load_w"]) == (1500.0, None, 1600.0)


def test_meter_not_answering_is_a_named_state_with_the_last_reading_kept(make_config, fronius, app_for):
    config = make_config(METER="fronius", METER_URL=fronius.url)
    open_writer(config.sqlite_path).close()
    client = app_for(config).test_client()
    with freeze_time(NOW) as frozen:
        assert client.get("/api/live").get_json()["status"] == "waiting"
        collector = Collector(config, FroniusSource(fronius.url, 10))
        collector.poll_once()
        frozen.tick(timedelta(seconds=10))
        fronius.fault = "timeout"
        collector.poll_once()
        collector.close()
        frozen.tick(timedelta(seconds=20))
        body = client.get("/api/live").get_json()
        health = client.get("/api/health").get_json()["meter"]
    assert body["status"] == "not_answering" and body["not_answering_since"] == "2026-11-23T01:00:15Z"
    assert body["grid_w"] == 1703.74 and body["age_seconds"] == 30
    assert health["status"] == "not_answering" and "did not answer" in health["last_error"]


def test_a_stopped_collector_shows_as_not_answering(make_config, fronius, app_for):
    config = make_config(METER="fronius", METER_URL=fronius.url)
    with freeze_time(NOW) as frozen:
        _collect(config, FroniusSource(fronius.url, 10))
        frozen.tick(timedelta(seconds=61))
        body = app_for(config).test_client().get("/api/live").get_json()
    assert body["status"] == "not_answering" and body["not_answering_since"] == "2026-11-23T01:00:05Z"


def test_reversed_clamp_warns_in_health(make_config, fronius, app_for):
    """Importing for ten minutes while solar alone exceeds the house: the clamp is the wrong way round."""
    config = make_config(METER="fronius", METER_URL=fronius.url)
    client = app_for(config).test_client()
    fronius.set_site(P_Grid=1500.0, P_PV=4000, P_Load=-2500.0)
    with freeze_time(NOW) as frozen:
        collector = Collector(config, FroniusSource(fronius.url, 30))
        for _ in range(9 * 2):
            collector.poll_once()
            frozen.tick(timedelta(seconds=30))
        assert client.get("/api/health").get_json()["meter"]["warnings"] == []  # nine minutes: not yet
        for _ in range(2):
            collector.poll_once()
            frozen.tick(timedelta(seconds=30))
        assert client.get("/api/health").get_json()["meter"]["warnings"] == ["grid_sign_reversed"]
        fronius.set_site(P_Grid=-1500.0, P_PV=4000, P_Load=-2500.0)  # the clamp turned round
        for _ in range(22):
            collector.poll_once()
            frozen.tick(timedelta(seconds=30))
        collector.close()
        assert client.get("/api/health").get_json()["meter"]["warnings"] == []


def test_today_so_far_matches_the_shelly_counters_and_prices_each_minute(make_config, shelly, app_for):
    """Counters from the Pro 3EM sample, advanced as a house drawing 1.2-2.4 kW and exporting a little."""
    config = make_config(METER="shelly", METER_URL=shelly.url)
    _prices(config)
    dump = load_fixture("ha_pro_3em_fw1.6.1_device_dump.json")["status"]["emdata:0"]
    first_import, first_export = dump["total_act"], dump["total_act_ret"]
    start = DAY_START + timedelta(hours=10, minutes=50)  # across the 11:00 price change
    imported, exported = first_import, first_export
    expected_cents = 0.0
    with freeze_time(start) as frozen:
        collector = Collector(config, ShellySource(shelly.url, 10))
        for i in range(121):  # 20 minutes at 10 s
            if i:
                step_import, step_export = (2400.0 if i % 3 else 1200.0) * 10 / 3600, (0.0 if i % 4 else 0.9)
                imported, exported = imported + step_import, exported + step_export
                minute_start = start + timedelta(seconds=10 * i)
                minute_start -= timedelta(seconds=minute_start.second)
                half_hour = int((minute_start - DAY_START).total_seconds() // 1800)
                expected_cents += step_import / 1000 * (30.0 + half_hour) + step_export / 1000 * -8.0
            shelly.set_counters(round(imported, 2), round(exported, 2))
            collector.poll_once()
            frozen.tick(timedelta(seconds=10))
        collector.close()
        body = app_for(config).test_client().get("/api/today").get_json()
    import_kwh = (round(imported, 2) - first_import) / 1000
    export_kwh = (round(exported, 2) - first_export) / 1000
    assert body["import_kwh"] == pytest.approx(import_kwh, rel=0.01)
    assert body["export_kwh"] == pytest.approx(export_kwh, rel=0.01)
    assert body["cost_dollars"] == pytest.approx(expected_cents / 100, rel=0.01)
    assert (body["estimated"], body["basis"], body["source"], body["unpriced_kwh"]) == (True, "meter", "shelly", 0.0)
    assert body["date"] == "2026-11-23"


def test_today_is_reconciled_to_ambers_usage_once_the_day_arrives(make_config, shelly, app_for):
    config = make_config(METER="shelly", METER_URL=shelly.url)
    _prices(config)
    with freeze_time(DAY_START + timedelta(hours=12)) as frozen:
        shelly.set_counters(1000.0, 0.0)
        collector = Collector(config, ShellySource(shelly.url, 10))
        collector.poll_once()
        frozen.tick(timedelta(seconds=10))
        shelly.set_counters(1500.0, 0.0)
        collector.poll_once()
        collector.close()
        client = app_for(config).test_client()
        before = client.get("/api/today").get_json()
        frozen.tick(timedelta(days=1))
        yesterday = client.get("/api/today?date=2026-11-23")
        assert yesterday.get_json()["estimated"] is True
        conn = open_writer(config.sqlite_path)
        seed_amber_day(conn, "2026-11-23", DAY_START, general_kwh=14.2, feed_in_kwh=3.1, cost_cents=402.0)
        conn.close()
        after = client.get("/api/today?date=2026-11-23").get_json()
    assert before["estimated"] is True and before["import_kwh"] == 0.5
    assert (after["estimated"], after["basis"], after["import_kwh"], after["export_kwh"], after["cost_dollars"]) == \
        (False, "amber", 14.2, 3.1, 4.02)
    assert after["meter_estimate"]["import_kwh"] == 0.5


@pytest.mark.parametrize(("url", "message"), [
    ("/api/today?date=2026-13-01", "date must be a date"),
    ("/api/today?date=2026-11-24", "not in the future"),
    ("/api/today?day=1", "unknown query parameter"),
    ("/api/live?x=1", "unknown query parameter"),
])
def test_bad_meter_query_parameters_are_400(url, message, demo_config, app_for):
    open_writer(demo_config.sqlite_path).close()
    with freeze_time(NOW):
        response = app_for(demo_config).test_client().get(url)
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_the_meter_password_never_reaches_an_api_answer(make_config, app_for):
    config = make_config(METER="shelly", METER_URL="http://127.0.0.1:9", METER_PASSWORD="hunter2-secret")
    open_writer(config.sqlite_path).close()
    client = app_for(config).test_client()
    with freeze_time(NOW):
        texts = [client.get(p).get_data(as_text=True) for p in ("/api/live", "/api/today", "/api/health", "/")]
    assert not any("hunter2" in t for t in texts)
    assert "hunter2" not in repr(config)
