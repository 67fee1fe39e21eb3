"""Frozen records that cross module boundaries, and their construction from Amber payloads.

Conversion keeps Amber's units and signs exactly: prices in c/kWh incl. GST, feed-in negative
when the household is paid, usage cost in cents. Only the interval start is normalised (Amber's
startTime is one second after the boundary) so rows key on the boundary.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from .clock import floor_to_boundary, parse_iso
from .errors import SiteMissingError, UpstreamDataError

T = TypeVar("T")

KIND_BY_TYPE = {"ActualInterval": "actual", "CurrentInterval": "current", "ForecastInterval": "forecast"}
# The keys Amber's TariffInformation schema names; anything else it may carry is dropped here,
# never stored as raw JSON (an extra property may be nested arbitrarily deep).
TARIFF_KEYS = ("block", "demandWindow", "period", "season")


@dataclass(frozen=True)
class Site:
    id: str
    nmi: str
    network: str
    status: str
    interval_length: int
    channels: tuple[tuple[str, str, str], ...]  # (identifier, type, tariff)
    active_from: str | None
    closed_on: str | None

    @property
    def channel_types(self) -> frozenset[str]:
        return frozenset(c[1] for c in self.channels)


@dataclass(frozen=True)
class PriceRow:
    site_id: str
    channel: str
    start: int
    end: int
    duration: int
    kind: str
    per_kwh: float
    spot_per_kwh: float
    renewables: float
    descriptor: str
    spike_status: str
    estimate: bool | None
    adv_low: float | None
    adv_predicted: float | None
    adv_high: float | None
    range_min: float | None
    range_max: float | None
    tariff: str | None


@dataclass(frozen=True)
class UsageRow:
    site_id: str
    channel_identifier: str
    channel: str
    start: int
    end: int
    duration: int
    day: str
    kwh: float
    cost_cents: float
    per_kwh: float
    quality: str


def site_from_payload(item: dict[str, Any]) -> Site:
    return Site(
        id=item["id"],
        nmi=item["nmi"],
        network=item["network"],
        status=item["status"],
        interval_length=int(item["intervalLength"]),
        channels=tuple((c["identifier"], c["type"], c["tariff"]) for c in item["channels"]),
        active_from=item.get("activeFrom"),
        closed_on=item.get("closedOn"),
    )


def _finite(value: Any) -> float:
    """A number the cache and strict JSON can hold: NaN and infinities are invalid data."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _optional(value: Any) -> float | None:
    return None if value is None else _finite(value)


def _start(item: dict[str, Any]) -> int:
    return int(floor_to_boundary(parse_iso(item["startTime"])).timestamp())


def _end(item: dict[str, Any]) -> int:
    return int(parse_iso(item["endTime"]).timestamp())


def price_from_payload(site_id: str, item: dict[str, Any]) -> PriceRow:
    advanced = item.get("advancedPrice") or {}
    spread = item.get("range") or {}
    tariff = {k: v for k, v in (item.get("tariffInformation") or {}).items()
              if k in TARIFF_KEYS and isinstance(v, (str, bool, int, float))}
    return PriceRow(
        site_id=site_id,
        channel=item["channelType"],
        start=_start(item),
        end=_end(item),
        duration=int(item["duration"]),
        kind=KIND_BY_TYPE[item["type"]],
        per_kwh=_finite(item["perKwh"]),
        spot_per_kwh=_finite(item["spotPerKwh"]),
        renewables=_finite(item["renewables"]),
        descriptor=item["descriptor"],
        spike_status=item["spikeStatus"],
        estimate=item.get("estimate") if item["type"] == "CurrentInterval" else None,
        adv_low=_optional(advanced.get("low")),
        adv_predicted=_optional(advanced.get("predicted")),
        adv_high=_optional(advanced.get("high")),
        range_min=_optional(spread.get("min")),
        range_max=_optional(spread.get("max")),
        tariff=json.dumps(tariff, sort_keys=True) if tariff else None,
    )


def usage_from_payload(site_id: str, item: dict[str, Any]) -> UsageRow:
    return UsageRow(
        site_id=site_id,
        channel_identifier=item["channelIdentifier"],
        channel=item["channelType"],
        start=_start(item),
        end=_end(item),
        duration=int(item["duration"]),
        day=date.fromisoformat(item["date"]).isoformat(),
        kwh=_finite(item["kwh"]),
        cost_cents=_finite(item["cost"]),
        per_kwh=_finite(item["perKwh"]),
        quality=item["quality"],
    )


def convert_all(endpoint: str, convert: Callable[[dict[str, Any]], T], items: list[dict[str, Any]]) -> list[T]:
    """Build records from validated items; a value the schema admits but Python cannot read
    (say a leap second) rejects the whole payload like any other invalid data."""
    out: list[T] = []
    for index, item in enumerate(items):
        try:
            out.append(convert(item))
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamDataError(f"Amber {endpoint} response rejected: [{index}]: {exc}") from exc
    return out


def choose_site(sites: list[Site], wanted: str | None) -> Site:
    """The site to show: AMBER_SITE_ID when set, else the account's one active site."""
    if wanted:
        chosen = [s for s in sites if s.id == wanted]
        if not chosen:
            known = ", ".join(f"{s.id} ({s.status})" for s in sites) or "none"
            raise SiteMissingError(f"AMBER_SITE_ID {wanted} is not one of this account's sites: {known}")
        return chosen[0]
    active = [s for s in sites if s.status == "active"]
    if len(active) != 1:
        listed = ", ".join(f"{s.id} (NMI {s.nmi})" for s in active) or "none"
        raise SiteMissingError(f"set AMBER_SITE_ID: this account has {len(active)} active sites: {listed}")
    return active[0]


@dataclass(frozen=True)
class Reading:
    """One poll, in the project's signs (W, + import, + discharge), None where unknown."""

    at: datetime  # when it was read (the collector's clock, UTC)
    source: str
    grid_w: float | None  # + importing, − exporting
    solar_w: float | None  # ≥ 0; None without PV or when the device says null (night)
    battery_w: float | None  # + discharging into the house, − charging; None without a battery
    battery_soc_percent: float | None
    load_w: float | None  # the house's consumption
    import_wh: float | None = None  # the meter's cumulative import counter, when read this poll
    export_wh: float | None = None  # the meter's cumulative export counter
