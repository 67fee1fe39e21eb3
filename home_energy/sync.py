"""The sync: the only writer of the cache. One run fetches, validates, then writes in one transaction.

Order of a run:
1. take the sync lock (a second sync waits briefly, then exits 75);
2. refuse to call Amber before a remembered rate-limit block ends (429s carry no Retry-After);
3. fetch: /sites at most daily, /prices/current every run, /usage at most hourly plus a
   backfill of up to 90 days in 7-day chunks spread over runs to stay inside the quota;
4. validate every payload against Amber's schema; a bad one is rejected whole;
5. in ONE transaction: replace the prices each response covers, upsert usage, roll usage up per
   day, remember rate-limit state, record the run, prune old rows.
A failure in step 3/4 of the price call writes nothing but the run record. A failure of the
optional usage/sites calls after good prices keeps the prices and records outcome `partial`.

Pruning is relative to the newest data as well as the wall clock, so a Pi that boots with a
clock years ahead never empties its own cache.
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Protocol

from . import db
from .amber import AmberClient, RateLimit
from .clock import NEM_TZ, monotonic, nem_day_start, now_utc
from .config import Config
from .demo import DEMO_SITE_ID, DemoUpstream
from .errors import (
    EX_CONFIG,
    EX_DATAERR,
    EX_TEMPFAIL,
    CacheBusyError,
    ConfigError,
    HomeEnergyError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamDataError,
    UpstreamError,
)
from .models import PriceRow, Site, UsageRow, price_from_payload, site_from_payload, usage_from_payload
from .schema import validate_payload

log = logging.getLogger(__name__)

SITES_EVERY_S = 24 * 3600
USAGE_EVERY_S = 3600
USAGE_RECENT_DAYS = 3  # re-read the last few days: Amber revises estimated reads into billable ones
USAGE_HISTORY_DAYS = 90  # Amber keeps about 90 days of usage
USAGE_CHUNK_DAYS = 7  # /usage rejects longer ranges with 422
BACKFILL_CHUNKS_PER_RUN = 3  # 13 chunks for 90 days: done within 5 runs, at most 5 calls a run
RATE_LIMIT_RESERVE = 10  # never spend the quota's last calls on optional work: prices come first
FORECAST_HORIZON_H = 24
RUN_BUDGET_S = 40.0  # optional calls stop once a run has taken this long; worst case stays < 60 s
LOCK_WAIT_S = 10.0
MAX_BLOCK_S = 2 * 300  # a remembered 429 block longer than this came from a clock that was wrong
SYNC_RUNS_KEPT_DAYS = 30


class Upstream(Protocol):
    calls: int
    rate_limit: RateLimit | None

    def sites(self) -> Any: ...
    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any: ...
    def usage(self, site_id: str, start: date, end: date) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SyncReport:
    outcome: str
    exit_code: int
    rows_written: int
    upstream_calls: int
    error: str | None = None
    pruned: int = 0


@dataclass
class _Fetched:
    site: Site | None = None
    all_sites: list[Site] = field(default_factory=list)
    sites_fetched: bool = False
    prices: list[PriceRow] = field(default_factory=list)
    usage: list[UsageRow] = field(default_factory=list)
    usage_fetched: bool = False
    backfill_oldest: date | None = None
    optional_error: HomeEnergyError | None = None


def make_upstream(config: Config) -> Upstream:
    if config.amber_token:
        return AmberClient(config.amber_api_url, config.amber_token)
    return DemoUpstream()


def price_window(now: datetime, resolution: int) -> tuple[int, int]:
    """(previous, next) so one /prices/current call holds today's actuals and >= 24 h ahead.

    On a 5-minute site the far forecasts are 30-minute ones, so counting every forecast as 5
    minutes over-covers the horizon rather than falling short of it.
    """
    day_start = nem_day_start(now.astimezone(NEM_TZ).date())
    elapsed_min = (now - day_start).total_seconds() / 60
    previous = math.ceil(elapsed_min / resolution) + 1
    next_ = FORECAST_HORIZON_H * 60 // resolution
    return previous, next_


class _SyncLock:
    """An advisory flock beside the database: two syncs never interleave their fetch and write."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")

    def __enter__(self) -> _SyncLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise CacheBusyError(f"another sync is still running (lock {self.path}): try again later")
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def run_sync(config: Config, upstream: Upstream | None = None) -> SyncReport:
    """One sync run; never raises for upstream or data problems, it reports them."""
    with _SyncLock(config.sqlite_path):
        conn = open_cache_for_sync(config.sqlite_path)
        own_upstream = upstream is None
        upstream = upstream or make_upstream(config)
        try:
            return _run(conn, config, upstream)
        finally:
            if own_upstream:
                upstream.close()
            conn.close()


def open_cache_for_sync(path: Path) -> sqlite3.Connection:
    """Open the cache; a corrupt file is moved aside (kept for inspection) and rebuilt."""
    try:
        conn = db.connect_writer(path)
        if db.check_integrity(conn) == "ok":
            return conn
        conn.close()
        problem = "failed its integrity check"
    except CacheBusyError:
        raise
    except HomeEnergyError as exc:
        if "newer than this program" in str(exc):
            raise
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            source.rename(Path(str(aside) + suffix))
    log.error("cache %s %s: moved it to %s and started a new cache", path, problem, aside)
    return db.connect_writer(path)


def _run(conn: sqlite3.Connection, config: Config, upstream: Upstream) -> SyncReport:
    started = now_utc()
    t0 = monotonic()
    previous_outcome = _last_outcome(conn)
    blocked_until = _float(db.get_meta(conn, "rate_limit_blocked_until"))
    if blocked_until and started.timestamp() < blocked_until <= started.timestamp() + MAX_BLOCK_S:
        wait = int(blocked_until - started.timestamp())
        error = f"rate-limited by Amber: no calls for another {wait} s"
        _record_failure(conn, config, started, "tempfail", error, 0, upstream.rate_limit, None)
        _log_failure(previous_outcome, error)
        return SyncReport("tempfail", EX_TEMPFAIL, 0, 0, error)

    fetched = _Fetched()
    try:
        fetched.site = _resolve_site(conn, config, upstream, fetched, started)
        _fetch_prices(upstream, fetched, started)
        _fetch_usage(conn, config, upstream, fetched, started, t0)
    except HomeEnergyError as exc:
        outcome, code = _classify(exc)
        retry_at = exc.retry_at_epoch if isinstance(exc, RateLimitedError) else None
        _record_failure(conn, config, started, outcome, str(exc), upstream.calls, upstream.rate_limit, retry_at)
        _log_failure(previous_outcome, str(exc))
        return SyncReport(outcome, code, 0, upstream.calls, str(exc))

    optional = fetched.optional_error
    outcome = "partial" if optional else "ok"
    try:
        with db.transaction(conn):
            rows = _write(conn, config, fetched, started)
            retry_at = optional.retry_at_epoch if isinstance(optional, RateLimitedError) else None
            _remember_rate_limit(conn, upstream.rate_limit, retry_at)
            pruned = prune(conn, config.retention_days, started)
            _insert_run(conn, config, started, outcome, str(optional) if optional else None, rows, upstream.calls,
                        upstream.rate_limit)
            db.set_meta(conn, "last_success_at", int(now_utc().timestamp()))
    except sqlite3.OperationalError as exc:
        # Disk full, I/O error: the transaction is rolled back whole and the old data still served.
        error = f"cannot write the cache {config.sqlite_path}: {exc}"
        if "full" in str(exc):
            error += ": free space on its disk"
        _log_failure(previous_outcome, error)
        return SyncReport("tempfail", EX_TEMPFAIL, 0, upstream.calls, error)
    if previous_outcome not in (None, "ok", "partial"):
        log.info("sync recovered: %d rows written", rows)
    if optional:
        log.warning("sync kept new prices but skipped usage: %s", optional)
    return SyncReport(outcome, 0, rows, upstream.calls, str(optional) if optional else None, pruned)


def _convert(endpoint: str, convert, items: list[dict[str, Any]]) -> list:
    """Build records from validated items; a value the schema admits but Python cannot read
    (say a leap second) rejects the whole payload like any other invalid data."""
    out = []
    for index, item in enumerate(items):
        try:
            out.append(convert(item))
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamDataError(f"Amber {endpoint} response rejected: [{index}]: {exc}") from exc
    return out


def _classify(exc: HomeEnergyError) -> tuple[str, int]:
    if isinstance(exc, (UpstreamAuthError, ConfigError)):
        return "configerror", EX_CONFIG
    if isinstance(exc, UpstreamDataError):
        return "dataerror", EX_DATAERR
    return "tempfail", EX_TEMPFAIL


def _log_failure(previous_outcome: str | None, error: str) -> None:
    # Home Assistant's coordinator habit: say it loudly when it starts failing, quietly after.
    if previous_outcome in (None, "ok", "partial"):
        log.error("sync failed: %s", error)
    else:
        log.info("sync still failing: %s", error)


def _last_outcome(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT outcome FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row[0]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _resolve_site(conn: sqlite3.Connection, config: Config, upstream: Upstream, fetched: _Fetched,
                  now: datetime) -> Site:
    if config.mode == "demo" and conn.execute("SELECT 1 FROM sites WHERE id != ?", (DEMO_SITE_ID,)).fetchone():
        raise ConfigError(
            f"AMBER_TOKEN is not set but {config.sqlite_path} holds real Amber data: set the token, "
            "or point SQLITE_PATH elsewhere for the demo"
        )
    cached = _cached_sites(conn, config)
    last = _float(db.get_meta(conn, "sites_fetched_at")) or 0
    mode_changed = db.get_meta(conn, "mode") not in (None, config.mode)
    # 0 <= age: a stamp from a clock that ran ahead must not postpone the next fetch for years.
    if cached and not mode_changed and 0 <= now.timestamp() - last < SITES_EVERY_S:
        sites = cached
    else:
        sites = _convert("sites", site_from_payload, validate_payload("sites", upstream.sites()))
        fetched.sites_fetched = True
    fetched.all_sites = sites
    if config.amber_site_id:
        chosen = [s for s in sites if s.id == config.amber_site_id]
        if not chosen:
            known = ", ".join(f"{s.id} ({s.status})" for s in sites) or "none"
            raise ConfigError(f"AMBER_SITE_ID {config.amber_site_id} is not one of this account's sites: {known}")
        return chosen[0]
    active = [s for s in sites if s.status == "active"]
    if len(active) != 1:
        listed = ", ".join(f"{s.id} (NMI {s.nmi})" for s in active) or "none"
        raise ConfigError(f"set AMBER_SITE_ID: this account has {len(active)} active sites: {listed}")
    return active[0]


def _cached_sites(conn: sqlite3.Connection, config: Config) -> list[Site]:
    rows = conn.execute("SELECT * FROM sites").fetchall()
    sites = [
        Site(r["id"], r["nmi"], r["network"], r["status"], r["interval_length"],
             tuple(tuple(c) for c in json.loads(r["channels"])), r["active_from"], r["closed_on"])
        for r in rows
    ]
    is_demo = config.mode == "demo"
    return [s for s in sites if (s.id == DEMO_SITE_ID) == is_demo]


def _fetch_prices(upstream: Upstream, fetched: _Fetched, now: datetime) -> None:
    site = fetched.site
    assert site is not None
    resolution = 5 if site.interval_length == 5 else 30
    previous, next_ = price_window(now, resolution)
    payload = upstream.current_prices(site.id, next_=next_, previous=previous, resolution=resolution)
    fetched.prices = _convert("prices", lambda item: price_from_payload(site.id, item),
                              validate_payload("prices", payload))
    if not any(p.kind == "current" and p.channel == "general" for p in fetched.prices):
        # Valid by the schema, but Amber always sends the current general interval: an empty or
        # partial answer would leave the display without a price now.
        raise UpstreamDataError(f"Amber prices response has no current general interval ({len(fetched.prices)} intervals)")


def _fetch_usage(conn: sqlite3.Connection, config: Config, upstream: Upstream, fetched: _Fetched,
                 now: datetime, t0: float) -> None:
    """Recent usage at most hourly, then backfill chunks while time and quota allow."""
    site = fetched.site
    assert site is not None
    last = _float(db.get_meta(conn, f"usage_fetched_at:{site.id}")) or 0
    if 0 <= now.timestamp() - last < USAGE_EVERY_S:
        return
    today = now.astimezone(NEM_TZ).date()
    history_days = min(USAGE_HISTORY_DAYS, config.retention_days)
    floor = today - timedelta(days=history_days)
    if site.active_from:
        floor = max(floor, date.fromisoformat(site.active_from))
    oldest_raw = db.get_meta(conn, f"usage_backfill_oldest:{site.id}")
    oldest = date.fromisoformat(oldest_raw) if oldest_raw else None
    ranges = [(max(floor, today - timedelta(days=USAGE_RECENT_DAYS)), today)]
    cursor = oldest or ranges[0][0]
    for _ in range(BACKFILL_CHUNKS_PER_RUN):
        if cursor <= floor:
            break
        start = max(floor, cursor - timedelta(days=USAGE_CHUNK_DAYS))
        ranges.append((start, cursor - timedelta(days=1)))
        cursor = start
    try:
        for number, (start, end) in enumerate(ranges):
            if number and not _may_spend(upstream, t0):
                break
            if start > end:
                continue
            payload = upstream.usage(site.id, start, end)
            rows = _convert("usage", lambda item: usage_from_payload(site.id, item), validate_payload("usage", payload))
            fetched.usage.extend(rows)
            fetched.usage_fetched = True
            fetched.backfill_oldest = min(start, fetched.backfill_oldest or start)
    except (UpstreamError, UpstreamDataError) as exc:
        fetched.optional_error = exc


def _may_spend(upstream: Upstream, t0: float) -> bool:
    if monotonic() - t0 > RUN_BUDGET_S:
        return False
    limit = upstream.rate_limit
    return limit is None or limit.remaining is None or limit.remaining > RATE_LIMIT_RESERVE


def _write(conn: sqlite3.Connection, config: Config, fetched: _Fetched, now: datetime) -> int:
    site = fetched.site
    assert site is not None
    stamp = int(now.timestamp())
    rows = 0
    previous_mode = db.get_meta(conn, "mode")
    if previous_mode is not None and previous_mode != config.mode:
        # Switching between demo and a real account: never mix simulated and real figures.
        # From demo to a real account: the simulated figures go. (The other way is refused.)
        for table, column in (("prices", "site_id"), ("usage", "site_id"), ("daily_usage", "site_id"), ("sites", "id")):
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (DEMO_SITE_ID,))
    if fetched.sites_fetched:
        for s in fetched.all_sites:
            conn.execute(
                """INSERT INTO sites (id, nmi, network, status, interval_length, channels, active_from, closed_on, fetched_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET nmi=excluded.nmi, network=excluded.network, status=excluded.status,
                     interval_length=excluded.interval_length, channels=excluded.channels,
                     active_from=excluded.active_from, closed_on=excluded.closed_on, fetched_at=excluded.fetched_at""",
                (s.id, s.nmi, s.network, s.status, s.interval_length, json.dumps(s.channels), s.active_from,
                 s.closed_on, stamp),
            )
            rows += 1
        db.set_meta(conn, "sites_fetched_at", stamp)
    rows += save_prices(conn, fetched.prices, stamp)
    if fetched.usage_fetched:
        rows += save_usage(conn, fetched.usage, stamp)
        db.set_meta(conn, f"usage_fetched_at:{site.id}", stamp)
        if fetched.backfill_oldest:
            current = db.get_meta(conn, f"usage_backfill_oldest:{site.id}")
            if current is None or fetched.backfill_oldest.isoformat() < current:
                db.set_meta(conn, f"usage_backfill_oldest:{site.id}", fetched.backfill_oldest.isoformat())
    db.set_meta(conn, "site_id", site.id)
    db.set_meta(conn, "mode", config.mode)
    db.set_meta(conn, "channels", json.dumps(sorted({p.channel for p in fetched.prices} | site.channel_types)))
    return rows


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
        db.set_meta(conn, f"prices_fetched_at:{site_id}", fetched_at)
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
        known = db.get_meta(conn, f"usage_newest_end:{site_id}")
        if known is None or newest > int(known):
            db.set_meta(conn, f"usage_newest_end:{site_id}", newest)
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
    """Delete interval rows older than the retention, measured from min(now, newest data)."""
    newest = conn.execute("SELECT MAX(start) FROM prices").fetchone()[0]
    reference = int(now.timestamp())
    if newest is not None:
        reference = min(reference, int(newest))
    cutoff = reference - retention_days * 86400
    # `start <` lets SQLite walk the start indexes instead of every row; an interval ends at most
    # 30 minutes after it starts.
    removed = conn.execute("DELETE FROM prices WHERE start < ? AND end < ?", (cutoff, cutoff)).rowcount
    removed += conn.execute("DELETE FROM usage WHERE start < ? AND end < ?", (cutoff, cutoff)).rowcount
    conn.execute("DELETE FROM sync_runs WHERE started_at < ?", (reference - SYNC_RUNS_KEPT_DAYS * 86400,))
    return removed


def _remember_rate_limit(conn: sqlite3.Connection, limit: RateLimit | None, blocked_until: float | None) -> None:
    if limit is not None:
        db.set_meta(conn, "rate_limit_remaining", limit.remaining)
        db.set_meta(conn, "rate_limit_reset_at", None if limit.reset_at is None else int(limit.reset_at))
    if blocked_until is not None:
        db.set_meta(conn, "rate_limit_blocked_until", int(blocked_until))


def _insert_run(conn: sqlite3.Connection, config: Config, started: datetime, outcome: str, error: str | None,
                rows: int, calls: int, limit: RateLimit | None) -> None:
    conn.execute(
        """INSERT INTO sync_runs (started_at, finished_at, outcome, error, rows_written, upstream_calls,
             rate_limit_remaining, rate_limit_reset_at, mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (int(started.timestamp()), int(now_utc().timestamp()), outcome, error, rows, calls,
         None if limit is None else limit.remaining,
         None if limit is None or limit.reset_at is None else int(limit.reset_at), config.mode),
    )


def _record_failure(conn: sqlite3.Connection, config: Config, started: datetime, outcome: str, error: str,
                    calls: int, limit: RateLimit | None, blocked_until: float | None) -> None:
    """A failed run changes no data: only its own record and the rate-limit memory."""
    with db.transaction(conn):
        _remember_rate_limit(conn, limit, blocked_until)
        _insert_run(conn, config, started, outcome, error, 0, calls, limit)
