"""How the MQTT publisher is doing, told to health through a small file beside the cache.

The publisher runs in its own process (its systemd unit) or thread (`home-energy run`) and never
writes the cache; the web must not talk to the broker. So the publisher replaces one JSON file
(`publish-status.json` next to the cache) atomically when its state changes and at least every
minute, and health reads it: a file older than three minutes means the publisher is not running.
Nothing in it is secret: the broker is named without user-info and errors never carry the password.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .clock import to_iso

STATUS_FILE = "publish-status.json"
STATUS_EVERY_S = 60  # the publisher rewrites the file at least this often
NOT_RUNNING_AFTER_S = 3 * STATUS_EVERY_S
MAX_STATUS_BYTES = 4096  # the file is ~200 bytes: anything larger is not ours


@dataclass(frozen=True)
class PublishState:
    status: str  # connecting | connected | failing | stopped
    broker: str  # mqtt(s)://host:port, never user-info
    since: int  # Unix seconds the status began
    updated_at: int
    last_error: str | None = None
    published_at: int | None = None  # the last time states were sent


def status_path(sqlite_path: Path) -> Path:
    return sqlite_path.parent / STATUS_FILE


def write_status(path: Path, state: PublishState) -> None:
    """Replace the file atomically, so health never reads half of it."""
    fd, tmp = tempfile.mkstemp(prefix=".publish-status.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(state), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stamp(path: Path) -> int | None:
    """The file's modification time in ns: what a kept health answer is keyed on."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else to_iso(datetime.fromtimestamp(epoch, UTC))


def _read_small_file(path: Path) -> bytes:
    """At most MAX_STATUS_BYTES of a regular file; never waits (a FIFO put there would block a
    health request forever on a plain open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        return os.read(fd, MAX_STATUS_BYTES)
    finally:
        os.close(fd)


def read_status(path: Path, now: datetime, broker: str) -> dict[str, Any]:
    """Health's `publish` member: connected | connecting | failing | stopped | not_running | waiting."""
    body: dict[str, Any] = {"status": "waiting", "broker": broker, "since": None, "last_error": None,
                            "last_published_at": None}
    try:
        raw = json.loads(_read_small_file(path))
        state = PublishState(**{k: raw[k] for k in PublishState.__dataclass_fields__ if k in raw})
        found = {"status": str(state.status), "since": _iso(state.since), "last_error": state.last_error,
                 "last_published_at": _iso(state.published_at)}
        if state.status != "stopped" and now.timestamp() - state.updated_at > NOT_RUNNING_AFTER_S:
            found.update(status="not_running", since=_iso(state.updated_at))
    except (OSError, ValueError, TypeError, OverflowError):
        return body  # not started yet, or a file that is not ours: nothing to report
    body.update(found)
    return body
