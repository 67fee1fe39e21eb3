"""The plug controller: `home-energy control` (its own service, or a thread of `home-energy run`).

Once a minute, a few seconds past it (so at every 5- and 30-minute interval boundary too), it
reads the prices from the cache through `queries` (never from Amber), reads each plug's real
state, decides with `decide.decide` and switches what must change.

Rules it keeps:
- The cache is the only source of prices; prices too old, or a sync failing too long, send
  every plug to its fallback (see `decide`).
- Each plug is read and switched in its own worker thread through the network door, whose
  deadline bounds every exchange: a plug that is slow or silent costs its own turn only, never
  the others'. A plug that fails is retried with backoff (1 min, doubling to 15 min) and each
  failure is recorded.
- Every state is read before it is decided on, also after a restart: a command that a killed
  controller left unanswered (`interrupted` in the log) is never taken for a person's override.
- Every command and every change of decision is recorded through the store (the one writer), on
  this thread only; `--dry-run` reads the plugs and logs what it would do, and writes and
  switches nothing.
- With MQTT_URL set, Home Assistant's switch commands (`commands`, a thread of its own) wait in a
  bounded queue and are carried out on this thread between rounds, as a person's override: the
  plug is switched, the command and the override recorded, and the rule holds off as for a
  switch by hand. They count towards `max_switches_per_hour` like every command this program
  sends; `--dry-run` logs them and switches nothing.
- One controller per cache (`<cache>.plugs.lock`): a second one exits 75 rather than fight the
  first over the same plugs.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .. import queries
from ..clock import monotonic, now_utc
from ..config import Config
from ..db import connect_reader
from ..errors import CacheBusyError, HomeEnergyError
from ..fetch import Limits, aborted
from ..store import open_writer
from ..store import plug_writes as writes
from .base import PLUG_LIMITS, Plug, make_plug
from .commands import COMMAND_MAX_AGE_S, LISTENER_STOP_S, Command, start_listener
from .decide import Decision, Market, Memory, Plan, current_block, decide, hhmm, on_off, stale_reason
from .rules import PlugConfig

log = logging.getLogger(__name__)

SECONDS_PAST_MINUTE = 5  # Amber intervals start on the minute; the new row is in the cache already
RETRY_BASE_S = 60
RETRY_MAX_S = 15 * 60
COMMAND_POLL_S = 0.5  # between rounds, how often `stop` is looked at while waiting for a command
MAX_WORKERS = 8  # plug exchanges in flight at once; each is bounded by the door's deadline


@dataclass(frozen=True)
class Outcome:
    """What one plug's turn did, for the log line and the tests."""

    plug: str
    state: bool | None  # as read (after a command: as the plug reported it)
    decision: Decision | None  # None when the plug could not be read
    command: bool | None  # the state commanded (or, dry-run, that would have been)
    result: str  # idle | ok | failed | dry-run | unreadable | skipped | stopped | held | late
    error: str | None = None


def _bool(text: str | None) -> bool | None:
    return None if text is None else text == "on"


def _plan(text: str | None) -> Plan | None:
    if not text:
        return None
    data = json.loads(text)
    return Plan(int(data["span_start"]), int(data["span_end"]), tuple((int(s), int(e)) for s, e in data["blocks"]))


class Controller:
    def __init__(self, config: Config, plugs: list[PlugConfig], *, dry_run: bool = False,
                 drivers: Mapping[str, Plug] | None = None, limits: Limits = PLUG_LIMITS) -> None:
        self.config = config
        self.plugs = plugs
        self.dry_run = dry_run
        self.tz = ZoneInfo(config.timezone)
        self.drivers: dict[str, Plug] = dict(drivers) if drivers is not None else \
            {plug.key: make_plug(plug, limits) for plug in plugs}
        self.pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, max(1, len(plugs))),
                                       thread_name_prefix="plug")
        self.rows: dict[str, writes.PlugRow | None] = {}
        self.lock_fd: int | None = None
        self.logged: dict[str, tuple[str | None, str | None, str | None] | None] = {}
        self.budget_warned: set[str] = set()  # plugs whose refused commands were logged (until one goes through)
        self.conn: sqlite3.Connection
        if dry_run:
            # A dry run writes nothing, not even a migration: it can run beside the real controller.
            self.conn = connect_reader(config.sqlite_path)
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for plug in plugs:
                self.rows[plug.key] = writes.load_plug(self.conn, plug.key) if "plug_state" in tables else None
                self.logged[plug.key] = None
            return
        self.lock_fd = _one_controller(config.sqlite_path)
        try:
            self.conn = open_writer(config.sqlite_path)
        except BaseException:
            os.close(self.lock_fd)
            raise
        for key in writes.mark_interrupted(self.conn):
            log.warning("plug %s: a command was interrupted by a restart; reading its real state first", key)
            row = writes.load_plug(self.conn, key)
            if row is not None:  # what it is now is read, not assumed: never taken for a person
                writes.save_plug(self.conn, replace(row, expected=None))
        writes.forget_plugs(self.conn, [plug.key for plug in plugs])
        for plug in plugs:
            self.rows[plug.key] = writes.load_plug(self.conn, plug.key)
            self.logged[plug.key] = writes.last_decision(self.conn, plug.key)

    # -- one decision for every plug ----------------------------------------------------------

    def market(self, now: datetime) -> Market:
        found = queries.plug_prices(self.conn, now, self.config.forecast_price)
        paid = tuple(replace(s, per_kwh=-s.per_kwh) for s in found["feed_in"])  # + = export earns
        t = int(now.timestamp())
        stale = stale_reason(t, found["prices_fetched_at"], found["last_success_at"], found["last_outcome"],
                             found["last_error"], self.config.stale_after_seconds, self.tz)
        return Market(t, tuple(found["general"]), paid, found["spike"], stale)

    def decide_once(self, now: datetime | None = None) -> list[Outcome]:
        """Read, decide and switch every plug that is due; returns each plug's outcome."""
        now = now or now_utc()
        t = int(now.timestamp())
        market = self.market(now)
        outcomes: list[Outcome] = []
        pending: dict[Future[bool], tuple[str, PlugConfig, Any]] = {}
        # Plugs that answered last time go first: with more plugs than workers, a silent one
        # never keeps a healthy one waiting for a worker.
        for plug in sorted(self.plugs, key=lambda p: getattr(self.rows.get(p.key), "failures", 0)):
            row = self.rows.get(plug.key)
            if row is not None and row.next_attempt_at is not None and t < row.next_attempt_at:
                outcomes.append(Outcome(plug.key, _bool(row.state), None, None, "skipped", row.last_error))
                continue
            pending[self.pool.submit(self.drivers[plug.key].read)] = ("read", plug, None)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                step, plug, context = pending.pop(future)
                try:
                    state = future.result()
                except Exception as exc:  # noqa: BLE001 - one plug's fault never ends the round
                    if aborted():  # the process is stopping: not the plug's fault, nothing to record
                        outcomes.append(Outcome(plug.key, None, None, None, "stopped", str(exc)))
                        continue
                    if not isinstance(exc, HomeEnergyError):
                        log.error("plug %s: unexpected %s", plug.name, type(exc).__name__, exc_info=exc)
                    error = str(exc) if isinstance(exc, HomeEnergyError) else \
                        f"the {plug.name} plug's exchange failed unexpectedly ({type(exc).__name__})"
                    if step == "read":
                        outcomes.append(self._unreadable(plug, t, error))
                    else:
                        outcomes.append(self._command_failed(plug, t, context, error))
                    continue
                if step == "read":
                    follow = self._decide(plug, market, state, t)
                    if isinstance(follow, Outcome):
                        outcomes.append(follow)
                    else:
                        decision, log_id, target = follow
                        pending[self.pool.submit(self.drivers[plug.key].switch, target)] = \
                            ("switch", plug, (decision, log_id, state))
                else:
                    outcomes.append(self._switched(plug, t, context, state))
        if not self.dry_run:
            writes.mark_decided(self.conn, t)
        order = {plug.key: i for i, plug in enumerate(self.plugs)}
        return sorted(outcomes, key=lambda o: order[o.plug])

    def _memory(self, plug: PlugConfig, row: writes.PlugRow | None, t: int) -> Memory:
        switches = 0 if self.dry_run else writes.switches_since(self.conn, plug.key, t - 3600, t)
        if row is None:
            return Memory(switches_last_hour=switches)
        return Memory(expected=_bool(row.expected), changed_at=row.changed_at, override_until=row.override_until,
                      plan=_plan(row.plan), switches_last_hour=switches)

    def _decide(self, plug: PlugConfig, market: Market, state: bool, t: int) -> Outcome | tuple[Decision, int, bool]:
        row = self.rows.get(plug.key)
        memory = self._memory(plug, row, t)
        previous = _bool(row.state) if row is not None else None
        if previous is not None and previous != state:
            memory = replace(memory, changed_at=t)  # it changed since the last read: by hand, or by us
        decision = decide(plug, market, memory, state, self.tz)
        target = decision.want
        if target is None or target == state:
            self._save(plug, t, state, decision, memory.changed_at, decision.expected, None)
            return Outcome(plug.key, state, decision, None, "idle")
        if self.dry_run:
            log.info("dry run: would switch %s %s (%s)", plug.name, on_off(decision.want), decision.why)
            self._save(plug, t, state, decision, memory.changed_at, decision.expected, None)
            return Outcome(plug.key, state, decision, decision.want, "dry-run")
        log_id = writes.start_command(self.conn, plug.key, t, plug.rule.label(), decision.price,
                                      on_off(target), decision.why)
        return decision, log_id, target

    def _switched(self, plug: PlugConfig, t: int, context: tuple[Decision, int, bool], state: bool) -> Outcome:
        decision, log_id, _before = context
        result = "ok" if state == decision.want else "failed"
        message = None if result == "ok" else f"asked {on_off(decision.want)}, the plug reports {on_off(state)}"
        writes.finish_command(self.conn, log_id, result, message)
        log.info("%s switched %s (%s)", plug.name, on_off(state), decision.why)
        # What it reports now is what this program set: a later difference is a person's doing.
        self._save(plug, t, state, decision, t, state, None)
        return Outcome(plug.key, state, decision, decision.want, result, message)

    def _command_failed(self, plug: PlugConfig, t: int, context: tuple[Decision, int, bool], error: str) -> Outcome:
        decision, log_id, before = context
        writes.finish_command(self.conn, log_id, "failed", error)
        row = self.rows.get(plug.key)
        # Whether it switched is unknown: the next read is taken as it is, never as a person's.
        self._save(plug, t, before, decision, row.changed_at if row else None, None, error)
        return Outcome(plug.key, before, decision, decision.want, "failed", error)

    def _unreadable(self, plug: PlugConfig, t: int, error: str) -> Outcome:
        row = self.rows.get(plug.key)
        failures = (row.failures if row is not None else 0) + 1
        delay = min(RETRY_BASE_S * 2 ** (failures - 1), RETRY_MAX_S)
        if failures == 1:
            log.warning("plug %s not answering: %s", plug.name, error)
        why = f"not answering: {error}; trying again at {hhmm(t + delay, self.tz)}"
        new = writes.PlugRow(
            plug=plug.key, name=plug.name, rule=plug.rule.label(), state=row.state if row else None,
            read_at=row.read_at if row else None, changed_at=row.changed_at if row else None,
            expected=row.expected if row else None, mode="failing", why=why, price=row.price if row else None,
            next_change_at=row.next_change_at if row else None, next_state=row.next_state if row else None,
            block_start=row.block_start if row else None, block_end=row.block_end if row else None,
            plan=row.plan if row else None, override_until=row.override_until if row else None,
            failures=failures, failing_since=(row.failing_since if row and row.failing_since else t),
            last_error=error, next_attempt_at=t + delay, updated_at=t)
        self._write(new, [(t, "fault", plug.rule.label(), None, None, "failing", error)])
        return Outcome(plug.key, None, None, None, "unreadable", error)

    def _save(self, plug: PlugConfig, t: int, state: bool, decision: Decision, changed_at: int | None,
              expected: bool | None, error: str | None) -> None:
        row = self.rows.get(plug.key)
        if row is not None and row.failing_since is not None and error is None:
            log.info("plug %s answering again", plug.name)
        block = current_block(decision.plan, t)
        failures = (row.failures if row is not None else 0) + 1 if error else 0
        new = writes.PlugRow(
            plug=plug.key, name=plug.name, rule=plug.rule.label(), state=on_off(state), read_at=t,
            changed_at=changed_at, expected=None if expected is None else on_off(expected), mode=decision.mode,
            why=decision.why if error is None else f"{decision.why}; the command failed: {error}",
            price=decision.price, next_change_at=decision.next_change_at,
            next_state=None if decision.next_state is None else on_off(decision.next_state),
            block_start=block[0] if block else None, block_end=block[1] if block else None,
            plan=None if decision.plan is None else writes.plan_json(
                decision.plan.span_start, decision.plan.span_end, list(decision.plan.blocks)),
            override_until=decision.override_until, failures=failures,
            failing_since=(row.failing_since if row and row.failing_since else t) if error else None,
            last_error=error, next_attempt_at=t + min(RETRY_BASE_S * 2 ** (failures - 1), RETRY_MAX_S)
            if error else None, updated_at=t)
        entry = (on_off(decision.want), decision.mode, decision.why)
        log_rows = []
        if entry != self.logged.get(plug.key):
            log_rows.append((t, "decision", plug.rule.label(), decision.price, *entry))
            self.logged[plug.key] = entry
        self._write(new, log_rows)

    def _write(self, row: writes.PlugRow, log_rows: list[tuple[Any, ...]]) -> None:
        self.rows[row.plug] = row
        if not self.dry_run:
            writes.save_plug(self.conn, row, log_rows)

    # -- Home Assistant's commands --------------------------------------------------------------

    def apply_command(self, command: Command, now: datetime | None = None) -> Outcome:
        """Carry out a switch command from Home Assistant as a person's override: read the plug,
        switch it (within the switch budget), record both, and hold the rule off as `decide` holds
        it for a switch by hand (until its next change, or `override_hours`)."""
        now = now or now_utc()
        t = int(now.timestamp())
        plug = next((p for p in self.plugs if p.key == command.plug), None)
        if plug is None:  # the listener admits only configured plugs; kept for a direct call
            raise HomeEnergyError(f"no plug {command.plug!r} in PLUGS_FILE")
        asked = on_off(command.on)
        if monotonic() - command.received > COMMAND_MAX_AGE_S:
            log.warning("plug %s: Home Assistant's command %s came %.0f s ago; not carried out", plug.name, asked,
                        monotonic() - command.received)
            return Outcome(plug.key, None, None, command.on, "late")
        driver = self.drivers[plug.key]
        try:
            state = self.pool.submit(driver.read).result()  # bounded by the door's deadline
        except Exception as exc:  # noqa: BLE001 - as in a round: the plug's failure, recorded
            if aborted():
                return Outcome(plug.key, None, None, command.on, "stopped", str(exc))
            log.warning("plug %s: Home Assistant asked %s, but the plug is not answering", plug.name, asked)
            return self._unreadable(plug, t, _one_line(plug, exc))
        row = self.rows.get(plug.key)
        memory = self._memory(plug, row, t)
        result = "idle"
        if state != command.on:
            if self.dry_run:
                log.info("dry run: would switch %s %s (asked by Home Assistant)", plug.name, asked)
                return Outcome(plug.key, state, None, command.on, "dry-run")
            if memory.switches_last_hour >= plug.max_switches_per_hour:
                if plug.key in self.budget_warned:  # a flood of commands: one line, not one each
                    return Outcome(plug.key, state, None, command.on, "held")
                self.budget_warned.add(plug.key)
                log.warning("plug %s: Home Assistant asked %s; not switched: %d switches in the last hour (at most "
                            "%d)", plug.name, asked, memory.switches_last_hour, plug.max_switches_per_hour)
                return Outcome(plug.key, state, None, command.on, "held")
            log_id = writes.start_command(self.conn, plug.key, t, plug.rule.label(), None, asked,
                                          "asked by Home Assistant")
            try:
                state = self.pool.submit(driver.switch, command.on).result()
            except Exception as exc:  # noqa: BLE001 - as in a round: the plug's failure, recorded
                error = _one_line(plug, exc)
                writes.finish_command(self.conn, log_id, "failed", error)
                if aborted():
                    return Outcome(plug.key, None, None, command.on, "stopped", error)
                log.warning("plug %s: Home Assistant asked %s; the command failed: %s", plug.name, asked, error)
                return self._unreadable(plug, t, error)
            self.budget_warned.discard(plug.key)
            result = "ok" if state == command.on else "failed"
            writes.finish_command(self.conn, log_id, result, None if result == "ok" else
                                  f"asked {asked}, the plug reports {on_off(state)}")
            log.info("%s switched %s (asked by Home Assistant)", plug.name, on_off(state))
        elif self.dry_run:
            return Outcome(plug.key, state, None, command.on, "idle")
        # A fresh override whatever was held before: `decide` sees a state this program did not set.
        market = self.market(now)
        found = decide(plug, market, replace(memory, expected=not state, override_until=None), state, self.tz)
        until = found.override_until if found.override_until is not None else t
        decision = replace(found, why=f"manual: switched {on_off(state)} from Home Assistant; automatic again at "
                                      f"{hhmm(until, self.tz)}")
        changed = t if row is None or _bool(row.state) != state else row.changed_at
        self._save(plug, t, state, decision, changed, state, None)
        return Outcome(plug.key, state, decision, command.on, result)

    # -- the schedule ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, commands: queue.Queue[Command] | None = None) -> None:
        """Decide a few seconds past every minute until `stop` is set; between rounds, carry out
        Home Assistant's commands as they arrive."""
        while not stop.is_set():
            try:
                for outcome in self.decide_once():
                    if outcome.result == "failed":
                        log.warning("plug %s: the command failed: %s", outcome.plug, outcome.error)
            except HomeEnergyError as exc:  # a busy or unreadable cache: the next minute retries
                log.warning("plug decisions skipped: %s", exc)
            except Exception:  # noqa: BLE001 - the controller outlives any one bad minute
                log.exception("plug decisions failed unexpectedly")
            now = now_utc()
            self._between_rounds(stop, 60 - now.second - now.microsecond / 1e6 + SECONDS_PAST_MINUTE, commands)

    def _between_rounds(self, stop: threading.Event, wait_s: float, commands: queue.Queue[Command] | None) -> None:
        if commands is None:
            stop.wait(wait_s)
            return
        deadline = monotonic() + wait_s
        while not stop.is_set() and (left := deadline - monotonic()) > 0:
            try:
                first = commands.get(timeout=min(left, COMMAND_POLL_S))
            except queue.Empty:
                continue
            for command in _latest_per_plug(first, commands):
                try:
                    self.apply_command(command)
                except HomeEnergyError as exc:
                    log.warning("plug command from Home Assistant not carried out: %s", exc)
                except Exception:  # noqa: BLE001 - the controller outlives any one bad command
                    log.exception("plug command from Home Assistant failed unexpectedly")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for driver in self.drivers.values():
            driver.close()
        self.conn.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the one-controller lock
            self.lock_fd = None


def _latest_per_plug(first: Command, commands: queue.Queue[Command]) -> list[Command]:
    """`first` and whatever else is waiting, keeping each plug's last command only: a burst of
    taps (or a flood) costs one exchange per plug, never one per message."""
    latest = {first.plug: first}
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            return list(latest.values())
        latest.pop(command.plug, None)
        latest[command.plug] = command


def _one_line(plug: PlugConfig, exc: BaseException) -> str:
    """A driver failure as the round words it: the door's own line, or its kind only."""
    return str(exc) if isinstance(exc, HomeEnergyError) else \
        f"the {plug.name} plug's exchange failed unexpectedly ({type(exc).__name__})"


def _one_controller(cache: Path) -> int:
    """Hold `<cache>.plugs.lock` for the controller's life: two controllers (the service and a
    `home-energy run` beside it) would take each other's commands for a person's."""
    path = cache.with_name(cache.name + ".plugs.lock")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise CacheBusyError(f"cannot open the plug controller's lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CacheBusyError(f"another plug controller is already running on {cache} (lock {path.name}): "
                             "stop it first; only one may switch the plugs") from None
    return fd


def load_configured_plugs(config: Config) -> list[PlugConfig] | None:
    """The plugs in PLUGS_FILE (ConfigError, exit 78, on any mistake), or None when it is unset.
    Their passwords are scrubbed from the process's log records from here on (`redact.install`)."""
    if config.plugs_file is None:
        return None
    from .. import redact
    from .rules import load_plugs

    plugs = load_plugs(config.plugs_file)
    # The file's passwords join the configuration's secrets: removed by value from every log line.
    redact.install(config, [plug.password.reveal() for plug in plugs if plug.password is not None])
    return plugs


def start_controller(config: Config) -> Callable[[], None] | None:
    """Control the plugs in a daemon thread (for `home-energy run`); None when PLUGS_FILE is unset.

    The file is checked here, in the caller's thread, so a mistake stops the start with exit 78.
    """
    plugs = load_configured_plugs(config)
    if plugs is None:
        return None
    open_writer(config.sqlite_path).close()
    stop = threading.Event()

    def _run() -> None:
        try:
            controller = Controller(config, plugs)
        except HomeEnergyError as exc:
            log.error("plug controller not started: %s", exc)
            return
        _run_listening(config, controller, plugs, stop)

    thread = threading.Thread(target=_run, name="plug-controller", daemon=True)
    thread.start()
    log.info("controlling %d plug(s) from %s", len(plugs), config.plugs_file)

    def _stop() -> None:
        stop.set()
        thread.join(timeout=PLUG_LIMITS.deadline_s * 2 + 1 + COMMAND_POLL_S + LISTENER_STOP_S)

    return _stop


def control_until_signalled(config: Config, dry_run: bool) -> int:
    """`home-energy control`: decide every minute in the foreground until SIGTERM or SIGINT."""
    from ..fetch import stop_on_signals

    plugs = load_configured_plugs(config)
    if plugs is None:
        print("no plugs configured (PLUGS_FILE is unset): nothing to control")
        return 0
    stop = threading.Event()
    stop_on_signals(then=lambda _signum: stop.set())
    controller = Controller(config, plugs, dry_run=dry_run)
    log.info("controlling %d plug(s) from %s%s", len(plugs), config.plugs_file, " (dry run)" if dry_run else "")
    _run_listening(config, controller, plugs, stop, dry_run=dry_run)
    return 0


def _run_listening(config: Config, controller: Controller, plugs: list[PlugConfig], stop: threading.Event,
                   dry_run: bool = False) -> None:
    """Run the controller until `stop`, with Home Assistant's commands when MQTT is set; then
    stop the listener and close the controller, whatever ended the run."""
    listening = start_listener(config, [plug.key for plug in plugs], dry_run=dry_run)
    try:
        controller.run(stop, listening[0] if listening else None)
    finally:
        if listening:
            listening[1]()
        controller.close()
