"""Every read the web makes of the cache, as plain SQL returning JSON-ready structures.

Times leave here as ISO 8601 UTC with Z; prices stay in c/kWh with Amber's sign; money read
from usage is converted from cents to dollars exactly once, here, and named `_dollars`.
"""
from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .calc import Slot, age_seconds, cheapest_window, price_status
from .clock import NEM_TZ, nem_day_start, to_iso

CHEAPEST_HOURS = (1, 2, 3)
CHEAPEST_HORIZON_H = 24
MAX_USAGE_DAYS = 93
MAX_INTERVAL_S = 1800  # Amber's longest interval is 30 minutes

_INTERVAL_COLUMNS = (
    "start, end, duration, kind, per_kwh, spot_per_kwh, renewables, descriptor, spike_status, estimate, "
    "adv_low, adv_predicted, adv_high, tariff"
)


@lru_cache(maxsize=8192)
def _iso_at(epoch: int) -> str:
    return to_iso(datetime.fromtimestamp(epoch, timezone.utc))


def _iso(epoch: int | None) -> str | None:
    # Cached: a screen asks for the same few hundred interval times every 30 seconds.
    return None if epoch is None else _iso_at(epoch)


@lru_cache(maxsize=256)
def _tariff(text: str) -> dict[str, Any]:
    return json.loads(text)


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _int_meta(conn: sqlite3.Connection, key: str) -> int | None:
    value = _meta(conn, key)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def site_id(conn: sqlite3.Connection) -> str | None:
    return _meta(conn, "site_id")


def channels(conn: sqlite3.Connection) -> list[str]:
    raw = _meta(conn, "channels")
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


def health(conn: sqlite3.Connection, now: datetime, stale_after_s: int, mode: str, version: str) -> dict[str, Any]:
    t = now.timestamp()
    sid = site_id(conn)
    # Kept in meta by the sync: MAX() over a year of intervals would scan every row per request.
    newest_price = _int_meta(conn, f"prices_fetched_at:{sid}")
    newest_usage = _int_meta(conn, f"usage_newest_end:{sid}")
    last_ok = _int_meta(conn, "last_success_at")
    last = conn.execute(
        "SELECT finished_at, outcome, error FROM sync_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    price_age = age_seconds(t, newest_price)
    live = last is not None and last["outcome"] in ("ok", "partial") and t - last["finished_at"] <= stale_after_s
    return {
        "status": price_status(price_age, stale_after_s),
        "source": "live" if live else "cache",
        "mode": mode,
        "cache_age_seconds": age_seconds(t, last_ok),
        "price_age_seconds": price_age,
        "usage_age_seconds": age_seconds(t, newest_usage),
        "last_sync": None if last is None else {
            "at": _iso(last["finished_at"]), "outcome": last["outcome"], "error": last["error"],
        },
        "prices_cached_at": _iso(newest_price),
        "version": version,
    }


def current(conn: sqlite3.Connection, now: datetime) -> dict[str, Any]:
    t = int(now.timestamp())
    found = _intervals(conn, t, t + 1)
    return {"channels": {channel: interval_json(rows[0], t) for channel, rows in found.items()}}


def prices_cache_key(conn: sqlite3.Connection, now: datetime, hours: int) -> tuple[int | None, int, int]:
    """Two requests with the same key get the same answer: same fetch, same 5-minute bucket."""
    return _int_meta(conn, f"prices_fetched_at:{site_id(conn)}"), _bucket(now), hours


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
        day["cost_cents"] = round(day["cost_cents"] + row["cost_cents"], 4)
    for day in totals.values():
        day["cost_dollars"] = round(day["cost_cents"] / 100, 2)
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
    row = conn.execute(
        "SELECT SUM(cost_cents), COUNT(DISTINCT day) FROM daily_usage WHERE site_id = ? AND day BETWEEN ? AND ?",
        (sid, first, last),
    ).fetchone()
    if not row[1]:
        return None, 0
    return round(row[0] / 100, 2), row[1]


def summary_cache_key(conn: sqlite3.Connection, now: datetime) -> tuple[int | None, int | None, int]:
    sid = site_id(conn)
    return (_int_meta(conn, f"prices_fetched_at:{sid}"), _int_meta(conn, f"usage_newest_end:{sid}"),
            _bucket(now))


def summary(conn: sqlite3.Connection, now: datetime, monthly_budget: float | None) -> dict[str, Any]:
    sid = site_id(conn)
    t = _bucket(now)  # exact for the whole bucket: every boundary it depends on is on the 5-minute grid
    today = now.astimezone(NEM_TZ).date()
    yesterday = today - timedelta(days=1)
    month_start = today.replace(day=1)
    yesterday_cost, _ = _cost_dollars(conn, sid, yesterday.isoformat(), yesterday.isoformat())
    month_cost, month_days = (None, 0)
    if yesterday >= month_start:
        month_cost, month_days = _cost_dollars(conn, sid, month_start.isoformat(), yesterday.isoformat())
    newest_day = conn.execute("SELECT MAX(day) FROM daily_usage WHERE site_id = ?", (sid,)).fetchone()[0]

    day_start = int(nem_day_start(today).timestamp())
    renew = conn.execute(
        "SELECT SUM(renewables * duration) / SUM(duration) FROM prices WHERE site_id = ? AND channel = 'general' "
        "AND start >= ? AND start <= ?",
        (sid, day_start, t),
    ).fetchone()[0]
    now_row = conn.execute(
        "SELECT renewables, start FROM prices WHERE site_id = ? AND channel = 'general' AND start > ? AND start <= ? "
        "AND end > ?",
        (sid, t - MAX_INTERVAL_S, t, t),
    ).fetchone()

    horizon = t + CHEAPEST_HORIZON_H * 3600
    slots = [
        Slot(r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT start, end, per_kwh FROM prices WHERE site_id = ? AND channel = 'general' AND start > ? "
            "AND start < ? AND end > ? ORDER BY start",
            (sid, t - MAX_INTERVAL_S, horizon, t),
        )
    ]
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
        "month_to_date": {
            "from": month_start.isoformat(), "to": yesterday.isoformat(), "cost_dollars": month_cost,
            "days": month_days,
        },
        "usage_through": newest_day,
        "monthly_budget_dollars": monthly_budget,
        "renewables": {
            "now_percent": None if now_row is None else now_row["renewables"],
            "today_avg_percent": None if renew is None else round(renew, 2),
        },
        "cheapest": windows,
    }
