"""The plug controller against fake plugs and a cache written as a sync writes it, with the clock
pinned: each test drives `decide_once(now)` through hours of minutes in well under a second each."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from home_energy import queries, store
from home_energy.clock import to_iso
from home_energy.store import plug_writes
from tests.plugs.helpers import SITE, at, cache, config_for, log_rows, record_run, write_prices

DAY = "2026-12-07"


def plug_toml(url: str, rule: str, **keys: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[plugs.dishwasher]\ndriver = "shelly"\nurl = "{url}"\n{extra}{rule}\n'


def refresh(conn, now: datetime) -> None:
    """What a successful sync leaves at `now`: the prices fresh, the last run ok."""
    stamp = int(now.timestamp())
    with store.transaction(conn):
        store.set_meta(conn, f"prices_fetched_at:{SITE}", stamp)
        store.set_meta(conn, "last_success_at", stamp)
    record_run(conn, stamp, "ok")


def ticks(start: datetime, end: datetime, step_min: int = 5) -> list[datetime]:
    """A few seconds past every `step_min` minutes, as the controller's schedule runs."""
    out, now = [], start + timedelta(seconds=5)
    while now < end:
        out.append(now)
        now += timedelta(minutes=step_min)
    return out


def commands(conn, plug: str = "dishwasher") -> list[tuple[str, str, str]]:
    return [(to_iso(datetime.fromtimestamp(t).astimezone()) or "", action, result)
            for t, action, result in log_rows(conn, plug)]


def state_row(conn, plug: str = "dishwasher") -> plug_writes.PlugRow:
    row = plug_writes.load_plug(conn, plug)
    assert row is not None
    return row


def dishwasher_prices() -> tuple[list[float], list[float | None]]:
    """36 h of half-hours from 18:00: by the market price (perKwh) 20:00–22:00 looks cheapest, by
    Amber's own forecast (what the chart and the summary rank by default) 01:00–03:00 is."""
    per_kwh, predicted = [30.0] * 72, [30.0] * 72
    for i in (4, 5, 6, 7):
        per_kwh[i], predicted[i] = 1.0, 40.0
    for i in (14, 15, 16, 17):
        per_kwh[i], predicted[i] = 35.0, 8.0
    return per_kwh, predicted


# -- cheapest -----------------------------------------------------------------------------------

def test_cheapest_switches_on_at_the_window_the_summary_names_and_off_at_its_end(tmp_path, shelly, control):
    config = config_for(tmp_path, plug_toml(shelly.url, 'cheapest = { hours = 2, from = "19:00", to = "07:00" }'))
    conn = cache(config)
    per_kwh, predicted = dishwasher_prices()
    write_prices(conn, at(f"{DAY}T18:00"), per_kwh, predicted=predicted)
    controller = control(config)

    first = at(f"{DAY}T19:00") + timedelta(seconds=5)
    refresh(conn, first)
    window = queries.summary(conn, first, None, config.forecast_price)["cheapest"]["2h"]
    assert (window["start"], window["end"]) == ("2026-12-08T01:00:00Z", "2026-12-08T03:00:00Z")
    controller.decide_once(first)
    row = state_row(conn)
    assert (to_iso(datetime.fromtimestamp(row.block_start).astimezone()),
            to_iso(datetime.fromtimestamp(row.block_end).astimezone())) == (window["start"], window["end"])
    assert (row.state, row.mode, row.next_state) == ("off", "auto", "on")

    for now in ticks(at(f"{DAY}T19:05"), at("2026-12-08T05:00")):
        refresh(conn, now)
        controller.decide_once(now)
    assert shelly.sets() == [True, False]
    assert commands(conn) == [("2026-12-08T01:00:05Z", "on", "ok"), ("2026-12-08T03:00:05Z", "off", "ok")]
    assert not shelly.on


def test_the_choice_follows_forecasts_until_the_block_starts_and_never_moves_after(tmp_path, shelly, control):
    config = config_for(tmp_path, plug_toml(shelly.url, 'cheapest = { hours = 2, from = "19:00", to = "07:00" }'))
    conn = cache(config)
    per_kwh, predicted = dishwasher_prices()
    write_prices(conn, at(f"{DAY}T18:00"), per_kwh, predicted=predicted)
    controller = control(config)
    for now in ticks(at(f"{DAY}T19:00"), at(f"{DAY}T21:00")):
        refresh(conn, now)
        controller.decide_once(now)
    assert state_row(conn).block_start == int(at("2026-12-08T01:00").timestamp())

    # At 21:00 the forecast changes: 04:00–06:00 is now the cheapest. Not started yet: it moves.
    moved = list(predicted)
    for i in (14, 15, 16, 17):
        moved[i] = 30.0
    for i in (20, 21, 22, 23):
        moved[i] = 6.0
    write_prices(conn, at(f"{DAY}T18:00"), per_kwh, predicted=moved, fetched_at=at(f"{DAY}T21:00"))
    for now in ticks(at(f"{DAY}T21:00"), at("2026-12-08T04:30")):
        refresh(conn, now)
        controller.decide_once(now)
    assert state_row(conn).block_start == int(at("2026-12-08T04:00").timestamp())
    assert shelly.sets() == [True]

    # At 04:30, with the block running, 05:00–07:00 turns cheaper still: the block stays put.
    later = list(moved)
    for i in (22, 23, 24, 25):
        later[i] = 1.0
    write_prices(conn, at(f"{DAY}T18:00"), per_kwh, predicted=later, fetched_at=at("2026-12-08T04:30"))
    for now in ticks(at("2026-12-08T04:30"), at("2026-12-08T08:00")):
        refresh(conn, now)
        controller.decide_once(now)
    assert commands(conn) == [("2026-12-08T04:00:05Z", "on", "ok"), ("2026-12-08T06:00:05Z", "off", "ok")]
    assert shelly.sets() == [True, False]


def test_split_runs_the_cheapest_intervals_of_the_span(tmp_path, shelly, control):
    config = config_for(tmp_path, plug_toml(
        shelly.url, 'cheapest = { hours = 1, from = "19:00", to = "07:00", split = true }'))
    conn = cache(config)
    prices = [30.0] * 40
    prices[6], prices[12] = 2.0, 3.0  # 21:00–21:30 and 00:00–00:30
    write_prices(conn, at(f"{DAY}T18:00"), prices)
    controller = control(config)
    for now in ticks(at(f"{DAY}T19:00"), at("2026-12-08T02:00")):
        refresh(conn, now)
        controller.decide_once(now)
    assert commands(conn) == [("2026-12-07T21:00:05Z", "on", "ok"), ("2026-12-07T21:30:05Z", "off", "ok"),
                              ("2026-12-08T00:00:05Z", "on", "ok"), ("2026-12-08T00:30:05Z", "off", "ok")]


# -- below and avoid ----------------------------------------------------------------------------

def hovering(start: str, hours: int, low: float, high: float) -> list[float]:
    """5-minute prices that cross a threshold every interval."""
    return [low if i % 2 == 0 else high for i in range(hours * 12)]


def _command_times(conn) -> list[int]:
    return [t for t, _action, result in log_rows(conn, "dishwasher") if result == "ok"]


def test_below_with_minimum_times_switches_no_more_than_they_allow(tmp_path, shelly, control):
    rule = "below = { price = 10, min_on_minutes = 15, min_off_minutes = 15 }"
    config = config_for(tmp_path, plug_toml(shelly.url, rule))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), hovering(f"{DAY}T10:00", 3, 9.5, 10.5), minutes=5)
    controller = control(config)
    for now in ticks(at(f"{DAY}T10:00"), at(f"{DAY}T12:00"), step_min=1):
        refresh(conn, now)
        controller.decide_once(now)
    times = _command_times(conn)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 8 and min(gaps) >= 15 * 60  # without the minimums: 24 switches
    assert shelly.sets() == [True, False] * 4
    assert "for at least 15 min" in state_row(conn).why or state_row(conn).mode == "auto"


def test_the_switch_budget_holds_a_relay_whose_rule_would_chatter(tmp_path, shelly, control):
    rule = "below = { price = 10, min_on_minutes = 0, min_off_minutes = 0 }"
    config = config_for(tmp_path, plug_toml(shelly.url, rule, max_switches_per_hour="3"))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), hovering(f"{DAY}T10:00", 3, 9.5, 10.5), minutes=5)
    controller = control(config)
    held = []
    for now in ticks(at(f"{DAY}T10:00"), at(f"{DAY}T12:00"), step_min=1):
        refresh(conn, now)
        controller.decide_once(now)
        held.append(state_row(conn).mode == "held")
    times = _command_times(conn)
    assert max(sum(1 for t in times if start <= t < start + 3600) for start in times) == 3
    assert len(times) == 6 and any(held)
    assert "held: 3 switches in the last hour (at most 3)" in "".join(
        r[0] for r in conn.execute("SELECT message FROM plug_log WHERE kind = 'decision'"))


def test_avoid_is_off_in_a_spike_and_above_the_threshold_and_on_otherwise(tmp_path, shelly, control):
    shelly.press(True)
    rule = "avoid = { price = 30, min_on_minutes = 10, min_off_minutes = 10 }"
    config = config_for(tmp_path, plug_toml(shelly.url, rule))
    conn = cache(config)
    # 10:00 cheap; 10:30 a spike at a cheap price; 11:00 dear; 11:30 cheap again.
    write_prices(conn, at(f"{DAY}T10:00"), [20.0, 25.0, 45.0, 20.0, 20.0], spikes=(1,))
    controller = control(config)
    for now in ticks(at(f"{DAY}T10:00"), at(f"{DAY}T12:30")):
        refresh(conn, now)
        controller.decide_once(now)
    assert commands(conn) == [("2026-12-07T10:30:05Z", "off", "ok"), ("2026-12-07T11:30:05Z", "on", "ok")]
    log = [r[0] for r in conn.execute("SELECT message FROM plug_log WHERE kind = 'decision' ORDER BY id")]
    assert "a price spike is on" in log and "price 45c is above 30c" in log


def test_feed_in_below_runs_a_diverter_while_export_earns_little(tmp_path, shelly, control):
    rule = 'below = { price = 1, channel = "feed_in", min_on_minutes = 0, min_off_minutes = 0 }'
    config = config_for(tmp_path, plug_toml(shelly.url, rule))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [30.0] * 4)
    # Amber's sign: feed-in -8 is 8c paid per kWh exported, +2 is 2c charged for exporting.
    write_prices(conn, at(f"{DAY}T10:00"), [-8.0, 2.0, -0.5, -8.0], channel="feedIn")
    controller = control(config)
    for now in ticks(at(f"{DAY}T10:00"), at(f"{DAY}T12:00")):
        refresh(conn, now)
        controller.decide_once(now)
    assert commands(conn) == [("2026-12-07T10:30:05Z", "on", "ok"), ("2026-12-07T11:30:05Z", "off", "ok")]


# -- stale data, a failing sync -----------------------------------------------------------------

@pytest.mark.parametrize("fallback, expected_sets", [("off", [False]), ("leave", []), ("on", [])])
def test_stale_prices_send_the_plug_to_its_fallback_and_say_why(tmp_path, shelly, control, app_for, fallback,
                                                                expected_sets):
    shelly.press(True)
    rule = "avoid = { price = 30 }"
    config = config_for(tmp_path, plug_toml(shelly.url, rule, fallback=f'"{fallback}"'))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [99.0] * 8)  # dear: the rule alone would switch it off
    controller = control(config)
    now = at(f"{DAY}T10:20") + timedelta(seconds=5)  # 20 minutes after the fetch; the limit is 15
    controller.decide_once(now)
    assert shelly.sets() == expected_sets
    row = state_row(conn)
    assert row.mode == "fallback"
    assert row.why.startswith("no new prices since 10:00 (the limit is 15 min)")

    client = app_for(config).test_client()
    from freezegun import freeze_time

    with freeze_time(now):
        body = client.get("/api/plugs").get_json()
        health = client.get("/api/health").get_json()
    assert body["plugs"][0]["mode"] == "fallback" and body["plugs"][0]["why"] == row.why
    assert health["plugs"]["status"] == "fallback"
    assert health["plugs"]["why"] == f"Dishwasher: {row.why}"


def test_a_sync_failing_longer_than_the_limit_is_fallback_with_its_reason(tmp_path, shelly, control):
    shelly.press(True)
    config = config_for(tmp_path, plug_toml(shelly.url, "avoid = { price = 30 }", fallback='"off"'))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [10.0] * 8)
    controller = control(config)
    record_run(conn, int(at(f"{DAY}T10:05").timestamp()), "tempfail", "cannot reach Amber: connection refused")
    controller.decide_once(at(f"{DAY}T10:10"))  # failing for 10 min: within the limit, the rule acts
    assert (state_row(conn).mode, shelly.sets()) == ("auto", [])
    controller.decide_once(at(f"{DAY}T10:16"))
    row = state_row(conn)
    assert (row.mode, shelly.sets()) == ("fallback", [False])
    assert row.why == ("the sync has been failing since 10:00 (the limit is 15 min): cannot reach Amber: "
                       "connection refused: switched off (fallback)")


def test_nothing_is_ever_switched_on_stale_data(tmp_path, shelly, control):
    """Hours of minutes with the sync stopping and starting: every command falls in a fresh spell."""
    config = config_for(tmp_path, plug_toml(shelly.url, "below = { price = 10, min_on_minutes = 0, "
                                            "min_off_minutes = 0 }"))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), hovering(f"{DAY}T10:00", 5, 5.0, 20.0), minutes=5)
    controller = control(config)
    fresh_at: list[int] = []
    for i, now in enumerate(ticks(at(f"{DAY}T10:00"), at(f"{DAY}T14:00"), step_min=1)):
        if (i // 40) % 2 == 0 and i % 5 == 0:  # the sync runs for 40 minutes, then stops for 40
            refresh(conn, now)
            fresh_at.append(int(now.timestamp()))
        controller.decide_once(now)
    times = _command_times(conn)
    assert times, "the rule switched at all"
    for t in times:
        assert t - max(f for f in fresh_at if f <= t) <= config.stale_after_seconds


# -- a person at the wall -----------------------------------------------------------------------

def test_a_manual_switch_is_respected_until_override_hours_pass(tmp_path, shelly, control, app_for):
    rule = "below = { price = 10, min_on_minutes = 0, min_off_minutes = 0 }"
    config = config_for(tmp_path, plug_toml(shelly.url, rule, override_hours="1"))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 12)
    controller = control(config)
    refresh(conn, at(f"{DAY}T10:00"))
    controller.decide_once(at(f"{DAY}T10:00") + timedelta(seconds=30))
    assert shelly.sets() == [True]

    shelly.press(False)  # someone wants it off
    for now in ticks(at(f"{DAY}T10:01"), at(f"{DAY}T11:01"), step_min=1):
        refresh(conn, now)
        controller.decide_once(now)
        if now < at(f"{DAY}T11:01"):
            assert state_row(conn).mode == "manual", now
    assert shelly.sets() == [True]
    assert state_row(conn).why == "manual: switched by hand; automatic again at 11:01"
    client = app_for(config).test_client()
    from freezegun import freeze_time

    with freeze_time(at(f"{DAY}T10:30")):
        assert client.get("/api/health").get_json()["plugs"]["status"] == "manual"
    for now in ticks(at(f"{DAY}T11:01"), at(f"{DAY}T11:05"), step_min=1):
        refresh(conn, now)
        controller.decide_once(now)
    assert shelly.sets() == [True, True]  # the hour is over: the rule is back in charge
    assert state_row(conn).mode == "auto"


def test_a_manual_switch_during_a_cheapest_block_holds_until_the_next_block(tmp_path, shelly, control):
    config = config_for(tmp_path, plug_toml(
        shelly.url, 'cheapest = { hours = 1, from = "10:00", to = "12:00", split = true }', override_hours="8"))
    conn = cache(config)
    prices = [30.0] * 8
    prices[0], prices[3] = 1.0, 2.0  # 10:00–10:30 and 11:30–12:00
    write_prices(conn, at(f"{DAY}T10:00"), prices)
    controller = control(config)
    for now in ticks(at(f"{DAY}T10:00"), at(f"{DAY}T10:10"), step_min=1):
        refresh(conn, now)
        controller.decide_once(now)
    assert shelly.sets() == [True]
    shelly.press(False)
    for now in ticks(at(f"{DAY}T10:10"), at(f"{DAY}T11:40"), step_min=1):
        refresh(conn, now)
        controller.decide_once(now)
    # Held off (no "off" at 10:30: it was off already), back on when its next block starts.
    assert shelly.sets() == [True, True]
    assert commands(conn)[-1] == ("2026-12-07T11:30:05Z", "on", "ok")


# -- dry run ------------------------------------------------------------------------------------

def test_dry_run_reads_the_plugs_and_sends_and_writes_nothing(tmp_path, shelly, control, caplog):
    config = config_for(tmp_path, plug_toml(shelly.url, "below = { price = 10 }"))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 4)
    refresh(conn, at(f"{DAY}T10:00"))
    before = conn.execute("SELECT COUNT(*) FROM plug_log").fetchone()[0], \
        conn.execute("SELECT value FROM meta WHERE key = 'plugs_decided_at'").fetchone()
    controller = control(config, dry_run=True)
    with caplog.at_level("INFO"):
        outcomes = controller.decide_once(at(f"{DAY}T10:01"))
    assert [(o.result, o.command) for o in outcomes] == [("dry-run", True)]
    assert shelly.sets() == [] and any("Switch.GetStatus" in r for r in shelly.requests)
    assert not any("Switch.Set" in r for r in shelly.requests)
    assert "dry run: would switch Dishwasher on" in caplog.text
    after = conn.execute("SELECT COUNT(*) FROM plug_log").fetchone()[0], \
        conn.execute("SELECT value FROM meta WHERE key = 'plugs_decided_at'").fetchone()
    assert after == before == (0, None)
    assert conn.execute("SELECT COUNT(*) FROM plug_state").fetchone()[0] == 0


def test_the_plug_log_is_pruned_with_the_other_data(tmp_path, shelly, control):
    config = config_for(tmp_path, plug_toml(shelly.url, "below = { price = 10 }"), RETENTION_DAYS="30")
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 4)
    refresh(conn, at(f"{DAY}T10:00"))
    control(config).decide_once(at(f"{DAY}T10:01"))
    old = int(at("2026-10-01T00:00").timestamp())
    plug_writes.start_command(conn, "dishwasher", old, "price ≤ 10c", 5.0, "on", "long ago")
    assert len(log_rows(conn, "dishwasher")) == 2
    with store.transaction(conn):
        store.prune(conn, config.retention_days, at(f"{DAY}T10:05"))
    assert [row[0] for row in log_rows(conn, "dishwasher")] == [int(at(f"{DAY}T10:01").timestamp())]
