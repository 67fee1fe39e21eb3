"""Shelly Gen2+ energy meters (Pro 3EM, 3EM Gen3, Pro EM, EM Gen3) over their local RPC API.

What it reads, and why:
- `GET /shelly` first (open even with a password set) for `gen`, `profile` and `auth_en`: a
  Gen1 device speaks another API, and a device that asks for a password without one set is a
  configuration error, not an outage.
- Triphase profile: `EM.GetStatus?id=0` (`total_act_power`, the signed sum of the phases) and
  `EMData.GetStatus?id=0` (`total_act` / `total_act_ret`, Wh). Monophase profile, Pro EM and EM
  Gen3: `EM1.GetStatus` / `EM1Data.GetStatus` (`act_power`, `total_act_energy`,
  `total_act_ret_energy`); on a monophase 3EM the three channels are the three phases and are
  summed, otherwise channel 0 is the grid.
- Signs: + importing, − exporting, with the clamps fitted as the manual says. A clamp fitted the
  other way round flips the sign; the collector's health check looks for the tell-tale pattern.
- A grid meter measures the grid only: solar, battery and the house's load are None (unknown),
  never guessed from the grid figure.
- `errors` that say the measurement is broken (`power_meter_failure`, `ct_type_not_set`) reject
  the reading; others (`phase_sequence`) do not change the power figures.
- Optional password: HTTP Digest with SHA-256, user `admin`. The session keeps the nonce and
  counts `nc` up, so a 10 s poll does not answer a fresh challenge each time.
"""
from __future__ import annotations

from typing import Any

from ..clock import now_utc
from ..config import Secret
from ..digest import DigestAuth
from .base import (
    MAX_COUNTER_WH,
    JsonHttp,
    MeterConfigError,
    MeterDataError,
    MeterUnavailableError,
    Reading,
    number,
    obj,
    status_error,
)

SHELLY_USER = "admin"  # fixed by Shelly for Gen2+ digest auth
BROKEN_MEASUREMENT = frozenset({"power_meter_failure", "ct_type_not_set"})


class ShellySource:
    name = "shelly"

    def __init__(self, url: str, poll_seconds: int, password: Secret | None = None) -> None:
        self.poll_seconds = poll_seconds
        auth = DigestAuth(SHELLY_USER, password) if password else None
        self.http = JsonHttp(url, "the Shelly meter", auth=auth)
        self.has_password = password is not None
        self.has_counters = False
        self.channels: tuple[int, ...] | None = None  # None: EM (triphase); else the EM1 ids to sum
        self._probed = False

    def fetch(self) -> Reading:
        at = now_utc()
        self.http.begin_poll()
        if not self._probed:
            self._probe()
        if self.channels is None:
            power = parse_em_status(self._rpc("EM.GetStatus?id=0"))
            counters = parse_emdata_status(self._rpc("EMData.GetStatus?id=0"))
        else:
            power, imported, exported = 0.0, 0.0, 0.0
            for channel in self.channels:
                power += parse_em1_status(self._rpc(f"EM1.GetStatus?id={channel}"), channel)
                one = parse_em1data_status(self._rpc(f"EM1Data.GetStatus?id={channel}"), channel)
                imported, exported = imported + one[0], exported + one[1]
            counters = (imported, exported)
        self.has_counters = True
        return Reading(at=at, source=self.name, grid_w=power, solar_w=None, battery_w=None,
                       battery_soc_percent=None, load_w=None, import_wh=counters[0], export_wh=counters[1])

    def _probe(self) -> None:
        answer = self.http.answer("/shelly")
        if answer.status != 200:
            raise MeterConfigError(f"the Shelly meter answered HTTP {answer.status} at /shelly: is METER_URL right?")
        info = answer.json()
        if not isinstance(info, dict):
            raise MeterConfigError("the Shelly meter's /shelly answer is not an object: is METER_URL right?")
        gen = info.get("gen")
        if not isinstance(gen, int) or gen < 2:
            raise MeterConfigError("this Shelly is a Gen1 device (or not a Shelly): only Gen2+ meters are supported")
        if info.get("auth_en") and not self.has_password:
            raise MeterConfigError("the Shelly meter asks for a password: set METER_PASSWORD")
        profile = info.get("profile")
        if profile == "monophase":
            self.channels = (0, 1, 2)
        elif profile != "triphase":
            # Pro EM / EM Gen3 have no EM component: try it, fall back to EM1 channel 0.
            if self.http.answer("/rpc/EM.GetStatus?id=0").status in (400, 404):
                self.channels = (0,)
        self._probed = True

    def _rpc(self, call: str) -> Any:
        answer = self.http.answer(f"/rpc/{call}")
        if answer.status == 401:
            raise status_error(answer, "the Shelly meter", call)
        if answer.status != 200:
            message = answer.reason()
            raise MeterUnavailableError(f"the Shelly meter answered HTTP {answer.status} to {call.split('?')[0]}"
                                        + (f" ({message})" if message else ""))
        return answer.json()

    def close(self) -> None:
        self.http.close()


def _check_errors(status: dict[str, Any], where: str) -> None:
    errors = status.get("errors") or []
    if not isinstance(errors, list):
        raise MeterDataError(f"{where}.errors is not a list")
    broken = sorted(BROKEN_MEASUREMENT.intersection(map(str, errors)))
    if broken:
        raise MeterDataError(f"the Shelly meter reports {', '.join(broken)}: its power figures are not valid")


def parse_em_status(body: Any) -> float | None:
    status = obj(body, "EM.GetStatus")
    _check_errors(status, "EM.GetStatus")
    if "total_act_power" not in status:
        raise MeterDataError("EM.GetStatus has no total_act_power")
    return number(status["total_act_power"], "EM.GetStatus.total_act_power")


def parse_emdata_status(body: Any) -> tuple[float, float]:
    status = obj(body, "EMData.GetStatus")
    imported = number(status.get("total_act"), "EMData.total_act", low=0, high=MAX_COUNTER_WH)
    exported = number(status.get("total_act_ret"), "EMData.total_act_ret", low=0, high=MAX_COUNTER_WH)
    if imported is None or exported is None:
        raise MeterDataError("EMData.GetStatus has no total_act / total_act_ret")
    return imported, exported


def parse_em1_status(body: Any, channel: int) -> float:
    status = obj(body, f"EM1.GetStatus id={channel}")
    _check_errors(status, f"EM1:{channel}")
    power = number(status.get("act_power"), f"EM1:{channel}.act_power")
    if power is None:
        raise MeterDataError(f"EM1:{channel} has no act_power")
    return power


def parse_em1data_status(body: Any, channel: int) -> tuple[float, float]:
    status = obj(body, f"EM1Data.GetStatus id={channel}")
    imported = number(status.get("total_act_energy"), f"EM1Data:{channel}.total_act_energy", low=0,
                      high=MAX_COUNTER_WH)
    exported = number(status.get("total_act_ret_energy"), f"EM1Data:{channel}.total_act_ret_energy", low=0,
                      high=MAX_COUNTER_WH)
    if imported is None or exported is None:
        raise MeterDataError(f"EM1Data:{channel} has no total_act_energy / total_act_ret_energy")
    return imported, exported
