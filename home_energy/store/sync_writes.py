"""What a sync writes: its run record, sites, prices, usage and daily roll-ups, and pruning.

Rules it keeps:
- A run is recorded as `running` when it starts, with the mode it is configured for, so one that
  is killed shows as `interrupted` rather than leaving the previous `ok` in view, and health says
  what the sync is set up for even while every run fails.
- The first run configured for Amber removes everything the demo simulated (prices, usage, daily
  totals, sites and their bookkeeping) at its start, whether or not it then reaches Amber: a
  simulated number is never served as Amber's "last known". The meter's own readings are real
  and stay.
- A failed run changes no data: only its own record and the scheduling/rate-limit memory.
- A successful run's data, record and pruning are one transaction (`write_sync`).
- Pruning is measured from min(now, newest data), so a clock far ahead never empties the cache.
- Every answer is judged against what was asked for (`Asked`) before anything is written: a price
  interval beyond the slack around the window asked for, or a usage row outside its dates, makes
  the answer invalid data (exit 65) and nothing of it is written or deleted. Prices are replaced
  only inside the window asked for, so no answer can touch the history before it.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from .. import db
from ..clock import nem_day_start, now_utc
from ..errors import ClockDisagreesError, UpstreamDataError
from ..models import PriceRow, Site, UsageRow
from ..redact import scrub
from .cache import set_meta, transaction
from .plug_writes import prune_plug_log

SYNC_RUNS_KEPT_DAYS = 30
# Amber's clock and this machine's may disagree, by minutes, not days: a price answer may reach
# from a day before the window asked for to two days after it. Beyond that it answered something
# else (a date of 1970, of 9999, a stale answer from a cache) and is refused whole.
PRICE_SLACK_BEFORE_S = 24 * 3600
PRICE_SLACK_AFTER_S = 2 * 24 * 3600
# Amber's current interval further than this from this machine's now: one of the clocks is wrong.
CLOCK_SLACK_S = 24 * 3600


@dataclass(frozen=True)
class Asked:
    """What the sync asked Amber for: every answer is judged against it before it is written."""

    prices_from: int  # Unix s: the start of the first interval asked for
    prices_to: int  # Unix s: the end of the last interval asked for, every interval at its longest
    now: int = 0  # Unix s: when it was asked, by this machine's clock
    usage: tuple[tuple[date, date], ...] = ()  # the NEM dates of each /usage call, both ends included


def judge_prices(rows: Iterable[PriceRow], asked: Asked) -> None:
    """UpstreamDataError when an interval lies beyond the slack around the window asked for;
    ClockDisagreesError (exit 75) when even Amber's current interval does: then the clocks differ."""
    low, high = asked.prices_from - PRICE_SLACK_BEFORE_S, asked.prices_to + PRICE_SLACK_AFTER_S
    rows = list(rows)
    for row in rows:
        if row.kind == "current" and abs(row.start - asked.now) > CLOCK_SLACK_S:
            raise ClockDisagreesError(
                f"Amber's current interval starts at {_iso(row.start)}, but this machine's clock says "
                f"{_iso(asked.now)}: check the date and time of this machine; nothing was written")
    for row in rows:
        if row.start < low or row.end > high:
            raise UpstreamDataError(
                f"Amber's prices answer holds an interval at {_iso(row.start)}, outside the window asked for "
                f"({_iso(asked.prices_from)} to {_iso(asked.prices_to)}): nothing of it was written "
                "(if this machine's clock is wrong, set it right)")


def judge_usage(rows: Iterable[UsageRow], ranges: Iterable[tuple[date, date]]) -> None:
    """UpstreamDataError when a usage row lies outside every range of NEM dates asked for."""
    bounds = [(first.isoformat(), last.isoformat(), int(nem_day_start(first).timestamp()),
               int(nem_day_start(last + timedelta(days=1)).timestamp())) for first, last in ranges]
    for row in rows:
        if not any(first <= row.day <= last and start <= row.start and row.end <= end
                   for first, last, start, end in bounds):
            asked = ", ".join(f"{first} to {last}" for first, last, _s, _e in bounds) or "none"
            raise UpstreamDataError(
                f"Amber's usage answer holds an interval of {row.day[:10]} at {_iso(row.start)}, outside the "
                f"dates asked for ({asked}): nothing of it was written")


def judge(plan: SyncWrite) -> None:
    """Every row of the plan inside what was asked for, or UpstreamDataError (exit 65)."""
    judge_prices(plan.prices, plan.asked)
    if plan.usage:
        judge_usage(plan.usage, plan.asked.usage)


def _iso(stamp: int) -> str:
    try:
        return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%MZ")
    except (OverflowError, OSError, ValueError):
        return f"{stamp} s"


@dataclass(frozen=True)
class RunRecord:
    """How a run ended, as the runs table and health show it."""

    outcome: str
    error: str | None
    calls: int
    rate_limit_remaining: int | None = None
    rate_limit_reset_at: int | None = None
    problem: str | None = None  # the failure's code, from its class (errors.py); None when all went well


@dataclass(frozen=True)
class SyncWrite:
    """Everything one successful run writes, decided by the sync, written here in one transaction."""

    mode: str
    site: Site
    prices: list[PriceRow]
    asked: Asked  # what the sync asked for: judged first, and prices are replaced only inside it
    all_sites: list[Site] | None = None  # None: /sites was not called this run
    usage: list[UsageRow] | None = None  # None: /usage was not called (or failed) this run
    meta: dict[str, str | int | float | None] = field(default_factory=dict)  # scheduling state


# Bookkeeping that describes the cached Amber-side data; it goes with that data.
_DATA_META = ("site_id", "channels", "mode", "sites_fetched_at", "last_success_at")
_DATA_META_PREFIXES = ("prices_fetched_at:", "usage_")


def start_run(conn: sqlite3.Connection, mode: str) -> int:
    stamp = int(now_utc().timestamp())
    with transaction(conn):
        if mode != "demo" and db.get_meta(conn, "mode") == "demo":
            forget_simulated(conn)
        cursor = conn.execute(
            "INSERT INTO sync_runs (started_at, finished_at, outcome, rows_written, upstream_calls, mode) "
            "VALUES (?, ?, 'running', 0, 0, ?)",
            (stamp, stamp, mode),
        )
    if cursor.lastrowid is None:  # only when no row was inserted, which raises before here
        raise sqlite3.DatabaseError("the new sync run was given no id")
    return cursor.lastrowid


def record_failure(conn: sqlite3.Connection, run_id: int, record: RunRecord,
                   meta: dict[str, str | int | float | None] | None = None) -> None:
    """A failed run changes no data: only its own record and the scheduling/rate-limit memory."""
    with transaction(conn):
        _set_all_meta(conn, meta or {})
        _finish_run(conn, run_id, record, 0)


def write_sync(conn: sqlite3.Connection, run_id: int, plan: SyncWrite, record: RunRecord,
               retention_days: int, now: datetime) -> tuple[int, int]:
    """Write a run's data, its record and the pruning in one transaction; (rows written, pruned).

    The plan is judged first (`judge`): one row outside what was asked for and nothing is written.
    """
    judge(plan)
    stamp = int(now.timestamp())
    with transaction(conn):
        previous_mode = db.get_meta(conn, "mode")
        if previous_mode is not None and previous_mode != plan.mode:
            # From the demo to a real account: never mix simulated and real figures.
            for other in conn.execute("SELECT id FROM sites WHERE id != ?", (plan.site.id,)).fetchall():
                delete_site(conn, other[0])
        rows = 0
        if plan.all_sites is not None:
            rows += save_sites(conn, plan.all_sites, stamp)
        rows += save_prices(conn, plan.prices, stamp, within=(plan.asked.prices_from, plan.asked.prices_to))
        if plan.usage is not None:
            rows += save_usage(conn, plan.usage, stamp)
        _set_all_meta(conn, plan.meta)
        set_meta(conn, "site_id", plan.site.id)
        set_meta(conn, "mode", plan.mode)
        set_meta(conn, "channels", json.dumps(sorted({p.channel for p in plan.prices} | plan.site.channel_types)))
        pruned = prune(conn, retention_days, now)
        _finish_run(conn, run_id, record, rows)
        set_meta(conn, "last_success_at", int(now_utc().timestamp()))
    return rows, pruned


def forget_simulated(conn: sqlite3.Connection) -> None:
    """Remove what the demo wrote (every site's prices and usage: a cache whose data mode is `demo`
    holds nothing else), inside the caller's transaction."""
    for table in ("prices", "usage", "daily_usage", "sites"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute("DELETE FROM meta WHERE key IN ({})".format(", ".join("?" * len(_DATA_META))), _DATA_META)
    for prefix in _DATA_META_PREFIXES:
        conn.execute("DELETE FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))


def _set_all_meta(conn: sqlite3.Connection, meta: dict[str, str | int | float | None]) -> None:
    for key, value in meta.items():
        set_meta(conn, key, value)


def _finish_run(conn: sqlite3.Connection, run_id: int, record: RunRecord, rows: int) -> None:
    conn.execute(
        "UPDATE sync_runs SET finished_at = ?, outcome = ?, error = ?, rows_written = ?, upstream_calls = ?, "
        "rate_limit_remaining = ?, rate_limit_reset_at = ? WHERE id = ?",
        (int(now_utc().timestamp()), record.outcome, None if record.error is None else scrub(record.error), rows,
         record.calls, record.rate_limit_remaining,
         record.rate_limit_reset_at, run_id),
    )
    conn.execute("DELETE FROM sync_run_problems WHERE run_id = ?", (run_id,))
    if record.problem is not None:
        conn.execute("INSERT INTO sync_run_problems (run_id, problem) VALUES (?, ?)", (run_id, record.problem))


def delete_site(conn: sqlite3.Connection, site_id: str) -> None:
    for table, column in (("prices", "site_id"), ("usage", "site_id"), ("daily_usage", "site_id"), ("sites", "id")):
        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (site_id,))


def save_sites(conn: sqlite3.Connection, sites: Iterable[Site], fetched_at: int) -> int:
    written = 0
    for s in sites:
        conn.execute(
            """INSERT INTO sites (id, nmi, network, status, interval_length, channels, active_from, closed_on,
                 fetched_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET nmi=excluded.nmi, network=excluded.network, status=excluded.status,
                 interval_length=excluded.interval_length, channels=excluded.channels,
                 active_from=excluded.active_from, closed_on=excluded.closed_on, fetched_at=excluded.fetched_at""",
            (s.id, s.nmi, s.network, s.status, s.interval_length, json.dumps(s.channels), s.active_from,
             s.closed_on, fetched_at),
        )
        written += 1
    set_meta(conn, "sites_fetched_at", fetched_at)
    return written


def save_prices(conn: sqlite3.Connection, prices: Iterable[PriceRow], fetched_at: int,
                within: tuple[int, int] | None = None) -> int:
    """Replace, per channel, every cached price inside the span the response covers.

    A response is the whole truth for its span: a forecast Amber has since re-cut from 30- into
    5-minute intervals must not leave an overlapping 30-minute row behind. With `within` (the
    window the sync asked for), intervals of the answer outside it are left out, so the span
    replaced never reaches the history before the window, nor past its end.
    """
    by_channel: dict[tuple[str, str], list[PriceRow]] = {}
    for row in prices:
        if within is not None and not (within[0] <= row.start and row.end <= within[1]):
            continue
        by_channel.setdefault((row.site_id, row.channel), []).append(row)
    written = 0
    for (site_id, channel), rows in by_channel.items():
        low = min(r.start for r in rows)
        high = max(r.end for r in rows)
        conn.execute("DELETE FROM prices WHERE site_id = ? AND channel = ? AND start < ? AND end > ?",
                     (site_id, channel, high, low))
        conn.executemany(
            """INSERT OR REPLACE INTO prices (site_id, channel, start, end, duration, kind, per_kwh, spot_per_kwh,
                 renewables, descriptor, spike_status, estimate, adv_low, adv_predicted, adv_high, range_min,
                 range_max, tariff, fetched_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (r.site_id, r.channel, r.start, r.end, r.duration, r.kind, r.per_kwh, r.spot_per_kwh, r.renewables,
                 r.descriptor, r.spike_status, None if r.estimate is None else int(r.estimate), r.adv_low,
                 r.adv_predicted, r.adv_high, r.range_min, r.range_max, r.tariff, fetched_at)
                for r in rows
            ],
        )
        written += len(rows)
        set_meta(conn, f"prices_fetched_at:{site_id}", fetched_at)
    return written


def save_usage(conn: sqlite3.Connection, usage: Iterable[UsageRow], fetched_at: int) -> int:
    """Upsert usage intervals and recompute the daily roll-up of every day they touch."""
    rows = list(usage)
    conn.executemany(
        """INSERT INTO usage (site_id, channel_identifier, channel, start, end, duration, day, kwh, cost_cents,
             per_kwh, quality, fetched_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(site_id, channel_identifier, start) DO UPDATE SET channel=excluded.channel, end=excluded.end,
             duration=excluded.duration, day=excluded.day, kwh=excluded.kwh, cost_cents=excluded.cost_cents,
             per_kwh=excluded.per_kwh, quality=excluded.quality, fetched_at=excluded.fetched_at""",
        [
            (r.site_id, r.channel_identifier, r.channel, r.start, r.end, r.duration, r.day, r.kwh, r.cost_cents,
             r.per_kwh, r.quality, fetched_at)
            for r in rows
        ],
    )
    for site_id in {r.site_id for r in rows}:
        newest = max(r.end for r in rows if r.site_id == site_id)
        known = db.int_meta(conn, f"usage_newest_end:{site_id}")
        if known is None or newest > known:
            set_meta(conn, f"usage_newest_end:{site_id}", newest)
    for site_id, day in sorted({(r.site_id, r.day) for r in rows}):
        conn.execute("DELETE FROM daily_usage WHERE site_id = ? AND day = ?", (site_id, day))
        conn.execute(
            """INSERT INTO daily_usage (site_id, day, channel, kwh, cost_cents, intervals)
               SELECT site_id, day, channel, SUM(kwh), SUM(cost_cents), COUNT(*) FROM usage
               WHERE site_id = ? AND day = ? GROUP BY site_id, day, channel""",
            (site_id, day),
        )
    return len(rows)


def prune(conn: sqlite3.Connection, retention_days: int, now: datetime) -> int:
    """Delete interval rows older than the retention, measured from min(now, newest data), so a
    Pi that boots with a clock years ahead never empties its own cache."""
    newest = conn.execute("SELECT MAX(start) FROM prices").fetchone()[0]
    reference = int(now.timestamp())
    if newest is not None:
        reference = min(reference, int(newest))
    cutoff = reference - retention_days * 86400
    # `start <` lets SQLite walk the start indexes instead of every row; an interval ends at most
    # 30 minutes after it starts.
    removed = conn.execute("DELETE FROM prices WHERE start < ? AND end < ?", (cutoff, cutoff)).rowcount
    removed += conn.execute("DELETE FROM usage WHERE start < ? AND end < ?", (cutoff, cutoff)).rowcount
    conn.execute("DELETE FROM sync_runs WHERE started_at < ? AND outcome != 'running'",
                 (reference - SYNC_RUNS_KEPT_DAYS * 86400,))
    conn.execute("DELETE FROM sync_run_problems WHERE run_id NOT IN (SELECT id FROM sync_runs)")
    removed += prune_plug_log(conn, cutoff)
    return removed


def last_outcome(conn: sqlite3.Connection) -> str | None:
    return last_result(conn)[0]


def last_result(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
    """The newest finished run's outcome and problem code, or (None, None) before any."""
    row = conn.execute(
        "SELECT r.outcome, p.problem FROM sync_runs r LEFT JOIN sync_run_problems p ON p.run_id = r.id "
        "WHERE r.outcome != 'running' ORDER BY r.id DESC LIMIT 1").fetchone()
    return (None, None) if row is None else (row[0], row[1])


def holds_real_data(conn: sqlite3.Connection, demo_site_id: str) -> bool:
    """Whether the cache holds any site but the demo's (real Amber data, never to be mixed)."""
    return conn.execute("SELECT 1 FROM sites WHERE id != ? LIMIT 1", (demo_site_id,)).fetchone() is not None


def write_history(conn: sqlite3.Connection, site: Site, prices: list[PriceRow], usage: list[UsageRow],
                  meta: Mapping[str, str | int | float | None], fetched_at: int) -> int:
    """One simulated day for `seed-demo`, through the sync's own upserts, in one transaction."""
    with transaction(conn):
        written = save_prices(conn, prices, fetched_at) + save_usage(conn, usage, fetched_at)
        _set_all_meta(conn, {"site_id": site.id, "channels": json.dumps(sorted(site.channel_types)), **meta})
    return written


def cached_sites(conn: sqlite3.Connection) -> list[Site]:
    return [
        Site(r["id"], r["nmi"], r["network"], r["status"], r["interval_length"],
             tuple(tuple(c) for c in json.loads(r["channels"])), r["active_from"], r["closed_on"])
        for r in conn.execute("SELECT * FROM sites")
    ]
