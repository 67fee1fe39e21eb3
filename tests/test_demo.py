"""The demo market tells the truth about feed-in and spikes: a household sees what Amber's
customers see, paid for exports most of the time, and a spike on some days only."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from home_energy.clock import NEM_TZ
from home_energy.demo import _interval

DAYS = 90
FIRST = date(2026, 9, 1)


def _day_intervals(day: date, channel: str) -> list[dict]:
    begin = datetime(day.year, day.month, day.day, tzinfo=NEM_TZ).astimezone(UTC)
    return [
        _interval("ActualInterval", channel, begin + timedelta(minutes=5 * i), 5, begin + timedelta(days=2))
        for i in range(288)
    ]


def test_feed_in_is_paid_most_of_the_time_and_costs_only_on_some_sunny_middays():
    paying_days = 0
    paid = total = 0
    for offset in range(DAYS):
        day = FIRST + timedelta(days=offset)
        costly = [iv for iv in _day_intervals(day, "feedIn") if iv["perKwh"] > 0]  # > 0: exporting costs
        total += 288
        paid += 288 - len(costly)
        if costly:
            paying_days += 1
        for iv in costly:
            hour = datetime.fromisoformat(iv["nemTime"]).hour
            assert 10 <= hour <= 15, iv["nemTime"]
    assert paid / total > 0.93
    assert 0.15 * DAYS < paying_days < 0.6 * DAYS


def test_spikes_come_on_some_days_not_all():
    spike_days = sum(
        any(iv["spikeStatus"] == "spike" for iv in _day_intervals(FIRST + timedelta(days=offset), "general"))
        for offset in range(DAYS)
    )
    assert 0.1 * DAYS < spike_days < 0.5 * DAYS


def test_the_demo_market_is_a_function_of_the_date():
    # 12:30 NEM on 2026-12-01, a soak day: the general price near zero and exporting costs 3.1 c.
    general = _day_intervals(date(2026, 12, 1), "general")[150]
    feed_in = _day_intervals(date(2026, 12, 1), "feedIn")[150]
    assert (general["perKwh"], feed_in["perKwh"]) == (0.05387, 3.14882)
