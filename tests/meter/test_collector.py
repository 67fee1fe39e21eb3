"""The collector: counters to energy (resets, wraps, glitches), faults, transitions, pruning."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from freezegun import freeze_time

from home_energy.collector import Collector, counter_step, integrate_grid
from home_energy.sources.fronius import FroniusSource
from home_energy.sources.shelly import ShellySource
from home_energy.store import open_writer

NOW = "2026-11-23T01:00:05Z"


def test_counter_step_counts_differences():
    assert counter_step(1000.0, 1012.5, 10).wh == 12.5
    assert counter_step(None, 1012.5, 10) is None


def test_counter_reset_counts_again_from_zero():
    step = counter_step(5_415_414.19, 3.5, 60)
    assert (step.wh, step.event) == (3.5, "counter_reset")


def test_counter_wrap_counts_the_part_after_the_wrap():
    step = counter_step(4_294_967_000.0, 12.0, 60)  # a 32-bit counter rolled over
    assert (step.wh, step.event) == (12.0, "counter_reset")


def test_counter_glitches_no_connection_can_carry_are_dropped():
    assert (counter_step(1000.0, 1000.0 + 10_000, 60).wh, counter_step(1000.0, 11_000.0, 60).event) == \
        (0.0, "counter_jump")
    assert counter_step(1000.0, 1000.0 + 1_600, 60).wh == 1600  # 96 kW for a minute: possible
    assert counter_step(5_000_000.0, 4_000_000.0, 60).wh == 0.0  # replaced meter: no base, nothing claimed


def test_integrate_grid_splits_import_and_export():
    assert integrate_grid(3600.0, 10) == (10.0, 0.0)
    assert integrate_grid(-1800.0, 10) == (0.0, 5.0)
    assert integrate_grid(None, 10) is None


def _rows(config, sql):
    conn = open_writer(config.sqlite_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_shelly_counters_fold_into_minutes_and_a_reset_is_recorded(make_config, shelly):
    config = make_config(METER="shelly", METER_URL=shelly.url)
    with freeze_time(NOW) as frozen:
        collector = Collector(config, ShellySource(shelly.url, 10))
        base_import, base_export = 5_415_414.19, 0.0
        for i in range(12):  # two minutes at 10 s, 2 Wh and 0.5 Wh per poll
            shelly.set_counters(base_import + 2.0 * i, base_export + 0.5 * i)
            shelly.set_power(720.0 + i)
            assert collector.poll_once()
            frozen.tick(timedelta(seconds=10))
        shelly.set_counters(1.25, 0.25)  # the meter was reset
        assert collector.poll_once()
        collector.close()
    minutes = _rows(config, "SELECT minute, samples, grid_w, import_wh, export_wh FROM meter_minutes ORDER BY minute")
    assert [m["samples"] for m in minutes] == [6, 6, 1]
    assert minutes[0]["grid_w"] == round(sum(720 + i for i in range(6)) / 6)
    assert sum(m["import_wh"] for m in minutes) == pytest.approx(2.0 * 11 + 1.25, abs=1)
    assert sum(m["export_wh"] for m in minutes) == pytest.approx(0.5 * 11 + 0.25, abs=1)
    events = _rows(config, "SELECT kind FROM meter_events")
    assert [e["kind"] for e in events] == ["counter_reset", "counter_reset"]


def test_timeouts_and_html_write_nothing_and_log_once_per_transition(make_config, fronius, caplog):
    config = make_config(METER="fronius", METER_URL=fronius.url)
    caplog.set_level(logging.INFO, logger="home_energy.collector")
    with freeze_time(NOW) as frozen:
        collector = Collector(config, FroniusSource(fronius.url, 10))
        assert collector.poll_once()
        before = _rows(config, "SELECT * FROM meter_latest")[0]
        for fault in ("timeout", "html", "garbage", "timeout"):
            fronius.fault = fault
            frozen.tick(timedelta(seconds=10))
            assert not collector.poll_once()
        assert tuple(_rows(config, "SELECT * FROM meter_latest")[0]) == tuple(before)
        state = _rows(config, "SELECT status, failures, failing_since, last_error FROM meter_state")[0]
        assert (state["status"], state["failures"]) == ("failing", 4)
        assert state["failing_since"] == before["at"] + 10
        assert "did not answer" in state["last_error"]
        fronius.fault = None
        frozen.tick(timedelta(seconds=10))
        assert collector.poll_once()
        collector.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "home_energy.collector"]
    assert len([m for m in lines if m.startswith("meter not answering")]) == 1
    assert len([m for m in lines if m.startswith("meter answering again")]) == 1
    assert [e["kind"] for e in _rows(config, "SELECT kind FROM meter_events ORDER BY id")] == ["failing", "recovered"]
    assert _rows(config, "SELECT status, failures FROM meter_state")[0][:] == ("ok", 0)


def test_source_without_counters_integrates_grid_power(make_config):
    from tests.fake_meters import FakeFronius

    with FakeFronius(meter=None) as fake:
        config = make_config(METER="fronius", METER_URL=fake.url)
        fake.set_site(P_Grid=3600.0, P_Load=-3600.0, P_PV=None)
        with freeze_time(NOW) as frozen:
            collector = Collector(config, FroniusSource(fake.url, 10))
            for _ in range(7):
                assert collector.poll_once()
                frozen.tick(timedelta(seconds=10))
            collector.close()
    # six 10-second steps at 3.6 kW: 60 Wh
    assert sum(r[0] for r in _rows(config, "SELECT import_wh FROM meter_minutes")) == 60


def test_collector_state_survives_a_restart(make_config, shelly):
    config = make_config(METER="shelly", METER_URL=shelly.url)
    with freeze_time(NOW) as frozen:
        first = Collector(config, ShellySource(shelly.url, 10))
        shelly.set_counters(1000.0, 0.0)
        first.poll_once()
        first.close()
        frozen.tick(timedelta(seconds=30))
        second = Collector(config, ShellySource(shelly.url, 10))
        shelly.set_counters(1030.0, 0.0)
        second.poll_once()
        second.close()
    assert sum(r[0] or 0 for r in _rows(config, "SELECT import_wh FROM meter_minutes")) == 30


def test_minutes_are_pruned_after_retention_days(make_config, shelly):
    config = make_config(METER="shelly", METER_URL=shelly.url, RETENTION_DAYS="2")
    with freeze_time(NOW) as frozen:
        collector = Collector(config, ShellySource(shelly.url, 10))
        collector.poll_once()
        frozen.tick(timedelta(days=3))
        collector._next_prune = 0.0
        collector.poll_once()
        collector.close()
    assert len(_rows(config, "SELECT minute FROM meter_minutes")) == 1


def test_energy_across_a_long_outage_is_not_put_in_one_minute(make_config, shelly):
    config = make_config(METER="shelly", METER_URL=shelly.url)
    with freeze_time(NOW) as frozen:
        collector = Collector(config, ShellySource(shelly.url, 10))
        shelly.set_counters(1000.0, 0.0)
        collector.poll_once()
        frozen.tick(timedelta(hours=10))  # the Pi was off overnight
        shelly.set_counters(9000.0, 0.0)
        collector.poll_once()
        frozen.tick(timedelta(seconds=10))
        shelly.set_counters(9005.0, 0.0)
        collector.poll_once()
        collector.close()
    assert sum(r[0] or 0 for r in _rows(config, "SELECT import_wh FROM meter_minutes")) == 5
    assert [e["kind"] for e in _rows(config, "SELECT kind FROM meter_events")] == ["counter_gap"]
