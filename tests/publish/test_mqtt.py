"""`home-energy publish` against a real Mosquitto: Home Assistant discovery, states equal to the
API's, availability, restarts, the birth message, passwords, TLS and brokers that do not answer."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from home_energy import publisher as publisher_module
from home_energy.config import load_config
from home_energy.entities import EXPIRE_AFTER_S
from home_energy.publish_status import status_path
from home_energy.web import create_app
from tests.mqtt_broker import PASSWORD, USER, Broker, SilentBroker, wait_until

ROOT = Path(__file__).resolve().parents[2]

# Home Assistant's documented configuration variables (integrations/sensor.mqtt,
# binary_sensor.mqtt, and the device/origin blocks of MQTT discovery).
COMMON_KEYS = {"availability", "availability_mode", "availability_template", "availability_topic", "device",
               "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
               "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name",
               "object_id", "default_entity_id", "origin", "payload_available", "payload_not_available", "platform",
               "qos", "state_topic", "unique_id", "value_template"}
DOCUMENTED = {
    "sensor": COMMON_KEYS | {"last_reset_value_template", "options", "state_class", "suggested_display_precision",
                             "unit_of_measurement"},
    "binary_sensor": COMMON_KEYS | {"off_delay", "payload_off", "payload_on"},
}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
               "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
# What each entity must be, as the display's households need it in Home Assistant.
EXPECTED = {
    "general_price": ("AUD/kWh", None, "measurement"), "feed_in_price": ("AUD/kWh", None, "measurement"),
    "general_price_cents": ("c/kWh", None, "measurement"), "feed_in_price_cents": ("c/kWh", None, "measurement"),
    "renewables": ("%", None, "measurement"),
    "cost_yesterday": ("AUD", "monetary", "total"), "cost_month_to_date": ("AUD", "monetary", "total"),
    "cost_today": ("AUD", "monetary", "total"),
    "grid_power": ("W", "power", "measurement"), "solar_power": ("W", "power", "measurement"),
    "battery_power": ("W", "power", "measurement"), "load_power": ("W", "power", "measurement"),
    "battery_soc": ("%", "battery", "measurement"),
    "energy_imported_today": ("kWh", "energy", "total_increasing"),
    "energy_exported_today": ("kWh", "energy", "total_increasing"),
    **{f"cheapest_{h}h_{edge}": (None, "timestamp", None) for h in (1, 2, 3) for edge in ("start", "end")},
    **{f"cheapest_{h}h_price": ("c/kWh", None, None) for h in (1, 2, 3)},
    "descriptor": (None, None, None), "sync_outcome": (None, None, None), "sync_problem": (None, None, None),
}
STALE_CAN_EXPIRE = {"general_price", "feed_in_price", "general_price_cents", "feed_in_price_cents", "descriptor",
                    "spike", "renewables", "grid_power", "solar_power", "battery_power", "load_power", "battery_soc"}


def _configs(seen: dict[str, str]) -> dict[str, tuple[str, dict]]:
    """{entity key: (component, config)} from the retained discovery topics."""
    out = {}
    for topic, payload in seen.items():
        parts = topic.split("/")
        if parts[0] == "homeassistant" and parts[-1] == "config":
            out[parts[3]] = (parts[1], json.loads(payload))
    return out


def _all_discovered(seen: dict[str, str]) -> bool:
    """Every entity's config and state arrived, and the display is online."""
    configs = _configs(seen)
    return (len(configs) == len(EXPECTED) + 1 and seen.get("home-energy/status") == "online"
            and all(f"home-energy/{key}" in seen for key in configs))


def _api(env: dict[str, str]) -> dict[str, dict]:
    client = create_app(load_config(env=env)).test_client()
    return {name: client.get(f"/api/{name}").get_json() for name in ("current", "summary", "health", "live", "today")}


def _expected_states(api: dict[str, dict]) -> dict[str, str]:
    """Each entity's state written out from the API's JSON by hand (not through the publisher's code)."""
    general, feed_in = api["current"]["channels"]["general"], api["current"]["channels"]["feedIn"]
    summary, live, today = api["summary"], api["live"], api["today"]
    states = {
        "general_price": str(round(general["per_kwh"] / 100, 7)),
        "general_price_cents": str(general["per_kwh"]),
        "feed_in_price": str(round(-feed_in["per_kwh"] / 100, 7)),
        "feed_in_price_cents": str(feed_in["per_kwh"]),
        "descriptor": general["descriptor"],
        "spike": "ON" if general["spike_status"] == "spike" else "OFF",
        "renewables": str(summary["renewables"]["now_percent"]),
        "cost_yesterday": str(summary["yesterday"]["cost_dollars"]),
        "cost_month_to_date": str(summary["month_to_date"]["cost_dollars"]),
        "grid_power": str(live["grid_w"]), "solar_power": str(live["solar_w"]),
        "battery_power": str(live["battery_w"]), "load_power": str(live["load_w"]),
        "battery_soc": str(live["battery_soc_percent"]),
        "energy_imported_today": str(today["import_kwh"]), "energy_exported_today": str(today["export_kwh"]),
        "cost_today": str(today["cost_dollars"]),
        "sync_outcome": api["health"]["last_sync"]["outcome"],
        "sync_problem": api["health"]["problem"] or "none",
    }
    for hours in (1, 2, 3):
        window = summary["cheapest"][f"{hours}h"]
        states.update({f"cheapest_{hours}h_start": window["start"], f"cheapest_{hours}h_end": window["end"],
                       f"cheapest_{hours}h_price": str(window["avg_per_kwh"])})
    return {key: "None" if value == "None" else value for key, value in states.items()}


def test_discovery_configs_have_home_assistants_keys_units_and_classes(env, broker, watch, publishing):
    watcher = watch(broker.port)
    publishing(load_config(env={**env, "MQTT_URL": broker.url}))
    seen = watcher.wait_for(_all_discovered)
    configs = _configs(seen)
    assert set(configs) == set(EXPECTED) | {"spike"}
    for key, (component, config) in configs.items():
        assert set(config) <= DOCUMENTED[component], (key, set(config) - DOCUMENTED[component])
        assert set(config["device"]) <= DEVICE_KEYS and set(config["origin"]) <= ORIGIN_KEYS
        assert config["device"]["identifiers"] == ["home-energy"] and config["origin"]["name"] == "home-energy"
        assert config["device"]["name"] == "Home energy" and config["device"]["sw_version"] == "1.2.3-test"
        assert config["device"]["configuration_url"].startswith("http://")
        assert config["unique_id"] == f"home-energy_{key}"
        assert config["state_topic"] == f"home-energy/{key}" and config["state_topic"] in seen
        assert (config["availability_topic"], config["payload_available"], config["payload_not_available"]) == \
            ("home-energy/status", "online", "offline")
        assert config.get("expire_after") == (EXPIRE_AFTER_S if key in STALE_CAN_EXPIRE else None), key
        if component == "binary_sensor":
            assert (config["payload_on"], config["payload_off"]) == ("ON", "OFF")
            continue
        unit, device_class, state_class = EXPECTED[key]
        assert (config.get("unit_of_measurement"), config.get("device_class"), config.get("state_class")) == \
            (unit, device_class, state_class), key
    assert len({config["unique_id"] for _c, config in configs.values()}) == len(configs)


def test_states_equal_the_apis_answers(env, broker, watch, publishing):
    watcher = watch(broker.port)
    publishing(load_config(env={**env, "MQTT_URL": broker.url}))
    watcher.wait_for(_all_discovered)
    expected = _expected_states(_api(env))
    assert "None" not in {expected[k] for k in ("general_price", "grid_power", "cost_yesterday", "cheapest_3h_end",
                                               "energy_imported_today", "energy_exported_today", "cost_today")}

    def matches(seen: dict[str, str]) -> bool:
        return {key: seen.get(f"home-energy/{key}") for key in expected} == expected

    try:
        watcher.wait_for(matches, timeout=10)
    except AssertionError:
        seen = watcher.snapshot()
        assert {key: seen.get(f"home-energy/{key}") for key in expected} == expected


def test_without_a_meter_its_entities_are_removed_not_left_behind(env, broker, watch, publishing, tmp_path):
    watcher = watch(broker.port)
    meter_topic = "homeassistant/sensor/home-energy/grid_power/config"
    watcher.publish(meter_topic, '{"left": "from a meter that was removed"}', retain=True)
    no_meter = {k: v for k, v in env.items() if not k.startswith("METER")}
    publishing(load_config(env={**no_meter, "MQTT_URL": broker.url}))
    seen = watcher.wait_for(lambda s: "home-energy/cheapest_1h_start" in s and meter_topic not in s)
    assert "home-energy/grid_power" not in seen and "homeassistant/sensor/home-energy/cost_yesterday/config" in seen


def test_a_password_broker_takes_the_right_password_and_refuses_a_wrong_one(env, tmp_path, watch, publishing,
                                                                              caplog):
    caplog.set_level(logging.DEBUG)
    with Broker(tmp_path / "pw-broker", password=True) as broker:
        watcher = watch(broker.port, USER, PASSWORD)
        url = f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{broker.port}"
        publishing(load_config(env={**env, "MQTT_URL": url, "MQTT_TOPIC_PREFIX": "kitchen"}))
        watcher.wait_for(lambda s: s.get("kitchen/status") == "online" and "kitchen/general_price" in s)

        wrong = {**env, "MQTT_URL": f"mqtt://{USER}@127.0.0.1:{broker.port}", "MQTT_PASSWORD": "not-the-password",
                 "MQTT_TOPIC_PREFIX": "hall", "SQLITE_PATH": str(tmp_path / "other" / "cache.sqlite")}
        (tmp_path / "other").mkdir()
        publisher = publishing(load_config(env=wrong))
        wait_until(lambda: publisher.state.status == "failing", what="the refusal")
        assert publisher.state.last_error.startswith("the broker refused the connection: ")
        assert "hall/status" not in watcher.snapshot()
    status = json.loads(status_path(tmp_path / "other" / "cache.sqlite").read_text())
    assert status["status"] == "failing" and status["broker"] == f"mqtt://127.0.0.1:{broker.port}"
    told = caplog.text + json.dumps(status)
    assert "MQTT: cannot publish to" in caplog.text
    assert PASSWORD not in told and "not-the-password" not in told and f"{USER}@" not in told


def _run_publish(env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "METER", "AMBER_", "SQLITE"))}
    return subprocess.Popen([sys.executable, "-m", "home_energy.cli", "publish"], env={**clean, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_availability_is_offline_after_sigterm_and_by_last_will_after_kill_9(env, broker, watch, tmp_path):
    watcher = watch(broker.port)
    settings = {**env, "MQTT_URL": broker.url}
    first = _run_publish(settings, tmp_path)
    second = None
    try:
        watcher.wait_for(lambda s: s.get("home-energy/status") == "online", timeout=20)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=10) == 0
        watcher.wait_for(lambda s: s.get("home-energy/status") == "offline", timeout=5)
        assert json.loads(status_path(Path(env["SQLITE_PATH"])).read_text())["status"] == "stopped"

        second = _run_publish(settings, tmp_path)
        watcher.wait_for(lambda s: s.get("home-energy/status") == "online", timeout=20)
        second.kill()
        second.wait(timeout=10)
        watcher.wait_for(lambda s: s.get("home-energy/status") == "offline", timeout=5)  # the last will
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
                process.communicate(timeout=10)
    assert first.returncode == 0 and second.returncode == -signal.SIGKILL


def test_after_a_broker_restart_discovery_and_states_are_back_within_30_s(env, broker, watch, publishing):
    watcher = watch(broker.port)
    publishing(load_config(env={**env, "MQTT_URL": broker.url}))
    before = watcher.wait_for(_all_discovered)
    broker.stop()  # no persistence: every retained message is gone
    broker.start()
    restarted = time.monotonic()
    fresh = watch(broker.port)  # a new subscriber sees only what was published again
    after = fresh.wait_for(lambda s: _all_discovered(s) and all(t in s for t in before), timeout=30)
    assert time.monotonic() - restarted < 30
    assert _configs(after) == _configs(before)


def test_home_assistants_birth_message_makes_it_send_everything_again(env, broker, watch, publishing):
    watcher = watch(broker.port)
    publishing(load_config(env={**env, "MQTT_URL": broker.url}))
    watcher.wait_for(_all_discovered)
    time.sleep(0.5)  # let the first full send finish arriving before marking the moment
    mark = time.monotonic()
    watcher.publish("homeassistant/status", "online")
    wait_until(lambda: len({t for t, _p in watcher.since(mark) if t.endswith("/config")}) == len(EXPECTED) + 1,
               timeout=10, what="discovery sent again")
    again = {t for t, _p in watcher.since(mark)}
    assert "home-energy/general_price" in again and "home-energy/status" in again


def test_a_late_last_will_of_an_old_session_does_not_leave_it_offline(env, broker, watch, publishing):
    watcher = watch(broker.port)
    publishing(load_config(env={**env, "MQTT_URL": broker.url}))
    watcher.wait_for(_all_discovered)
    watcher.publish("home-energy/status", "offline", retain=True)
    watcher.wait_for(lambda s: s.get("home-energy/status") == "online", timeout=5)


def test_a_tls_broker_with_a_bad_certificate_is_refused_with_one_line(env, tmp_path, publishing, caplog):
    with Broker(tmp_path / "tls-broker", tls=True) as broker:
        publisher = publishing(load_config(env={**env, "MQTT_URL": f"mqtts://localhost:{broker.port}"}))
        wait_until(lambda: publisher.state.status == "failing", what="the TLS failure")
        assert publisher.state.last_error.startswith("TLS certificate refused: ")
        assert "\n" not in publisher.state.last_error
        time.sleep(1.5)  # a second attempt (backoff 1 s) must fail the same way: never plain text
        assert publisher.state.last_error.startswith("TLS certificate refused: ")
    assert "Traceback" not in caplog.text


def test_a_broker_that_never_answers_costs_a_bounded_wait_and_stops_promptly(env, publishing, monkeypatch):
    monkeypatch.setattr(publisher_module, "CONNACK_WAIT_S", 1.0)
    silent = SilentBroker()
    try:
        publisher = publishing(load_config(env={**env, "MQTT_URL": silent.url}))
        wait_until(lambda: publisher.state.status == "failing", timeout=10, what="the CONNACK wait to end")
        assert publisher.state.last_error == "no answer to CONNECT within 1 s"
    finally:
        silent.close()


def test_a_refused_port_is_failing_in_health_and_then_connected(env, tmp_path, publishing):
    broker = Broker(tmp_path / "late-broker")
    config = load_config(env={**env, "MQTT_URL": broker.url})
    app = create_app(config)
    publisher = publishing(config)
    wait_until(lambda: app.test_client().get("/api/health").get_json()["publish"]["status"] == "failing",
               what="health to show the failure")
    health = app.test_client().get("/api/health").get_json()["publish"]
    assert health["last_error"] == "connection refused" and health["broker"] == broker.url
    with broker:
        wait_until(lambda: publisher.state.status == "connected", timeout=15, what="the reconnect")
        wait_until(lambda: app.test_client().get("/api/health").get_json()["publish"]["status"] == "connected",
                   what="health to show the connection")


@pytest.mark.parametrize(("name", "value"), [
    ("MQTT_URL", "http://broker.lan:1883"), ("MQTT_URL", "mqtt://user:hunter2pw@"),
    ("MQTT_TOPIC_PREFIX", "home/#"), ("MQTT_TOPIC_PREFIX", "home/+/energy"), ("MQTT_TOPIC_PREFIX", "home energy"),
    ("MQTT_DISCOVERY_PREFIX", "home assistant"), ("MQTT_DISCOVERY_PREFIX", "#"),
])
def test_bad_settings_exit_78_with_one_line_naming_the_variable(tmp_path, name, value):
    env = {"SQLITE_PATH": str(tmp_path / "cache.sqlite"), "MQTT_URL": "mqtt://user:hunter2pw@127.0.0.1:1", name: value}
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "publish"], capture_output=True, text=True,
                            timeout=30, cwd=ROOT, env={**os.environ, **env})
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {name} ")
    assert "hunter2pw" not in result.stderr

