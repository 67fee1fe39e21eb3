"""Answers judged against the request: an interval or usage row outside what the sync asked for
makes the answer invalid, and no answer of any shape touches the history before the window."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from freezegun import freeze_time

from home_energy import store
from home_energy.clock import NEM_TZ, nem_day_start, parse_iso
from home_energy.errors import UpstreamDataError
from home_energy.models import PriceRow, Site, UsageRow, price_from_payload, usage_from_payload
from home_energy.sync import run_sync
from tests.fake_amber import (
    SITE_ID,
    TOKEN,
    FakeAmber,
    assert_valid_amber,
    build_prices,
    build_usage,
    price_interval,
    usage_interval,
)

NOW = datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC)  # 11:07 in NEM time
TODAY = NOW.astimezone(NEM_TZ).date()
MIDNIGHT = nem_day_start(TODAY)  # the sync asks for today's actuals, from about here
HISTORY_END = MIDNIGHT - timedelta(hours=1)  # a week of history ends before any window asked for
HISTORY_START = HISTORY_END - timedelta(days=7)
Shape = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def moved(item: dict[str, Any], delta: timedelta, per_kwh: float | None = None) -> dict[str, Any]:
    """The interval `delta` later (earlier when negative), as Amber would have sent it then."""
    start = parse_iso(item["startTime"]).replace(second=0) + delta
    return price_interval(item["type"], item["channelType"], start, item["duration"],
                          item["perKwh"] if per_kwh is None else per_kwh)


def shifted(delta: timedelta) -> Shape:
    return lambda body: [moved(item, delta) for item in body]


def plus(kind: str, start: datetime) -> Shape:
    return lambda body: [*body, price_interval(kind, "general", start, 30, 99.0)]


INVALID = ("dataerror", 65, "invalid_data", "outside the window asked for")
CLOCKS = ("tempfail", 75, "clock_wrong", "check the date and time of this machine")
PRICE_ANSWERS: dict[str, tuple[Shape, tuple[str, int, str, str] | None]] = {
    # shape of Amber's answer, and how it is refused whole (None: it is not)
    "an interval of 1970": (plus("ActualInterval", datetime(1970, 1, 1, tzinfo=UTC)), INVALID),
    "an interval of 9999": (plus("ForecastInterval", datetime(9999, 6, 1, tzinfo=UTC)), INVALID),
    "a forecast three days past the window": (plus("ForecastInterval", NOW.replace(minute=0) + timedelta(days=4)),
                                              INVALID),
    # Amber's own current interval is days away: one of the clocks is wrong (or the answer stale).
    "the whole answer three days early": (shifted(timedelta(days=-3)), CLOCKS),
    "the whole answer three days late": (shifted(timedelta(days=3)), CLOCKS),
    # Within the slack (clocks disagree a little): valid, but what lies before the window is not written.
    "an actual twenty hours before the window": (plus("ActualInterval", MIDNIGHT - timedelta(hours=20)), None),
    "the whole answer twelve hours early": (shifted(timedelta(hours=-12)), None),
}


def serving(fake: FakeAmber, endpoint: str, shape: Shape, component: str) -> None:
    """The fake answers `endpoint` with its normal answer reshaped by `shape` (still valid by the schema)."""
    state = fake.state

    def fault(handler: Any) -> bool:
        query = parse_qs(urlparse(handler.path).query)
        build = build_prices if endpoint == "prices" else build_usage
        body = shape(build(state, state.sites[0], query))
        assert_valid_amber(component, body)
        handler._send(200, json.dumps(body).encode(), handler._rate_headers())
        return True

    state.faults[endpoint] = fault


def table(path: Path, name: str, where: str = "1", *args: Any) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {name} WHERE {where} ORDER BY 1, 2, 3", args).fetchall()


def last_run(path: Path) -> tuple[str, str | None, str | None]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT outcome, error, problem FROM sync_runs LEFT JOIN sync_run_problems "
                            "ON run_id = id ORDER BY id DESC LIMIT 1").fetchone()


def add_price_history(path: Path) -> int:
    """A week of 30-minute prices on both channels before today, as an earlier week of syncs left it."""
    rows: list[PriceRow] = []
    start = HISTORY_START
    while start < HISTORY_END:
        for channel, sign in (("general", 1), ("feedIn", -1)):
            item = price_interval("ActualInterval", channel, start, 30, sign * 55.5)
            rows.append(price_from_payload(SITE_ID, item))
        start += timedelta(minutes=30)
    with store.writer_lock(path):
        conn = store.open_cache(path)
        with store.transaction(conn):
            store.save_prices(conn, rows, int(HISTORY_END.timestamp()))
        conn.close()
    return len(rows)


@pytest.fixture
def synced(make_config, amber_client):
    """A cache after one good sync at NOW, plus a week of price history before it."""
    with FakeAmber() as fake, freeze_time(NOW):
        config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake.url)
        assert run_sync(config, _client(config)).outcome == "ok"
        assert add_price_history(config.sqlite_path) == 7 * 48 * 2
        yield config, fake


def _client(config: Any) -> Any:
    from home_energy.amber import AmberClient
    from tests.fake_amber import READ_TIMEOUT_IN_TESTS_S

    return AmberClient(config.amber_api_url, config.amber_token, read_timeout_s=READ_TIMEOUT_IN_TESTS_S)


@pytest.mark.parametrize("answer", sorted(PRICE_ANSWERS))
def test_no_price_answer_touches_the_history_before_the_window(synced, answer):
    config, fake = synced
    path = config.sqlite_path
    shape, refused = PRICE_ANSWERS[answer]
    history = table(path, "prices", "start < ?", int(HISTORY_END.timestamp()))
    assert len(history) == 7 * 48 * 2
    everything = {name: table(path, name) for name in ("prices", "usage", "daily_usage", "sites")}
    serving(fake, "prices", shape, "Interval")
    with freeze_time(NOW + timedelta(minutes=5)):
        report = run_sync(config, _client(config))
    assert fake.calls("prices") == 2
    # Compared row by row, every column: not one row of the history deleted or rewritten.
    assert table(path, "prices", "start < ?", int(HISTORY_END.timestamp())) == history
    if refused:
        outcome, code, problem, words = refused
        assert (report.outcome, report.exit_code) == (outcome, code)
        assert words in report.error
        assert last_run(path) == (outcome, report.error, problem)  # recorded, as health shows it
        assert {name: table(path, name) for name in everything} == everything  # nothing written or deleted
    else:
        assert (report.outcome, report.exit_code) == ("ok", 0), report.error
        assert table(path, "prices") != everything["prices"]  # the part inside the window was written


def test_the_refusal_names_the_interval_and_the_window(synced):
    config, fake = synced
    serving(fake, "prices", plus("ActualInterval", datetime(1970, 1, 1, tzinfo=UTC)), "Interval")
    with freeze_time(NOW + timedelta(minutes=5)):
        report = run_sync(config, _client(config))
    assert report.error == (
        "Amber's prices answer holds an interval at 1970-01-01T00:00Z, outside the window asked for "
        "(2026-11-22T13:00Z to 2026-11-24T01:30Z): nothing of it was written "
        "(if this machine's clock is wrong, set it right)")


def test_the_store_refuses_a_plan_with_a_row_outside_what_was_asked(tmp_path):
    """The writer's own guard: a plan judged by nobody else still writes nothing outside the request."""
    path = tmp_path / "cache.sqlite"
    add_price_history(path)
    before = table(path, "prices")
    site = Site(SITE_ID, "4102345678", "Ausgrid", "active", 30, (("E1", "general", "EA116"),), None, None)
    asked = store.Asked(int(MIDNIGHT.timestamp()), int((MIDNIGHT + timedelta(days=1)).timestamp()))
    stray = price_from_payload(SITE_ID, price_interval("ActualInterval", "general",
                                                       datetime(1970, 1, 1, tzinfo=UTC), 30, 1.0))
    with store.writer_lock(path):
        conn = store.open_cache(path)
        run_id = store.start_run(conn, "amber")
        with pytest.raises(UpstreamDataError, match="outside the window asked for"):
            store.write_sync(conn, run_id, store.SyncWrite("amber", site, [stray], asked),
                             store.RunRecord("ok", None, 1), 90, NOW)
        conn.close()
    assert table(path, "prices") == before


# -- usage ---------------------------------------------------------------------------------

def usage_plus(day: date) -> Shape:
    start = nem_day_start(day)
    return lambda body: [*body, usage_interval("general", "E1", start, 30, 9.0, 99.0)]


def usage_shifted(days: int) -> Shape:
    def shape(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [usage_interval(i["channelType"], i["channelIdentifier"],
                               parse_iso(i["startTime"]).replace(second=0) + timedelta(days=days),
                               i["duration"], i["kwh"], abs(i["perKwh"])) for i in body]

    return shape


USAGE_ANSWERS: dict[str, Shape] = {
    "a row of 1970": usage_plus(date(1970, 1, 1)),
    "a row of the day after the dates asked for": usage_plus(TODAY + timedelta(days=1)),
    "a row of a week before the dates asked for": usage_plus(TODAY - timedelta(days=10)),
    "the whole answer ten days early": usage_shifted(-10),
}


@pytest.mark.parametrize("answer", sorted(USAGE_ANSWERS))
def test_a_usage_answer_with_a_row_outside_its_dates_writes_no_usage(synced, answer):
    config, fake = synced
    path = config.sqlite_path
    with store.writer_lock(path):  # usage is due again, and the backfill is done: one call, recent days
        conn = store.open_cache(path)
        with store.transaction(conn):
            store.set_meta(conn, f"usage_fetched_at:{SITE_ID}", int((NOW - timedelta(hours=2)).timestamp()))
            store.set_meta(conn, f"usage_backfill_oldest:{SITE_ID}", (TODAY - timedelta(days=90)).isoformat())
        conn.close()
    usage, daily = table(path, "usage"), table(path, "daily_usage")
    assert len(usage) > 20 * 72  # three weeks of backfill from the first sync
    serving(fake, "usage", USAGE_ANSWERS[answer], "Usage")
    with freeze_time(NOW + timedelta(minutes=5)):
        report = run_sync(config, _client(config))
    # Usage is optional: the answer is refused whole, the prices of the run are kept (partial).
    assert (report.outcome, report.exit_code) == ("partial", 0)
    assert "outside the dates asked for" in report.error
    assert last_run(path) == ("partial", report.error, "invalid_data")
    assert table(path, "usage") == usage
    assert table(path, "daily_usage") == daily


def test_usage_rows_are_judged_by_their_date_and_their_times():
    first, last = TODAY - timedelta(days=3), TODAY
    inside = usage_from_payload(SITE_ID, usage_interval("general", "E1", nem_day_start(first), 30, 1.0, 20.0))
    store.judge_usage([inside], [(first, last)])
    late = usage_from_payload(SITE_ID, usage_interval("general", "E1", nem_day_start(last + timedelta(days=1)),
                                                      30, 1.0, 20.0))
    # A row whose `date` claims an asked-for day but whose times lie elsewhere is outside too.
    lying: UsageRow = UsageRow(**{**inside.__dict__, "start": late.start, "end": late.end})
    for row in (late, lying):
        with pytest.raises(UpstreamDataError, match="outside the dates asked for"):
            store.judge_usage([row], [(first, last)])
