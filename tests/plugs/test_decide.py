"""The pure parts: daily spans in the household's zone, split blocks, the order of the policies."""
from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from home_energy.calc import Slot, Window, cheapest_intervals, cheapest_window
from home_energy.plugs.decide import Market, Memory, Plan, decide, span_at
from home_energy.plugs.rules import Below, Cheapest, PlugConfig

SYDNEY = ZoneInfo("Australia/Sydney")


def epoch(text: str, tz: ZoneInfo = SYDNEY) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp())


def test_a_span_crossing_midnight_is_the_one_holding_now_else_the_next():
    rule = Cheapest(120, time(20), time(7))
    assert span_at(rule, epoch("2026-12-08T02:00"), SYDNEY) == (epoch("2026-12-07T20:00"), epoch("2026-12-08T07:00"))
    assert span_at(rule, epoch("2026-12-08T07:00"), SYDNEY) == (epoch("2026-12-08T20:00"), epoch("2026-12-09T07:00"))
    assert span_at(rule, epoch("2026-12-08T19:59"), SYDNEY) == (epoch("2026-12-08T20:00"), epoch("2026-12-09T07:00"))


def test_the_night_the_clocks_go_forward_is_an_hour_shorter():
    rule = Cheapest(120, time(20), time(7))
    start, end = span_at(rule, epoch("2026-10-03T21:00"), SYDNEY)  # DST starts 2026-10-04 02:00
    assert end - start == 10 * 3600


def test_split_takes_the_cheapest_intervals_trims_the_last_and_merges_neighbours():
    slots = [Slot(0, 1800, 9.0), Slot(1800, 3600, 1.0), Slot(3600, 3900, 2.0), Slot(3900, 4200, 3.0),
             Slot(4200, 6000, 0.5)]
    assert cheapest_intervals(slots, 65, 0, 6000) == [Window(1800, 3900, 1.1429), Window(4200, 6000, 0.5)]
    assert cheapest_intervals(slots, 200, 0, 6000) == []  # the span holds only 100 minutes
    # A contiguous cheapest stretch: the same answer as one window.
    window = cheapest_window(slots, 30, 0, 6000)
    assert window is not None and cheapest_intervals(slots, 30, 0, 6000) == [window] == [Window(4200, 6000, 0.5)]


def _plug(rule: Below | Cheapest, **keys: object) -> PlugConfig:
    return PlugConfig(key="p", name="P", driver="shelly", url="http://10.0.0.5", rule=rule, **keys)  # type: ignore[arg-type]


def test_a_person_wins_over_stale_data_and_stale_data_over_the_rule():
    plug = _plug(Below(10.0), fallback="off")
    slots = (Slot(0, 1800, 5.0),)
    fresh = Market(60, slots, (), False, None)
    stale = Market(60, slots, (), False, "no new prices since 10:00 (the limit is 15 min)")
    assert decide(plug, fresh, Memory(expected=True), True, SYDNEY).mode == "auto"
    assert decide(plug, stale, Memory(expected=True), True, SYDNEY).want is False
    manual = decide(plug, stale, Memory(expected=True), False, SYDNEY)
    assert (manual.want, manual.mode) == (None, "manual")


def test_a_started_block_is_kept_even_if_the_new_prices_prefer_another():
    rule = Cheapest(60, time(0), time(23, 55))
    t = epoch("2026-12-07T10:10")
    plan = Plan(epoch("2026-12-07T00:00"), epoch("2026-12-07T23:55"), ((epoch("2026-12-07T10:00"),
                                                                         epoch("2026-12-07T11:00")),))
    cheaper_later = tuple(Slot(epoch("2026-12-07T10:00") + i * 1800, epoch("2026-12-07T10:30") + i * 1800,
                               30.0 if i < 4 else 1.0) for i in range(10))
    decision = decide(_plug(rule), Market(t, cheaper_later, (), False, None), Memory(expected=True, plan=plan),
                      True, SYDNEY)
    assert decision.plan == plan and decision.want is True and decision.next_change_at == epoch("2026-12-07T11:00")


def test_a_clock_set_back_never_holds_a_plug_longer_than_promised():
    rule = Below(10.0, min_on_minutes=10, min_off_minutes=10)
    plug = _plug(rule, override_hours=2.0)
    now = epoch("2026-12-07T10:00")
    market = Market(now, (Slot(now - 60, now + 1800, 50.0),), (), False, None)
    year_ahead = now + 365 * 86400
    held = decide(plug, market, Memory(expected=True, changed_at=year_ahead), True, SYDNEY)
    assert (held.mode, held.next_change_at) == ("held", now + 600)
    manual = decide(plug, market, Memory(expected=True, override_until=year_ahead), True, SYDNEY)
    assert (manual.mode, manual.override_until) == ("manual", now + 7200)
