"""Every read the web makes of the cache, as plain SQL returning JSON-ready structures.

Times leave here as ISO 8601 UTC with Z; prices stay in c/kWh with Amber's sign; money read
from usage is converted from cents to dollars exactly once, here, and named `_dollars`. One rule
for every dollar figure from usage: a day's cost is summed, then rounded to the cent once
(`day_cents`); a total over several days is the sum of those days as `/api/usage` serves them, so
"This month" always equals the days added up.
"""
from __future__ import annotations

import json
import math
import sqlite3
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from functools import lru_cache
from typing import Any

from .calc import Slot, age_seconds, cheapest_window, forecast_price, price_status, sync_problem
from .clock import NEM_TZ, nem_day_start, to_iso
from .db import get_meta, int_meta
from .meter_format import packed_minutes

CHEAPEST_HOURS = (1, 2, 3)
CHEAPEST_HORIZON_H = 24
MAX_USAGE_DAYS = 93
MAX_INTERVAL_S = 1800  # Amber's longest interval is 30 minutes
RUN_DEADLINE_S = 120  # every sync ends within 60 s; a run `running` for longer was killed or hangs

_INTERVAL_COLUMNS = (
    "start, end, duration, kind, per_kwh, spot_per_kwh, renewables, descriptor, spike_status, estimate, "
    "adv_low, adv_predicted, adv_high, tariff"
)


@lru_cache(maxsize=8192)
def _iso_at(epoch: int) -> str:
    return to_iso(datetime.fromtimestamp(epoch, UTC))


def _iso(epoch: int | None) -> str | None:
    # Cached: a screen asks for the same few hundred interval times every 30 seconds.
    return None if epoch is None else _iso_at(epoch)


@lru_cache(maxsize=256)
def _tariff(text: str) -> dict[str, Any]:
    return json.loads(text)


def site_id(conn: sqlite3.Connection) -> str | None:
    return get_meta(conn, "site_id")


def channels(conn: sqlite3.Connection) -> list[str]:
    raw = get_meta(conn, "channels")
    return json.loads(raw) if raw else []


def _intervals(conn: sqlite3.Connection, low: int, high: int) -> dict[str, list[sqlite3.Row]]:
    """Per channel, the intervals overlapping [low, high), using the (site, channel, start) key.

    The start bound is widened by the longest interval so one that began just before `low` and
    is still running is included; the `end > low` filter then drops what ended before it.
    """
    sid = site_id(conn)
    out: dict[str, list[sqlite3.Row]] = {}
    for channel in channels(conn):
        rows = conn.execute(
            f"SELECT {_INTERVAL_COLUMNS} FROM prices WHERE site_id = ? AND channel = ? AND start > ? AND start < ? "
            "AND end > ? ORDER BY start",
            (sid, channel, low - MAX_INTERVAL_S, high, low),
        ).fetchall()
        if rows:
            out[channel] = rows
    return out


def _interval_at(conn: sqlite3.Connection, channel: str, t: int) -> sqlite3.Row | None:
    """The cached interval of `channel` that holds the instant `t`: the one "price now" query."""
    return conn.execute(
        f"SELECT {_INTERVAL_COLUMNS} FROM prices WHERE site_id = ? AND channel = ? AND start > ? AND start <= ? "
        "AND end > ? ORDER BY start LIMIT 1",
        (site_id(conn), channel, t - MAX_INTERVAL_S, t, t),
    ).fetchone()


def interval_json(row: sqlite3.Row, now: int | None = None) -> dict[str, Any]:
    kind = row["kind"]
    if now is not None:
        # The cache ages: what was the current interval at fetch time is an actual one later.
        if row["end"] <= now:
            kind = "actual"
        elif row["start"] <= now < row["end"]:
            kind = "current"
    advanced = None
    if row["adv_predicted"] is not None:
        advanced = {"low": row["adv_low"], "predicted": row["adv_predicted"], "high": row["adv_high"]}
    return {
        "start": _iso(row["start"]),
        "end": _iso(row["end"]),
        "duration_minutes": row["duration"],
        "kind": kind,
        "per_kwh": row["per_kwh"],
        "spot_per_kwh": row["spot_per_kwh"],
        "renewables": row["renewables"],
        "descriptor": row["descriptor"],
        "spike_status": row["spike_status"],
        "estimate": bool(row["estimate"]) if row["estimate"] is not None else (kind != "actual"),
        "advanced_price": advanced,
        "tariff": dict(_tariff(row["tariff"])) if row["tariff"] else None,
    }


_WIDE = Context(prec=400)  # digits: the largest float has 309


def day_cents(cents: float) -> int:
    """A day's cost, summed first, rounded to the cent once (half away from zero).

    Exact for every float (a context wide enough for 1.8e308); a sum that overflowed to infinity
    (absurd costs Amber's schema still allows) is held at the largest float, never an error.
    """
    if not math.isfinite(cents):
        cents = math.copysign(sys.float_info.max, cents) if not math.isnan(cents) else 0.0
    return int(Decimal(repr(cents)).quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_WIDE))


def provenance(conn: sqlite3.Connection, fallback_mode: str) -> tuple[str, str | None]:
    """(the mode the sync is configured for, where the cached prices came from or None).

    The mode is the newest run's, recorded when it started (failing or not): the dashboard holds
    no token, so its own configuration cannot say. The prices' source is the mode of the run that
    wrote them; a cache holding none (a token set, Amber's first prices not in yet) says None.
    """
    row = conn.execute("SELECT mode FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
    data_mode = get_meta(conn, "mode")
    has_prices = int_meta(conn, f"prices_fetched_at:{site_id(conn)}") is not None
    return (row[0] if row is not None else data_mode or fallback_mode), (data_mode if has_prices else None)


def health(conn: sqlite3.Connection, now: datetime, stale_after_s: int, mode: str, version: str) -> dict[str, Any]:
    t = now.timestamp()
    sid = site_id(conn)
    # Kept in meta by the sync: MAX() over a year of intervals would scan every row per request.
    newest_price = int_meta(conn, f"prices_fetched_at:{sid}")
    configured_mode, prices_source = provenance(conn, mode)
    newest_usage = int_meta(conn, f"usage_newest_end:{sid}")
    last_ok = last_success_at(conn)
    last = _last_run(conn, t)
    price_age = age_seconds(t, newest_price)
    live = last is not None and last["outcome"] in ("ok", "partial") and t - last["finished_at"] <= stale_after_s
    return {
        "status": price_status(price_age, stale_after_s),
        "problem": sync_problem(None if last is None else last["outcome"], None if last is None else last["problem"],
                                newest_price is not None),
        "source": "live" if live else "cache",
        "mode": configured_mode,
        "prices_source": prices_source,
        "cache_age_seconds": age_seconds(t, last_ok),
        "price_age_seconds": price_age,
        "usage_age_seconds": age_seconds(t, newest_usage),
        "last_sync": None if last is None else {
            "at": _iso(last["finished_at"]), "outcome": last["outcome"], "error": last["error"],
        },
        "prices_cached_at": _iso(newest_price),
        "version": version,
    }


def _last_run(conn: sqlite3.Connection, t: float) -> dict[str, Any] | None:
    """The newest finished run; a run still `running` past any sync's deadline is shown as
    `interrupted` (it was killed or hangs), one in progress does not hide the last result."""
    columns = ("SELECT started_at, finished_at, outcome, error, problem FROM sync_runs "
               "LEFT JOIN sync_run_problems ON run_id = id")
    row = conn.execute(f"{columns} ORDER BY id DESC LIMIT 1").fetchone()
    if row is not None and row["outcome"] == "running":
        if t - row["started_at"] > RUN_DEADLINE_S:
            return {"finished_at": row["started_at"], "outcome": "interrupted",
                    "error": "the sync started but did not finish", "problem": None}
        row = conn.execute(f"{columns} WHERE outcome != 'running' ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else dict(row)


def last_success_at(conn: sqlite3.Connection) -> int | None:
    """When a sync last wrote the cache successfully (Unix seconds): health's cache age counts from it."""
    return int_meta(conn, "last_success_at")


def sync_run_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """{outcome: runs} over the runs the cache keeps (its retention window); `running` excluded."""
    return {row[0]: row[1] for row in conn.execute(
        "SELECT outcome, COUNT(*) FROM sync_runs WHERE outcome != 'running' GROUP BY outcome ORDER BY outcome")}


def rate_limit(conn: sqlite3.Connection) -> dict[str, int | None]:
    """What Amber's headers said on the newest run that carried them: calls left, and when the
    5-minute window resets (Unix seconds)."""
    row = conn.execute("SELECT rate_limit_remaining, rate_limit_reset_at FROM sync_runs "
                       "WHERE rate_limit_remaining IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
    return {"remaining": None if row is None else row[0], "reset_at": None if row is None else row[1]}


def current(conn: sqlite3.Connection, now: datetime) -> dict[str, Any]:
    t = int(now.timestamp())
    found = {channel: _interval_at(conn, channel, t) for channel in channels(conn)}
    return {"channels": {channel: interval_json(row, t) for channel, row in found.items() if row is not None}}


def _bucket(now: datetime) -> int:
    # Every interval boundary is a multiple of 5 minutes, so within one bucket the interval that
    # holds "now", and so every `kind`, is the same as at the bucket's start.
    t = int(now.timestamp())
    return t - t % 300


def prices(conn: sqlite3.Connection, now: datetime, hours: int) -> dict[str, Any]:
    t = _bucket(now)
    day_start = int(nem_day_start(now.astimezone(NEM_TZ).date()).timestamp())
    found = _intervals(conn, day_start, t + hours * 3600)
    return {"channels": {channel: [interval_json(row, t) for row in rows] for channel, rows in found.items()}}


def usage(conn: sqlite3.Connection, start: date, end: date, intervals: bool = False) -> dict[str, Any]:
    """Day totals from `start` to `end` (NEM dates, inclusive); the intervals too when asked.

    Intervals are ~600 rows a day, so callers bound their span; day totals are a few rows a day.
    """
    sid = site_id(conn)
    days = conn.execute(
        "SELECT day, channel, kwh, cost_cents FROM daily_usage WHERE site_id = ? AND day BETWEEN ? AND ? "
        "ORDER BY day, channel",
        (sid, start.isoformat(), end.isoformat()),
    ).fetchall()
    totals: dict[str, dict[str, Any]] = {}
    for row in days:
        day = totals.setdefault(row["day"], {"date": row["day"], "kwh": {}, "cost_cents": 0.0})
        day["kwh"][row["channel"]] = round(row["kwh"], 4)
        day["cost_cents"] += row["cost_cents"]
    for day in totals.values():
        day["cost_dollars"] = day_cents(day["cost_cents"]) / 100
        day["cost_cents"] = round(day["cost_cents"], 4)
    answer: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat(), "days": list(totals.values())}
    if intervals:
        rows = conn.execute(
            "SELECT start, end, channel, channel_identifier, kwh, cost_cents, quality FROM usage "
            "WHERE start >= ? AND start < ? AND site_id = ? AND day BETWEEN ? AND ? "
            "ORDER BY start, channel_identifier",
            (int(nem_day_start(start).timestamp()) - 86400, int(nem_day_start(end).timestamp()) + 2 * 86400, sid,
             start.isoformat(), end.isoformat()),
        ).fetchall()
        answer["intervals"] = [
            {"start": _iso(r["start"]), "end": _iso(r["end"]), "channel": r["channel"],
             "channel_identifier": r["channel_identifier"], "kwh": r["kwh"], "cost_cents": r["cost_cents"],
             "quality": r["quality"]}
            for r in rows
        ]
    return answer


def _cost_dollars(conn: sqlite3.Connection, sid: str | None, first: str, last: str) -> tuple[float | None, int]:
    """The days' costs as /api/usage serves them, added up (whole cents, so no float drift)."""
    days = conn.execute(
        "SELECT SUM(cost_cents) FROM daily_usage WHERE site_id = ? AND day BETWEEN ? AND ? GROUP BY day",
        (sid, first, last),
    ).fetchall()
    if not days:
        return None, 0
    return sum(day_cents(row[0]) for row in days) / 100, len(days)


def _month_total(conn: sqlite3.Connection, sid: str | None, first: date, last: date) -> dict[str, Any] | None:
    """A NEM month's usage cost from `first` to `last`, or None before it has any (on the 1st the
    current month has no finished day, so there is no range to answer: never from > to)."""
    if last < first:
        return None
    cost, days = _cost_dollars(conn, sid, first.isoformat(), last.isoformat())
    if cost is None:
        return None
    return {"from": first.isoformat(), "to": last.isoformat(), "cost_dollars": cost, "days": days}


def price_slots(conn: sqlite3.Connection, sid: str | None, channel: str, t: int, horizon: int,
                forecast: str) -> list[Slot]:
    """The intervals of `channel` from the one holding `t` up to `horizon`, each at the price the
    chart draws it at (Amber's own forecast by default): what every cheapest choice ranks."""
    return [
        Slot(r[0], r[1], forecast_price("forecast" if r[0] > t else "current", r[2], r[3], forecast))
        for r in conn.execute(
            "SELECT start, end, per_kwh, adv_predicted FROM prices WHERE site_id = ? AND channel = ? "
            "AND start > ? AND start < ? AND end > ? ORDER BY start",
            (sid, channel, t - MAX_INTERVAL_S, horizon, t),
        )
    ]


def plug_prices(conn: sqlite3.Connection, now: datetime, forecast: str) -> dict[str, Any]:
    """What the plug controller decides on, from the cache only: the general and feed-in
    intervals from now to the forecast's end (as `summary` ranks them), whether a spike is on,
    and how fresh the prices and the sync are. Feed-in stays in Amber's sign (negative = paid)."""
    sid = site_id(conn)
    t = _bucket(now)
    exact = int(now.timestamp())
    horizon = t + 2 * CHEAPEST_HORIZON_H * 3600
    spike = conn.execute(
        "SELECT spike_status FROM prices WHERE site_id = ? AND channel = 'general' AND start > ? AND start <= ? "
        "AND end > ?", (sid, exact - MAX_INTERVAL_S, exact, exact)).fetchone()
    last = _last_run(conn, exact)
    return {
        "general": price_slots(conn, sid, "general", t, horizon, forecast),
        "feed_in": price_slots(conn, sid, "feedIn", t, horizon, forecast),
        "spike": spike is not None and spike[0] == "spike",
        "prices_fetched_at": int_meta(conn, f"prices_fetched_at:{sid}"),
        "last_success_at": int_meta(conn, "last_success_at"),
        "last_outcome": None if last is None else last["outcome"],
        "last_error": None if last is None else last["error"],
    }


def summary(conn: sqlite3.Connection, now: datetime, monthly_budget: float | None,
            forecast: str = "amber") -> dict[str, Any]:
    sid = site_id(conn)
    t = _bucket(now)  # exact for the whole bucket: every boundary it depends on is on the 5-minute grid
    today = now.astimezone(NEM_TZ).date()
    yesterday = today - timedelta(days=1)
    yesterday_cost, _ = _cost_dollars(conn, sid, yesterday.isoformat(), yesterday.isoformat())
    this_month = _month_total(conn, sid, today.replace(day=1), yesterday)
    last_month_end = today.replace(day=1) - timedelta(days=1)
    last_month = _month_total(conn, sid, last_month_end.replace(day=1), last_month_end)
    newest_day = conn.execute("SELECT MAX(day) FROM daily_usage WHERE site_id = ?", (sid,)).fetchone()[0]

    day_start = int(nem_day_start(today).timestamp())
    renew = conn.execute(
        "SELECT SUM(renewables * duration) / SUM(duration) FROM prices WHERE site_id = ? AND channel = 'general' "
        "AND start >= ? AND start <= ?",
        (sid, day_start, t),
    ).fetchone()[0]
    now_row = _interval_at(conn, "general", t)

    horizon = t + CHEAPEST_HORIZON_H * 3600
    slots = price_slots(conn, sid, "general", t, horizon, forecast)
    earliest = now_row["start"] if now_row else t
    windows = {}
    for hours in CHEAPEST_HOURS:
        window = cheapest_window(slots, hours * 60, earliest, horizon)
        windows[f"{hours}h"] = None if window is None else {
            "start": _iso(window.start), "end": _iso(window.end), "avg_per_kwh": window.avg_per_kwh,
            "hours": hours,
        }
    return {
        "yesterday": {"date": yesterday.isoformat(), "cost_dollars": yesterday_cost},
        "month_to_date": this_month,
        "last_month": last_month,
        "usage_through": newest_day,
        "monthly_budget_dollars": monthly_budget,
        "renewables": {
            "now_percent": None if now_row is None else now_row["renewables"],
            "today_avg_percent": None if renew is None else round(renew, 2),
        },
        "forecast_price": forecast,
        "cheapest": windows,
    }


# --- The home's meter: /api/live, /api/today and the meter part of health ---------------------

METER_SILENT_POLLS = 6  # no reading for this many polls (and at least a minute): the meter is silent
REVERSED_WINDOW_MIN = 10  # minutes of impossible flows before the reversed-clamp warning shows
REVERSED_MARGIN_W = 100.0
_LIVE_FIELDS = ("grid_w", "solar_w", "battery_w", "battery_soc_percent", "load_w")


def _meter_tables(conn: sqlite3.Connection) -> bool:
    # A cache written by an older program has no meter tables until the next writer migrates it.
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meter_latest'").fetchone() is not None


def _price_now(conn: sqlite3.Connection, channel: str, t: int) -> float | None:
    row = _interval_at(conn, channel, t)
    return None if row is None else row["per_kwh"]


def cost_cents_per_hour(grid_w: float | None, general_per_kwh: float | None,
                        feed_in_per_kwh: float | None) -> float | None:
    """Import kW × the general price, or export kW × the feed-in price (negative when paid)."""
    if grid_w is None:
        return None
    if grid_w == 0:
        return 0.0
    price = general_per_kwh if grid_w > 0 else feed_in_per_kwh
    return None if price is None else round(abs(grid_w) / 1000 * price, 2)


def meter_status(conn: sqlite3.Connection, now: datetime, source: str | None,
                 poll_seconds: int) -> dict[str, Any]:
    """ok | not_answering | waiting (configured, nothing read yet) | none (no meter configured)."""
    if source is None:
        return {"status": "none", "since": None, "last_reading_at": None, "last_error": None}
    latest = state = None
    if _meter_tables(conn):
        latest = conn.execute("SELECT at FROM meter_latest WHERE id = 1 AND source = ?", (source,)).fetchone()
        state = conn.execute("SELECT status, failing_since, last_error FROM meter_state WHERE id = 1 AND source = ?",
                             (source,)).fetchone()
    last_at = None if latest is None else latest["at"]
    t = int(now.timestamp())
    silent_after = max(60, METER_SILENT_POLLS * poll_seconds)
    if state is not None and state["status"] == "failing":
        status, since = "not_answering", state["failing_since"]
    elif last_at is not None and t - last_at > silent_after:
        status, since = "not_answering", last_at  # the collector itself has stopped
    elif last_at is None:
        status, since = ("not_answering" if state is not None else "waiting"), None
    else:
        status, since = "ok", None
    return {"status": status, "since": _iso(since), "last_reading_at": _iso(last_at),
            "last_error": None if state is None or status == "ok" else state["last_error"]}


def live(conn: sqlite3.Connection, now: datetime, source: str | None, poll_seconds: int) -> dict[str, Any]:
    """The latest reading in the project's signs; every field null without a meter, 200 always."""
    t = int(now.timestamp())
    body: dict[str, Any] = {"at": None, "age_seconds": None, **{f: None for f in _LIVE_FIELDS},
                            "cost_cents_per_hour": None, "source": source, "status": "none",
                            "not_answering_since": None}  # every documented field, in every state
    if source is None:
        return body
    row = None
    if _meter_tables(conn):
        row = conn.execute("SELECT * FROM meter_latest WHERE id = 1 AND source = ?", (source,)).fetchone()
    if row is not None:
        body["at"] = _iso(row["at"])
        body["age_seconds"] = max(0, t - row["at"])
        for f in _LIVE_FIELDS:
            body[f] = row[f]
        body["cost_cents_per_hour"] = cost_cents_per_hour(
            row["grid_w"], _price_now(conn, "general", t), _price_now(conn, "feedIn", t))
    status = meter_status(conn, now, source, poll_seconds)
    body["status"] = status["status"]
    body["not_answering_since"] = status["since"]
    return body


def today(conn: sqlite3.Connection, now: datetime, source: str | None, day: date | None = None) -> dict[str, Any]:
    """A NEM day so far from the meter's energy, each minute priced by its interval; Amber's figures
    once it has the whole day."""
    day = day or now.astimezone(NEM_TZ).date()
    start = int(nem_day_start(day).timestamp())
    # Through the end of the current minute (the collector keeps folding into its row): the same
    # for every second of the minute, so the web may keep the answer per minute.
    t = int(now.timestamp())
    end = min(t - t % 60 + 60, start + 86400)
    body: dict[str, Any] = {"date": day.isoformat(), "from": _iso(start), "to": None, "import_kwh": None,
                            "export_kwh": None, "cost_dollars": None, "estimated": True, "basis": None,
                            "unpriced_kwh": None, "meter_estimate": None, "source": source}
    if source is None or not _meter_tables(conn):
        return body
    sid = site_id(conn)
    buckets = _energy_buckets(conn, start, end)
    if buckets:
        general, feed_in = _price_steps(conn, sid, "general", start, end), _price_steps(conn, sid, "feedIn", start, end)
        imported = exported = cents = unpriced = 0.0
        for bucket, (import_wh, export_wh, _first, _last) in buckets.items():
            for wh, steps in ((import_wh, general), (export_wh, feed_in)):
                if not wh:
                    continue
                price = steps.get(bucket)
                if price is None:
                    unpriced += wh
                else:
                    cents += wh / 1000 * price
            imported += import_wh
            exported += export_wh
        first = int(min(b[2] for b in buckets.values()))
        last = int(max(b[3] for b in buckets.values()))
        body.update({
            # Counted from the day's start, or from the first minute the collector saw if later.
            "from": _iso(first if first - start > 300 else start),
            "to": _iso(last + 60), "import_kwh": round(imported / 1000, 3), "export_kwh": round(exported / 1000, 3),
            "cost_dollars": day_cents(cents) / 100, "basis": "meter", "unpriced_kwh": round(unpriced / 1000, 3),
        })
    amber = _amber_day(conn, sid, day)
    if amber is not None:
        meter_figures = {k: body[k] for k in ("import_kwh", "export_kwh", "cost_dollars")} if buckets else None
        body.update(amber, estimated=False, basis="amber", unpriced_kwh=0.0, meter_estimate=meter_figures,
                    to=_iso(start + 86400), **{"from": _iso(start)})
    return body


def _energy_buckets(conn: sqlite3.Connection, low: int, high: int) -> dict[int, list[float]]:
    """Energy per 5-minute bucket in [low, high): {bucket: [import Wh, export Wh, first minute, last minute]}.

    Every Amber interval (5 or 30 minutes) starts on a 5-minute boundary, so a bucket has one
    price; summing in SQL first keeps a day to at most 288 lookups.
    """
    out: dict[int, list[float]] = {}
    for bucket, imported, exported, first, last in conn.execute(
        "SELECT minute - minute % 300, TOTAL(import_wh), TOTAL(export_wh), MIN(minute), MAX(minute) FROM meter_minutes "
        "WHERE minute >= ? AND minute < ? AND (import_wh IS NOT NULL OR export_wh IS NOT NULL) GROUP BY 1",
        (low, high),
    ):
        out[bucket] = [imported, exported, first, last]
    for minute, *_power, imported, exported in packed_minutes(conn, low, high):
        if imported is None and exported is None:
            continue
        entry = out.setdefault(minute - minute % 300, [0.0, 0.0, minute, minute])
        entry[0] += imported or 0.0
        entry[1] += exported or 0.0
        entry[2], entry[3] = min(entry[2], minute), max(entry[3], minute)
    return out


def _price_steps(conn: sqlite3.Connection, sid: str | None, channel: str, low: int, high: int) -> dict[int, float]:
    """{5-minute bucket: per_kwh} for the cached intervals of `channel` overlapping [low, high)."""
    out: dict[int, float] = {}
    for start, end, per_kwh in conn.execute(
        "SELECT start, end, per_kwh FROM prices WHERE site_id = ? AND channel = ? AND start > ? AND start < ? "
        "AND end > ?",
        (sid, channel, low - MAX_INTERVAL_S, high, low),
    ):
        for bucket in range(start, end, 300):
            out[bucket] = per_kwh
    return out


def _amber_day(conn: sqlite3.Connection, sid: str | None, day: date) -> dict[str, Any] | None:
    """Amber's own import, export and cost for a whole day, or None until it has all of it."""
    rows = conn.execute("SELECT channel, kwh, cost_cents FROM daily_usage WHERE site_id = ? AND day = ?",
                        (sid, day.isoformat())).fetchall()
    if not rows:
        return None
    start = int(nem_day_start(day).timestamp())
    covered = conn.execute(  # bounded by start so the (site_id, start) index does the work
        "SELECT SUM(duration) FROM (SELECT DISTINCT start, duration FROM usage "
        "WHERE site_id = ? AND start >= ? AND start < ? AND day = ? AND channel = 'general')",
        (sid, start - 86400, start + 2 * 86400, day.isoformat()),
    ).fetchone()[0]
    if not covered or covered < 1440:
        return None
    imported = sum(r["kwh"] for r in rows if r["channel"] != "feedIn")
    exported = -sum(r["kwh"] for r in rows if r["channel"] == "feedIn")
    return {"import_kwh": round(imported, 3), "export_kwh": round(exported, 3),
            "cost_dollars": day_cents(sum(r["cost_cents"] for r in rows)) / 100}


def meter_warnings(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """`grid_sign_reversed`: importing for minutes on end while solar alone exceeds the house's
    load, which no correctly fitted meter can show (a clamp fitted the wrong way round)."""
    if not _meter_tables(conn):
        return []
    t = int(now.timestamp())
    low = t - t % 60 - REVERSED_WINDOW_MIN * 60
    rows = conn.execute(
        "SELECT grid_w, solar_w, battery_w, load_w FROM meter_minutes WHERE minute >= ? AND minute < ?",
        (low, t - t % 60 + 60),
    ).fetchall()
    impossible = [
        r for r in rows
        if r["grid_w"] is not None and r["solar_w"] is not None and r["load_w"] is not None
        and r["grid_w"] > REVERSED_MARGIN_W
        and r["solar_w"] + (r["battery_w"] or 0.0) > r["load_w"] + max(REVERSED_MARGIN_W, 0.1 * r["solar_w"])
    ]
    return ["grid_sign_reversed"] if len(impossible) >= REVERSED_WINDOW_MIN else []


def meter_health(conn: sqlite3.Connection, now: datetime, source: str | None, poll_seconds: int) -> dict[str, Any]:
    status = meter_status(conn, now, source, poll_seconds)
    return {"source": source, **status, "warnings": meter_warnings(conn, now) if source else []}
