"""GET /metrics: the official client's text format, `promtool check metrics` clean, the API's values,
and computed once per cache write."""
from __future__ import annotations

import sqlite3
import subprocess
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from home_energy import metrics as metrics_module
from home_energy.collector import Collector
from home_energy.config import load_config
from home_energy.sources import make_source
from home_energy.web import create_app


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def client(env):
    app = create_app(load_config(env=env))
    app.config["TESTING"] = True
    return app.test_client()


def test_metrics_are_promtool_clean_in_the_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    result = subprocess.run(["promtool", "check", "metrics"], input=response.get_data(), capture_output=True,
                            timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, b"")
    families = {f.name: f.type for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert families["home_energy_price_cents_per_kwh"] == "gauge" and families["home_energy_build_info"] == "gauge"


def test_metric_values_equal_the_apis(client, env):
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    api = {name: client.get(f"/api/{name}").get_json() for name in ("current", "summary", "health", "live", "today")}
    for channel, interval in api["current"]["channels"].items():
        key = ("home_energy_price_cents_per_kwh", (("channel", channel), ("kind", "current")))
        assert samples[key] == interval["per_kwh"]
    summary, health, live, today = api["summary"], api["health"], api["live"], api["today"]
    assert samples[("home_energy_renewables_ratio", ())] == pytest.approx(summary["renewables"]["now_percent"] / 100)
    for hours in (1, 2, 3):
        window = summary["cheapest"][f"{hours}h"]
        labels = (("hours", str(hours)),)
        assert samples[("home_energy_cheapest_window_price_cents_per_kwh", labels)] == window["avg_per_kwh"]
        assert samples[("home_energy_cheapest_window_start_timestamp_seconds", labels)] == _ts(window["start"])
    assert samples[("home_energy_cost_dollars", (("period", "yesterday"),))] == summary["yesterday"]["cost_dollars"]
    assert samples[("home_energy_cost_dollars", (("period", "month_to_date"),))] == \
        summary["month_to_date"]["cost_dollars"]
    assert samples[("home_energy_last_sync_timestamp_seconds", ())] == _ts(health["last_sync"]["at"])
    assert samples[("home_energy_last_sync_outcome", (("outcome", health["last_sync"]["outcome"]),))] == 1
    assert samples[("home_energy_prices_fetched_timestamp_seconds", ())] == _ts(health["prices_cached_at"])
    age = datetime.now().timestamp() - samples[("home_energy_cache_updated_timestamp_seconds", ())]
    assert abs(age - health["cache_age_seconds"]) <= 2
    with sqlite3.connect(env["SQLITE_PATH"]) as conn:
        runs = dict(conn.execute("SELECT outcome, COUNT(*) FROM sync_runs GROUP BY outcome").fetchall())
    conn.close()
    assert {dict(labels)["outcome"]: value for (name, labels), value in samples.items()
            if name == "home_energy_sync_runs"} == runs
    for flow in ("grid", "solar", "battery", "load"):
        if live[f"{flow}_w"] is not None:
            assert samples[("home_energy_meter_power_watts", (("flow", flow),))] == live[f"{flow}_w"]
    for direction in ("import", "export"):  # no series while the API has no figure (null)
        joules = samples.get(("home_energy_meter_energy_today_joules", (("direction", direction),)))
        kwh = today[f"{direction}_kwh"]
        assert joules == (None if kwh is None else pytest.approx(kwh * 3_600_000))
    assert samples.get(("home_energy_meter_cost_today_dollars", ())) == today["cost_dollars"]
    assert samples[("home_energy_meter_last_reading_timestamp_seconds", ())] == _ts(live["at"])
    assert ("home_energy_meter_power_watts", (("flow", "grid"),)) in samples
    assert ("home_energy_meter_energy_today_joules", (("direction", "export"),)) in samples


def test_metrics_are_computed_once_per_cache_write(client, env, monkeypatch):
    calls = []
    render = metrics_module.render
    monkeypatch.setattr(metrics_module, "render", lambda *a: calls.append(1) or render(*a))
    first = client.get("/metrics").get_data()
    assert client.get("/metrics").get_data() == first and len(calls) == 1
    config = load_config(env=env)
    collector = Collector(config, make_source(config))
    try:
        assert collector.poll_once()  # a write: the next scrape computes again
    finally:
        collector.close()
    client.get("/metrics")
    assert len(calls) == 2
