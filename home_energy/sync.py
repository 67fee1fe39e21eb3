"""The sync: fetch, validate, plan; the store writes the plan in one transaction.

Order of a run:
1. take the writer lock (a second writer waits briefly, then exits 75) and record the run as
   started, so one that is killed shows as interrupted;
2. refuse to call Amber before a remembered rate-limit block ends (429s carry no Retry-After);
3. fetch: /sites at most daily, /prices/current every run, /usage at most hourly plus a
   backfill of up to 90 days in 7-day chunks spread over runs to stay inside the quota;
4. validate every payload against Amber's schema; a bad one is rejected whole;
5. hand the plan to `store.write_sync`: in ONE transaction it replaces the prices each response
   covers, upserts usage and its daily roll-up, keeps the scheduling and rate-limit state,
   records the run and prunes old rows.
A failure in step 3/4 of the price call writes nothing but the run record. A failure of the
optional usage/sites calls after good prices keeps the prices and records outcome `partial`.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from . import db, store
from .amber import MAX_RATE_LIMIT_RESET_S, AmberClient, RateLimit, Upstream, price_window
from .clock import NEM_TZ, floor_to_boundary, is_recent, is_waiting, monotonic, now_utc
from .config import Config
from .demo import DEMO_SITE_ID, DemoUpstream
from .errors import CacheCorruptError, ConfigError, HomeEnergyError, RateLimitedError, UpstreamDataError, UpstreamError
from .models import (
    PriceRow,
    Site,
    UsageRow,
    choose_site,
    convert_all,
    price_from_payload,
    site_from_payload,
    usage_from_payload,
)
from .redact import Redactor
from .schema import validate_payload

log = logging.getLogger(__name__)

SITES_EVERY_S = 24 * 3600
USAGE_EVERY_S = 3600
USAGE_RECENT_DAYS = 3  # re-read the last few days: Amber revises estimated reads into billable ones
USAGE_HISTORY_DAYS = 90  # Amber keeps about 90 days of usage
USAGE_CHUNK_DAYS = 7  # /usage rejects longer ranges with 422
BACKFILL_CHUNKS_PER_RUN = 3  # 13 chunks for 90 days: done within 5 runs, at most 5 calls a run
RATE_LIMIT_RESERVE = 10  # never spend the quota's last calls on optional work: prices come first
OPTIONAL_CALLS_UNTIL_S = 30.0  # optional calls stop once a run has taken this long; the client ends every call at 40 s
LONGEST_INTERVAL_MIN = 30  # Amber's intervals last 5, 15 or 30 minutes; a 5-minute site's far forecasts are 30
USAGE_BACKOFF_FIRST_S = 15 * 60  # after a failed /usage: 15 min, 30, 60, then every 2 h
USAGE_BACKOFF_MAX_S = 2 * 3600


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
    all_sites: list[Site] | None = None  # None: /sites not called this run
    prices: list[PriceRow] = field(default_factory=list)
    usage: list[UsageRow] | None = None  # None: /usage not called (or it failed) this run
    optional_error: HomeEnergyError | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # scheduling state the store writes with the data
    asked_prices: tuple[int, int, int] = (0, 0, 0)  # the window of intervals asked for, and when (Unix s)
    asked_usage: list[tuple[date, date]] = field(default_factory=list)  # the dates of each /usage call


def make_upstream(config: Config) -> Upstream:
    if config.amber_token:
        return AmberClient(config.amber_api_url, config.amber_token)
    return DemoUpstream()


def run_sync(config: Config, upstream: Upstream | None = None) -> SyncReport:
    """One sync run; never raises for upstream or data problems, it reports them.

    Cache problems raise a one-line error (busy 75, permission 78). A file SQLite calls damaged
    mid-run is moved aside by the store and the run is made once more on a new cache.
    """
    path = config.sqlite_path
    own_upstream = upstream is None
    upstream = upstream or make_upstream(config)
    try:
        with store.writer_lock(path):
            for attempt in (1, 2):
                conn = store.open_cache(path)
                try:
                    return _run(conn, config, upstream)
                except sqlite3.Error as exc:
                    error = db.cache_error(exc, path)
                    if attempt == 2 or not isinstance(error, CacheCorruptError):
                        raise error from exc
                    conn.close()
                    store.move_aside(path, str(error))
                finally:
                    conn.close()
            raise AssertionError("unreachable")
    finally:
        if own_upstream:
            upstream.close()


def _run(conn: sqlite3.Connection, config: Config, upstream: Upstream) -> SyncReport:
    started = now_utc()
    t0 = monotonic()
    # Every line this run records or logs is scrubbed of the configured secrets first: Amber may
    # echo the token in its own words.
    scrub = Redactor.from_config(config)
    previous_outcome, previous_problem = store.last_result(conn)
    # Recorded before anything can fail; the first Amber run also drops what the demo simulated.
    run_id = store.start_run(conn, config.mode)
    blocked_until = _float(db.get_meta(conn, "rate_limit_blocked_until"))
    fetched = _Fetched()
    try:
        # Up to the client's own ceiling on a block: a longer one came from a clock that was wrong.
        if is_waiting(blocked_until, started.timestamp(), MAX_RATE_LIMIT_RESET_S):
            wait_s = int(blocked_until - started.timestamp())
            raise RateLimitedError(f"rate-limited by Amber: no calls for another {wait_s} s", blocked_until)
        try:
            fetched.site = _resolve_site(conn, config, upstream, fetched, started)
            _fetch_prices(upstream, fetched, started)
            _fetch_usage(conn, config, upstream, fetched, started, t0)
        except (RecursionError, OverflowError, ValueError, TypeError, KeyError) as exc:
            # Whatever a payload the checks let through still trips on is invalid data, never a traceback.
            raise UpstreamDataError(f"Amber sent data this program cannot use: {type(exc).__name__}") from exc
    except HomeEnergyError as exc:
        outcome, code, message = exc.outcome, exc.exit_code, scrub(str(exc))
        meta = _rate_limit_meta(upstream.rate_limit, exc)
        store.record_failure(conn, run_id, _record(outcome, message, upstream, exc), meta)
        _log_failure(previous_outcome, previous_problem, exc.problem, message)
        return SyncReport(outcome, code, 0, upstream.calls, message)

    optional = fetched.optional_error
    optional_text = scrub(str(optional)) if optional else None
    outcome = "partial" if optional else "ok"
    site = fetched.site
    plan = store.SyncWrite(
        mode=config.mode, site=site, prices=fetched.prices,
        asked=store.Asked(*fetched.asked_prices, usage=tuple(fetched.asked_usage)),
        all_sites=fetched.all_sites, usage=fetched.usage,
        meta={**fetched.meta, **_rate_limit_meta(upstream.rate_limit, optional)},
    )
    try:
        rows, pruned = store.write_sync(conn, run_id, plan, _record(outcome, optional_text, upstream, optional),
                                        config.retention_days, started)
    except HomeEnergyError as exc:  # the store judged the plan: nothing was written
        message = scrub(str(exc))
        _log_failure(previous_outcome, previous_problem, exc.problem, message)
        store.record_failure(conn, run_id, _record(exc.outcome, message, upstream, exc))
        return SyncReport(exc.outcome, exc.exit_code, 0, upstream.calls, message)
    except sqlite3.Error as exc:
        if db.is_corrupt(exc):
            raise
        # Disk full, I/O error: the transaction is rolled back whole and the old data still served.
        error = db.cache_error(exc, config.sqlite_path)
        message = scrub(f"{error}: free space on its disk" if db.result_code(exc) == sqlite3.SQLITE_FULL
                        else str(error))
        _log_failure(previous_outcome, previous_problem, error.problem, message)
        with contextlib.suppress(sqlite3.Error):
            store.record_failure(conn, run_id, _record("tempfail", message, upstream, error))
        return SyncReport("tempfail", error.exit_code, 0, upstream.calls, message)
    if previous_outcome not in (None, "ok", "partial", "interrupted"):
        log.info("sync recovered: %d rows written", rows)
    return SyncReport(outcome, 0, rows, upstream.calls, optional_text, pruned)


def _record(outcome: str, error: str | None, upstream: Upstream,
            exc: HomeEnergyError | None = None) -> store.RunRecord:
    """The run's record; its problem code comes from the error's class, never from its words."""
    limit = upstream.rate_limit
    return store.RunRecord(
        outcome, error or None, upstream.calls,
        None if limit is None else limit.remaining,
        None if limit is None or limit.reset_at is None else int(limit.reset_at),
        None if exc is None else exc.problem,
    )


def _rate_limit_meta(limit: RateLimit | None, exc: BaseException | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if limit is not None:
        meta["rate_limit_remaining"] = limit.remaining
        meta["rate_limit_reset_at"] = None if limit.reset_at is None else int(limit.reset_at)
    if isinstance(exc, RateLimitedError):
        meta["rate_limit_blocked_until"] = int(exc.retry_at_epoch)
    return meta


def _log_failure(previous_outcome: str | None, previous_problem: str | None, problem: str | None,
                 error: str) -> None:
    """Home Assistant's coordinator habit: loudly when it starts failing, and again (once) when
    the cause changes (Amber unreachable, then the token refused); the same cause again is quiet.
    The cause is the run's problem code (from the error's class), never its wording."""
    if previous_outcome in (None, "ok", "partial", "interrupted"):
        log.error("sync failed: %s", error)
    elif previous_problem != problem:
        log.warning("sync failing for another reason: %s", error)
    else:
        log.debug("sync still failing: %s", error)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _resolve_site(conn: sqlite3.Connection, config: Config, upstream: Upstream, fetched: _Fetched,
                  now: datetime) -> Site:
    if config.mode == "demo" and store.holds_real_data(conn, DEMO_SITE_ID):
        raise ConfigError(
            f"AMBER_TOKEN is not set but {config.sqlite_path} holds real Amber data: set the token, "
            "or point SQLITE_PATH elsewhere for the demo"
        )
    cached = [s for s in store.cached_sites(conn) if (s.id == DEMO_SITE_ID) == (config.mode == "demo")]
    last = _float(db.get_meta(conn, "sites_fetched_at"))
    mode_changed = db.get_meta(conn, "mode") not in (None, config.mode)
    if cached and not mode_changed and is_recent(last, now.timestamp(), SITES_EVERY_S):
        return choose_site(cached, config.amber_site_id)
    fetched.all_sites = convert_all("sites", site_from_payload, validate_payload("sites", upstream.sites()))
    return choose_site(fetched.all_sites, config.amber_site_id)


def _fetch_prices(upstream: Upstream, fetched: _Fetched, now: datetime) -> None:
    site = fetched.site
    assert site is not None
    resolution = 5 if site.interval_length == 5 else 30
    previous, next_ = price_window(now, resolution)
    current = floor_to_boundary(now, resolution)
    asked = store.Asked(int((current - timedelta(minutes=previous * resolution)).timestamp()),
                        int((current + timedelta(minutes=resolution + next_ * LONGEST_INTERVAL_MIN)).timestamp()),
                        int(now.timestamp()))
    payload = upstream.current_prices(site.id, next_=next_, previous=previous, resolution=resolution)
    fetched.prices = convert_all("prices", lambda item: price_from_payload(site.id, item),
                              validate_payload("prices", payload))
    store.judge_prices(fetched.prices, asked)
    fetched.asked_prices = (asked.prices_from, asked.prices_to, asked.now)
    if not any(p.kind == "current" and p.channel == "general" for p in fetched.prices):
        # Valid by the schema, but Amber always sends the current general interval: an empty or
        # partial answer would leave the display without a price now.
        count = len(fetched.prices)
        raise UpstreamDataError(f"Amber prices response has no current general interval ({count} intervals)")


def _fetch_usage(conn: sqlite3.Connection, config: Config, upstream: Upstream, fetched: _Fetched,
                 now: datetime, t0: float) -> None:
    """Recent usage at most hourly, then backfill chunks while time and quota allow.

    A failed attempt is remembered: the next waits 15 minutes, doubling to 2 hours, and the
    warning is logged when usage starts failing and when it recovers, not on every run.
    """
    site = fetched.site
    assert site is not None
    t = now.timestamp()
    failures = int(_float(db.get_meta(conn, f"usage_failures:{site.id}")) or 0)
    retry_at = _float(db.get_meta(conn, f"usage_retry_at:{site.id}"))
    last = _float(db.get_meta(conn, f"usage_fetched_at:{site.id}"))
    if failures and is_waiting(retry_at, t, USAGE_BACKOFF_MAX_S):
        return
    if not failures and is_recent(last, t, USAGE_EVERY_S):
        return
    ranges = _usage_ranges(conn, config, site, now)
    try:
        for number, (start, end) in enumerate(ranges):
            if number and not _may_spend(upstream, t0):
                break
            payload = upstream.usage(site.id, start, end)
            rows = convert_all("usage", lambda i: usage_from_payload(site.id, i), validate_payload("usage", payload))
            store.judge_usage(rows, [(start, end)])
            fetched.usage = (fetched.usage or []) + rows
            fetched.asked_usage.append((start, end))
            oldest = db.get_meta(conn, f"usage_backfill_oldest:{site.id}")
            if oldest is None or start.isoformat() < oldest:
                fetched.meta[f"usage_backfill_oldest:{site.id}"] = start.isoformat()
    except (UpstreamError, UpstreamDataError) as exc:
        fetched.optional_error = exc
        fetched.usage = None
        wait = min(USAGE_BACKOFF_FIRST_S * 2 ** failures, USAGE_BACKOFF_MAX_S)
        fetched.meta.update({f"usage_failures:{site.id}": failures + 1, f"usage_retry_at:{site.id}": int(t + wait)})
        fetched.meta.pop(f"usage_backfill_oldest:{site.id}", None)
        if not failures:
            log.warning("usage not updated: %s; trying again in %d minutes, then less often",
                        Redactor.from_config(config)(str(exc)), wait // 60)
        return
    fetched.meta.update({f"usage_fetched_at:{site.id}": int(t), f"usage_failures:{site.id}": None,
                         f"usage_retry_at:{site.id}": None})
    if failures:
        log.info("usage recovered after %d failed attempts", failures)


def _usage_ranges(conn: sqlite3.Connection, config: Config, site: Site, now: datetime) -> list[tuple[date, date]]:
    """The recent days, then up to BACKFILL_CHUNKS_PER_RUN older chunks not fetched yet."""
    today = now.astimezone(NEM_TZ).date()
    floor = today - timedelta(days=min(USAGE_HISTORY_DAYS, config.retention_days))
    if site.active_from:
        floor = max(floor, date.fromisoformat(site.active_from))
    oldest_raw = db.get_meta(conn, f"usage_backfill_oldest:{site.id}")
    ranges = [(max(floor, today - timedelta(days=USAGE_RECENT_DAYS)), today)]
    cursor = date.fromisoformat(oldest_raw) if oldest_raw else ranges[0][0]
    for _ in range(BACKFILL_CHUNKS_PER_RUN):
        if cursor <= floor:
            break
        start = max(floor, cursor - timedelta(days=USAGE_CHUNK_DAYS))
        ranges.append((start, cursor - timedelta(days=1)))
        cursor = start
    return [(start, end) for start, end in ranges if start <= end]


def _may_spend(upstream: Upstream, t0: float) -> bool:
    if monotonic() - t0 > OPTIONAL_CALLS_UNTIL_S:
        return False
    limit = upstream.rate_limit
    return limit is None or limit.remaining is None or limit.remaining > RATE_LIMIT_RESERVE
