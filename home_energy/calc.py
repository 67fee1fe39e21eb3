"""Pure arithmetic the display relies on: cheapest windows, freshness, the forecast price to
show and the one problem health names. No I/O, no clock reads.

Cheapest windows weight every interval by how many of its minutes fall inside the window, so a
response that mixes 5- and 30-minute intervals averages correctly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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


# The reasons a failed sync run is recorded with (`sync_runs.problem`): each error class names
# one (errors.py, `problem`), so no reason is ever read from an error's wording.
RUN_PROBLEMS = (
    "token_refused", "site_missing", "settings_invalid", "upstream_unreachable", "rate_limited",
    "invalid_data", "clock_wrong", "cache_unreadable", "writer_busy",
)
# Reasons that need nobody: another writer held the cache, and the next run follows in minutes.
QUIET_PROBLEMS = frozenset({"writer_busy"})
# What health's `problem` may say (the page has two of its own: server_unreachable, sync_stopped).
PROBLEMS = (*(p for p in RUN_PROBLEMS if p not in QUIET_PROBLEMS), "first_sync_pending")
# A failed run recorded before runs carried a code: its outcome is all there is to go by.
PROBLEM_OF_OUTCOME = {"configerror": "settings_invalid", "dataerror": "invalid_data",
                      "tempfail": "upstream_unreachable"}


def forecast_price(kind: str, per_kwh: float, predicted: float | None, basis: str) -> float:
    """The price a forecast interval is drawn and ranked at: Amber's prediction when it has one
    and `basis` is "amber"; `perKwh` for actual and current intervals, and always under "aemo"."""
    if basis == "amber" and kind == "forecast" and predicted is not None:
        return predicted
    return per_kwh


def sync_problem(outcome: str | None, problem: str | None, has_prices: bool) -> str | None:
    """The one problem a household must hear about, from the last sync run's outcome and the
    problem code it was recorded with (never its error's wording). None when all is well."""
    if outcome is None or outcome in ("ok", "partial", "interrupted"):
        # An interrupted run (killed, a power cut) needs nobody: the next one follows within
        # minutes, and if none does, the page's own "no new prices since" notice says so.
        return None if has_prices else "first_sync_pending"
    code = problem if problem in RUN_PROBLEMS else PROBLEM_OF_OUTCOME.get(outcome, "upstream_unreachable")
    if code in QUIET_PROBLEMS:
        return None if has_prices else "first_sync_pending"
    return code


def cheapest_intervals(slots: Sequence[Slot], minutes: int, earliest: int, latest: int) -> list[Window]:
    """The cheapest `minutes` inside [earliest, latest), not necessarily in one piece: whole
    intervals by price (ties to the earlier), the last one cut short to what is still needed.

    The same candidates as `cheapest_window`: intervals that start at or after `earliest` and end
    by `latest`. Adjacent picks are merged, so the answer is the fewest blocks, in time order;
    each block's `avg_per_kwh` is its own duration-weighted mean. Empty when the span holds
    fewer than `minutes` of prices.
    """
    need = minutes * 60
    candidates = sorted((s for s in slots if s.start >= earliest and s.end <= latest and s.end > s.start),
                        key=lambda s: (s.per_kwh, s.start))
    if sum(s.end - s.start for s in candidates) < need:
        return []
    picked: list[Slot] = []
    for slot in candidates:
        if need <= 0:
            break
        take = min(need, slot.end - slot.start)
        picked.append(Slot(slot.start, slot.start + take, slot.per_kwh))
        need -= take
    blocks: list[list[float]] = []  # [start, end, cost]
    for slot in sorted(picked, key=lambda s: s.start):
        cost = slot.per_kwh * (slot.end - slot.start)
        if blocks and blocks[-1][1] == slot.start:
            blocks[-1][1] = slot.end
            blocks[-1][2] += cost
        else:
            blocks.append([slot.start, slot.end, cost])
    return [Window(int(s), int(e), round(c / (e - s), 4)) for s, e, c in blocks]
