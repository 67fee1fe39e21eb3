"""Plugs as Home Assistant switches, against a real Mosquitto and fake plugs: the publisher sends
each plug's `switch` (it only reads the cache), the controller's listener takes the commands and
the controller carries them out as a person's override."""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from home_energy.clock import now_utc
from home_energy.plugs.commands import COMMAND_MAX_AGE_S, LISTENER_STOP_S, Command, CommandListener
from home_energy.plugs.controller import _latest_per_plug, start_controller
from home_energy.publisher import Publisher
from home_energy.web import create_app
from tests.fake_plugs import closed_port_url
from tests.mqtt_broker import PASSWORD, USER, Broker, SilentBroker, Watcher, wait_until
from tests.plugs.helpers import at, cache, config_for, log_rows, write_prices

# Home Assistant's documented keys for an MQTT switch (integrations/switch.mqtt and discovery's
# device/origin blocks); `command_topic` is the one it requires.
SWITCH_KEYS = {"availability", "availability_mode", "availability_template", "availability_topic", "command_template",
               "command_topic", "device", "device_class", "enabled_by_default", "encoding", "entity_category",
               "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id",
               "default_entity_id", "optimistic", "origin", "payload_available", "payload_not_available",
               "payload_off", "payload_on", "platform", "qos", "retain", "state_off", "state_on", "state_topic",
               "unique_id", "value_template"}
DISCOVERY = "homeassistant/switch/home-energy/plug_{}/config"


def two_plugs(shelly_url: str, tasmota_url: str) -> str:
    """The dishwasher and the heater, both wanting OFF while the price is 30c."""
    return (f'[plugs.dishwasher]\ndriver = "shelly"\nurl = "{shelly_url}"\navoid = {{ price = 10 }}\n'
            f'[plugs.heater]\nname = "Bedroom heater"\ndriver = "tasmota"\nurl = "{tasmota_url}"\n'
            'avoid = { price = 10 }\nmax_switches_per_hour = 1\n')


def fresh_prices(config, now: datetime):
    """Six hours of 30c half-hours around `now`, fetched at `now`."""
    conn = cache(config)
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    write_prices(conn, first, [30.0] * 12, fetched_at=now)
    return conn


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.close()


@pytest.fixture
def threads() -> Iterator:
    """Run `target(stop)` in a thread; every one is stopped and joined when the test ends."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def _start(target) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=target, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        return stop

    yield _start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_each_plug_is_a_switch_with_home_assistants_keys_and_its_state_follows_the_plug(
        tmp_path, broker, shelly, tasmota, control, watchers, threads):
    config = config_for(tmp_path, two_plugs(shelly.url, tasmota.url), MQTT_URL=broker.url)
    now = now_utc()
    conn = fresh_prices(config, now)
    controller = control(config)
    controller.decide_once(now)
    watchers.append(watcher := Watcher(broker.port))
    # A switch an earlier run left on the broker, for a plug that is no longer in the file.
    watcher.publish(DISCOVERY.format("old_pump"), '{"name": "Old pump"}', retain=True)
    watcher.wait_for(lambda s: DISCOVERY.format("old_pump") in s)
    threads(Publisher(config, version="1.2.3-test").run)

    def configs(seen: dict[str, str]) -> dict[str, dict]:
        return {key: json.loads(seen[DISCOVERY.format(key)]) for key in ("dishwasher", "heater")
                if DISCOVERY.format(key) in seen}

    seen = watcher.wait_for(lambda s: len(configs(s)) == 2 and s.get("home-energy/plug/heater/state") == "OFF"
                            and DISCOVERY.format("old_pump") not in s)
    found = configs(seen)
    for key, config_doc in found.items():
        assert set(config_doc) <= SWITCH_KEYS, set(config_doc) - SWITCH_KEYS
        assert config_doc["command_topic"] == f"home-energy/plug/{key}/set"
        assert config_doc["state_topic"] == f"home-energy/plug/{key}/state"
        assert config_doc["unique_id"] == f"home-energy_plug_{key}"
        assert config_doc["device"]["identifiers"] == ["home-energy"]
        assert (config_doc["payload_on"], config_doc["payload_off"], config_doc["optimistic"]) == ("ON", "OFF", False)
        assert [a["topic"] for a in config_doc["availability"]] == ["home-energy/status", "home-energy/plugs/status"]
        assert config_doc["availability_mode"] == "all"
    assert (found["dishwasher"]["name"], found["heater"]["name"]) == ("Dishwasher", "Bedroom heater")
    assert json.loads(seen["home-energy/plug/dishwasher/attributes"])["mode"] == "auto"
    assert seen["home-energy/plug/dishwasher/state"] == "OFF"

    # Someone switches the dishwasher on at the wall: the next round sees it, and so does Home Assistant.
    shelly.press(True)
    controller.decide_once(now + timedelta(seconds=60))
    seen = watcher.wait_for(lambda s: s.get("home-energy/plug/dishwasher/state") == "ON")
    assert json.loads(seen["home-energy/plug/dishwasher/attributes"])["mode"] == "manual"
    assert seen["home-energy/plug/heater/state"] == "OFF"

    # A plug taken out of PLUGS_FILE loses its switch (its retained config is removed).
    config_for(tmp_path, two_plugs(shelly.url, tasmota.url).split("[plugs.heater]")[0], MQTT_URL=broker.url)
    controller.close()
    control(config).decide_once(now + timedelta(seconds=120))
    watcher.wait_for(lambda s: DISCOVERY.format("heater") not in s and "home-energy/plug/heater/state" not in s)
    assert DISCOVERY.format("dishwasher") in watcher.snapshot()
    conn.close()


def test_on_from_home_assistant_switches_the_plug_and_the_api_says_manual(tmp_path, broker, shelly, tasmota,
                                                                          watchers):
    config = config_for(tmp_path, two_plugs(shelly.url, tasmota.url), MQTT_URL=broker.url)
    fresh_prices(config, now_utc()).close()
    watchers.append(watcher := Watcher(broker.port))
    stop = start_controller(config)
    assert stop is not None
    try:
        watcher.wait_for(lambda s: s.get("home-energy/plugs/status") == "online")
        watcher.publish("home-energy/plug/dishwasher/set", "ON")
        wait_until(lambda: shelly.on, what="the dishwasher switched on")
        client = create_app(config).test_client()
        plug = wait_until(lambda: next((p for p in client.get("/api/plugs").get_json()["plugs"]
                                        if p["key"] == "dishwasher" and p["mode"] == "manual"), None),
                          what="/api/plugs saying manual")
    finally:
        stop()
    assert plug["state"] == "on" and "from Home Assistant" in plug["why"] and plug["override_until"] is not None
    assert shelly.sets() == [True] and tasmota.sets() == []
    conn = cache(config)
    assert [(action, result) for _t, action, result in log_rows(conn, "dishwasher")] == [("on", "ok")]
    assert conn.execute("SELECT message FROM plug_log WHERE kind = 'command'").fetchone()[0] == \
        "asked by Home Assistant"
    conn.close()
    watcher.wait_for(lambda s: s.get("home-energy/plugs/status") == "offline")


def test_an_override_from_home_assistant_holds_the_rule_like_a_switch_by_hand(tmp_path, shelly, tasmota, control,
                                                                               caplog):
    config = config_for(tmp_path, two_plugs(shelly.url, tasmota.url))
    start = at("2026-12-07T12:00") + timedelta(seconds=5)
    conn = fresh_prices(config, start)
    controller = control(config)
    controller.decide_once(start)
    outcome = controller.apply_command(Command("dishwasher", True, time.monotonic()), start)
    assert (outcome.result, shelly.on) == ("ok", True)
    for minutes in (5, 60, 115):  # the rule wants OFF; the person's ON holds for override_hours (2 h)
        now = start + timedelta(minutes=minutes)
        write_prices(conn, at("2026-12-07T11:00"), [30.0] * 12, fetched_at=now)
        assert controller.decide_once(now)[0].decision.mode == "manual"
    assert shelly.sets() == [True]
    now = start + timedelta(minutes=125)
    write_prices(conn, at("2026-12-07T11:00"), [30.0] * 12, fetched_at=now)
    assert controller.decide_once(now)[0].result == "ok"
    assert shelly.sets() == [True, False]

    # The heater may switch once an hour: a second command within it is refused, and says so.
    assert controller.apply_command(Command("heater", True, time.monotonic()), now).result == "ok"
    for _ in range(3):
        assert controller.apply_command(Command("heater", False, time.monotonic()), now).result == "held"
    assert tasmota.sets() == [True]
    assert len([r for r in caplog.records if "not switched: 1 switches in the last hour" in r.getMessage()]) == 1
    # A command that waited too long (the controller was busy) is not carried out.
    late = Command("heater", False, time.monotonic() - COMMAND_MAX_AGE_S - 1)
    assert controller.apply_command(late, now + timedelta(hours=2)).result == "late"
    assert tasmota.sets() == [True]

    dry = control(config, dry_run=True)
    assert dry.apply_command(Command("dishwasher", True, time.monotonic()), now).result == "dry-run"
    assert shelly.sets() == [True, False]
    conn.close()


def test_bad_payloads_unknown_plugs_and_retained_commands_are_ignored_with_one_line_each(
        tmp_path, shelly, tasmota, watchers, threads, caplog):
    caplog.set_level(logging.DEBUG)
    with Broker(tmp_path / "pw-broker", password=True) as broker:
        config = config_for(tmp_path, two_plugs(shelly.url, tasmota.url),
                            MQTT_URL=f"mqtt://{USER}@127.0.0.1:{broker.port}", MQTT_PASSWORD=PASSWORD)
        watchers.append(watcher := Watcher(broker.port, USER, PASSWORD))
        watcher.publish("home-energy/plug/heater/set", "ON", retain=True)  # left behind by some other tool
        listener = CommandListener(config, ["dishwasher", "heater"])
        threads(listener.run)
        watcher.wait_for(lambda s: s.get("home-energy/plugs/status") == "online")
        for _ in range(2):
            watcher.publish("home-energy/plug/dishwasher/set", "MAYBE")
            watcher.publish("home-energy/plug/dishwasher/set", "on\n" * 1000)
            watcher.publish("home-energy/plug/nope/set", "ON")
        watcher.publish("home-energy/plug/dishwasher/set", "OFF")
        command = listener.queue.get(timeout=10)
    assert (command.plug, command.on) == ("dishwasher", False)
    assert listener.queue.empty()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([line for line in lines if "neither ON nor OFF" in line]) == 1
    assert len([line for line in lines if "no such plug" in line]) == 1
    assert len([line for line in lines if "retained command for heater" in line]) == 1
    assert max(len(line) for line in lines) < 200
    assert PASSWORD not in caplog.text and f"{USER}@" not in caplog.text
    assert shelly.requests == [] and tasmota.requests == []


@pytest.mark.parametrize("down", ["silent", "closed"])
def test_a_broker_that_is_down_or_silent_delays_no_round(tmp_path, shelly, tasmota, control, down):
    silent = SilentBroker() if down == "silent" else None
    url = silent.url if silent else "mqtt://127.0.0.1:" + closed_port_url().rsplit(":", 1)[1]
    config = config_for(tmp_path, two_plugs(shelly.url, tasmota.url), MQTT_URL=url)
    start = at("2026-12-07T12:00") + timedelta(seconds=5)
    conn = fresh_prices(config, start)
    listener = CommandListener(config, ["dishwasher", "heater"])
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: listener.client is not None, what="the listener trying the broker")
        controller = control(config)
        shelly.press(True)
        tasmota.press(True)
        took = []
        for minutes in range(3):
            began = time.monotonic()
            controller.decide_once(start + timedelta(minutes=minutes))
            took.append(time.monotonic() - began)
        assert shelly.sets() == [False] and tasmota.sets() == [False]
        # The listener waits up to 10 s for a CONNACK, then backs off; a round never waits on it.
        assert max(took) < 3.0, took
        assert thread.is_alive() and not listener.connected
    finally:
        stop.set()
        began = time.monotonic()
        thread.join(timeout=LISTENER_STOP_S + 5)
        stopped_in = time.monotonic() - began
        conn.close()
        if silent:
            silent.close()
    assert not thread.is_alive() and stopped_in < LISTENER_STOP_S, stopped_in


def test_a_burst_of_commands_costs_one_exchange_per_plug():
    waiting: queue.Queue[Command] = queue.Queue()
    for i in range(20):
        waiting.put(Command("dishwasher", i % 2 == 0, float(i)))
    waiting.put(Command("heater", True, 20.0))
    waiting.put(Command("dishwasher", True, 21.0))
    first = waiting.get()
    assert _latest_per_plug(first, waiting) == [Command("heater", True, 20.0), Command("dishwasher", True, 21.0)]
    assert waiting.empty()
