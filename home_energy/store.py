"""The one writer of the cache: migrations, every INSERT/UPDATE/DELETE, pruning, damaged files.

Rules it keeps:
- Whoever writes holds the writer lock (`cache.sqlite.lock`, an advisory flock) for as long as
  it writes: the sync for its whole run, `init-db` and `seed-demo` too. Migrations run only
  under it, inside BEGIN IMMEDIATE, and re-read `user_version` there, so two processes started
  together can never both apply the same migration; every migration is also safe to run twice.
- Each write is one transaction (`with transaction(conn):`), so a crash leaves the old or the new
  state, never half of one. A run is recorded as `running` when it starts, so one that is killed
  shows as `interrupted` rather than leaving the previous `ok` in view.
- A file is moved aside only when SQLite itself says it is damaged (SQLITE_CORRUPT,
  SQLITE_NOTADB) or it fails its integrity check; never for busy, locked, I/O or permission
  errors. At most `ASIDE_KEPT` damaged files are kept. The integrity check runs at most daily,
  and after a run was interrupted.
- Migrations are append-only and counted by `PRAGMA user_version`.
The web never imports this module.

What the meter collector writes (it holds the lock only to open the cache, then each poll is
its own short transaction, so it never holds up a sync):
Rules it keeps:
- One poll is one transaction: the latest reading, the minute's means and energy, and the
  collector's state change together or not at all.
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

import fcntl
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import db
from .clock import now_utc
from .errors import (
    CacheBusyError,
    CacheCorruptError,
    CacheSchemaError,
    CacheTooNewError,
    HomeEnergyError,
)
from .meter_format import FIELDS, pack_hour, unpack_hour
from .models import PriceRow, Site, UsageRow
from .sources.base import Reading

log = logging.getLogger(__name__)

LOCK_WAIT_S = 10.0  # a second writer waits this long, then exits 75 and the next timer tick retries
ASIDE_KEPT = 3  # damaged files kept for inspection; older ones are deleted
INTEGRITY_EVERY_S = 24 * 3600  # quick_check costs 70-400 ms at a year of data: daily is enough
SYNC_RUNS_KEPT_DAYS = 30
INTERRUPTED = "the previous sync stopped before it finished (killed, or the power went)"

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE IF NOT EXISTS sites (
        id TEXT PRIMARY KEY,
        nmi TEXT NOT NULL,
        network TEXT NOT NULL,
        status TEXT NOT NULL,
        interval_length INTEGER NOT NULL,
        channels TEXT NOT NULL,          -- JSON list of {identifier, type, tariff}
        active_from TEXT,
        closed_on TEXT,
        fetched_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS prices (
        site_id TEXT NOT NULL,
        channel TEXT NOT NULL,           -- general | controlledLoad | feedIn
        start INTEGER NOT NULL,          -- interval boundary, Unix seconds UTC
        end INTEGER NOT NULL,
        duration INTEGER NOT NULL,       -- minutes: 5, 15 or 30
        kind TEXT NOT NULL,              -- actual | current | forecast
        per_kwh REAL NOT NULL,           -- c/kWh incl. GST, Amber's sign (feed-in negative = paid)
        spot_per_kwh REAL NOT NULL,
        renewables REAL NOT NULL,
        descriptor TEXT NOT NULL,
        spike_status TEXT NOT NULL,
        estimate INTEGER,                -- only for the current interval
        adv_low REAL, adv_predicted REAL, adv_high REAL,
        range_min REAL, range_max REAL,
        tariff TEXT,                     -- JSON tariffInformation (the schema's keys only) or NULL
        fetched_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, channel, start)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS prices_start ON prices (start);
    CREATE TABLE IF NOT EXISTS usage (
        site_id TEXT NOT NULL,
        channel_identifier TEXT NOT NULL,  -- meter channel, e.g. E1, B1
        channel TEXT NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        duration INTEGER NOT NULL,
        day TEXT NOT NULL,               -- NEM date of the interval (Amber's `date`)
        kwh REAL NOT NULL,               -- negative for generation
        cost_cents REAL NOT NULL,        -- Amber's `cost`: cents incl. GST
        per_kwh REAL NOT NULL,
        quality TEXT NOT NULL,
        fetched_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, channel_identifier, start)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS usage_start ON usage (start);
    CREATE TABLE IF NOT EXISTS daily_usage (          -- roll-up kept beyond RETENTION_DAYS
        site_id TEXT NOT NULL,
        day TEXT NOT NULL,
        channel TEXT NOT NULL,
        kwh REAL NOT NULL,
        cost_cents REAL NOT NULL,
        intervals INTEGER NOT NULL,
        PRIMARY KEY (site_id, day, channel)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS sync_runs (
        id INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,    -- equals started_at while the run is `running`
        outcome TEXT NOT NULL,           -- running | ok | partial | tempfail | dataerror | configerror | interrupted
        error TEXT,
        rows_written INTEGER NOT NULL,
        upstream_calls INTEGER NOT NULL,
        rate_limit_remaining INTEGER,
        rate_limit_reset_at INTEGER,
        mode TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: usage read by site and time (the web's /api/usage); the bare start index made SQLite
    # scan a site's whole history instead
    """
    DROP INDEX IF EXISTS usage_start;
    CREATE INDEX IF NOT EXISTS usage_site_start ON usage (site_id, start);
    """,
    # 3: a meter on the home network (sources/, the collector): the latest reading, 1-minute
    # means and energy (recent ones a row each, older ones packed by the hour), the collector's
    # state and its transitions
    """
    CREATE TABLE IF NOT EXISTS meter_latest (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        source TEXT NOT NULL,            -- fronius | shelly
        at INTEGER NOT NULL,             -- when it was read, Unix seconds UTC
        grid_w REAL,                     -- + import, - export; NULL = unknown
        solar_w REAL,
        battery_w REAL,                  -- + discharge, - charge
        battery_soc_percent REAL,
        load_w REAL
    );
    CREATE TABLE IF NOT EXISTS meter_minutes (
        minute INTEGER PRIMARY KEY,      -- start of the minute, Unix seconds UTC
        samples INTEGER NOT NULL,
        grid_w REAL,                     -- means over the minute's readings, whole W
        solar_w REAL,
        battery_w REAL,
        load_w REAL,
        import_wh REAL,                  -- energy in whole Wh, the fraction carried to the next minute
        export_wh REAL
    );
    CREATE TABLE IF NOT EXISTS meter_hours (  -- minutes older than two days, 60 to a row
        hour INTEGER PRIMARY KEY,        -- start of the hour, Unix seconds UTC
        minutes BLOB NOT NULL            -- packed by meter_format.pack_hour
    );
    CREATE TABLE IF NOT EXISTS meter_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        source TEXT NOT NULL,
        status TEXT NOT NULL,            -- ok | failing
        failing_since INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_ok_at INTEGER,
        counters_at INTEGER,             -- the last counter values read, for the next delta
        import_wh REAL,
        export_wh REAL,
        carry_import_wh REAL NOT NULL DEFAULT 0,
        carry_export_wh REAL NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS meter_events (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,              -- failing | recovered | counter_reset | counter_jump | counter_gap
        message TEXT
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = ("sites", "prices", "usage", "daily_usage", "sync_runs", "meta",
          "meter_latest", "meter_minutes", "meter_hours", "meter_state", "meter_events")


# -- the lock, opening, migrating ------------------------------------------------------------

@contextmanager
def writer_lock(path: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold the cache's writer lock; after `wait_s` of waiting, CacheBusyError (exit 75)."""
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise db.cache_error(exc, path) from exc
    try:
        deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CacheBusyError(f"another writer is still using {path} (lock {lock.name}): "
                                         "try again later") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def open_cache(path: Path) -> sqlite3.Connection:
    """Open the cache for writing (the caller holds `writer_lock`), migrated and checked.

    A file SQLite calls damaged is moved aside and a new cache started; every other failure
    raises a one-line error that leaves the file as it was.
    """
    try:
        return _open_checked(path)
    except CacheCorruptError as exc:
        move_aside(path, str(exc))
        return _open_checked(path)


def _open_checked(path: Path) -> sqlite3.Connection:
    conn = _connect(path)
    try:
        interrupted = conn.execute("SELECT COUNT(*) FROM sync_runs WHERE outcome = 'running'").fetchone()[0]
        if interrupted:
            with transaction(conn):
                conn.execute("UPDATE sync_runs SET outcome = 'interrupted', error = ? WHERE outcome = 'running'",
                             (INTERRUPTED,))
        _check_integrity_if_due(conn, path, force=bool(interrupted))
    except sqlite3.Error as exc:
        conn.close()
        raise db.cache_error(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise db.cache_error(exc, path) from exc
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=db.BUSY_TIMEOUT_MS / 1000)
        db.configure(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
        migrate(conn, path)
        missing = _missing_tables(conn)
    except (sqlite3.Error, HomeEnergyError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, HomeEnergyError):
            raise
        raise db.cache_error(exc, path) from exc
    if missing:
        conn.close()
        # SQLite sees nothing wrong, so the file is not thrown away: a person decides.
        raise CacheSchemaError(
            f"cache {path} is at schema {SCHEMA_VERSION} but has no {', '.join(missing)} table: "
            "something else changed it; move it aside to start a new cache"
        )
    return conn


def migrate(conn: sqlite3.Connection, path: Path | str = "cache") -> int:
    """Apply the migrations this file has not seen yet, one transaction each.

    `user_version` is read inside BEGIN IMMEDIATE: a version read before it may already be stale
    when another process migrated in between.
    """
    while True:
        with transaction(conn):
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise CacheTooNewError(f"cache {path} has schema {current}, newer than this program's "
                                       f"{SCHEMA_VERSION}: update home-energy")
            if current == SCHEMA_VERSION:
                return current
            for statement in _statements(MIGRATIONS[current]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit behind our back)."""
    parts, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line.split("--", 1)[0] + ("\n" if "--" in line else "")
        if sqlite3.complete_statement(buffer):
            parts.append(buffer.strip())
            buffer = ""
    return [p for p in parts if p]


def _missing_tables(conn: sqlite3.Connection) -> list[str]:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in TABLES if t not in present]


def _check_integrity_if_due(conn: sqlite3.Connection, path: Path, force: bool) -> None:
    now = int(now_utc().timestamp())
    last = db.int_meta(conn, "integrity_checked_at")
    # 0 <= age: a stamp from a clock that ran ahead must not postpone the check for years.
    if not force and last is not None and 0 <= now - last < INTEGRITY_EVERY_S:
        return
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise CacheCorruptError(f"cache {path} failed its integrity check: {result.splitlines()[0][:200]}")
    with transaction(conn):
        set_meta(conn, "integrity_checked_at", now)


def move_aside(path: Path, problem: str) -> Path:
    """Rename a damaged cache (and its -wal/-shm) to `<name>.corrupt-<UTC stamp>`; keep the newest few."""
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            source.rename(Path(str(aside) + suffix))
    older = sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm")))
    for old in older[:-ASIDE_KEPT]:
        for suffix in ("", "-wal", "-shm"):
            Path(str(old) + suffix).unlink(missing_ok=True)
    log.error("%s: moved it aside as %s and started a new cache", problem, aside.name)
    return aside


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception: all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # SQLite has already rolled back by itself after some errors (SQLITE_FULL among them);
        # a second ROLLBACK would then hide the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def set_meta(conn: sqlite3.Connection, key: str, value: str | int | float | None) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )


# -- what a sync writes ----------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    """How a run ended, as the runs table and health show it."""

    outcome: str
    error: str | None
    calls: int
    rate_limit_remaining: int | None = None
    rate_limit_reset_at: int | None = None


@dataclass(frozen=True)
class SyncWrite:
    """Everything one successful run writes, decided by the sync, written here in one transaction."""

    mode: str
    site: Site
    prices: list[PriceRow]
    all_sites: list[Site] | None = None  # None: /sites was not called this run
    usage: list[UsageRow] | None = None  # None: /usage was not called (or failed) this run
    meta: dict[str, str | int | float | None] = field(default_factory=dict)  # scheduling state


def start_run(conn: sqlite3.Connection, mode: str) -> int:
    stamp = int(now_utc().timestamp())
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO sync_runs (started_at, finished_at, outcome, rows_written, upstream_calls, mode) "
            "VALUES (?, ?, 'running', 0, 0, ?)",
            (stamp, stamp, mode),
        )
    return int(cursor.lastrowid)


def record_failure(conn: sqlite3.Connection, run_id: int, record: RunRecord,
                   meta: dict[str, str | int | float | None] | None = None) -> None:
    """A failed run changes no data: only its own record and the scheduling/rate-limit memory."""
    with transaction(conn):
        _set_all_meta(conn, meta or {})
        _finish_run(conn, run_id, record, 0)


def write_sync(conn: sqlite3.Connection, run_id: int, plan: SyncWrite, record: RunRecord,
               retention_days: int, now: datetime) -> tuple[int, int]:
    """Write a run's data, its record and the pruning in one transaction; (rows written, pruned)."""
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
        rows += save_prices(conn, plan.prices, stamp)
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


def _set_all_meta(conn: sqlite3.Connection, meta: dict[str, str | int | float | None]) -> None:
    for key, value in meta.items():
        set_meta(conn, key, value)


def _finish_run(conn: sqlite3.Connection, run_id: int, record: RunRecord, rows: int) -> None:
    conn.execute(
        "UPDATE sync_runs SET finished_at = ?, outcome = ?, error = ?, rows_written = ?, upstream_calls = ?, "
        "rate_limit_remaining = ?, rate_limit_reset_at = ? WHERE id = ?",
        (int(now_utc().timestamp()), record.outcome, record.error, rows, record.calls, record.rate_limit_remaining,
         record.rate_limit_reset_at, run_id),
    )


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


def save_prices(conn: sqlite3.Connection, prices: Iterable[PriceRow], fetched_at: int) -> int:
    """Replace, per channel, every cached price inside the span the response covers.

    A response is the whole truth for its span: a forecast Amber has since re-cut from 30- into
    5-minute intervals must not leave an overlapping 30-minute row behind.
    """
    by_channel: dict[tuple[str, str], list[PriceRow]] = {}
    for row in prices:
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
    return removed


def last_outcome(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT outcome FROM sync_runs WHERE outcome != 'running' ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row[0]


def cached_sites(conn: sqlite3.Connection) -> list[Site]:
    return [
        Site(r["id"], r["nmi"], r["network"], r["status"], r["interval_length"],
             tuple(tuple(c) for c in json.loads(r["channels"])), r["active_from"], r["closed_on"])
        for r in conn.execute("SELECT * FROM sites")
    ]


def init_cache(path: Path) -> None:
    """`home-energy init-db`: create or migrate the cache under the writer lock."""
    with writer_lock(path):
        open_cache(path).close()


def open_writer(path: Path) -> sqlite3.Connection:
    """A connection for a long-running writer (the meter collector): opened and migrated under
    the writer lock, then each of its writes is a short transaction of its own."""
    with writer_lock(path):
        return open_cache(path)


# -- what the meter collector writes ---------------------------------------------------------

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
                 energy_wh: tuple[float, float] | None, events: list[tuple[str, str]] = ()) -> None:
    """Write one good poll: latest, the minute's means (`fold` already holds this reading),
    energy (whole Wh, the fraction carried) and the state."""
    at = int(reading.at.timestamp())
    state = load_state(conn, reading.source)
    carry_import, carry_export = state.carry_import_wh, state.carry_export_wh
    import_wh = export_wh = None
    if energy_wh is not None:
        carry_import += energy_wh[0]
        carry_export += energy_wh[1]
        import_wh, export_wh = math.floor(carry_import), math.floor(carry_export)
        carry_import -= import_wh
        carry_export -= export_wh
    with transaction(conn):
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
            old = conn.execute("SELECT minutes FROM meter_hours WHERE hour = ?", (hour,)).fetchone()
            if old is not None:  # minutes that arrived late for an hour already packed
                kept = {m[0]: m for m in unpack_hour(hour, old[0])}
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
