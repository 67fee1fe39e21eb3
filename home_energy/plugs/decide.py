"""What each plug should do now: pure functions of the rule, the cached prices, what the
controller remembers and the state the plug reported. No I/O and no clock reads, so every
policy is tested with a pinned time.

Rules it keeps, in this order:
1. A person wins. When a plug's state differs from what this program last set (or accepted)
   and nothing here changed it, that is a manual override: the rule leaves the plug alone
   until the rule's next change (for `cheapest`, its next block) or for `override_hours`,
   whichever comes first.
2. Nothing is switched on stale data. When the newest price is older than STALE_AFTER_SECONDS,
   or the sync has failed for longer than that, the plug goes to its `fallback` (`leave`,
   `off` or `on`) and `why` says so.
3. `cheapest` picks its block with `calc.cheapest_window` (its pieces with
   `calc.cheapest_intervals` when split) over the same prices the chart and the summary's
   cheapest windows rank, inside the next daily span; the choice is re-made as forecasts change
   until a block starts, and a started block is never moved.
4. `below` and `avoid` look at the price now; minimum on and off times stop the relay chattering
   when the price hovers at the threshold.
5. At most `max_switches_per_hour` switches per plug, whatever the rule wants.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ..calc import Slot, cheapest_intervals, cheapest_window
from .rules import Avoid, Below, Cheapest, PlugConfig

Block = tuple[int, int]  # [start, end) in Unix seconds


@dataclass(frozen=True)
class Market:
    """The prices one decision sees, read from the cache (queries.plug_prices)."""

    now: int
    general: tuple[Slot, ...]  # from the interval holding now on, at the price the chart draws
    feed_in: tuple[Slot, ...]  # what export earns, c/kWh, + = paid (Amber's sign flipped)
    spike: bool  # Amber says a spike is on in the general interval now
    stale: str | None  # why these prices may not be acted on, or None


@dataclass(frozen=True)
class Plan:
    """A `cheapest` rule's blocks inside one daily span."""

    span_start: int
    span_end: int
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Memory:
    """What the controller remembers of a plug between decisions (kept in the cache)."""

    expected: bool | None = None  # the state it last set or accepted; None before the first read
    changed_at: int | None = None  # when the plug last changed state, as far as it knows
    override_until: int | None = None
    plan: Plan | None = None
    switches_last_hour: int = 0


@dataclass(frozen=True)
class Decision:
    want: bool | None  # None: leave the plug as it is
    mode: str  # auto | manual | fallback | held | waiting
    why: str
    price: float | None = None  # the price the rule looked at, c/kWh
    next_change_at: int | None = None
    next_state: bool | None = None
    plan: Plan | None = None
    override_until: int | None = None
    expected: bool | None = None  # what to remember as expected when no command is sent


def hhmm(epoch: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).strftime("%H:%M")


def on_off(state: bool | None) -> str:
    return "leave" if state is None else ("on" if state else "off")


def stale_reason(now: int, fetched_at: int | None, last_ok_at: int | None, last_outcome: str | None,
                 last_error: str | None, stale_after_s: int, tz: ZoneInfo) -> str | None:
    """Why prices may not be acted on, or None: none at all, too old, or a sync failing too long.

    Worded by the time things stopped (not by an age), so the reason stays the same sentence
    minute after minute and is logged once."""
    limit = f"the limit is {stale_after_s // 60} min"
    if fetched_at is None:
        return "no prices in the cache yet"
    failing = last_outcome not in (None, "ok", "partial", "interrupted", "running")
    if failing and (last_ok_at is None or now - last_ok_at > stale_after_s):
        since = "" if last_ok_at is None else f" since {hhmm(last_ok_at, tz)}"
        detail = f": {last_error[:80]}" if last_error else ""
        return f"the sync has been failing{since} ({limit}){detail}"
    if now - fetched_at > stale_after_s:
        return f"no new prices since {hhmm(fetched_at, tz)} ({limit})"
    return None


def span_at(rule: Cheapest, now: int, tz: ZoneInfo) -> tuple[int, int]:
    """The daily span holding `now`, or else the next one to start, as UTC epochs."""
    local = datetime.fromtimestamp(now, UTC).astimezone(tz)
    for days in (-1, 0, 1):
        day = local.date() + timedelta(days=days)
        start = datetime.combine(day, rule.start, tz)
        end_day = day if rule.end > rule.start else day + timedelta(days=1)
        end = datetime.combine(end_day, rule.end, tz)
        if end.timestamp() > now:
            return int(start.timestamp()), int(end.timestamp())
    raise AssertionError("a span ends within two days")


def interval_start(slots: Sequence[Slot], now: int) -> int | None:
    for slot in slots:
        if slot.start <= now < slot.end:
            return slot.start
    return None


def price_now(slots: Sequence[Slot], now: int) -> float | None:
    for slot in slots:
        if slot.start <= now < slot.end:
            return slot.per_kwh
    return None


def plan_cheapest(rule: Cheapest, slots: Sequence[Slot], now: int, tz: ZoneInfo, previous: Plan | None) -> Plan | None:
    """The blocks for the span holding `now` (or the next): kept where started, re-chosen elsewhere."""
    span_start, span_end = span_at(rule, now, tz)
    committed: tuple[Block, ...] = ()
    if previous is not None and previous.span_start == span_start:
        committed = tuple(b for b in previous.blocks if b[0] <= now)
    if committed and not rule.split:
        return previous  # one block, started: never moved
    done = sum(end - start for start, end in committed)
    need_s = rule.minutes * 60 - done
    if need_s <= 0:
        return Plan(span_start, span_end, committed)
    # Like the summary: the interval holding now is a candidate (it counts from its start).
    earliest = max(span_start, interval_start(slots, now) or now, *(end for _start, end in committed))
    if rule.split:
        found = [(w.start, w.end) for w in cheapest_intervals(slots, need_s // 60, earliest, span_end)]
    else:
        window = cheapest_window(slots, need_s // 60, earliest, span_end)
        found = [] if window is None else [(window.start, window.end)]
    if not found:
        return Plan(span_start, span_end, committed) if committed else None
    return Plan(span_start, span_end, tuple(sorted(committed + tuple(found))))


def _merged(blocks: Sequence[Block]) -> list[Block]:
    out: list[Block] = []
    for start, end in sorted(blocks):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def current_block(plan: Plan | None, now: int) -> Block | None:
    """The (merged) block holding now, else the next one, else the last one that ran."""
    if plan is None or not plan.blocks:
        return None
    blocks = _merged(plan.blocks)
    for block in blocks:
        if now < block[1]:
            return block
    return blocks[-1]


def _cheapest(plug: PlugConfig, rule: Cheapest, market: Market, memory: Memory, tz: ZoneInfo) -> Decision:
    now = market.now
    plan = plan_cheapest(rule, market.general, now, tz, memory.plan)
    price = price_now(market.general, now)
    if plan is None:
        span_start, span_end = span_at(rule, now, tz)
        covered = max((s.end for s in market.general), default=0)
        if covered < span_end and covered < span_start + rule.minutes * 60 + 3600:
            why = f"waiting for prices that reach {hhmm(span_end, tz)}"
        else:
            why = f"not {rule.label().split(' ', 1)[1]} left before {hhmm(span_end, tz)}"
        return Decision(False, "waiting", why, price)
    blocks = _merged(plan.blocks)
    for start, end in blocks:
        if start <= now < end:
            return Decision(True, "auto", f"cheapest block {hhmm(start, tz)}–{hhmm(end, tz)}", price,
                            end, False, plan)
    upcoming = [b for b in blocks if b[0] > now]
    if upcoming:
        start, end = upcoming[0]
        return Decision(False, "auto", f"waiting for the cheapest block {hhmm(start, tz)}–{hhmm(end, tz)}",
                        price, start, True, plan)
    ran = ", ".join(f"{hhmm(s, tz)}–{hhmm(e, tz)}" for s, e in blocks)
    return Decision(False, "auto", f"ran {ran}; the next block is chosen from {rule.start:%H:%M}", price,
                    None, None, plan)


def _threshold(plug: PlugConfig, rule: Below | Avoid, market: Market, memory: Memory, actual: bool | None,
               tz: ZoneInfo) -> Decision:
    now = market.now
    slots = market.feed_in if isinstance(rule, Below) and rule.channel == "feed_in" else market.general
    price = price_now(slots, now)
    if price is None:
        return Decision(None, "waiting", "no price for now in the cache", None)

    def wants(value: float, spike: bool) -> bool:
        if isinstance(rule, Below):
            return value <= rule.price + 1e-9
        return not (value > rule.price + 1e-9 or (rule.spikes and spike))

    want = wants(price, market.spike)
    if isinstance(rule, Below):
        what = "feed-in" if rule.channel == "feed_in" else "price"
        why = f"{what} {price:g}c is {'at or below' if want else 'above'} {rule.price:g}c"
    elif market.spike and rule.spikes:
        why = "a price spike is on"
    else:
        why = f"price {price:g}c is {'at or below' if want else 'above'} {rule.price:g}c"
    # When the forecast says the wish flips next (spikes are not forecast).
    next_at = next((s.start for s in slots if s.start > now and wants(s.per_kwh, False) != want), None)
    state = actual if actual is not None else memory.expected
    if state is not None and want != state and memory.changed_at is not None:
        minimum = rule.min_on_minutes if state else rule.min_off_minutes
        # min(): a change stamped by a clock that has since been set back holds no longer than the minimum.
        hold_until = min(memory.changed_at, now) + minimum * 60
        if now < hold_until:
            return Decision(state, "held", f"{why}, but stays {on_off(state)} for at least {minimum} min "
                            f"(until {hhmm(hold_until, tz)})", price, hold_until, want)
    return Decision(want, "auto", why, price, next_at, None if next_at is None else not want)


def decide(plug: PlugConfig, market: Market, memory: Memory, actual: bool | None, tz: ZoneInfo) -> Decision:
    """What `plug` should do at `market.now`, given the state it reported (`actual`, None if unread)."""
    now = market.now
    rule = plug.rule
    if isinstance(rule, Cheapest):
        base = _cheapest(plug, rule, market, memory, tz) if market.stale is None else \
            Decision(None, "waiting", "", price_now(market.general, now), plan=memory.plan)
    else:
        base = _threshold(plug, rule, market, memory, actual, tz) if market.stale is None else \
            Decision(None, "waiting", "", price_now(market.general, now))
    expected = memory.expected if memory.expected is not None else actual

    # 1. A person wins.
    override_until = memory.override_until if memory.override_until and now < memory.override_until else None
    if override_until is not None and override_until - now > plug.override_hours * 3600:
        override_until = now + round(plug.override_hours * 3600)  # the clock was set back: no longer than promised
    if override_until is None and actual is not None and memory.expected is not None and actual != memory.expected:
        override_until = now + round(plug.override_hours * 3600)
        upcoming = _next_rule_change(base, now)
        if upcoming is not None:
            override_until = min(override_until, upcoming)
    if override_until is not None:
        return replace(base, want=None, mode="manual",
                       why=f"manual: switched by hand; automatic again at {hhmm(override_until, tz)}",
                       override_until=override_until, expected=actual if actual is not None else expected,
                       next_change_at=override_until, next_state=None)

    # 2. Nothing on stale data.
    if market.stale is not None:
        target = {"leave": None, "off": False, "on": True}[plug.fallback]
        action = "left as it is" if target is None else f"switched {on_off(target)} (fallback)"
        return replace(base, want=target, mode="fallback", why=f"{market.stale}: {action}",
                       expected=expected, next_change_at=None, next_state=None)

    # 5. The switch budget.
    if base.want is not None and actual is not None and base.want != actual \
            and memory.switches_last_hour >= plug.max_switches_per_hour:
        return replace(base, want=None, mode="held",
                       why=f"{base.why}; held: {memory.switches_last_hour} switches in the last hour "
                           f"(at most {plug.max_switches_per_hour})", expected=expected)
    return replace(base, expected=expected)


def _next_rule_change(base: Decision, now: int) -> int | None:
    """When the rule itself next changes its mind: a manual override lasts no longer than that."""
    if base.plan is not None:
        # `cheapest`: the next block to start (the one running now, if any, is given up).
        starts = [b[0] for b in _merged(base.plan.blocks) if b[0] > now]
        return min(starts) if starts else base.plan.span_end
    if base.next_change_at is not None and base.next_change_at > now and base.mode == "auto":
        return base.next_change_at
    return None
