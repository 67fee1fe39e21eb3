"""What the home's other systems see: the entities published over MQTT, as Home Assistant's
discovery documents and the state each one carries.

Rules it keeps:
- Every value comes from an answer the API gives (the same `queries` functions, called with the
  same arguments), so an entity can never disagree with the page: c/kWh figures are the API's
  numbers unchanged; AUD/kWh figures are those divided by 100 (rounded to 7 places, exact for
  Amber's prices); times are the API's ISO strings.
- Pure: no clock, no cache, no network; the publisher feeds it answers and sends what it returns.
- Smart plugs (PLUGS_FILE) are `switch` entities: the publisher sends their discovery and state
  from `/api/plugs`' answer (it only reads), and Home Assistant's commands go to
  `<prefix>/plug/<key>/set`, where the plug controller listens (`plugs.commands`): the controller,
  already the writer of plug state, carries them out as a person's override. A switch is
  available only while both the publisher (`<prefix>/status`) and the controller's listener
  (`<prefix>/plugs/status`) are up, so Home Assistant never offers a switch nobody would act on.
- Units and classes follow Home Assistant's sensor rules: prices in AUD/kWh (what the energy
  dashboard takes for a price entity), powers in W (`measurement`), energies in kWh
  (`total_increasing`, reset each NEM day), money in AUD (`monetary`, `total`), window edges as
  `timestamp`s. A value that can go stale carries `expire_after`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

AVAILABLE = "online"
NOT_AVAILABLE = "offline"
NONE_PAYLOAD = "None"  # Home Assistant's MQTT sensors read this payload as "unknown"
# Every state is sent at least every 5 minutes (STATE_EVERY_S in publisher); a value not renewed
# for two of those periods and a minute is stale in Home Assistant too.
EXPIRE_AFTER_S = 660
AUD_PER_KWH_DECIMALS = 7
CHEAPEST_HOURS = (1, 2, 3)


@dataclass(frozen=True)
class Entity:
    key: str  # the state topic's last level and the unique id's suffix
    component: str  # sensor | binary_sensor
    name: str
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    expires: bool = False
    diagnostic: bool = False
    meter: bool = False  # only with a meter (METER set)
    precision: int | None = None


@dataclass(frozen=True)
class Answers:
    """The API's answers the states are taken from (JSON-ready dicts, as the API serves them)."""

    current: dict[str, Any]
    summary: dict[str, Any]
    health: dict[str, Any]
    live: dict[str, Any] | None = None  # /api/live, with a meter
    today: dict[str, Any] | None = None  # /api/today, with a meter


def _cheapest() -> tuple[Entity, ...]:
    out: list[Entity] = []
    for hours in CHEAPEST_HOURS:
        out += [
            Entity(f"cheapest_{hours}h_start", "sensor", f"Cheapest {hours} h start", device_class="timestamp"),
            Entity(f"cheapest_{hours}h_end", "sensor", f"Cheapest {hours} h end", device_class="timestamp"),
            Entity(f"cheapest_{hours}h_price", "sensor", f"Cheapest {hours} h average price", unit="c/kWh",
                   precision=2),
        ]
    return tuple(out)


ENTITIES: tuple[Entity, ...] = (
    Entity("general_price", "sensor", "General price", unit="AUD/kWh", state_class="measurement", expires=True,
           precision=4),
    Entity("general_price_cents", "sensor", "General price c/kWh", unit="c/kWh", state_class="measurement",
           expires=True, precision=2),
    Entity("feed_in_price", "sensor", "Feed-in price", unit="AUD/kWh", state_class="measurement", expires=True,
           precision=4),
    Entity("feed_in_price_cents", "sensor", "Feed-in price c/kWh", unit="c/kWh", state_class="measurement",
           expires=True, precision=2),
    Entity("descriptor", "sensor", "Price descriptor", expires=True),
    Entity("spike", "binary_sensor", "Price spike", expires=True),
    Entity("renewables", "sensor", "Renewables", unit="%", state_class="measurement", expires=True, precision=0),
    *_cheapest(),
    Entity("cost_yesterday", "sensor", "Cost yesterday", unit="AUD", device_class="monetary", state_class="total",
           precision=2),
    Entity("cost_month_to_date", "sensor", "Cost this month", unit="AUD", device_class="monetary",
           state_class="total", precision=2),
    Entity("grid_power", "sensor", "Grid power", unit="W", device_class="power", state_class="measurement",
           expires=True, meter=True, precision=0),
    Entity("solar_power", "sensor", "Solar power", unit="W", device_class="power", state_class="measurement",
           expires=True, meter=True, precision=0),
    Entity("battery_power", "sensor", "Battery power", unit="W", device_class="power", state_class="measurement",
           expires=True, meter=True, precision=0),
    Entity("load_power", "sensor", "Home load", unit="W", device_class="power", state_class="measurement",
           expires=True, meter=True, precision=0),
    Entity("battery_soc", "sensor", "Battery charge", unit="%", device_class="battery", state_class="measurement",
           expires=True, meter=True, precision=0),
    Entity("energy_imported_today", "sensor", "Imported today", unit="kWh", device_class="energy",
           state_class="total_increasing", meter=True, precision=3),
    Entity("energy_exported_today", "sensor", "Exported today", unit="kWh", device_class="energy",
           state_class="total_increasing", meter=True, precision=3),
    Entity("cost_today", "sensor", "Cost so far today", unit="AUD", device_class="monetary", state_class="total",
           meter=True, precision=2),
    Entity("sync_outcome", "sensor", "Last sync outcome", diagnostic=True),
    Entity("sync_problem", "sensor", "Sync problem", diagnostic=True),
)


@dataclass(frozen=True)
class Device:
    node_id: str  # one display on the broker: [A-Za-z0-9_-], from MQTT_TOPIC_PREFIX
    topic_prefix: str
    discovery_prefix: str
    version: str
    configuration_url: str


def node_id(topic_prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic_prefix)


def status_topic(topic_prefix: str) -> str:
    return f"{topic_prefix}/status"


def state_topic(topic_prefix: str, entity: Entity) -> str:
    return f"{topic_prefix}/{entity.key}"


def discovery_topic(device: Device, entity: Entity) -> str:
    return f"{device.discovery_prefix}/{entity.component}/{device.node_id}/{entity.key}/config"


def plugs_status_topic(topic_prefix: str) -> str:
    """The plug controller's availability: `online` while it listens for commands (its last will: `offline`)."""
    return f"{topic_prefix}/plugs/status"


def plug_topic(topic_prefix: str, plug: str, leaf: str) -> str:
    """`<prefix>/plug/<key>/<leaf>`: `state` (ON | OFF), `attributes` (JSON), `set` (Home Assistant's commands)."""
    return f"{topic_prefix}/plug/{plug}/{leaf}"


PLUG_COMMAND_TOPICS = "{prefix}/plug/+/set"  # what the controller subscribes to
PLUG_ON, PLUG_OFF = "ON", "OFF"  # the only command payloads accepted, as Home Assistant sends them


def plug_discovery_topic(device: Device, plug: str) -> str:
    return f"{device.discovery_prefix}/switch/{device.node_id}/plug_{plug}/config"


def plug_discovery_filter(device: Device) -> str:
    """Every switch config of this display (a wildcard takes a whole topic level)."""
    return f"{device.discovery_prefix}/switch/{device.node_id}/+/config"


def plug_from_discovery_topic(device: Device, topic: str) -> str | None:
    """The plug key of one of this display's switch configs, or None for any other topic."""
    head = f"{device.discovery_prefix}/switch/{device.node_id}/plug_"
    if topic.startswith(head) and topic.endswith("/config"):
        return topic[len(head):-len("/config")] or None
    return None


def switch_config(device: Device, plug: str, name: str) -> dict[str, Any]:
    """The retained `switch` document for one plug: its state as /api/plugs shows it, commands to
    `<prefix>/plug/<key>/set`, available while the publisher and the controller's listener are."""
    config = discovery_config(device, Entity(f"plug_{plug}", "switch", name))
    del config["availability_topic"], config["payload_available"], config["payload_not_available"]
    config.update(
        state_topic=plug_topic(device.topic_prefix, plug, "state"),
        command_topic=plug_topic(device.topic_prefix, plug, "set"),
        json_attributes_topic=plug_topic(device.topic_prefix, plug, "attributes"),
        payload_on=PLUG_ON, payload_off=PLUG_OFF, state_on=PLUG_ON, state_off=PLUG_OFF,
        device_class="outlet", optimistic=False, retain=False,
        availability=[{"topic": status_topic(device.topic_prefix)},
                      {"topic": plugs_status_topic(device.topic_prefix)}],
        availability_mode="all", payload_available=AVAILABLE, payload_not_available=NOT_AVAILABLE,
    )
    return config


def plug_states(answer: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """{plug key: (name, state payload, attributes JSON)} from /api/plugs' answer. A plug that is not
    answering has an unknown state (its last one is history); the attributes say why, as the page does."""
    import json

    out: dict[str, tuple[str, str, str]] = {}
    for plug in answer.get("plugs", []):
        known = plug["state"] in ("on", "off") and plug["mode"] != "failing"
        state = (PLUG_ON if plug["state"] == "on" else PLUG_OFF) if known else NONE_PAYLOAD
        attributes = {key: plug.get(key) for key in ("mode", "why", "rule", "next_change", "block",
                                                     "override_until", "last_error")}
        attributes["controller"] = answer.get("controller")
        out[plug["key"]] = (plug["name"], state, json.dumps(attributes, separators=(",", ":"), sort_keys=True))
    return out


def entities_for(has_meter: bool) -> tuple[Entity, ...]:
    return tuple(e for e in ENTITIES if has_meter or not e.meter)


def discovery_config(device: Device, entity: Entity) -> dict[str, Any]:
    """The retained document Home Assistant reads from `discovery_topic` to create the entity."""
    config: dict[str, Any] = {
        "name": entity.name,
        "unique_id": f"{device.node_id}_{entity.key}",
        "state_topic": state_topic(device.topic_prefix, entity),
        "availability_topic": status_topic(device.topic_prefix),
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": {
            "identifiers": [device.node_id],
            "name": "Home energy",
            "manufacturer": "home-energy",
            "model": "Amber Electric kitchen display",
            "sw_version": device.version,
            "configuration_url": device.configuration_url,
        },
        "origin": {"name": "home-energy", "sw_version": device.version},
    }
    if entity.component == "binary_sensor":
        config.update(payload_on="ON", payload_off="OFF")
    for key, value in (("unit_of_measurement", entity.unit), ("device_class", entity.device_class),
                       ("state_class", entity.state_class), ("suggested_display_precision", entity.precision)):
        if value is not None:
            config[key] = value
    if entity.expires:
        config["expire_after"] = EXPIRE_AFTER_S
    if entity.diagnostic:
        config["entity_category"] = "diagnostic"
    return config


def _text(value: Any) -> str:
    if value is None:
        return NONE_PAYLOAD
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


def aud_per_kwh(cents_per_kwh: float | None, sign: int = 1) -> float | None:
    if cents_per_kwh is None:
        return None
    return round(sign * cents_per_kwh / 100, AUD_PER_KWH_DECIMALS) + 0.0  # + 0.0: never "-0.0"


def state_values(answers: Answers, has_meter: bool) -> dict[str, Any]:
    """{entity key: value} from the API's answers; None where the API has no value."""
    channels = answers.current.get("channels", {})
    general, feed_in = channels.get("general") or {}, channels.get("feedIn") or {}
    summary = answers.summary
    values: dict[str, Any] = {
        "general_price": aud_per_kwh(general.get("per_kwh")),
        "general_price_cents": general.get("per_kwh"),
        # Amber's feed-in price is negative when the household is paid; the energy dashboard
        # wants the price received for export, so the AUD/kWh entity is the earnings' sign.
        "feed_in_price": aud_per_kwh(feed_in.get("per_kwh"), sign=-1),
        "feed_in_price_cents": feed_in.get("per_kwh"),
        "descriptor": general.get("descriptor"),
        "spike": None if not general else general.get("spike_status") == "spike",
        "renewables": summary["renewables"]["now_percent"],
        "cost_yesterday": summary["yesterday"]["cost_dollars"],
        "cost_month_to_date": (summary.get("month_to_date") or {}).get("cost_dollars"),
        "sync_outcome": (answers.health.get("last_sync") or {}).get("outcome"),
        "sync_problem": answers.health.get("problem") or "none",
    }
    for hours in CHEAPEST_HOURS:
        window = summary["cheapest"].get(f"{hours}h") or {}
        values[f"cheapest_{hours}h_start"] = window.get("start")
        values[f"cheapest_{hours}h_end"] = window.get("end")
        values[f"cheapest_{hours}h_price"] = window.get("avg_per_kwh")
    if has_meter:
        live, today = answers.live or {}, answers.today or {}
        # A silent meter's last reading is history, not the power now: unknown until it answers.
        fresh = live.get("status") == "ok"
        for key, field in (("grid_power", "grid_w"), ("solar_power", "solar_w"), ("battery_power", "battery_w"),
                           ("load_power", "load_w"), ("battery_soc", "battery_soc_percent")):
            values[key] = live.get(field) if fresh else None
        values["energy_imported_today"] = today.get("import_kwh")
        values["energy_exported_today"] = today.get("export_kwh")
        values["cost_today"] = today.get("cost_dollars")
    return values


def states(answers: Answers, has_meter: bool) -> dict[str, str]:
    """{entity key: MQTT payload}: numbers as Python writes them, None as Home Assistant's unknown."""
    return {key: _text(value) for key, value in state_values(answers, has_meter).items()}
