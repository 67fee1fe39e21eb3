"""What the plug controller writes: each plug's state and the log of its decisions and commands.

Rules it keeps:
- A command is recorded (`sent`) before it goes out and finished (`ok` / `failed`) when the
  plug answers, each in its own short transaction: a controller killed in between leaves a
  `sent` row, which the next start marks `interrupted`, and that start reads the plug's real
  state before it decides anything.
- A decision is logged when it differs from the plug's previous one (what, mode or why); a
  minute that repeats it is not a new decision. Every command is logged.
- The log is pruned with the other data (`sync_writes.prune`, RETENTION_DAYS); a plug removed from
  PLUGS_FILE loses its state row, its log stays until pruned.
"""
from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass

from ..redact import scrub
from .cache import set_meta, transaction

INTERRUPTED = "the controller stopped before the plug answered; its real state is read before deciding"


@dataclass(frozen=True)
class PlugRow:
    """One plug's row of plug_state, as the controller writes it."""

    plug: str
    name: str
    rule: str
    state: str | None
    read_at: int | None
    changed_at: int | None
    expected: str | None
    mode: str
    why: str
    price: float | None
    next_change_at: int | None
    next_state: str | None
    block_start: int | None
    block_end: int | None
    plan: str | None
    override_until: int | None
    failures: int
    failing_since: int | None
    last_error: str | None
    next_attempt_at: int | None
    updated_at: int


_COLUMNS = tuple(PlugRow.__dataclass_fields__)


def load_plug(conn: sqlite3.Connection, plug: str) -> PlugRow | None:
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM plug_state WHERE plug = ?", (plug,)).fetchone()
    return None if row is None else PlugRow(*row)


def save_plug(conn: sqlite3.Connection, row: PlugRow, log: list[tuple] | None = None) -> None:
    """The plug's state and any log rows (at, kind, rule, price, action, result, message), together."""
    if row.last_error is not None:
        row = dataclasses.replace(row, last_error=scrub(row.last_error))
    with transaction(conn):
        conn.execute(
            f"INSERT OR REPLACE INTO plug_state ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            tuple(getattr(row, c) for c in _COLUMNS),
        )
        for entry in log or ():
            conn.execute("INSERT INTO plug_log (at, plug, kind, rule, price, action, result, message) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (entry[0], row.plug, *entry[1:-1], _scrubbed(entry[-1])))


def start_command(conn: sqlite3.Connection, plug: str, at: int, rule: str, price: float | None, action: str,
                  message: str) -> int:
    """Record a command as `sent` before it goes out; returns its log id."""
    with transaction(conn):
        cursor = conn.execute("INSERT INTO plug_log (at, plug, kind, rule, price, action, result, message) "
                              "VALUES (?, ?, 'command', ?, ?, ?, 'sent', ?)",
                              (at, plug, rule, price, action, scrub(message)))
    return int(cursor.lastrowid or 0)


def finish_command(conn: sqlite3.Connection, log_id: int, result: str, message: str | None) -> None:
    with transaction(conn):
        conn.execute("UPDATE plug_log SET result = ?, message = COALESCE(?, message) WHERE id = ?",
                     (result, _scrubbed(message), log_id))


def _scrubbed(text: str | None) -> str | None:
    # A device may quote the request it refused, password included (Tasmota's is in the URL).
    return None if text is None else scrub(text)


def mark_interrupted(conn: sqlite3.Connection) -> list[str]:
    """At start: commands left `sent` by a killed controller become `interrupted`; their plugs."""
    with transaction(conn):
        plugs = [r[0] for r in conn.execute("SELECT DISTINCT plug FROM plug_log WHERE kind = 'command' "
                                            "AND result = 'sent'")]
        conn.execute("UPDATE plug_log SET result = 'interrupted', message = ? WHERE kind = 'command' "
                     "AND result = 'sent'", (INTERRUPTED,))
    return plugs


def forget_plugs(conn: sqlite3.Connection, keep: list[str]) -> int:
    """Drop the state of plugs no longer in PLUGS_FILE (their log stays until pruned)."""
    with transaction(conn):
        marks = ", ".join("?" * len(keep))
        return conn.execute(f"DELETE FROM plug_state WHERE plug NOT IN ({marks})", keep).rowcount


def switches_since(conn: sqlite3.Connection, plug: str, since: int, until: int) -> int:
    """Commands that went out (answered or not) in [since, until]: what max_switches_per_hour
    counts. Bounded above too, so commands stamped by a clock later set back do not count forever."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM plug_log WHERE plug = ? AND kind = 'command' AND at BETWEEN ? AND ? "
        "AND result IN ('sent', 'ok', 'failed', 'interrupted')", (plug, since, until)).fetchone()[0])


def last_decision(conn: sqlite3.Connection, plug: str) -> tuple[str | None, str | None, str | None] | None:
    row = conn.execute("SELECT action, result, message FROM plug_log WHERE plug = ? AND kind = 'decision' "
                       "ORDER BY id DESC LIMIT 1", (plug,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def prune_plug_log(conn: sqlite3.Connection, cutoff: int) -> int:
    """Log rows older than `cutoff` (the caller holds the transaction)."""
    return conn.execute("DELETE FROM plug_log WHERE at < ?", (cutoff,)).rowcount


def plan_json(span_start: int, span_end: int, blocks: list[tuple[int, int]]) -> str:
    return json.dumps({"span_start": span_start, "span_end": span_end, "blocks": [list(b) for b in blocks]})


def mark_decided(conn: sqlite3.Connection, at: int) -> None:
    """The controller's heartbeat, once per round: health tells a stopped controller by it."""
    with transaction(conn):
        set_meta(conn, "plugs_decided_at", at)
