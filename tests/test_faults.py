"""The fault matrix: every upstream failure leaves the cache exactly as it was, still served."""
from __future__ import annotations

import socket
import sqlite3
from datetime import timedelta

import pytest
from freezegun import freeze_time

from home_energy.sync import run_sync

NOW = "2026-11-23T01:07:30Z"
DATA_TABLES = ("prices", "usage", "daily_usage", "sites")


def snapshot(config) -> dict[str, list[tuple]]:
    with sqlite3.connect(config.sqlite_path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall() for t in DATA_TABLES}


FAULTS = [
    ("http-500", 500, 75),
    ("http-502", 502, 75),
    ("http-503", 503, 75),
    ("http-401", 401, 78),
    ("http-403", 403, 78),
    ("http-404", 404, 78),
    ("http-422", 422, 65),
    ("429-with-ratelimit-headers-only", "429", 75),
    ("timeout", "timeout", 75),
    ("truncated-json", "truncated", 65),
    ("wrong-type-field", "wrong-type", 65),
    ("unknown-enum-value", "unknown-enum", 65),
    ("empty-array", "empty", 65),
]


@pytest.mark.parametrize("name,fault,code", FAULTS, ids=[f[0] for f in FAULTS])
def test_price_fault_leaves_cache_untouched_and_served(name, fault, code, amber_config, amber_client, fake_amber,
                                                       app_for):
    with freeze_time(NOW) as frozen:
        assert run_sync(amber_config, amber_client()).exit_code == 0
        before = snapshot(amber_config)
        client = app_for(amber_config).test_client()
        served_before = client.get("/api/current").get_json()
        frozen.tick(timedelta(minutes=5))
        fake_amber.state.faults["prices"] = fault
        report = run_sync(amber_config, amber_client())
        assert report.exit_code == code, report.error
        assert report.error and "\n" not in report.error
        assert snapshot(amber_config) == before
        assert client.get("/api/current").get_json() == served_before
        health = client.get("/api/health").get_json()
        assert health["last_sync"]["error"] == report.error
        assert health["status"] == "ok"  # 5 minutes old: not stale yet


@pytest.mark.parametrize("fault", ["wrong-type", "unknown-enum"])
def test_invalid_usage_writes_nothing_from_that_response(fault, amber_config, amber_client, fake_amber):
    with freeze_time(NOW):
        fake_amber.state.faults["usage"] = fault
        report = run_sync(amber_config, amber_client())
    assert report.outcome == "partial"
    assert "usage response rejected" in report.error
    assert snapshot(amber_config)["usage"] == []


def test_connection_refused_leaves_cache_untouched(make_config, amber_config, amber_client, fake_amber, app_for):
    from home_energy.amber import AmberClient
    from tests.fake_amber import READ_TIMEOUT_IN_TESTS_S, TOKEN

    with freeze_time(NOW):
        run_sync(amber_config, amber_client())
        before = snapshot(amber_config)
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        dead = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=f"http://127.0.0.1:{port}/v1")
        client = AmberClient(dead.amber_api_url, dead.amber_token, read_timeout_s=READ_TIMEOUT_IN_TESTS_S)
        report = run_sync(dead, client)
    assert report.exit_code == 75
    assert "connection refused" in report.error
    assert snapshot(amber_config) == before


def test_field_errors_name_the_field(amber_config, amber_client, fake_amber):
    with freeze_time(NOW):
        fake_amber.state.faults["prices"] = "wrong-type"
        report = run_sync(amber_config, amber_client())
    assert report.exit_code == 65
    assert ".perKwh: '12.5' is not of type 'number'" in report.error


def test_bad_token_is_a_config_error_without_the_token(make_config, fake_amber, amber_client):
    config = make_config(AMBER_TOKEN="psk_wrongwrongwrongwrong", AMBER_API_URL=fake_amber.url)
    from home_energy.amber import AmberClient
    from tests.fake_amber import READ_TIMEOUT_IN_TESTS_S

    client = AmberClient(config.amber_api_url, config.amber_token, read_timeout_s=READ_TIMEOUT_IN_TESTS_S)
    report = run_sync(config, client)
    assert report.exit_code == 78
    assert "AMBER_TOKEN" in report.error and "psk_wrong" not in report.error


def test_timeout_is_reported_as_a_timeout(amber_config, amber_client, fake_amber):
    with freeze_time(NOW):
        fake_amber.state.faults["sites"] = "timeout"
        report = run_sync(amber_config, amber_client())
    assert report.exit_code == 75
    assert report.error == "Amber did not answer sites within 2 s"
