"""Property-based upstream input: what Amber's OpenAPI document allows is stored exactly, and what
it forbids is rejected whole, never half-written and never a crash.

Value fields are drawn from the document's own rules (types, enums, required fields, nullable and
optional objects), read from the vendored schema at run time; times follow Amber's conventions,
which a schema cannot state (intervals back to back, startTime one second after the boundary,
the current interval holding now). Valid payloads must come back unchanged through the web API;
invalid ones (a wrong type, an unknown enum value, a missing required field, not an array) must
leave the cache exactly as it was.
"""
from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from home_energy.clock import NEM_TZ
from home_energy.config import load_config
from home_energy.schema import openapi_document, validate_payload
from home_energy.sync import run_sync
from home_energy.web import create_app
from tests.fake_amber import site
from tests.reliability.helpers import DATA_TABLES, PayloadUpstream, table_rows

NOW = datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC)  # 11:07:30 NEM
CURRENT_START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
USAGE_DAY = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # NEM 2026-11-22 00:00
SLOT = timedelta(minutes=30)
VALID_EXAMPLES = 25
INVALID_EXAMPLES = 40

SCHEMAS = openapi_document()["components"]["schemas"]
ENUM = {name: SCHEMAS[name]["enum"] for name in ("PriceDescriptor", "SpikeStatus", "ChannelType")}
TARIFF = SCHEMAS["TariffInformation"]["properties"]
BASE_REQUIRED = SCHEMAS["BaseInterval"]["required"]
USAGE_REQUIRED = next(part["required"] for part in SCHEMAS["Usage"]["allOf"] if "required" in part)
QUALITY = next(part for part in SCHEMAS["Usage"]["allOf"] if "properties" in part)["properties"]["quality"]["enum"]
CHANNEL_IDS = {"general": "E1", "controlledLoad": "E2", "feedIn": "B1"}


def _settings(examples: int) -> settings:
    """Few examples and no deadline: each one is a whole sync into a fresh cache."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# JSON numbers as Amber sends them: any finite double, or an integer a double holds exactly.
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53))
tariffs = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={
        "period": st.sampled_from(TARIFF["period"]["enum"]),
        "season": st.sampled_from(TARIFF["season"]["enum"]),
        "block": st.sampled_from([1, 2, 1.5]),
        "demandWindow": st.booleans(),
    }),
)
advanced = st.one_of(st.none(), st.fixed_dictionaries({"low": numbers, "predicted": numbers, "high": numbers}))
ranges = st.one_of(st.none(), st.fixed_dictionaries({"min": numbers, "max": numbers}))


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _times(start: datetime) -> dict[str, Any]:
    end = start + SLOT
    return {"duration": 30, "startTime": _iso(start + timedelta(seconds=1)), "endTime": _iso(end),
            "nemTime": end.astimezone(NEM_TZ).isoformat(), "date": start.astimezone(NEM_TZ).date().isoformat()}


@st.composite
def intervals(draw, kind: str, channel: str, start: datetime) -> dict[str, Any]:
    item = {"type": kind, "channelType": channel, **_times(start), "perKwh": draw(numbers),
            "spotPerKwh": draw(numbers), "renewables": draw(numbers),
            "descriptor": draw(st.sampled_from(ENUM["PriceDescriptor"])),
            "spikeStatus": draw(st.sampled_from(ENUM["SpikeStatus"]))}
    optional = {"tariffInformation": tariffs}
    if kind != "ActualInterval":
        optional.update(advancedPrice=advanced, range=ranges)
    for key, strategy in optional.items():
        if draw(st.booleans()):
            item[key] = draw(strategy)
    if kind == "CurrentInterval":
        item["estimate"] = draw(st.booleans())
    return item


@st.composite
def price_payloads(draw) -> tuple[list[str], list[dict[str, Any]]]:
    channels = ["general"] + draw(st.lists(st.sampled_from(["controlledLoad", "feedIn"]), unique=True))
    out = []
    for channel in channels:
        actuals = draw(st.integers(0, 4))
        forecasts = draw(st.integers(0, 6))
        for back in range(actuals, 0, -1):
            out.append(draw(intervals("ActualInterval", channel, CURRENT_START - back * SLOT)))
        out.append(draw(intervals("CurrentInterval", channel, CURRENT_START)))
        for ahead in range(1, forecasts + 1):
            out.append(draw(intervals("ForecastInterval", channel, CURRENT_START + ahead * SLOT)))
    return channels, draw(st.permutations(out))  # grouped by channelType, never by position


@st.composite
def usage_payloads(draw, channels: list[str]) -> list[dict[str, Any]]:
    out = []
    for channel in channels:
        for slot in range(draw(st.integers(0, 4))):
            item = draw(intervals("ActualInterval", channel, USAGE_DAY + slot * SLOT))
            item.update(type="Usage", channelIdentifier=CHANNEL_IDS[channel], kwh=draw(numbers), cost=draw(numbers),
                        quality=draw(st.sampled_from(QUALITY)))
            out.append(item)
    return out


@st.composite
def valid_inputs(draw):
    channels, prices = draw(price_payloads())
    return channels, prices, draw(usage_payloads(channels))


def _upstream(channels: list[str], prices: Any, usage: Any = ()) -> PayloadUpstream:
    return PayloadUpstream([site(channels=tuple(channels))], prices, usage)


def _sync(folder: Path, upstream: PayloadUpstream):
    config = load_config(env={"SQLITE_PATH": str(folder / "cache.sqlite"), "AMBER_TOKEN": "psk_property0test",
                              "AMBER_API_URL": "http://127.0.0.1:9/v1"})
    with freeze_time(NOW):
        return config, run_sync(config, upstream)


def _key(item: dict[str, Any]) -> tuple[str, str]:
    start = datetime.fromisoformat(item["startTime"].replace("Z", "+00:00")) - timedelta(seconds=1)
    return item["channelType"], _iso(start)


@_settings(VALID_EXAMPLES)
@given(valid_inputs())
def test_schema_valid_payloads_come_back_exactly_through_the_api(inputs):
    channels, prices, usage = inputs
    with tempfile.TemporaryDirectory() as folder:
        config, report = _sync(Path(folder), _upstream(channels, prices, usage))
        assert (report.outcome, report.exit_code) == ("ok", 0), report.error
        client = create_app(config).test_client()
        with freeze_time(NOW):
            served = client.get("/api/prices?hours=48").get_json()["channels"]
            current = client.get("/api/current").get_json()["channels"]
            used = client.get("/api/usage?from=2026-11-22&to=2026-11-22&intervals=1").get_json()
        stored_ranges = {(r[1], r[2]): (r[15], r[16]) for r in table_rows(config.sqlite_path, ("prices",))["prices"]}

    by_key = {(channel, row["start"]): row for channel, rows in served.items() for row in rows}
    assert set(by_key) == {_key(item) for item in prices}
    for item in prices:
        row = by_key[_key(item)]
        kind = {"ActualInterval": "actual", "CurrentInterval": "current", "ForecastInterval": "forecast"}[item["type"]]
        assert (row["per_kwh"], row["spot_per_kwh"], row["renewables"]) == (
            item["perKwh"], item["spotPerKwh"], item["renewables"])
        assert (row["descriptor"], row["spike_status"], row["kind"], row["end"], row["duration_minutes"]) == (
            item["descriptor"], item["spikeStatus"], kind, item["endTime"], item["duration"])
        assert row["advanced_price"] == item.get("advancedPrice")
        # An empty tariff object carries nothing: the cache keeps it as "no tariff information".
        assert row["tariff"] == (item.get("tariffInformation") or None)
        spread = item.get("range") or {}
        assert stored_ranges[(item["channelType"], _start_epoch(item))] == (spread.get("min"), spread.get("max"))
        if kind == "current":
            assert row["estimate"] is item["estimate"]
            assert current[item["channelType"]]["per_kwh"] == item["perKwh"]

    got = {(r["channel_identifier"], r["start"]): r for r in used["intervals"]}
    assert set(got) == {(u["channelIdentifier"], _key(u)[1]) for u in usage}
    for item in usage:
        row = got[(item["channelIdentifier"], _key(item)[1])]
        assert (row["kwh"], row["cost_cents"], row["quality"], row["channel"]) == (
            item["kwh"], item["cost"], item["quality"], item["channelType"])
    for day in used["days"]:
        for channel, kwh in day["kwh"].items():
            expected = sum(u["kwh"] for u in usage if u["channelType"] == channel)
            assert math.isclose(kwh, round(expected, 4), rel_tol=1e-9, abs_tol=1e-4) or not math.isfinite(expected)


def _start_epoch(item: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(item["startTime"].replace("Z", "+00:00")).timestamp()) - 1


# --- invalid input --------------------------------------------------------------------------

NUMBER_FIELDS = [k for k in BASE_REQUIRED if SCHEMAS["BaseInterval"]["properties"][k].get("type") == "number"]
ENUM_FIELDS = {"descriptor": "superCheap", "spikeStatus": "maybe", "channelType": "battery", "type": "HistoricInterval",
               "duration": 10}
NOT_ARRAYS = [{}, {"data": []}, "[]", 0, None, True]


@st.composite
def broken(draw, payload: list[dict[str, Any]], required: list[str]) -> tuple[str, Any]:
    """One way `payload` stops matching the schema, named, and the broken payload."""
    how = draw(st.sampled_from(["wrong-type", "unknown-enum", "missing-required", "not-an-array"]))
    if how == "not-an-array":
        return how, draw(st.sampled_from(NOT_ARRAYS + [{"intervals": payload}]))
    bad = [dict(item) for item in payload]
    victim = bad[draw(st.integers(0, len(bad) - 1))]
    if how == "wrong-type":
        field = draw(st.sampled_from(NUMBER_FIELDS))
        victim[field] = draw(st.sampled_from([str(victim[field]), True, None, [victim[field]], {"value": 1}]))
    elif how == "unknown-enum":
        field, value = draw(st.sampled_from(sorted(ENUM_FIELDS.items())))
        victim[field] = value
    else:
        del victim[draw(st.sampled_from(required))]
    return how, bad


@st.composite
def invalid_prices(draw):
    channels, prices = draw(price_payloads())
    return channels, prices, draw(broken(prices, BASE_REQUIRED))


@_settings(INVALID_EXAMPLES)
@given(invalid_prices())
def test_schema_invalid_prices_are_rejected_whole_and_the_cache_is_untouched(inputs):
    channels, good, (how, bad) = inputs
    with tempfile.TemporaryDirectory() as folder:
        config, first = _sync(Path(folder), _upstream(channels, good))
        assert first.outcome == "ok"
        before = table_rows(config.sqlite_path, DATA_TABLES)
        with freeze_time(NOW + timedelta(minutes=5)):
            report = run_sync(config, _upstream(channels, bad))
        assert (report.outcome, report.exit_code) == ("dataerror", 65), (how, report)
        assert "prices response rejected" in report.error and "\n" not in report.error
        assert table_rows(config.sqlite_path, DATA_TABLES) == before


@st.composite
def invalid_usage(draw):
    channels, prices, usage = draw(valid_inputs())
    if not usage:
        usage = _one_usage()
    return channels, prices, draw(broken(usage, BASE_REQUIRED + USAGE_REQUIRED))


def _one_usage() -> list[dict[str, Any]]:
    return [{"type": "Usage", "channelType": "general", **_times(USAGE_DAY), "perKwh": 20.0, "spotPerKwh": 9.0,
             "renewables": 40.0, "descriptor": "low", "spikeStatus": "none", "channelIdentifier": "E1", "kwh": 0.5,
             "cost": 10.0, "quality": "billable"}]


@_settings(INVALID_EXAMPLES // 2)
@given(invalid_usage())
def test_schema_invalid_usage_is_rejected_whole_and_good_prices_are_kept(inputs):
    channels, prices, (how, bad) = inputs
    with tempfile.TemporaryDirectory() as folder:
        config, report = _sync(Path(folder), _upstream(channels, prices, bad))
        tables = table_rows(config.sqlite_path, DATA_TABLES)
    # Usage is optional: its bad answer is dropped whole, the prices of the same run are kept.
    assert report.outcome == "partial" and "usage response rejected" in report.error, (how, report)
    assert tables["usage"] == [] and tables["daily_usage"] == []
    assert len(tables["prices"]) == len(prices)


@pytest.mark.parametrize("how", ["wrong-type", "unknown-enum", "missing-required", "not-an-array"])
def test_schema_invalid_sites_are_a_dataerror_that_writes_nothing(how):
    good = site()
    bad: Any = [dict(good)]
    if how == "wrong-type":
        bad[0]["intervalLength"] = "30"
    elif how == "unknown-enum":
        bad[0]["status"] = "suspended"
    elif how == "missing-required":
        del bad[0]["channels"]
    else:
        bad = {"sites": [good]}
    with tempfile.TemporaryDirectory() as folder:
        config, report = _sync(Path(folder), PayloadUpstream(bad, []))
        tables = table_rows(config.sqlite_path, DATA_TABLES)
    assert (report.outcome, report.exit_code) == ("dataerror", 65) and "sites response rejected" in report.error
    assert tables == {t: [] for t in DATA_TABLES}


# --- times Amber's schema allows but nobody has seen ------------------------------------------

TIME_VARIANTS = {
    "fractional-seconds": lambda s: s.replace("Z", ".000Z"),
    "offset-instead-of-z": lambda s: s.replace("Z", "+00:00"),
    "lowercase-t": lambda s: s.replace("T", "t"),
    "lowercase-z": lambda s: s.replace("Z", "z"),
    "leap-second": lambda s: s[:17] + "60Z",
}
@pytest.mark.parametrize("variant", list(TIME_VARIANTS))
def test_a_schema_valid_time_format_never_crashes_the_sync(variant, tmp_path):
    payload = [{"type": "CurrentInterval", "channelType": "general", **_times(CURRENT_START), "perKwh": 20.0,
                "spotPerKwh": 9.0, "renewables": 40.0, "descriptor": "low", "spikeStatus": "none", "estimate": True}]
    payload[0]["endTime"] = TIME_VARIANTS[variant](payload[0]["endTime"])
    assert validate_payload("prices", payload)  # the schema accepts it, so Amber may send it
    config, report = _sync(tmp_path, _upstream(["general"], payload))
    assert report.outcome in ("ok", "dataerror"), report
    if report.outcome == "dataerror":
        assert "prices response rejected" in report.error and "\n" not in report.error
        assert table_rows(config.sqlite_path, ("prices",))["prices"] == []
