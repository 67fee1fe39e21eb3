"""The display's arithmetic: duration-weighted cheapest windows, ages, the forecast price and problems."""
from __future__ import annotations

import pytest

from home_energy.calc import (
    PROBLEMS,
    Slot,
    Window,
    age_seconds,
    cheapest_window,
    forecast_price,
    price_status,
    sync_problem,
)

MIN = 60


def slots(spec):
    """[(minutes, price), ...] laid end to end from t=0."""
    out, t = [], 0
    for minutes, price in spec:
        out.append(Slot(t, t + minutes * MIN, price))
        t += minutes * MIN
    return out


def test_cheapest_window_weights_mixed_5_and_30_minute_intervals_by_duration():
    # Six 5-minute intervals at 0 c then a 30-minute one at 20 c: the hour from 0 averages 10 c
    # (30 minutes at 0, 30 at 20). Counting intervals instead of minutes would say 2.86 c.
    data = slots([(5, 0)] * 6 + [(30, 20), (30, 9)])
    assert cheapest_window(data, 60, 0, 10_000 * MIN) == Window(0, 60 * MIN, 10.0)


def test_a_longer_cheap_30_minute_interval_beats_a_short_cheaper_spike_dip():
    data = slots([(5, -100)] + [(5, 30)] * 11 + [(30, 10), (30, 12)])
    # From 0: (-100*5 + 30*55)/60 = 19.17 c; the 30-minute pair averages 11 c.
    assert cheapest_window(data, 60, 0, 10_000 * MIN) == Window(60 * MIN, 120 * MIN, 11.0)


def test_window_may_end_inside_a_30_minute_interval():
    data = slots([(30, 10), (30, 50)])
    window = cheapest_window(data, 45, 0, 10_000 * MIN)
    assert window == Window(0, 45 * MIN, round((10 * 30 + 50 * 15) / 45, 4))


def test_window_never_spans_a_gap_or_leaves_the_horizon():
    data = [Slot(0, 30 * MIN, 1), Slot(60 * MIN, 90 * MIN, 1), Slot(90 * MIN, 120 * MIN, 100)]
    assert cheapest_window(data, 60, 0, 10_000 * MIN) == Window(60 * MIN, 120 * MIN, 50.5)
    assert cheapest_window(data, 60, 0, 100 * MIN) is None


def test_window_starts_no_earlier_than_the_current_interval_and_ties_go_first():
    data = slots([(30, 1), (30, 5), (30, 5), (30, 5)])
    assert cheapest_window(data, 60, 30 * MIN, 10_000 * MIN) == Window(30 * MIN, 90 * MIN, 5.0)


def test_negative_prices_make_the_cheapest_window():
    data = slots([(30, 8), (30, -4.5), (30, -2.5), (30, 9)])
    assert cheapest_window(data, 60, 0, 10_000 * MIN) == Window(30 * MIN, 90 * MIN, -3.5)


def test_ages_are_never_negative_and_status_follows_price_age():
    assert age_seconds(100, None) is None
    assert age_seconds(100, 40) == 60
    assert age_seconds(100, 10_000) == 0  # clock set back: 0, not a negative age
    assert price_status(None, 900) == "unknown"
    assert price_status(900, 900) == "ok"
    assert price_status(901, 900) == "stale"


# --- The forecast price shown and ranked ---------------------------------------------------


def test_forecasts_use_ambers_prediction_when_it_has_one():
    assert forecast_price("forecast", 30.0, 24.5, "amber") == 24.5
    assert forecast_price("forecast", 30.0, None, "amber") == 30.0  # no advancedPrice: perKwh


def test_actual_and_current_prices_and_the_aemo_setting_use_per_kwh():
    assert forecast_price("current", 30.0, 24.5, "amber") == 30.0
    assert forecast_price("actual", 30.0, 24.5, "amber") == 30.0
    assert forecast_price("forecast", 30.0, 24.5, "aemo") == 30.0


# --- The problem health names --------------------------------------------------------------

@pytest.mark.parametrize(
    ("outcome", "recorded", "has_prices", "problem"),
    [
        (None, None, False, "first_sync_pending"),
        (None, None, True, None),
        ("ok", None, True, None),
        ("partial", "invalid_data", True, None),  # usage failed, the prices are fresh
        ("interrupted", None, True, None),
        ("interrupted", None, False, "first_sync_pending"),
        ("configerror", "token_refused", True, "token_refused"),
        ("configerror", "token_refused", False, "token_refused"),
        ("configerror", "site_missing", True, "site_missing"),
        ("configerror", "settings_invalid", True, "settings_invalid"),
        ("dataerror", "invalid_data", True, "invalid_data"),
        ("tempfail", "rate_limited", True, "rate_limited"),
        ("tempfail", "upstream_unreachable", False, "upstream_unreachable"),
        ("tempfail", "cache_unreadable", True, "cache_unreadable"),
        # Another writer held the cache: it is at work, nobody needs to act.
        ("tempfail", "writer_busy", True, None),
        ("tempfail", "writer_busy", False, "first_sync_pending"),
        # Runs recorded before runs carried a code (or with one this program does not know):
        # the outcome alone decides, never the error's words.
        ("configerror", None, True, "settings_invalid"),
        ("dataerror", None, True, "invalid_data"),
        ("tempfail", None, True, "upstream_unreachable"),
        ("tempfail", "a code from a newer program", True, "upstream_unreachable"),
    ],
)
def test_sync_problem_is_the_recorded_code(outcome, recorded, has_prices, problem):
    assert sync_problem(outcome, recorded, has_prices) == problem
    assert problem is None or problem in PROBLEMS
