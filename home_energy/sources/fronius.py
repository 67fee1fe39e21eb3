"""Fronius Solar API v1 (Datamanager SnapINverters and GEN24/Tauro): live power from PowerFlow.

Signs and nulls, as Fronius documents them and real payloads confirm:
- `Site.P_Grid`: + from the grid, − to the grid (our sign as is); null when no meter is enabled.
- `Site.P_Load`: + generator, − consumer, so the house's consumption is −P_Load. It is the
  device's own figure and is used whenever it is not null: on a GEN24 `P_PV` is the DC side, so
  grid + PV + battery over-states the load.
- `Site.P_Akku`: + discharge, − charge (the current spec and GEN24 data; older texts say the
  opposite); null when no battery is active.
- `Site.P_PV`: null when the inverter is not running (night): kept null, never 0.
- SOC only with a battery: a GEN24 without one reports a false `SOC 0.0`.
- `Head.Status.Code` is checked before `Body` is read; 0 is OK, anything else is a failed poll
  (about 1 % of requests on some Symos time out inside the Datamanager).
Energy counters come from the grid meter (`GetMeterRealtimeData`, `Meter_Location_Current` 0),
read at most once a minute as Home Assistant does (the first two reads one poll apart); a meter in
the consumption path has no import/export counters, and the collector then integrates grid power instead.
"""
from __future__ import annotations

import logging
from typing import Any

from ..clock import monotonic, now_utc
from .base import MAX_COUNTER_WH, JsonHttp, MeterDataError, MeterUnavailableError, Reading, number, obj

log = logging.getLogger(__name__)

POWER_FLOW_PATH = "/solar_api/v1/GetPowerFlowRealtimeData.fcgi"
METER_PATH = "/solar_api/v1/GetMeterRealtimeData.cgi?Scope=System"
COUNTERS_EVERY_S = 60.0  # Home Assistant reads the meter every 60 s; counters move slowly


class FroniusSource:
    name = "fronius"

    def __init__(self, url: str, poll_seconds: int) -> None:
        self.poll_seconds = poll_seconds
        self.http = JsonHttp(url, "the Fronius inverter")
        self.has_counters = False
        self._counters_due = 0.0
        self._counter_reads = 0

    def fetch(self) -> Reading:
        at = now_utc()
        self.http.begin_poll()
        body = self.http.get(POWER_FLOW_PATH)
        values = parse_power_flow(body)
        counters: tuple[float, float] | None = None
        if monotonic() >= self._counters_due:
            # The first two reads are one poll apart, so today's energy starts within seconds.
            self._counters_due = monotonic() + (COUNTERS_EVERY_S if self._counter_reads else self.poll_seconds)
            self._counter_reads += 1
            counters = self._counters()
        return Reading(at=at, source=self.name, **values,
                       import_wh=counters[0] if counters else None, export_wh=counters[1] if counters else None)

    def _counters(self) -> tuple[float, float] | None:
        """The grid meter's counters, or None: a missing or failing meter endpoint is not a fault."""
        try:
            body = self.http.get(METER_PATH)
            counters = parse_meter_counters(body)
        except (MeterUnavailableError, MeterDataError) as exc:
            log.debug("no energy counters this time: %s", exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a config error on the optional call must not stop power
            log.debug("no energy counters: %s", exc)
            return None
        if counters is not None:
            self.has_counters = True
        return counters

    def close(self) -> None:
        self.http.close()


def _check_head(body: Any) -> dict[str, Any]:
    body = obj(body, "the answer")
    status = obj(obj(body.get("Head"), "Head").get("Status"), "Head.Status")
    code = status.get("Code")
    if code != 0:
        reason = str(status.get("Reason") or "")[:80]
        raise MeterUnavailableError(f"the Fronius inverter answered status {code}" + (f" ({reason})" if reason else ""))
    return obj(obj(body.get("Body"), "Body").get("Data"), "Body.Data")


def parse_power_flow(body: Any) -> dict[str, float | None]:
    """Map a GetPowerFlowRealtimeData body to the Reading's power fields (see the module doc)."""
    data = _check_head(body)
    site = obj(data.get("Site"), "Body.Data.Site")
    for key in ("P_Grid", "P_Load", "P_PV", "P_Akku"):
        if key not in site:
            raise MeterDataError(f"Site.{key} is missing")
    grid = number(site["P_Grid"], "Site.P_Grid")
    p_load = number(site["P_Load"], "Site.P_Load")
    solar = number(site["P_PV"], "Site.P_PV")
    battery = number(site["P_Akku"], "Site.P_Akku")
    if solar is not None and solar < 0:
        solar = 0.0 if solar > -50 else _reject("Site.P_PV", solar)  # a few W of standby draw reads as -0.x
    if p_load is not None:
        load: float | None = -p_load
    elif grid is not None:
        load = grid + (solar or 0.0) + (battery or 0.0)
    else:
        load = None
    soc = None
    if battery is not None or site.get("Mode") == "bidirectional":
        inverters = data.get("Inverters")
        if isinstance(inverters, dict):
            for key in sorted(inverters):
                inverter = inverters[key]
                if isinstance(inverter, dict) and inverter.get("SOC") is not None:
                    soc = number(inverter["SOC"], f"Inverters.{key}.SOC", low=0, high=100)
                    break
    return {"grid_w": grid, "solar_w": solar, "battery_w": battery, "battery_soc_percent": soc, "load_w": load}


def _reject(where: str, value: float) -> float:
    raise MeterDataError(f"{where} is negative: {value}")


def parse_meter_counters(body: Any) -> tuple[float, float] | None:
    """(import Wh, export Wh) from the grid-located meter, or None when there is none."""
    data = _check_head(body)
    for key in sorted(data):
        meter = data[key]
        if not isinstance(meter, dict):
            continue
        location = meter.get("Meter_Location_Current")
        if not isinstance(location, (int, float)) or location != 0 or not meter.get("Visible", 1):
            continue
        imported = number(meter.get("EnergyReal_WAC_Plus_Absolute"), f"meter {key} import", low=0, high=MAX_COUNTER_WH)
        exported = number(meter.get("EnergyReal_WAC_Minus_Absolute"), f"meter {key} export", low=0,
                          high=MAX_COUNTER_WH)
        if imported is None or exported is None:
            return None
        return imported, exported
    return None
