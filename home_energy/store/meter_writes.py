"""What the meter collector writes: the latest reading, minute means and energy, its state.

The collector holds the writer lock only to open the cache; each poll is then its own short
transaction, so it never holds up a sync.

Rules it keeps:
- One poll is one transaction: the latest reading, the minute's means and energy, and the
  collector's state change together or not at all (the state is read inside it).
- A failed poll writes no reading: only the state (status, error, failure count) and, on a
  transition, one event row.
- Means are kept per minute as whole watts, computed from exact running sums (MinuteFold), so
  rounding never drifts; a quantity that is None in a reading is left out of its mean (never
  averaged in as 0), and a minute where it was always None stores NULL.
- Energy is stored per minute in whole Wh with the fraction carried to the next minute, so the
  minutes of a day add up to the meter's counters without rounding drift.
- Minutes older than two days are packed 60 to a row (meter_format), which keeps a year of
  them near 7 MB instead of ~14 MB.
"""
from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ..meter_format import FIELDS, pack_hour, packed_minutes
from ..models import Reading
from ..redact import scrub
from .cache import transaction

POWER_FIELDS = ("grid_w", "solar_w", "battery_w", "load_w")
EVENTS_KEPT_DAYS = 30
COMPACT_AFTER_S = 2 * 86400  # minutes stay a row each while today's and yesterday's figures use them


@dataclass(frozen=True)
class MinuteFold:
    """Running sums of one minute's readings: (sum, count) per power quantity."""

    minute: int
    samples: int
    sums: tuple[tuple[float, int], ...]  # in POWER_FIELDS order

    def add(self, reading: Reading) -> MinuteFold:
        sums = tuple(
            (total + value, count + 1) if value is not None else (total, count)
            for (total, count), value in zip(self.sums, (getattr(reading, f) for f in POWER_FIELDS), strict=True)
        )
        return MinuteFold(self.minute, self.samples + 1, sums)

    def means(self) -> tuple[float | None, ...]:
        return tuple(None if count == 0 else float(round(total / count)) for total, count in self.sums)


def open_minute(conn: sqlite3.Connection, minute: int) -> MinuteFold:
    """The fold to continue for `minute`: empty, or rebuilt from its row after a restart."""
    row = conn.execute(f"SELECT samples, {', '.join(POWER_FIELDS)} FROM meter_minutes WHERE minute = ?",
                       (minute,)).fetchone()
    if row is None:
        return MinuteFold(minute, 0, tuple((0.0, 0) for _ in POWER_FIELDS))
    n = row["samples"]
    return MinuteFold(minute, n, tuple((0.0, 0) if row[f] is None else (row[f] * n, n) for f in POWER_FIELDS))


@dataclass(frozen=True)
class CollectorState:
    """What the collector needs back after a restart."""

    status: str  # ok | failing | new
    failing_since: int | None
    failures: int
    counters_at: int | None
    import_wh: float | None
    export_wh: float | None
    carry_import_wh: float
    carry_export_wh: float


def load_state(conn: sqlite3.Connection, source: str) -> CollectorState:
    row = conn.execute("SELECT * FROM meter_state WHERE id = 1").fetchone()
    if row is None or row["source"] != source:
        # A different meter's counters are not a base for this one's deltas.
        return CollectorState("new", None, 0, None, None, None, 0.0, 0.0)
    return CollectorState(row["status"], row["failing_since"], row["failures"], row["counters_at"],
                          row["import_wh"], row["export_wh"], row["carry_import_wh"], row["carry_export_wh"])


def save_reading(conn: sqlite3.Connection, reading: Reading, fold: MinuteFold,
                 energy_wh: tuple[float, float] | None, events: Sequence[tuple[str, str]] = ()) -> None:
    """Write one good poll: latest, the minute's means (`fold` already holds this reading),
    energy (whole Wh, the fraction carried) and the state."""
    at = int(reading.at.timestamp())
    with transaction(conn):
        # The carried fractions are read inside the transaction that writes them back.
        state = load_state(conn, reading.source)
        carry_import, carry_export = state.carry_import_wh, state.carry_export_wh
        import_wh = export_wh = None
        if energy_wh is not None:
            carry_import += energy_wh[0]
            carry_export += energy_wh[1]
            import_wh, export_wh = math.floor(carry_import), math.floor(carry_export)
            carry_import -= import_wh
            carry_export -= export_wh
        conn.execute(
            "INSERT INTO meter_latest (id, source, at, grid_w, solar_w, battery_w, battery_soc_percent, load_w) "
            "VALUES (1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET source = excluded.source, "
            "at = excluded.at, grid_w = excluded.grid_w, solar_w = excluded.solar_w, battery_w = excluded.battery_w, "
            "battery_soc_percent = excluded.battery_soc_percent, load_w = excluded.load_w",
            (reading.source, at, reading.grid_w, reading.solar_w, reading.battery_w, reading.battery_soc_percent,
             reading.load_w),
        )
        conn.execute(
            f"INSERT INTO meter_minutes (minute, samples, {', '.join(POWER_FIELDS)}, import_wh, export_wh) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(minute) DO UPDATE SET samples = excluded.samples, "
            + ", ".join(f"{f} = excluded.{f}" for f in POWER_FIELDS) + ", "
            "import_wh = CASE WHEN excluded.import_wh IS NULL THEN meter_minutes.import_wh "
            "ELSE COALESCE(meter_minutes.import_wh, 0) + excluded.import_wh END, "
            "export_wh = CASE WHEN excluded.export_wh IS NULL THEN meter_minutes.export_wh "
            "ELSE COALESCE(meter_minutes.export_wh, 0) + excluded.export_wh END",
            (fold.minute, fold.samples, *fold.means(), import_wh, export_wh),
        )
        has_counters = reading.import_wh is not None and reading.export_wh is not None
        conn.execute(
            "INSERT INTO meter_state (id, source, status, failing_since, failures, last_error, last_ok_at, "
            "counters_at, import_wh, export_wh, carry_import_wh, carry_export_wh, updated_at) "
            "VALUES (1, ?, 'ok', NULL, 0, NULL, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "source = excluded.source, status = 'ok', failing_since = NULL, failures = 0, last_error = NULL, "
            "last_ok_at = excluded.last_ok_at, counters_at = excluded.counters_at, import_wh = excluded.import_wh, "
            "export_wh = excluded.export_wh, carry_import_wh = excluded.carry_import_wh, "
            "carry_export_wh = excluded.carry_export_wh, updated_at = excluded.updated_at",
            (reading.source, at,
             at if has_counters else state.counters_at,
             reading.import_wh if has_counters else state.import_wh,
             reading.export_wh if has_counters else state.export_wh,
             carry_import, carry_export, at),
        )
        for kind, message in events:
            conn.execute("INSERT INTO meter_events (at, source, kind, message) VALUES (?, ?, ?, ?)",
                         (at, reading.source, kind, message))


def record_fault(conn: sqlite3.Connection, source: str, at: int, error: str, starts_failing: bool) -> None:
    """A failed poll: nothing of it is written but the state, and an event when failing starts."""
    error = scrub(error)  # a device may echo its password in the words quoted here
    with transaction(conn):
        conn.execute(
            "INSERT INTO meter_state (id, source, status, failing_since, failures, last_error, updated_at) "
            "VALUES (1, ?, 'failing', ?, 1, ?, ?) ON CONFLICT(id) DO UPDATE SET status = 'failing', "
            "failing_since = COALESCE(meter_state.failing_since, excluded.failing_since), "
            "failures = meter_state.failures + 1, last_error = excluded.last_error, updated_at = excluded.updated_at",
            (source, at, error, at),
        )
        if starts_failing:
            conn.execute("INSERT INTO meter_events (at, source, kind, message) VALUES (?, ?, 'failing', ?)",
                         (at, source, error))


def compact_meter(conn: sqlite3.Connection, now: int) -> int:
    """Pack whole hours of minutes older than COMPACT_AFTER_S into meter_hours; returns hours packed."""
    cutoff = now - COMPACT_AFTER_S
    cutoff -= cutoff % 3600
    rows = conn.execute(f"SELECT minute, {', '.join(FIELDS)} FROM meter_minutes WHERE minute < ? ORDER BY minute",
                        (cutoff,)).fetchall()
    if not rows:
        return 0
    hours: dict[int, list[tuple]] = {}
    for row in rows:
        hours.setdefault(row[0] - row[0] % 3600, []).append(tuple(row))
    with transaction(conn):
        for hour, minutes in hours.items():
            packed = list(packed_minutes(conn, hour, hour + 3600))
            if packed:  # minutes that arrived late for an hour already packed
                kept = {m[0]: m for m in packed}
                kept.update({m[0]: m for m in minutes})
                minutes = [kept[k] for k in sorted(kept)]
            conn.execute("INSERT OR REPLACE INTO meter_hours (hour, minutes) VALUES (?, ?)",
                         (hour, pack_hour(hour, minutes)))
        conn.execute("DELETE FROM meter_minutes WHERE minute < ?", (cutoff,))
    return len(hours)


def prune_meter(conn: sqlite3.Connection, now: int, retention_days: int) -> int:
    """Pack old minutes by the hour, then drop what is older than RETENTION_DAYS (events: a month).

    Relative to the newest minute as well as the clock, so a clock far ahead never empties it.
    Returns the rows removed.
    """
    newest = conn.execute("SELECT MAX(minute) FROM meter_minutes").fetchone()[0] or now
    anchor = min(now, newest)
    compact_meter(conn, anchor)
    cutoff = anchor - retention_days * 86400
    with transaction(conn):
        removed = conn.execute("DELETE FROM meter_minutes WHERE minute < ?", (cutoff,)).rowcount
        removed += conn.execute("DELETE FROM meter_hours WHERE hour < ?", (cutoff - cutoff % 3600,)).rowcount
        removed += conn.execute("DELETE FROM meter_events WHERE at < ?",
                                (anchor - EVENTS_KEPT_DAYS * 86400,)).rowcount
    return removed
