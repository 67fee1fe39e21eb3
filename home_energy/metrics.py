"""`GET /metrics`: the cache's figures for Prometheus, in the official client library's text format.

Rules it keeps:
- The values are the API's: every figure comes from the `queries` function the matching endpoint
  answers with (same arguments), only rescaled to Prometheus' base units where its naming rules
  ask (percent → ratio, kWh → joules); prices keep c/kWh, money keeps dollars, as named.
- Times are exported as Unix timestamps (`*_timestamp_seconds`), never as ages: an age is
  `time() - x` in PromQL, and without ages the text changes only when the cache is written or
  the minute turns, so it is kept like every other answer (`answers.kept_answer`), computed once
  per such change rather than once per scrape.
- A value the cache does not have is left out (no series), never exported as 0.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, current_app

from . import queries
from .answers import bucket, kept_answer
from .clock import now_utc
from .web import settings

metrics = Blueprint("metrics", __name__)

JOULES_PER_KWH = 3_600_000
# The current interval and a silent meter are decided per minute; everything else per write.
METRICS_SLICE_S = 60


@metrics.get("/metrics")
def scrape() -> Any:
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    return kept_answer("metrics", (), lambda conn, at: render(conn, at), at=bucket(now_utc(), METRICS_SLICE_S),
                       mimetype=CONTENT_TYPE_PLAIN_0_0_4)


def render(conn: Any, now: Any) -> bytes:
    from prometheus_client import generate_latest

    cfg = settings()
    families = list(_families(conn, now, cfg, current_app.config["VERSION"]))

    class _Registry:
        def collect(self) -> Iterator[Any]:
            return iter(families)

    return generate_latest(_Registry())


def _timestamp(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _families(conn: Any, now: Any, cfg: Any, version: str) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

    health = queries.health(conn, now, cfg.stale_after_seconds, cfg.mode, version)
    current = queries.current(conn, now)
    summary = queries.summary(conn, now, cfg.monthly_budget, cfg.forecast_price)

    yield InfoMetricFamily("home_energy_build", "The running program.", value={"version": version,
                                                                              "mode": str(health["mode"])})
    price = GaugeMetricFamily("home_energy_price_cents_per_kwh", "Amber's price now in c/kWh, Amber's sign "
                              "(a negative feed-in price is paid to the household).", labels=["channel", "kind"])
    spot = GaugeMetricFamily("home_energy_spot_price_cents_per_kwh", "The wholesale spot price now in c/kWh.",
                             labels=["channel"])
    spike = GaugeMetricFamily("home_energy_price_spike", "1 while Amber calls the price now a spike.",
                              labels=["channel"])
    for channel, interval in sorted(current["channels"].items()):
        price.add_metric([channel, "current"], interval["per_kwh"])
        if interval["spot_per_kwh"] is not None:
            spot.add_metric([channel], interval["spot_per_kwh"])
        spike.add_metric([channel], 1.0 if interval["spike_status"] == "spike" else 0.0)
    yield from (price, spot, spike)

    renewables = summary["renewables"]["now_percent"]
    if renewables is not None:
        yield GaugeMetricFamily("home_energy_renewables_ratio", "Share of renewables in the grid now (0-1).",
                                value=renewables / 100)
    window_price = GaugeMetricFamily("home_energy_cheapest_window_price_cents_per_kwh",
                                     "Average price of the cheapest window of the next 24 h.", labels=["hours"])
    window_start = GaugeMetricFamily("home_energy_cheapest_window_start_timestamp_seconds",
                                     "When the cheapest window of the next 24 h starts.", labels=["hours"])
    for name, window in summary["cheapest"].items():
        if window is not None:
            window_price.add_metric([name.rstrip("h")], window["avg_per_kwh"])
            window_start.add_metric([name.rstrip("h")], _timestamp(window["start"]))
    yield from (window_price, window_start)

    cost = GaugeMetricFamily("home_energy_cost_dollars", "What electricity cost, from Amber's usage (AUD).",
                             labels=["period"])
    if summary["yesterday"]["cost_dollars"] is not None:
        cost.add_metric(["yesterday"], summary["yesterday"]["cost_dollars"])
    if summary["month_to_date"] is not None:
        cost.add_metric(["month_to_date"], summary["month_to_date"]["cost_dollars"])
    yield cost

    last = health["last_sync"]
    if last is not None:
        yield GaugeMetricFamily("home_energy_last_sync_timestamp_seconds", "When the last sync finished.",
                                value=_timestamp(last["at"]))
        outcome = GaugeMetricFamily("home_energy_last_sync_outcome", "1 for the last sync's outcome.",
                                    labels=["outcome"])
        outcome.add_metric([last["outcome"]], 1.0)
        yield outcome
    runs = GaugeMetricFamily("home_energy_sync_runs", "Sync runs the cache keeps (its retention window), by "
                             "outcome; not a counter: old runs are pruned.", labels=["outcome"])
    for name, count in queries.sync_run_counts(conn).items():
        runs.add_metric([name], count)
    yield runs
    updated = queries.last_success_at(conn)  # health's cache_age_seconds counts from this
    if updated is not None:
        yield GaugeMetricFamily("home_energy_cache_updated_timestamp_seconds",
                                "When a sync last wrote the cache successfully.", value=updated)
    if health["prices_cached_at"] is not None:
        yield GaugeMetricFamily("home_energy_prices_fetched_timestamp_seconds",
                                "When the cached prices were fetched from Amber.",
                                value=_timestamp(health["prices_cached_at"]))
    limit = queries.rate_limit(conn)
    if limit["remaining"] is not None:
        yield GaugeMetricFamily("home_energy_rate_limit_remaining", "Amber API calls left in the window, "
                                "as its last answer said.", value=limit["remaining"])
    if limit["reset_at"] is not None:
        yield GaugeMetricFamily("home_energy_rate_limit_reset_timestamp_seconds", "When Amber's rate-limit "
                                "window resets.", value=limit["reset_at"])

    if cfg.meter is not None:
        yield from _meter_families(conn, now, cfg)


def _meter_families(conn: Any, now: Any, cfg: Any) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    live = queries.live(conn, now, cfg.meter, cfg.meter_poll_seconds)
    today = queries.today(conn, now, cfg.meter)
    if live["at"] is not None:
        yield GaugeMetricFamily("home_energy_meter_last_reading_timestamp_seconds",
                                "When the collector last stored a reading.", value=_timestamp(live["at"]))
    power = GaugeMetricFamily("home_energy_meter_power_watts", "Power now (grid: + import, - export; battery: "
                              "+ discharge, - charge).", labels=["flow"])
    if live["status"] == "ok":  # a silent meter's last reading is not the power now
        for flow in ("grid", "solar", "battery", "load"):
            if live[f"{flow}_w"] is not None:
                power.add_metric([flow], live[f"{flow}_w"])
        if live["battery_soc_percent"] is not None:
            yield GaugeMetricFamily("home_energy_meter_battery_charge_ratio", "Battery state of charge (0-1).",
                                    value=live["battery_soc_percent"] / 100)
    yield power
    energy = GaugeMetricFamily("home_energy_meter_energy_today_joules", "Energy through the grid connection "
                               "since the NEM day began (resets daily).", labels=["direction"])
    for direction in ("import", "export"):
        if today[f"{direction}_kwh"] is not None:
            energy.add_metric([direction], today[f"{direction}_kwh"] * JOULES_PER_KWH)
    yield energy
    if today["cost_dollars"] is not None:
        yield GaugeMetricFamily("home_energy_meter_cost_today_dollars", "What today has cost so far (AUD).",
                                value=today["cost_dollars"])
