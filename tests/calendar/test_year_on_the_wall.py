"""A year on the wall: sync and web driven through a moved clock at every calendar edge.

At each instant the demo upstream is synced (three runs an hour apart, so the usage backfill
reaches back past the previous month), then every answer the page uses is checked against the
calendar: the interval holding now, a forecast covering the next 23 hours without gaps or
overlaps, NEM "yesterday", month totals that never run backwards and equal the day totals of
/api/usage, and cheapest windows that start no earlier than now and fit inside 24 hours.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from freezegun import freeze_time

from home_energy.clock import NEM_TZ, parse_iso
from home_energy.sync import run_sync

SYDNEY_DST_STARTS = datetime(2026, 10, 3, 16, 0, tzinfo=UTC)  # 02:00 AEST -> 03:00 AEDT, 4 Oct
SYDNEY_DST_ENDS = datetime(2027, 4, 3, 16, 0, tzinfo=UTC)  # 03:00 AEDT -> 02:00 AEST, 4 Apr


def nem(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEM_TZ).astimezone(UTC)


INSTANTS = {
    "1st-00:05": nem(2026, 12, 1, 0, 5),
    "1st-09:00": nem(2026, 12, 1, 9, 0),
    "2nd-00:05": nem(2026, 12, 2, 0, 5),
    "2nd-09:00": nem(2026, 12, 2, 9, 0),
    "last-interval-of-month": nem(2026, 11, 30, 23, 57),
    "new-year-nem": nem(2027, 1, 1, 0, 2),
    "new-year-sydney": datetime(2026, 12, 31, 13, 3, tzinfo=UTC),  # 00:03 AEDT, still 2026 in NEM
    "leap-day": nem(2028, 2, 29, 12, 30),
    "after-leap-day": nem(2028, 3, 1, 0, 10),
    "dst-starts-before": SYDNEY_DST_STARTS - timedelta(minutes=3),
    "dst-starts-after": SYDNEY_DST_STARTS + timedelta(minutes=3),
    "dst-ends-first-0230": SYDNEY_DST_ENDS - timedelta(minutes=30),
    "dst-ends-second-0230": SYDNEY_DST_ENDS + timedelta(minutes=30),
    "mid-month": nem(2027, 6, 17, 18, 40),
}


@pytest.fixture(params=sorted(INSTANTS), scope="module")
def answers(request, tmp_path_factory):
    from home_energy.config import load_config
    from home_energy.web import create_app

    now = INSTANTS[request.param]
    config = load_config(env={"SQLITE_PATH": str(tmp_path_factory.mktemp("cal") / "cache.sqlite"),
                              "RETENTION_DAYS": "90"})
    with freeze_time(now - timedelta(hours=2)) as frozen:
        for hours_before in (2, 1, 0):
            frozen.move_to(now - timedelta(hours=hours_before))
            report = run_sync(config)
            assert report.exit_code == 0, report.error
        client = create_app(config).test_client()
        got = {path: client.get(path) for path in ("/api/health", "/api/current", "/api/prices?hours=24",
                                                   "/api/summary")}
        for response in got.values():
            assert response.status_code == 200, response.get_data(as_text=True)
        body = {path: response.get_json() for path, response in got.items()}

        def usage_days(first: str, last: str) -> list[dict]:
            response = client.get(f"/api/usage?from={first}&to={last}")
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.get_json()["days"]

        yield now, body, usage_days


def test_health_is_ok(answers):
    _now, body, _usage = answers
    health = body["/api/health"]
    assert (health["status"], health["last_sync"]["outcome"]) == ("ok", "ok")


def test_current_interval_holds_now(answers):
    now, body, _usage = answers
    general = body["/api/current"]["channels"]["general"]
    assert parse_iso(general["start"]) <= now < parse_iso(general["end"])
    assert general["kind"] == "current"


def test_prices_are_ordered_without_gaps_or_overlaps_and_cover_the_next_23_hours(answers):
    now, body, _usage = answers
    for channel, rows in body["/api/prices?hours=24"]["channels"].items():
        spans = [(parse_iso(r["start"]), parse_iso(r["end"])) for r in rows]
        assert all(a_end == b_start for (_a, a_end), (b_start, _b) in pairwise(spans)), channel
        assert all(start < end and (end - start).total_seconds() == r["duration_minutes"] * 60
                   for (start, end), r in zip(spans, rows, strict=True)), channel
        current = [i for i, (start, end) in enumerate(spans) if start <= now < end]
        assert len(current) == 1 and rows[current[0]]["kind"] == "current", channel
        assert spans[-1][1] >= now + timedelta(hours=23), channel


def test_yesterday_is_the_nem_yesterday(answers):
    now, body, _usage = answers
    assert body["/api/summary"]["yesterday"]["date"] == (now.astimezone(NEM_TZ).date() - timedelta(days=1)).isoformat()


def _check_month(month: dict | None, first: date, last_allowed: date, usage_days) -> None:
    if month is None:
        return
    start, end = date.fromisoformat(month["from"]), date.fromisoformat(month["to"])
    assert first == start <= end <= last_allowed
    days = usage_days(month["from"], month["to"])
    assert month["days"] == len(days) > 0
    # The days as /api/usage serves them, added up: exactly, with no second rounding.
    assert month["cost_dollars"] == round(sum(d["cost_dollars"] for d in days), 2)


def test_month_totals_never_run_backwards_and_equal_the_usage_day_totals(answers):
    now, body, usage_days = answers
    today = now.astimezone(NEM_TZ).date()
    yesterday = today - timedelta(days=1)
    summary = body["/api/summary"]
    if today.day == 1:
        assert summary["month_to_date"] is None  # no finished day in the month yet
    _check_month(summary["month_to_date"], today.replace(day=1), yesterday, usage_days)
    last_month_end = today.replace(day=1) - timedelta(days=1)
    assert summary["last_month"] is not None  # the backfill reaches back past it at every instant
    _check_month(summary["last_month"], last_month_end.replace(day=1), last_month_end, usage_days)


def test_cheapest_windows_start_no_earlier_than_now_last_their_hours_and_end_within_a_day(answers):
    now, body, _usage = answers
    current = body["/api/current"]["channels"]["general"]
    for key, window in body["/api/summary"]["cheapest"].items():
        assert window is not None, key
        start, end = parse_iso(window["start"]), parse_iso(window["end"])
        assert start >= parse_iso(current["start"]), key
        assert (end - start) == timedelta(hours=window["hours"]), key
        assert end <= now + timedelta(hours=24), key
