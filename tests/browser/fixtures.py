"""Fixture answers for /api/*, shaped exactly like the server's, built around a chosen "now".

Prices follow a plain daily curve (cheap around midday, dear in the evening) in 5-minute
intervals up to an hour ahead and 30-minute forecasts after that, as Amber mixes them.
Scenarios change one thing at a time: the price now, a spike ahead, staleness and the problem
health names, the mode, the month's totals.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

UTC = UTC
NEM = timezone(timedelta(hours=10))
SYDNEY = ZoneInfo("Australia/Sydney")
# 13:12:30 in Sydney (daylight time, UTC+11) on a summer weekday.
NOW = datetime(2026, 1, 15, 2, 12, 30, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(value: datetime) -> datetime:
    return value.astimezone(SYDNEY)


def descriptor_for(price: float) -> str:
    if price < 0:
        return "extremelyLow"
    if price < 5:
        return "veryLow"
    if price < 15:
        return "low"
    if price < 30:
        return "neutral"
    if price < 100:
        return "high"
    return "spike"


def curve(at: datetime) -> float:
    """A daily price shape in c/kWh: 6 c at 13:00 local (solar), 42 c at 01:00."""
    hour = local(at).hour + local(at).minute / 60
    return round(24 - 18 * math.cos((hour - 13) / 24 * 2 * math.pi), 4)


def interval(start: datetime, minutes: int, price: float, kind: str, **extra) -> dict:
    body = {
        "start": iso(start), "end": iso(start + timedelta(minutes=minutes)), "duration_minutes": minutes,
        "kind": kind, "per_kwh": price, "spot_per_kwh": round(price - 10, 4), "renewables": 41.6,
        "descriptor": descriptor_for(price), "spike_status": "none", "estimate": kind != "actual",
        "advanced_price": None, "tariff": None,
    }
    body.update(extra)
    return body


def predicted_band(per_kwh: float) -> dict:
    predicted = round(per_kwh * 0.9, 4)
    return {"low": round(predicted * 0.8 - 1, 4), "predicted": predicted, "high": round(predicted * 1.2 + 1, 4)}


def floor_to(value: datetime, minutes: int) -> datetime:
    epoch = int(value.timestamp())
    return datetime.fromtimestamp(epoch - epoch % (minutes * 60), UTC)


def general_intervals(now: datetime, hours_ahead: int = 24) -> list[dict]:
    day_start = datetime.combine(now.astimezone(NEM).date(), datetime.min.time(), NEM).astimezone(UTC)
    five_until = floor_to(now + timedelta(hours=1), 30)
    out = []
    t = day_start
    while t < five_until:
        kind = "actual" if t + timedelta(minutes=5) <= now else ("current" if t <= now else "forecast")
        out.append(interval(t, 5, curve(t), kind))
        t += timedelta(minutes=5)
    while t < now + timedelta(hours=hours_ahead):
        out.append(interval(t, 30, curve(t), "forecast"))
        t += timedelta(minutes=30)
    return out


def find(intervals: list[dict], at: datetime) -> dict:
    stamp = iso(at)
    for iv in intervals:
        if iv["start"] <= stamp < iv["end"]:
            return iv
    raise LookupError(stamp)


def scenario(
    now: datetime = NOW,
    *,
    version: str = "test",
    price_now: float | None = None,
    spike_now: str = "none",
    estimate: bool = True,
    spike_ahead: tuple[timedelta, str, float] | None = None,
    feed_in: bool = True,
    status: str = "ok",
    source: str = "live",
    mode: str = "amber",
    cached_ago: timedelta = timedelta(minutes=2),
    problem: str | None = "",
    budget: float | None = None,
    month_cost: float | None = 48.9,
    last_month_cost: float | None = 84.2,
    yesterday_cost: float | None = 3.07,
    cheapest_2h_in: timedelta = timedelta(hours=2, minutes=15),
    advanced: bool = False,
    forecast_price: str = "amber",
) -> dict[str, object]:
    """All four answers the page reads, keyed by path.

    `problem` defaults to what the server would say: none while prices are live, Amber unreachable
    otherwise. `month_cost` None is the 1st of a month: `month_to_date` is null.
    """
    if problem == "":
        problem = None if (status, source) == ("ok", "live") else "upstream_unreachable"
    general = general_intervals(now)
    if advanced:  # Amber's own forecast: 10 % under the market's, with a band around it
        for iv in general:
            if iv["kind"] == "forecast":
                iv["advanced_price"] = predicted_band(iv["per_kwh"])
    current = find(general, now)
    if price_now is not None:
        current.update(per_kwh=price_now, descriptor=descriptor_for(price_now))
    current.update(spike_status=spike_now, estimate=estimate)
    if spike_ahead is not None:
        offset, status_ahead, price_ahead = spike_ahead
        ahead = find(general, now + offset)
        ahead.update(spike_status=status_ahead, per_kwh=price_ahead, descriptor=descriptor_for(price_ahead))
        if advanced:
            ahead["advanced_price"] = predicted_band(price_ahead)
    channels = {"general": general}
    current_channels = {"general": current}
    if feed_in:
        feed = [
            dict(iv, per_kwh=round(-(iv["per_kwh"] * 0.5 + 3), 4), descriptor="neutral", spike_status="none")
            for iv in general
        ]
        channels["feedIn"] = feed
        current_channels["feedIn"] = find(feed, now)
    cached_at = floor_to(now - cached_ago, 1)
    start_2h = floor_to(now + cheapest_2h_in, 5)
    day = now.astimezone(NEM).date()
    yesterday = day - timedelta(days=1)
    last_month_end = day.replace(day=1) - timedelta(days=1)
    last_month_start = last_month_end.replace(day=1)

    def window(hours: int, start: datetime, avg: float) -> dict:
        return {"start": iso(start), "end": iso(start + timedelta(hours=hours)), "avg_per_kwh": avg, "hours": hours}

    return {
        "/api/health": {
            "status": status, "problem": problem, "source": source, "mode": mode,
            "cache_age_seconds": int(cached_ago.total_seconds()),
            "price_age_seconds": int(cached_ago.total_seconds()), "usage_age_seconds": 50000,
            "last_sync": {"at": iso(cached_at), "outcome": "ok" if source == "live" else "error",
                          "error": None if source == "live" else "Amber did not answer"},
            "prices_cached_at": iso(cached_at), "version": version,
        },
        "/api/current": {"channels": current_channels},
        "/api/prices": {"channels": channels},
        "/api/summary": {
            "yesterday": {"date": yesterday.isoformat(), "cost_dollars": yesterday_cost},
            "month_to_date": None if month_cost is None or day.day == 1 else {
                "from": day.replace(day=1).isoformat(), "to": yesterday.isoformat(), "cost_dollars": month_cost,
                "days": yesterday.day,
            },
            "last_month": None if last_month_cost is None else {
                "from": last_month_start.isoformat(), "to": last_month_end.isoformat(),
                "cost_dollars": last_month_cost, "days": last_month_end.day,
            },
            "usage_through": yesterday.isoformat(),
            "monthly_budget_dollars": budget,
            "renewables": {"now_percent": 41.6, "today_avg_percent": 38.24},
            "forecast_price": forecast_price,
            "cheapest": {
                "1h": window(1, start_2h + timedelta(minutes=30), 4.81),
                "2h": window(2, start_2h, 5.2349),
                "3h": window(3, start_2h - timedelta(minutes=30), 6.05),
            },
        },
    }


def empty_cache(version: str) -> dict[str, object]:
    """What a fresh install answers before its first sync."""
    return {
        "/api/health": {
            "status": "unknown", "problem": "first_sync_pending", "source": "cache", "mode": "amber",
            "prices_source": None, "cache_age_seconds": None,
            "price_age_seconds": None, "usage_age_seconds": None, "last_sync": None, "prices_cached_at": None,
            "version": version,
        },
        "/api/current": {"channels": {}},
        "/api/prices": {"channels": {}},
        "/api/summary": {
            "yesterday": {"date": "2026-01-14", "cost_dollars": None},
            "month_to_date": None, "last_month": None,
            "usage_through": None, "monthly_budget_dollars": None,
            "renewables": {"now_percent": None, "today_avg_percent": None},
            "forecast_price": "amber",
            "cheapest": {"1h": None, "2h": None, "3h": None},
        },
    }


class FakeApi:
    """Answers the page's /api/* requests from a scenario; `down` makes every request fail."""

    def __init__(self, version: str):
        self.version = version
        self.down = False
        self.failing: dict[str, tuple[int, dict]] = {}  # path -> (status, body)
        self.requests = 0
        self.bodies = scenario(version=version)

    def use(self, now: datetime = NOW, **options) -> dict[str, object]:
        options.setdefault("version", self.version)
        self.bodies = scenario(now, **options)
        return self.bodies

    def handle(self, route) -> None:
        self.requests += 1
        if self.down:
            route.abort("connectionrefused")
            return
        path = urlparse(route.request.url).path
        if path in self.failing:
            status, error = self.failing[path]
            route.fulfill(status=status, json=error)
            return
        body = self.bodies.get(path)
        if body is None:
            route.fulfill(status=404, json={"error": f"no such endpoint: {path}"})
        else:
            route.fulfill(status=200, json=body, headers={"Cache-Control": "no-store"})
