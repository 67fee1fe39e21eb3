"""Small builders for meter tests: prices and Amber usage rows written straight into a cache."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from home_energy import store
from home_energy.meter_format import FIELDS, MinuteRow, packed_minutes

SITE = "01METERSITE"


def seed_prices(conn: sqlite3.Connection, rows: list[tuple[str, datetime, int, float]]) -> None:
    """rows: (channel, start, minutes, per_kwh), Amber's sign (feed-in negative when paid)."""
    with store.transaction(conn):
        store.set_meta(conn, "site_id", SITE)
        store.set_meta(conn, "channels", json.dumps(["general", "feedIn"]))
        for channel, start, minutes, per_kwh in rows:
            t = int(start.timestamp())
            conn.execute(
                "INSERT OR REPLACE INTO prices (site_id, channel, start, end, duration, kind, per_kwh, spot_per_kwh, "
                "renewables, descriptor, spike_status, fetched_at) VALUES (?, ?, ?, ?, ?, 'actual', ?, 0, 40, "
                "'neutral', 'none', ?)",
                (SITE, channel, t, t + minutes * 60, minutes, per_kwh, t),
            )


def seed_amber_day(conn: sqlite3.Connection, day: str, day_start: datetime, general_kwh: float,
                   feed_in_kwh: float, cost_cents: float) -> None:
    """A whole NEM day of Amber usage: 48 half-hours of general, the daily roll-up, and the
    newest-usage mark the sync keeps (answers are cached on it)."""
    t0 = int(day_start.timestamp())
    with store.transaction(conn):
        for i in range(48):
            start = t0 + i * 1800
            conn.execute(
                "INSERT INTO usage (site_id, channel_identifier, channel, start, end, duration, day, kwh, cost_cents, "
                "per_kwh, quality, fetched_at) VALUES (?, 'E1', 'general', ?, ?, 30, ?, ?, 0, 30, 'billable', ?)",
                (SITE, start, start + 1800, day, general_kwh / 48, start),
            )
        conn.execute("INSERT INTO daily_usage VALUES (?, ?, 'general', ?, ?, 48)", (SITE, day, general_kwh, cost_cents))
        conn.execute("INSERT INTO daily_usage VALUES (?, ?, 'feedIn', ?, 0, 48)", (SITE, day, -feed_in_kwh))
        store.set_meta(conn, f"usage_newest_end:{SITE}", t0 + 86400)  # as the sync records it


def meter_minutes(conn: sqlite3.Connection, low: int, high: int) -> list[MinuteRow]:
    """Minute rows in [low, high) from both the recent table and the packed hours, in order."""
    rows = [tuple(r) for r in conn.execute(
        f"SELECT minute, {', '.join(FIELDS)} FROM meter_minutes WHERE minute >= ? AND minute < ?", (low, high))]
    rows.extend(packed_minutes(conn, low, high))
    return sorted(rows, key=lambda m: m[0])
