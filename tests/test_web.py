"""The read-only web API: health semantics, input errors, unreadable caches, no outbound calls."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from home_energy.store import init_cache
from home_energy.sync import run_sync

NOW = "2026-11-23T01:07:30Z"


def test_health_goes_unknown_then_ok_then_stale(amber_config, amber_client, app_for):
    init_cache(amber_config.sqlite_path)  # an empty cache
    client = app_for(amber_config).test_client()
    with freeze_time(NOW) as frozen:
        body = client.get("/api/health").get_json()
        assert (body["status"], body["source"], body["mode"]) == ("unknown", "cache", "amber")
        assert body["price_age_seconds"] is None and body["last_sync"] is None
        run_sync(amber_config, amber_client())
        body = client.get("/api/health").get_json()
        assert (body["status"], body["source"]) == ("ok", "live")
        assert body["price_age_seconds"] == 0
        assert body["last_sync"]["outcome"] == "ok" and body["last_sync"]["at"] == "2026-11-23T01:07:30Z"
        frozen.tick(timedelta(seconds=900))
        assert client.get("/api/health").get_json()["status"] == "ok"
        frozen.tick(timedelta(seconds=1))
        body = client.get("/api/health").get_json()
        assert (body["status"], body["source"], body["price_age_seconds"]) == ("stale", "cache", 901)


def test_usage_a_day_old_does_not_make_health_stale(amber_config, amber_client, app_for):
    with freeze_time(NOW):
        run_sync(amber_config, amber_client())
        body = app_for(amber_config).test_client().get("/api/health").get_json()
    assert body["status"] == "ok"
    # Usage arrives a day late: the newest ends at NEM midnight, 11 h 7.5 min before NOW.
    assert body["usage_age_seconds"] == 11 * 3600 + 450


def test_failed_sync_makes_source_cache_while_prices_stay_fresh(amber_config, amber_client, fake_amber, app_for):
    client = app_for(amber_config).test_client()
    with freeze_time(NOW) as frozen:
        run_sync(amber_config, amber_client())
        frozen.tick(timedelta(minutes=5))
        fake_amber.state.faults["prices"] = 503
        run_sync(amber_config, amber_client())
        body = client.get("/api/health").get_json()
    assert (body["status"], body["source"]) == ("ok", "cache")
    assert body["last_sync"]["outcome"] == "tempfail"
    assert body["cache_age_seconds"] == 300


def test_current_interval_turns_actual_as_the_cache_ages(amber_config, amber_client, app_for):
    client = app_for(amber_config).test_client()
    with freeze_time(NOW) as frozen:
        run_sync(amber_config, amber_client())
        first = client.get("/api/current").get_json()["channels"]["general"]
        frozen.tick(timedelta(minutes=30))
        later = client.get("/api/current").get_json()["channels"]["general"]
        prices = client.get("/api/prices").get_json()["channels"]["general"]
    assert first["kind"] == "current" and later["kind"] == "current"
    assert later["start"] == "2026-11-23T01:30:00Z"
    assert next(p for p in prices if p["start"] == first["start"])["kind"] == "actual"


@pytest.mark.parametrize(
    "url,message",
    [
        ("/api/prices?hours=0", "hours must be a whole number from 1 to 48"),
        ("/api/prices?hours=49", "hours must be a whole number from 1 to 48"),
        ("/api/prices?hours=-1", "hours must be a whole number from 1 to 48"),
        ("/api/prices?hours=1e3", "hours must be a whole number from 1 to 48"),
        ("/api/prices?hourz=3", "unknown query parameter 'hourz'"),
        ("/api/prices?hours=%C2%B2", "hours must be a whole number from 1 to 48"),  # superscript two
        ("/api/prices?hours=%EF%BC%92", "hours must be a whole number from 1 to 48"),  # full-width two
        ("/api/prices?hours=%D9%A3", "hours must be a whole number from 1 to 48"),  # Arabic-Indic three
        ("/api/prices?hours=%F0%9D%9F%8F", "hours must be a whole number from 1 to 48"),  # mathematical one
        ("/api/prices?hours=" + "9" * 5000, "hours must be a whole number from 1 to 48"),
        ("/api/prices?hours=", "hours must be a whole number from 1 to 48"),
        ("/api/prices?hours=%2B3", "hours must be a whole number from 1 to 48"),
        ("/api/prices?hours=3&hours=4", "query parameter 'hours' is given more than once"),
        ("/api/prices?hours=3&hours=3", "query parameter 'hours' is given more than once"),
        ("/api/usage?from=2026-13-01", "from must be a date as YYYY-MM-DD"),
        ("/api/usage?from=20261101", "from must be a date as YYYY-MM-DD"),
        ("/api/usage?from=2026-W47-1", "from must be a date as YYYY-MM-DD"),
        ("/api/usage?from=2026-11-0%EF%BC%92", "from must be a date as YYYY-MM-DD"),
        ("/api/usage?from=+2026-11-1", "from must be a date as YYYY-MM-DD"),
        ("/api/usage?to=0001-01-01", "to must be a date as YYYY-MM-DD from 2000-01-01 to 2100-12-31"),
        ("/api/usage?to=9999-12-31", "to must be a date as YYYY-MM-DD from 2000-01-01 to 2100-12-31"),
        ("/api/usage?from=1999-12-31&to=2000-01-01", "from must be a date as YYYY-MM-DD"),
        ("/api/usage?from=2026-11-10&to=2026-11-01", "from must not be after to"),
        ("/api/usage?from=2025-01-01&to=2026-01-01", "from..to may span at most 93 days"),
        ("/api/usage?from=2026-11-01&to=2026-11-08&intervals=1", "with intervals=1, from..to may span at most 7 days"),
        ("/api/usage?intervals=2", "intervals must be a whole number from 0 to 1"),
        ("/api/usage?intervals=yes", "intervals must be a whole number from 0 to 1"),
        ("/api/usage?to=2026-11-01&to=2026-11-02", "query parameter 'to' is given more than once"),
        ("/api/current?x=%00", "unknown query parameter 'x'"),
    ],
)
def test_bad_query_parameters_are_400_with_a_json_error(url, message, demo_config, app_for):
    run_sync(demo_config)
    response = app_for(demo_config).test_client().get(url)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(message)


@pytest.mark.parametrize("path", ["/api/nope", "/api", "/api/", "/api/health/extra", "/api/%00"])
def test_unknown_api_path_is_a_json_404(path, demo_config, app_for):
    run_sync(demo_config)
    response = app_for(demo_config).test_client().get(path)
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert response.get_json()["error"].startswith("no such endpoint: ")


@pytest.mark.parametrize("path", ["/api/health", "/api/prices", "/api/usage"])
def test_other_methods_under_api_are_a_json_405(path, demo_config, app_for):
    run_sync(demo_config)
    response = app_for(demo_config).test_client().post(path)
    assert response.status_code == 405 and response.mimetype == "application/json"
    assert response.get_json() == {"error": f"POST is not allowed on {path}"}


def test_a_failure_under_api_is_a_json_500_without_a_trace(demo_config, app_for, monkeypatch, caplog):
    from home_energy import queries

    run_sync(demo_config)
    app = app_for(demo_config)
    app.config["TESTING"] = False  # let the 500 handler answer instead of re-raising into the test

    def broken(*_args):
        raise RuntimeError("secret detail from deep inside")

    monkeypatch.setattr(queries, "current", broken)
    response = app.test_client().get("/api/current")
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "internal error: see the server log"}
    assert b"secret detail" not in response.data and b"Traceback" not in response.data
    assert "secret detail from deep inside" in caplog.text  # the server log keeps what happened


@freeze_time("2026-11-23T01:07:30Z")
def test_usage_answers_day_totals_unless_intervals_are_asked_for(demo_config, app_for):
    run_sync(demo_config)
    client = app_for(demo_config).test_client()
    days_only = client.get("/api/usage?from=2026-11-16&to=2026-11-22").get_json()
    with_intervals = client.get("/api/usage?from=2026-11-16&to=2026-11-22&intervals=1").get_json()
    assert "intervals" not in days_only
    assert days_only["days"] == with_intervals["days"]
    assert [d["date"] for d in days_only["days"]] == [f"2026-11-{n}" for n in range(16, 23)]
    assert len(with_intervals["intervals"]) > 0
    assert client.get("/api/usage?from=2026-11-16&to=2026-11-22&intervals=0").get_json() == days_only


@freeze_time("2026-11-23T01:07:30Z")
def test_usage_defaults_are_computed_only_for_absent_dates(demo_config, app_for):
    run_sync(demo_config)
    client = app_for(demo_config).test_client()
    default = client.get("/api/usage").get_json()
    assert (default["from"], default["to"]) == ("2026-11-16", "2026-11-22")
    early = client.get("/api/usage?to=2000-01-01").get_json()
    assert (early["from"], early["to"], early["days"]) == ("1999-12-26", "2000-01-01", [])
    given = client.get("/api/usage?from=2026-11-20").get_json()
    assert (given["from"], given["to"]) == ("2026-11-20", "2026-11-22")


@pytest.mark.parametrize("content", [b"", b"this is not a database at all" * 200, None])
def test_unreadable_cache_answers_503_with_a_clear_error(content, demo_config, app_for):
    if content is not None:
        demo_config.sqlite_path.write_bytes(content)
    client = app_for(demo_config).test_client()
    for path in ("/api/health", "/api/current", "/api/summary"):
        response = client.get(path)
        assert response.status_code == 503
        error = response.get_json()["error"]
        assert str(demo_config.sqlite_path) in error and "\n" not in error


def test_web_never_writes_the_cache(demo_config, app_for):
    run_sync(demo_config)
    before = demo_config.sqlite_path.read_bytes()
    client = app_for(demo_config).test_client()
    for path in ("/api/health", "/api/current", "/api/prices", "/api/usage", "/api/summary", "/"):
        assert client.get(path).status_code == 200
    assert demo_config.sqlite_path.read_bytes() == before


def test_web_never_makes_an_outbound_connection(demo_config, app_for, monkeypatch):
    run_sync(demo_config)
    attempts = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        attempts.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: attempts.append(a) or (_ for _ in ()).throw(
        AssertionError("outbound connection")))
    client = app_for(demo_config).test_client()
    for path in ("/api/health", "/api/current", "/api/prices?hours=48", "/api/usage", "/api/summary", "/"):
        assert client.get(path).status_code == 200
    assert attempts == []


def test_web_process_does_not_load_the_upstream_client(demo_config, tmp_path):
    run_sync(demo_config)
    script = (
        "import sys, json\n"
        "from home_energy.config import load_config\n"
        "from home_energy.web import create_app\n"
        f"app = create_app(load_config(env={{'SQLITE_PATH': {str(demo_config.sqlite_path)!r}}}))\n"
        "c = app.test_client()\n"
        "codes = [c.get(p).status_code for p in ('/api/health', '/api/current', '/api/prices', '/api/summary', '/')]\n"
        "names = ('home_energy', 'requests', 'urllib3', 'jsonschema', 'fastjsonschema')\n"
        "print(json.dumps([codes, sorted(m for m in sys.modules if m.startswith(names))]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    codes, modules = json.loads(result.stdout)
    assert codes == [200] * 5
    assert "home_energy.amber" not in modules and "home_energy.sync" not in modules
    assert not [m for m in modules if m.split(".")[0] in ("requests", "urllib3", "jsonschema", "fastjsonschema")]


def test_summary_reports_cheapest_windows_in_the_next_24_hours(amber_config, amber_client, app_for):
    with freeze_time(NOW):
        run_sync(amber_config, amber_client())
        summary = app_for(amber_config).test_client().get("/api/summary").get_json()
    # The fake's prices dip to -3.5 c from 02:30 to 04:00 UTC.
    assert summary["cheapest"]["1h"] == {"start": "2026-11-23T02:30:00Z", "end": "2026-11-23T03:30:00Z",
                                         "avg_per_kwh": -3.5, "hours": 1}
    # From the current interval (01:00, 11 c): 11, 11.5, 12, then three at -3.5 -> mean 4.0 c.
    assert summary["cheapest"]["3h"] == {"start": "2026-11-23T01:00:00Z", "end": "2026-11-23T04:00:00Z",
                                         "avg_per_kwh": 4.0, "hours": 3}
    assert summary["renewables"]["now_percent"] == 40.0


def test_large_json_is_gzipped_for_clients_that_accept_it(demo_config, app_for):
    import gzip as gz

    run_sync(demo_config)
    client = app_for(demo_config).test_client()
    plain = client.get("/api/prices?hours=48")
    packed = client.get("/api/prices?hours=48", headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert json.loads(gz.decompress(packed.data)) == plain.get_json()
    assert len(packed.data) * 5 < len(plain.data)


def test_versioned_static_files_are_gzipped_from_memory_and_kept_a_year(demo_config, app_for):
    import gzip as gz

    app = app_for(demo_config)
    client = app.test_client()
    version = app.config["VERSION"]
    original = (Path(app.static_folder) / "dashboard.js").read_bytes()
    packed = client.get(f"/static/dashboard.js?v={version}", headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.status_code == 200 and packed.headers["Content-Encoding"] == "gzip"
    assert gz.decompress(packed.data) == original and len(packed.data) * 2 < len(original)
    assert packed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Accept-Encoding" in packed.headers["Vary"]
    plain = client.get("/static/dashboard.js")
    assert plain.data == original and "Content-Encoding" not in plain.headers
    assert plain.headers["Cache-Control"] == "public, max-age=3600"  # no version in the URL: an hour
    stale = client.get("/static/dashboard.js?v=not-the-running-version")
    assert stale.headers["Cache-Control"] == "public, max-age=3600"
    again = client.get("/static/dashboard.js", headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert client.get("/static/no-such-file.js").status_code == 404
    assert client.get("/static/../home_energy/web.py").status_code == 404


@freeze_time("2026-11-23T01:07:30Z")
def test_kept_answers_change_as_soon_as_the_sync_writes(amber_config, amber_client, app_for):
    init_cache(amber_config.sqlite_path)  # an empty cache
    client = app_for(amber_config).test_client()
    url = "/api/usage?from=2026-11-22&to=2026-11-22&intervals=1"
    assert client.get(url).get_json()["days"] == []
    assert client.get("/api/health").get_json()["status"] == "unknown"
    run_sync(amber_config, amber_client())  # within the same second
    used = client.get(url).get_json()
    assert [d["date"] for d in used["days"]] == ["2026-11-22"] and len(used["intervals"]) > 0
    assert client.get("/api/health").get_json()["status"] == "ok"
