"""The demo upstream: an Amber simulator used whenever no AMBER_TOKEN is configured.

It answers the same three calls as AmberClient with Amber-shaped payloads (validated and stored
by the same code as real ones): a 5-minute site with general and feed-in channels, cheap nights,
a midday solar soak that drives prices (and feed-in) below zero only on some sunny days, an
evening peak and, on some days, a spike. Values are a
pure function of the interval's time, so every sync and every test sees the same market.
"""
from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .clock import NEM_TZ, floor_to_boundary, now_utc

if TYPE_CHECKING:  # the demo answers offline; it does not load the HTTP client to name a type
    from .amber import RateLimit

DEMO_SITE_ID = "01DEMO0000000000000000SITE"
DEMO_NMI = "4000000000"
NEAR_TERM_5MIN_FORECASTS = 12  # Amber gives 5-minute forecasts for about the next hour, then 30-minute


SPIKE_DAY_CHANCE = 0.25  # about one day in four has an evening spike
SOAK_DAY_CHANCE = 0.3  # about one day in three is sunny enough across the grid to push midday below zero
FEED_IN_MARGIN_C = 2.5  # what a retailer adds to the spot price it pays for exports


def _rng(*key: object) -> random.Random:
    return random.Random("|".join(map(str, key)))


def soak_depth(day: date) -> float:
    """How far (c/kWh of spot) the midday solar soak pulls the price down on NEM day `day`."""
    return 13.0 if _rng("soak", day.isoformat()).random() < SOAK_DAY_CHANCE else 7.0


def general_price(start: datetime) -> tuple[float, float, float]:
    """(perKwh, spotPerKwh, renewables) for the general channel for the interval starting at `start`."""
    local = start.astimezone(NEM_TZ)
    hour = local.hour + local.minute / 60
    rng = _rng("g", int(start.timestamp()) // 300)
    solar = max(0.0, math.sin((hour - 6.5) / 12 * math.pi))  # 0 at night, 1 at 12:30
    evening = math.exp(-((hour - 18.75) ** 2) / 2.5)
    morning = 0.4 * math.exp(-((hour - 7.5) ** 2) / 1.5)
    spot = 9 + 30 * evening + 10 * morning - soak_depth(local.date()) * solar ** 2 + rng.uniform(-1.5, 1.5)
    day_rng = _rng("spike", local.date().isoformat())
    if day_rng.random() < SPIKE_DAY_CHANCE:
        peak = 17.5 + day_rng.random() * 2
        if abs(hour - peak) < 0.5:
            spot += day_rng.uniform(150, 1200) * (1 - abs(hour - peak) * 2)
    network = 11.0 if 15 <= hour < 21 else 6.0  # time-of-use network tariff
    per_kwh = round(spot * 1.1 + network, 5)
    renewables = round(max(5.0, min(108.0, 25 + 70 * solar + rng.uniform(-3, 3))), 3)
    return per_kwh, round(spot * 1.1, 5), renewables


def descriptor_for(per_kwh: float) -> str:
    if per_kwh < 0:
        return "extremelyLow"
    if per_kwh < 10:
        return "veryLow"
    if per_kwh < 20:
        return "low"
    if per_kwh < 32:
        return "neutral"
    if per_kwh < 100:
        return "high"
    return "spike"


def feed_in_descriptor(earn_c: float) -> str:
    """Feed-in descriptors read from the household's side: high = good to export."""
    if earn_c >= 30:
        return "spike"
    if earn_c >= 10:
        return "high"
    if earn_c >= 4:
        return "neutral"
    if earn_c >= 0:
        return "low"
    return "veryLow"


def _spike_status(per_kwh: float) -> str:
    return "spike" if per_kwh >= 100 else "potential" if per_kwh >= 60 else "none"


def _interval(kind: str, channel: str, start: datetime, minutes: int, now: datetime) -> dict[str, Any]:
    # Price of a 30-minute block is the mean of its 5-minute prices.
    samples = [general_price(start + timedelta(minutes=m)) for m in range(0, minutes, 5)]
    per_kwh = round(sum(s[0] for s in samples) / len(samples), 5)
    spot = round(sum(s[1] for s in samples) / len(samples), 5)
    renewables = round(sum(s[2] for s in samples) / len(samples), 3)
    end = start + timedelta(minutes=minutes)
    if channel == "feedIn":
        # Negative = the household is paid: only a deep soak makes exporting cost money.
        per_kwh = round(-(spot * 0.95 + FEED_IN_MARGIN_C), 5)
        descriptor = feed_in_descriptor(-per_kwh)
    else:
        descriptor = descriptor_for(per_kwh)
    item: dict[str, Any] = {
        "type": kind,
        "duration": minutes,
        "spotPerKwh": spot,
        "perKwh": per_kwh,
        "date": start.astimezone(NEM_TZ).date().isoformat(),
        "nemTime": end.astimezone(NEM_TZ).isoformat(),
        "startTime": (start + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "renewables": renewables,
        "channelType": channel,
        "spikeStatus": _spike_status(max(s[0] for s in samples)),
        "descriptor": descriptor,
        "tariffInformation": {"period": "peak" if 15 <= start.astimezone(NEM_TZ).hour < 21 else "offPeak"},
    }
    if kind == "CurrentInterval":
        item["estimate"] = (now - start) < timedelta(minutes=minutes - 1)
    if kind in ("CurrentInterval", "ForecastInterval"):
        # Amber's own forecast differs from the AEMO-based perKwh: it tempers the market's spikes.
        predicted = per_kwh if per_kwh < 40 else 40 + (per_kwh - 40) * 0.6
        predicted = round(predicted + _rng("adv", channel, int(start.timestamp())).uniform(-1.0, 1.0), 5)
        band = abs(predicted) * 0.15 + 1
        item["advancedPrice"] = {
            "low": round(predicted - band, 5),
            "predicted": predicted,
            "high": round(predicted + band, 5),
        }
    return item


class DemoUpstream:
    """Answers sites / current_prices / usage like AmberClient, from the simulator."""

    channels = ("general", "feedIn")

    def __init__(self) -> None:
        self.calls = 0
        self.rate_limit: RateLimit | None = None

    def close(self) -> None:
        pass

    def sites(self) -> list[dict[str, Any]]:
        self.calls += 1
        return [
            {
                "id": DEMO_SITE_ID,
                "nmi": DEMO_NMI,
                "channels": [
                    {"identifier": "E1", "type": "general", "tariff": "EA116"},
                    {"identifier": "B1", "type": "feedIn", "tariff": "EA116"},
                ],
                "network": "Ausgrid",
                "status": "active",
                "activeFrom": "2024-01-01",
                "intervalLength": 5,
            }
        ]

    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> list[dict[str, Any]]:
        self.calls += 1
        now = now_utc()
        step = timedelta(minutes=resolution)
        current = floor_to_boundary(now, resolution)
        out: list[dict[str, Any]] = []
        for channel in self.channels:
            out.extend(
                _interval("ActualInterval", channel, current - step * i, resolution, now)
                for i in range(previous, 0, -1)
            )
            out.append(_interval("CurrentInterval", channel, current, resolution, now))
            start = current + step
            for i in range(next_):
                minutes = resolution
                if resolution == 5 and i >= NEAR_TERM_5MIN_FORECASTS and start.minute % 30 == 0:
                    minutes = 30
                elif resolution == 5 and i >= NEAR_TERM_5MIN_FORECASTS and start.minute % 30 != 0:
                    minutes = 5  # finish the half hour in 5-minute steps, then switch
                out.append(_interval("ForecastInterval", channel, start, minutes, now))
                start += timedelta(minutes=minutes)
        return out

    def history(self, start: datetime, end: datetime, resolution: int = 5) -> list[dict[str, Any]]:
        """Settled (ActualInterval) prices on every channel from `start` to `end`, for seed-demo."""
        now = now_utc()
        step = timedelta(minutes=resolution)
        out: list[dict[str, Any]] = []
        for channel in self.channels:
            cursor = floor_to_boundary(start, resolution)
            while cursor + step <= end:
                out.append(_interval("ActualInterval", channel, cursor, resolution, now))
                cursor += step
        return out

    def usage(self, site_id: str, start: date, end: date) -> list[dict[str, Any]]:
        self.calls += 1
        newest = (now_utc().astimezone(NEM_TZ).date() - timedelta(days=1))  # about a day late
        out: list[dict[str, Any]] = []
        day = start
        while day <= min(end, newest):
            begin = datetime(day.year, day.month, day.day, tzinfo=NEM_TZ).astimezone(UTC)
            for slot in range(48):
                slot_start = begin + timedelta(minutes=30 * slot)
                out.append(_usage(slot_start, "general", "E1"))
                feed = _usage(slot_start, "feedIn", "B1")
                if feed["kwh"] != 0:
                    out.append(feed)
            day += timedelta(days=1)
        return out


def _usage(start: datetime, channel: str, identifier: str) -> dict[str, Any]:
    item = _interval("ActualInterval", channel, start, 30, start + timedelta(minutes=30))
    local = start.astimezone(NEM_TZ)
    hour = local.hour + local.minute / 60
    rng = _rng("u", channel, int(start.timestamp()))
    if channel == "general":
        load = 0.12 + 0.35 * math.exp(-((hour - 19) ** 2) / 3) + 0.2 * math.exp(-((hour - 7.5) ** 2) / 1)
        kwh = round(load * rng.uniform(0.7, 1.3), 3)
    else:
        solar = max(0.0, math.sin((hour - 6.5) / 12 * math.pi))
        kwh = -round(1.2 * solar ** 1.5 * rng.uniform(0.6, 1.0), 3)
    item.update(
        type="Usage",
        channelIdentifier=identifier,
        kwh=kwh,
        quality="billable",
        # Cents, like Amber's. Feed-in perKwh is negative when the household is paid and its kWh
        # are negative, so exported energy earns a negative (credit) cost.
        cost=round(kwh * item["perKwh"] if channel == "general" else kwh * -item["perKwh"], 4),
    )
    return item

