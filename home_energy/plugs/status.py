"""How the plugs stand, read from the cache for /api/plugs and health's `plugs` member.

Read-only and web-side: it imports no driver, no store and no network code (the web's import
contract), and says nothing the controller has not written. A controller that has not decided
for CONTROLLER_SILENT_S is reported `stopped`, so a dead service is never shown as in charge.
"""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from ..clock import to_iso
from ..db import int_meta

CONTROLLER_SILENT_S = 180  # three missed one-minute rounds
# Worst first: the one health names when several plugs have something to say.
MODES_BY_WEIGHT = ("failing", "fallback", "manual", "held", "waiting", "auto")


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else to_iso(datetime.fromtimestamp(epoch, UTC))


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'plug_state'").fetchone() is not None


def plugs(conn: sqlite3.Connection, now: datetime, configured: bool) -> dict[str, Any]:
    """Every plug the controller knows: name, state, rule, why, next change, last error."""
    if not configured:
        return {"controller": "none", "decided_at": None, "plugs": []}
    if not _has_tables(conn):
        return {"controller": "waiting", "decided_at": None, "plugs": []}
    decided = int_meta(conn, "plugs_decided_at")
    t = int(now.timestamp())
    if decided is None:
        controller = "waiting"
    elif t - decided > CONTROLLER_SILENT_S:
        controller = "stopped"
    else:
        controller = "running"
    rows = conn.execute(
        "SELECT plug, name, rule, state, read_at, mode, why, price, next_change_at, next_state, block_start, "
        "block_end, override_until, last_error, failing_since, next_attempt_at, updated_at FROM plug_state "
        "ORDER BY name").fetchall()
    return {
        "controller": controller,
        "decided_at": _iso(decided),
        "plugs": [{
            "key": r["plug"], "name": r["name"], "state": r["state"], "rule": r["rule"], "mode": r["mode"],
            "why": r["why"], "price": r["price"],
            "next_change": None if r["next_change_at"] is None else
            {"at": _iso(r["next_change_at"]), "state": r["next_state"]},
            "block": None if r["block_start"] is None else
            {"start": _iso(r["block_start"]), "end": _iso(r["block_end"])},
            "override_until": _iso(r["override_until"]),
            "last_error": r["last_error"], "failing_since": _iso(r["failing_since"]),
            "retry_at": _iso(r["next_attempt_at"]), "read_at": _iso(r["read_at"]), "updated_at": _iso(r["updated_at"]),
        } for r in rows],
    }


def health(conn: sqlite3.Connection, now: datetime, configured: bool) -> dict[str, Any]:
    """ok | fallback | failing | manual | held | waiting | stopped | none, with the reason to read."""
    found = plugs(conn, now, configured)
    if found["controller"] in ("none", "stopped") or (found["controller"] == "waiting" and not found["plugs"]):
        why = {"none": None, "stopped": "the plug controller has not decided since " + str(found["decided_at"]),
               "waiting": "the plug controller has not run yet"}[found["controller"]]
        return {"status": found["controller"], "count": len(found["plugs"]), "why": why,
                "decided_at": found["decided_at"]}
    worst = min(found["plugs"], key=lambda p: MODES_BY_WEIGHT.index(p["mode"])
                if p["mode"] in MODES_BY_WEIGHT else 0, default=None)
    status = "ok" if worst is None or worst["mode"] in ("auto", "held", "waiting") else worst["mode"]
    return {"status": status, "count": len(found["plugs"]),
            "why": None if status == "ok" or worst is None else f"{worst['name']}: {worst['why']}",
            "decided_at": found["decided_at"]}
