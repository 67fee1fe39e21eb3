"""The one place that reads the time, so tests (freezegun) and the sync agree on "now".

Inside the project every datetime is timezone-aware UTC. NEM time (fixed UTC+10, no daylight
saving) and the household's local zone are used only at the edges.
"""
from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeGuard, overload

NEM_TZ = timezone(timedelta(hours=10), "AEST")


def now_utc() -> datetime:
    return datetime.now(UTC)


def monotonic() -> float:
    return time.monotonic()


def is_recent(last: float | None, now: float, period_s: float) -> bool:
    """Whether something done at `last` (Unix seconds) is less than `period_s` before `now`.

    A stamp in the future, written while the clock ran ahead, is never recent: otherwise it would
    postpone the next fetch or check for as long as the clock was wrong.
    """
    return last is not None and 0 <= now - last < period_s


def is_waiting(until: float | None, now: float, ceiling_s: float) -> TypeGuard[float]:
    """Whether a wait that ends at `until` is still on: it ends in the future, but no further than
    `ceiling_s` ahead (a longer one was set by a clock that was wrong, and is ignored)."""
    return until is not None and now < until <= now + ceiling_s


@overload
def to_iso(value: datetime) -> str: ...
@overload
def to_iso(value: None) -> None: ...
def to_iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a trailing Z, whole seconds: the only time format the API emits."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (with Z or an offset) to aware UTC."""
    # RFC 3339 (what the schema's date-time format admits) allows a lowercase z.
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {text!r}")
    return value.astimezone(UTC)


def nem_date(value: datetime) -> date:
    return value.astimezone(NEM_TZ).date()


def nem_day_start(day: date) -> datetime:
    """The UTC instant at which NEM day `day` begins."""
    return datetime(day.year, day.month, day.day, tzinfo=NEM_TZ).astimezone(UTC)


def floor_to_boundary(value: datetime, minutes: int = 5) -> datetime:
    """The interval boundary at or before `value` on a `minutes` grid (5 or 30; both divide an hour).

    Amber's startTime is one second after the interval boundary: rows are keyed on the boundary.
    """
    value = value.astimezone(UTC)
    return value.replace(minute=value.minute - value.minute % minutes, second=0, microsecond=0)
