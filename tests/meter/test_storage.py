"""Meter storage: packed hours round-trip exactly, compaction keeps every figure, size per year."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from home_energy.collector import Collector
from home_energy.meter_format import NULL_VALUE, pack_hour, unpack_hour
from home_energy.sources.shelly import ShellySource
from home_energy.store import compact_meter, open_writer, prune_meter
from tests.meter.helpers import meter_minutes, seed_prices

HOUR = 1_795_000_000 - 1_795_000_000 % 3600


def test_pack_round_trips_nulls_negatives_and_gaps():
    rows = [(HOUR, -2389.0, None, -2000.0, 1611.0, 0.0, 40.0), (HOUR + 59 * 60, 1703.0, 0.0, None, 2815.0, 28.0, None)]
    assert unpack_hour(HOUR, pack_hour(HOUR, rows)) == rows
    assert unpack_hour(HOUR, pack_hour(HOUR, [])) == []
    with pytest.raises(ValueError):
        pack_hour(HOUR, [(HOUR + 3600, 1.0, None, None, None, None, None)])
    assert NULL_VALUE < -200_000  # below any power a household can carry


def test_compaction_keeps_every_figure_and_today_reads_both_tables(make_config, shelly, app_for):
    config = make_config(METER="shelly", METER_URL=shelly.url)
    start = "2026-11-20T00:00:00Z"  # 10:00 NEM on the 20th
    with freeze_time(start) as frozen:
        collector = Collector(config, ShellySource(shelly.url, 10))
        counter = 1000.0
        for _ in range(90):  # 90 minutes, 6 Wh a minute
            counter += 6.0
            shelly.set_counters(counter, 0.0)
            collector.poll_once()
            frozen.tick(timedelta(seconds=60))
        collector.close()
        conn = open_writer(config.sqlite_path)
        seed_prices(conn, [("general", datetime(2026, 11, 19, 14, 0, tzinfo=UTC), 24 * 60, 25.0)])
        low, high = 1_700_000_000, 1_900_000_000
        before = meter_minutes(conn, low, high)
        client = app_for(config).test_client()
        today_before = client.get("/api/today").get_json()
        frozen.tick(timedelta(days=3))
        assert compact_meter(conn, int(frozen.time_to_freeze.timestamp())) == 2
        after = meter_minutes(conn, low, high)
        assert conn.execute("SELECT COUNT(*) FROM meter_minutes").fetchone()[0] == 0
        conn.close()
        today_after = client.get("/api/today?date=2026-11-20").get_json()
    assert after == before and len(after) == 90
    assert today_before["import_kwh"] == today_after["import_kwh"] == pytest.approx(0.534, abs=0.001)
    assert today_before["cost_dollars"] == today_after["cost_dollars"] == round(0.534 * 25 / 100, 2)


def test_prune_drops_packed_hours_after_retention(make_config):
    config = make_config(RETENTION_DAYS="3")
    conn = open_writer(config.sqlite_path)
    conn.execute("INSERT INTO meter_hours VALUES (?, ?)",
                 (HOUR, pack_hour(HOUR, [(HOUR, 1.0, None, None, None, 1.0, 0.0)])))
    conn.execute("INSERT INTO meter_hours VALUES (?, ?)",
                 (HOUR + 5 * 86400, pack_hour(HOUR + 5 * 86400, [(HOUR + 5 * 86400, 1.0, None, None, None, 1.0, 0.0)])))
    prune_meter(conn, HOUR + 5 * 86400 + 3600, 3)
    assert [r[0] for r in conn.execute("SELECT hour FROM meter_hours")] == [HOUR + 5 * 86400]
    conn.close()
