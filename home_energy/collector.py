"""The meter collector: polls the configured source every METER_POLL_SECONDS into the cache.

Rules it keeps (the same as the Amber sync's):
- A failed poll (timeout, HTML, invalid JSON) writes no reading: the page keeps the last good
  one, with its age. The failure is recorded in the cache; the log gets one line when polling
  starts failing and one when it recovers, not one per poll.
- Energy comes from the meter's own counters when it has them: the difference between two
  reads, where a counter that goes down was reset or wrapped and counts again from zero, and a
  jump no household connection could carry is dropped; the step across an outage of more than
  15 minutes is not counted either, since it cannot be placed in time or priced. A source
  without counters has its grid power integrated between polls instead, but never across a gap
  longer than a few polls.
- It is the only writer of the meter tables (through store) and never blocks the web. One
  collector per cache: it holds the cache's collector lock for its whole life; a second one
  exits 75 naming the first, and `home-energy run` then serves and syncs without collecting.
- Every failed poll (network, status, data, database) is recorded with a one-line `last_error`,
  never a traceback; after a database error the connection is reopened on the next poll.
- Every exchange with the meter goes through the door (`fetch`); SIGTERM aborts the one in flight.
"""
from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import overload

from . import db, fetch, store
from .clock import monotonic, now_utc
from .config import Config
from .errors import CacheBusyError, HomeEnergyError
from .sources import Reading, Source, make_source
from .store import open_writer

log = logging.getLogger(__name__)

MAX_SITE_W = 100_000.0  # no household connection carries more: a bigger step is a glitch
MAX_INTEGRATE_GAP_POLLS = 3  # integrate power only between close polls; a longer gap is unknown
MAX_COUNTER_GAP_S = 15 * 60  # a counter step over a longer outage is not attributed to this minute
PRUNE_EVERY_S = 3600.0
REOPEN_LOCK_WAIT_S = 1.0
STOP_WAIT_S = 5.0  # `run` waits this long for a poll to end after SIGTERM (its exchange is aborted at once)


@dataclass(frozen=True)
class Step:
    """One counter's contribution between two reads, and what happened to it."""

    wh: float
    event: str | None  # None | counter_reset | counter_jump


def counter_step(previous: float | None, current: float | None, elapsed_s: float) -> Step | None:
    """Energy between two reads of a cumulative Wh counter; None when there is no base yet."""
    if previous is None or current is None:
        return None
    most = MAX_SITE_W * max(elapsed_s, 60.0) / 3600.0
    delta = current - previous
    if delta >= 0:
        return Step(delta, None) if delta <= most else Step(0.0, "counter_jump")
    # It went down: the meter was reset or the counter wrapped, and counts again from zero.
    return Step(current, "counter_reset") if current <= most else Step(0.0, "counter_reset")


@overload
def integrate_grid(grid_w: float, elapsed_s: float) -> tuple[float, float]: ...
@overload
def integrate_grid(grid_w: None, elapsed_s: float) -> None: ...
def integrate_grid(grid_w: float | None, elapsed_s: float) -> tuple[float, float] | None:
    """(import Wh, export Wh) from one grid power over `elapsed_s`; None when it is unknown."""
    if grid_w is None:
        return None
    wh = abs(grid_w) * elapsed_s / 3600.0
    return (wh, 0.0) if grid_w >= 0 else (0.0, wh)


class Collector:
    """Polls one source into the cache; holds the cache's collector lock until `close()`."""

    def __init__(self, config: Config, source: Source, lock: ExitStack | None = None) -> None:
        self.config = config
        self.source = source
        self.lock = lock or ExitStack()
        try:
            if lock is None:
                self.lock.enter_context(store.collector_lock(config.sqlite_path))
            self.conn: sqlite3.Connection | None = open_writer(config.sqlite_path)
            state = store.load_state(self.conn, source.name)
        except BaseException:
            self.lock.close()
            raise
        self.failing = state.status == "failing"
        self.counters = (state.counters_at, state.import_wh, state.export_wh)
        self.last_power: tuple[float, float | None] | None = None  # (epoch, grid_w) of the last good poll
        self.fold: store.MinuteFold | None = None
        self._next_prune = 0.0

    def poll_once(self) -> bool:
        """Fetch, validate, write; True when a reading was stored. Never raises for a bad poll:
        every failure (network, status, data, database) is recorded as one line."""
        try:
            reading = self.source.fetch()
        except HomeEnergyError as exc:
            if fetch.aborted():
                return False  # stopping (SIGTERM): not the meter's fault
            self._fault(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a driver bug costs one poll, never the collector
            log.debug("meter poll failed unexpectedly: %s", " ".join(repr(exc).split())[:200])
            self._fault(f"the {self.source.name} meter's answer could not be used ({type(exc).__name__})")
            return False
        try:
            self._save(reading)
        except sqlite3.Error as exc:
            self._fault(str(db.cache_error(exc, self.config.sqlite_path)))
            self._drop_connection()  # reopened next poll: the file may have been replaced or freed
            return False
        except HomeEnergyError as exc:
            self._fault(str(exc))
            self._drop_connection()
            return False
        return True

    def _save(self, reading: Reading) -> None:
        conn = self._connection()
        energy, events = self._energy(reading)
        if self.failing:
            events.append(("recovered", "answering again"))
        at = reading.at.timestamp()
        minute = int(at) - int(at) % 60
        fold = self.fold if self.fold is not None and self.fold.minute == minute else store.open_minute(conn, minute)
        fold = fold.add(reading)
        store.save_reading(conn, reading, fold, energy, events)
        if self.failing:
            log.info("meter answering again (%s)", self.source.name)
        self.fold = fold
        self.failing = False
        self.last_power = (at, reading.grid_w)
        if reading.import_wh is not None and reading.export_wh is not None:
            self.counters = (int(at), reading.import_wh, reading.export_wh)
        if monotonic() >= self._next_prune:
            self._next_prune = monotonic() + PRUNE_EVERY_S
            store.prune_meter(conn, int(at), self.config.retention_days)

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            # A poll never waits long for a sync's writer lock: it is retried on the next poll.
            with store.writer_lock(self.config.sqlite_path, wait_s=REOPEN_LOCK_WAIT_S):
                self.conn = store.open_cache(self.config.sqlite_path)
            self.fold = None  # re-read from the file: this minute may hold more than was folded here
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _energy(self, reading: Reading) -> tuple[tuple[float, float] | None, list[tuple[str, str]]]:
        at = reading.at.timestamp()
        events: list[tuple[str, str]] = []
        counters_at, last_import, last_export = self.counters
        if reading.import_wh is not None and reading.export_wh is not None:
            elapsed = at - counters_at if counters_at is not None else 0.0
            if elapsed > MAX_COUNTER_GAP_S:
                # Energy from a long outage cannot be placed in time or priced: it is not counted.
                message = f"no counter reads for {elapsed / 60:.0f} min: that energy is not counted"
                log.info("meter %s", message)
                return None, [("counter_gap", message)]
            import_step = counter_step(last_import, reading.import_wh, elapsed)
            export_step = counter_step(last_export, reading.export_wh, elapsed)
            if import_step is None or export_step is None:
                return None, events
            for name, step in (("import", import_step), ("export", export_step)):
                if step.event:
                    message = f"{name} counter {step.event.split('_')[1]}: {step.wh:.0f} Wh counted"
                    log.warning("meter %s", message)
                    events.append((step.event, message))
            return (import_step.wh, export_step.wh), events
        if self.source.has_counters:
            return None, events  # the next counter read covers this poll's energy
        if self.last_power is None:
            return None, events
        last_at, last_grid = self.last_power
        elapsed = at - last_at
        if not 0 < elapsed <= MAX_INTEGRATE_GAP_POLLS * self.source.poll_seconds:
            return None, events
        # Trapezoid between the two readings; with one of them unknown, nothing is claimed.
        if last_grid is None or reading.grid_w is None:
            return None, events
        imported = exported = 0.0
        for grid in (last_grid, reading.grid_w):
            part = integrate_grid(grid, elapsed / 2)
            imported += part[0]
            exported += part[1]
        return (imported, exported), events

    def _fault(self, error: str) -> None:
        """Record a failed poll (one line); the log hears of it only when failing starts."""
        error = " ".join(error.split())
        starts = not self.failing
        self.failing = True
        if starts:
            log.warning("meter not answering: %s", error)
        try:
            store.record_fault(self._connection(), self.source.name, int(now_utc().timestamp()), error, starts)
        except (sqlite3.Error, HomeEnergyError) as exc:
            self._drop_connection()
            if starts:
                reason = db.cache_error(exc, self.config.sqlite_path) if isinstance(exc, sqlite3.Error) else exc
                log.warning("meter fault not recorded: %s", reason)

    def run(self, stop: threading.Event) -> None:
        """Poll on a fixed cadence until `stop` is set; a slow poll does not shift the schedule."""
        period = float(self.source.poll_seconds)
        due = monotonic()
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the collector outlives any one bad poll
                log.error("meter poll failed unexpectedly: %s", type(exc).__name__)
            due += period
            now = monotonic()
            if due < now:  # overran: skip the missed slots rather than burst
                due = now + period - (now - due) % period
            stop.wait(due - now)

    def close(self) -> None:
        try:
            self.source.close()
            self._drop_connection()
        finally:
            self.lock.close()


def start_collector(config: Config) -> Callable[[], None] | None:
    """Start polling in a daemon thread (for `home-energy run`); returns what stops it, or None
    when METER is unset or another collector already polls into this cache (logged once: this
    process then serves and syncs only).

    The collector lock is taken and the cache migrated here, in the caller's thread, before
    anything else writes; the collector's own connection is opened in its thread (SQLite
    connections stay in one thread).
    """
    source = make_source(config)
    if source is None:
        return None
    lock = ExitStack()
    try:
        lock.enter_context(store.collector_lock(config.sqlite_path))
    except CacheBusyError as exc:
        source.close()
        log.warning("not collecting from the meter: %s; serving and syncing only", exc)
        return None
    try:
        open_writer(config.sqlite_path).close()
    except BaseException:
        lock.close()
        raise
    stop = threading.Event()

    def _run() -> None:
        try:
            collector = Collector(config, source, lock)
        except HomeEnergyError as exc:
            log.error("meter collector not started: %s", exc)
            return
        try:
            collector.run(stop)
        finally:
            collector.close()

    thread = threading.Thread(target=_run, name="meter-collector", daemon=True)
    thread.start()
    log.info("collecting from the %s meter every %d s", source.name, source.poll_seconds)

    def _stop() -> None:
        stop.set()
        fetch.abort()  # a poll in flight ends now, whatever the meter is doing
        thread.join(timeout=STOP_WAIT_S)

    return _stop


def collect_until_signalled(config: Config) -> int:
    """`home-energy collect`: poll in the foreground until SIGTERM or SIGINT (within seconds,
    whatever the meter is doing: the signal aborts the exchange in flight through the door)."""
    source = make_source(config)
    if source is None:
        print("no meter configured (METER is unset): nothing to collect")
        return 0
    stop = threading.Event()

    def _stop(signum: int) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    fetch.stop_on_signals(_stop)
    try:
        collector = Collector(config, source)
    except BaseException:
        source.close()
        raise
    log.info("collecting from the %s meter every %d s", source.name, source.poll_seconds)
    try:
        collector.run(stop)
    finally:
        collector.close()
    return 0
