"""Small builders for meter tests: prices and Amber usage written into a cache through the store."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from home_energy import store
from home_energy.meter_format import FIELDS, MinuteRow, packed_minutes
from home_energy.models import PriceRow, UsageRow

SITE = "01METERSITE"


def seed_prices(conn: sqlite3.Connection, rows: list[tuple[str, datetime, int, float]]) -> None:
    """rows: (channel, start, minutes, per_kwh), Amber's sign (feed-in negative when paid)."""
    prices = []
    for channel, start, minutes, per_kwh in rows:
        t = int(start.timestamp())
        prices.append(PriceRow(SITE, channel, t, t + minutes * 60, minutes, "actual", per_kwh, 0.0, 40.0, "neutral",
                               "none", None, None, None, None, None, None, None))
    with store.transaction(conn):
        store.set_meta(conn, "site_id", SITE)
        store.set_meta(conn, "channels", json.dumps(["general", "feedIn"]))
        for row in prices:  # one at a time: a call may add to what an earlier one seeded
            store.save_prices(conn, [row], row.start)


def seed_amber_day(conn: sqlite3.Connection, day: str, day_start: datetime, general_kwh: float,
                   feed_in_kwh: float, cost_cents: float) -> None:
    """A whole NEM day of Amber usage, as the sync saves it: 48 half-hours of general and of
    feed-in (exported energy is negative, as Amber sends it), rolled up per day by the store."""
    t0 = int(day_start.timestamp())
    usage = [
        UsageRow(SITE, identifier, channel, start, start + 1800, 30, day, kwh / 48, cents / 48, 30.0, "billable")
        for start in range(t0, t0 + 86400, 1800)
        for identifier, channel, kwh, cents in (("E1", "general", general_kwh, cost_cents),
                                                 ("B1", "feedIn", -feed_in_kwh, 0.0))
    ]
    with store.transaction(conn):
        store.save_usage(conn, usage, t0 + 86400)


def meter_minutes(conn: sqlite3.Connection, low: int, high: int) -> list[MinuteRow]:
    """Minute rows in [low, high) from both the recent table and the packed hours, in order."""
    rows = [tuple(r) for r in conn.execute(
        f"SELECT minute, {', '.join(FIELDS)} FROM meter_minutes WHERE minute >= ? AND minute < ?", (low, high))]
    rows.extend(packed_minutes(conn, low, high))
    return sorted(rows, key=lambda m: m[0])
