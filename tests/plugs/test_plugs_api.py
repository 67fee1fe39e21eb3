"""/api/plugs, health's `plugs` member and the page's plugs line, all from the cache only."""
from __future__ import annotations

from datetime import timedelta

from freezegun import freeze_time

from tests.plugs.helpers import at, cache, config_for, write_prices
from tests.test_architecture_rules import FORBIDDEN, _imports

DAY = "2026-12-07"
RULE = 'cheapest = { hours = 2, from = "19:00", to = "07:00" }'


def _toml(url: str) -> str:
    return f'[plugs.dishwasher]\ndriver = "shelly"\nurl = "{url}"\n{RULE}\n'


def test_without_plugs_the_api_says_none_and_health_has_no_member(make_config, app_for):
    config = make_config()
    from home_energy.store import init_cache

    init_cache(config.sqlite_path)
    client = app_for(config).test_client()
    assert client.get("/api/plugs").get_json() == {"controller": "none", "decided_at": None, "plugs": []}
    assert "plugs" not in client.get("/api/health").get_json()
    assert b'data-plugs=""' in client.get("/").data


def test_the_api_shows_each_plug_and_health_tells_a_stopped_controller(tmp_path, shelly, control, app_for):
    config = config_for(tmp_path, _toml(shelly.url))
    conn = cache(config)
    client = app_for(config).test_client()
    with freeze_time(at(f"{DAY}T19:00")):
        assert client.get("/api/plugs").get_json()["controller"] == "waiting"
        assert client.get("/api/health").get_json()["plugs"] == {
            "status": "waiting", "count": 0, "why": "the plug controller has not run yet", "decided_at": None}

    prices = [30.0] * 30
    prices[14:18] = [8.0] * 4  # 01:00–03:00
    write_prices(conn, at(f"{DAY}T18:00"), prices, fetched_at=at(f"{DAY}T19:00"))
    control(config).decide_once(at(f"{DAY}T19:00") + timedelta(seconds=5))
    with freeze_time(at(f"{DAY}T19:01")):
        body = client.get("/api/plugs").get_json()
        health = client.get("/api/health").get_json()["plugs"]
    assert body["controller"] == "running" and body["decided_at"] == "2026-12-07T19:00:05Z"
    (plug,) = body["plugs"]
    assert {k: plug[k] for k in ("key", "name", "state", "rule", "mode", "why", "block", "next_change",
                                 "last_error")} == {
        "key": "dishwasher", "name": "Dishwasher", "state": "off", "rule": "cheapest 2 h", "mode": "auto",
        "why": "waiting for the cheapest block 01:00–03:00",
        "block": {"start": "2026-12-08T01:00:00Z", "end": "2026-12-08T03:00:00Z"},
        "next_change": {"at": "2026-12-08T01:00:00Z", "state": "on"}, "last_error": None}
    assert health == {"status": "ok", "count": 1, "why": None, "decided_at": "2026-12-07T19:00:05Z"}

    with freeze_time(at(f"{DAY}T19:10")):  # no round for ten minutes: the controller is not running
        assert client.get("/api/plugs").get_json()["controller"] == "stopped"
        health = client.get("/api/health").get_json()["plugs"]
    assert health["status"] == "stopped" and "has not decided since 2026-12-07T19:00:05Z" in health["why"]


def test_plugs_errors_are_json_like_every_api_error(tmp_path, app_for):
    config = config_for(tmp_path, _toml("http://10.0.0.5"))
    client = app_for(config).test_client()
    missing = client.get("/api/plugs")
    assert missing.status_code == 503 and "does not exist yet" in missing.get_json()["error"]
    cache(config).close()
    bad = client.get("/api/plugs?x=1")
    assert bad.status_code == 400 and bad.get_json() == {"error": "unknown query parameter 'x'; allowed: none"}
    assert bad.headers["Cache-Control"] == "no-store"


def test_the_page_carries_the_plugs_line_only_with_plugs(tmp_path, app_for):
    config = config_for(tmp_path, _toml("http://10.0.0.5"))
    cache(config).close()
    page = app_for(config).test_client().get("/").data
    assert b'id="plugs-line"' in page and b'data-plugs="1"' in page and b"plugs.js" in page


def test_the_web_reaches_no_driver_no_controller_and_no_network_door():
    walked, todo = set(), ["home_energy.web"]
    while todo:
        module = todo.pop()
        if module in walked:
            continue
        walked.add(module)
        todo.extend(m for m in _imports(module) if m.startswith("home_energy."))
    assert {"home_energy.plugs.api", "home_energy.plugs.status"} <= walked
    forbidden = FORBIDDEN | {"home_energy.plugs.controller", "home_energy.plugs.base", "home_energy.plugs.shelly",
                             "home_energy.plugs.tasmota", "home_energy.plugs.rules", "home_energy.fetch",
                             "home_energy.store"}
    assert {m for m in walked if any(m == f or m.startswith(f + ".") for f in forbidden)} == set()
