"""Pure arithmetic the display relies on: cheapest windows, freshness. No I/O, no clock reads.

Cheapest windows weight every interval by how many of its minutes fall inside the window, so a
response that mixes 5- and 30-minute intervals averages correctly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Slot:
    start: int  # Unix seconds
    end: int
    per_kwh: float


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    avg_per_kwh: float


def cheapest_window(slots: Sequence[Slot], minutes: int, earliest: int, latest: int) -> Window | None:
    """The contiguous `minutes`-long window with the lowest duration-weighted mean price.

    Windows start on an interval boundary at or after `earliest` (the start of the interval that
    holds now, so "now" is a candidate) and end by `latest`; a window may not span a gap in the
    data. Ties go to the earliest window.
    """
    length = minutes * 60
    ordered = sorted((s for s in slots if s.end > earliest and s.start < latest), key=lambda s: s.start)
    best: Window | None = None
    for i, first in enumerate(ordered):
        if first.start < earliest:
            continue
        window_end = first.start + length
        if window_end > latest:
            break
        cost = 0.0
        covered = 0
        cursor = first.start
        for slot in ordered[i:]:
            if slot.start != cursor:  # a gap: this start cannot make a full window
                break
            take = min(slot.end, window_end) - slot.start
            cost += slot.per_kwh * take
            covered += take
            cursor = slot.end
            if covered >= length:
                break
        if covered < length:
            continue
        mean = cost / length
        if best is None or mean < best.avg_per_kwh - 1e-9:
            best = Window(first.start, window_end, round(mean, 4))
    return best


def age_seconds(now: float, then: float | None) -> int | None:
    """Whole seconds since `then`; never negative, so a clock set back shows 0, not -3 years."""
    if then is None:
        return None
    return max(0, int(now - then))


def price_status(price_age_s: int | None, stale_after_s: int) -> str:
    if price_age_s is None:
        return "unknown"
    return "stale" if price_age_s > stale_after_s else "ok"
