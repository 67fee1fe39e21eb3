"""The SQLite cache: schema, migrations, connections and every write.

Rules it keeps:
- WAL mode with a busy timeout, so the web's readers never block the one writer (the sync).
- The web opens the file read-only (`mode=ro`); only `writer()` connections may write, and each
  write is one transaction (`with transaction(conn):`), so a crash leaves the old or the new
  state, never half of one.
- Migrations are append-only and counted by `PRAGMA user_version`.
- Times are stored as integer Unix seconds (UTC); intervals are keyed on the boundary they start
  at (Amber's startTime is one second after it).
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import CacheBusyError, CacheUnreadableError

BUSY_TIMEOUT_MS = 5000  # a reader waits this long for a checkpoint; the sync commits in milliseconds

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE sites (
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
    CREATE TABLE prices (
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
        tariff TEXT,                     -- JSON tariffInformation or NULL
        fetched_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, channel, start)
    ) WITHOUT ROWID;
    CREATE INDEX prices_start ON prices (start);
    CREATE TABLE usage (
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
    CREATE INDEX usage_start ON usage (start);
    CREATE TABLE daily_usage (          -- roll-up kept beyond RETENTION_DAYS
        site_id TEXT NOT NULL,
        day TEXT NOT NULL,
        channel TEXT NOT NULL,
        kwh REAL NOT NULL,
        cost_cents REAL NOT NULL,
        intervals INTEGER NOT NULL,
        PRIMARY KEY (site_id, day, channel)
    ) WITHOUT ROWID;
    CREATE TABLE sync_runs (
        id INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,           -- ok | partial | skipped | tempfail | dataerror | configerror
        error TEXT,
        rows_written INTEGER NOT NULL,
        upstream_calls INTEGER NOT NULL,
        rate_limit_remaining INTEGER,
        rate_limit_reset_at INTEGER,
        mode TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: usage read by site and time (the web's /api/usage); the bare start index made SQLite
    # scan a site's whole history instead
    """
    DROP INDEX usage_start;
    CREATE INDEX usage_site_start ON usage (site_id, start);
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


def _configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def connect_writer(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the cache for writing and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    _configure(conn)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _translate(exc, path) from exc
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open the cache read-only for the web; never creates or changes the file."""
    if not path.exists():
        raise CacheUnreadableError(f"cache {path} does not exist yet: run `home-energy sync`")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        _configure(conn)
        conn.execute("PRAGMA query_only = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, path) from exc
    if version == 0:
        conn.close()
        raise CacheUnreadableError(f"cache {path} has no schema yet: run `home-energy sync`")
    return conn


def _translate(exc: sqlite3.DatabaseError, path: Path) -> Exception:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return CacheBusyError(f"cache {path} is busy: {text}")
    return CacheUnreadableError(f"cache {path} cannot be read: {text}")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file has not seen yet, each in its own transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise CacheUnreadableError(
            f"cache schema {current} is newer than this program ({SCHEMA_VERSION}): update home-energy"
        )
    for number in range(current + 1, SCHEMA_VERSION + 1):
        with transaction(conn):
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit behind our back)."""
    parts, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line.split("--", 1)[0] + ("\n" if "--" in line else "")
        if sqlite3.complete_statement(buffer):
            parts.append(buffer.strip())
            buffer = ""
    return [p for p in parts if p]


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


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: str | int | float | None) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )


def check_integrity(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA quick_check").fetchone()[0]
