"""Tasmota plugs and relays (Sonoff, Athom, Nous …) over Tasmota's HTTP command API.

What it sends, and why:
- `GET /cm?cmnd=Power` (or `Power2` … for relay N+1 when `channel` is set) answers
  `{"POWER": "ON"}`; `cmnd=Power On` / `Power Off` switches and answers the new state. A
  device with one relay answers `POWER` even to `Power1`, so both keys are accepted.
- A web password is sent as `user=admin&password=…` in the query, as Tasmota requires; the
  door never puts a query string into a message, so it stays out of logs and errors.
- Tasmota answers 401 `{"WARNING": "Need user=<username>&password=<password>"}` without a
  password and 200 `{"Command": "Unknown"}` for a relay it does not have.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..fetch import Client, Limits
from .base import FAULTS, PlugAuthError, PlugDataError, PlugUnavailableError
from .rules import PlugConfig

TASMOTA_USER = "admin"  # Tasmota's web user is always admin
STATES = {"ON": True, "OFF": False}


class TasmotaPlug:
    def __init__(self, plug: PlugConfig, limits: Limits) -> None:
        self.key = plug.key
        self.label = f"the {plug.name} plug (Tasmota)"
        self.command = "Power" if plug.channel == 0 else f"Power{plug.channel + 1}"
        self.keys = ("POWER",) if plug.channel == 0 else (f"POWER{plug.channel + 1}", "POWER")
        self.password = plug.password
        self.client = Client(plug.url, label=self.label, faults=FAULTS, limits=limits)

    def read(self) -> bool:
        return self._state(self._cmnd(self.command))

    def switch(self, on: bool) -> bool:
        return self._state(self._cmnd(f"{self.command} {'On' if on else 'Off'}"))

    def _cmnd(self, command: str) -> Any:
        path = f"/cm?cmnd={quote(command, safe='')}"
        if self.password is not None:
            path += f"&user={TASMOTA_USER}&password={quote(self.password.reveal(), safe='')}"
        answer = self.client.request("GET", path)
        if answer.status == 401:
            hint = "refused the password in PLUGS_FILE" if self.password is not None else \
                "asks for a password: set `password` in PLUGS_FILE"
            raise PlugAuthError(f"{self.label} {hint}")
        if not answer.ok:
            raise PlugUnavailableError(f"{self.label} answered HTTP {answer.status} to {command.split()[0]}")
        return answer.json()

    def _state(self, body: Any) -> bool:
        if isinstance(body, dict) and body.get("Command") == "Unknown":
            raise PlugDataError(f"{self.label} has no relay for {self.command}: check `channel` in PLUGS_FILE")
        word = next((body[k] for k in self.keys if isinstance(body, dict) and k in body), None)
        if not isinstance(word, str) or word.upper() not in STATES:
            # The word itself is not quoted: the request carried the password, and a device's own
            # words never reach a log or the screen.
            raise PlugDataError(f"{self.label} reported a state it cannot have (not ON or OFF)")
        return STATES[word.upper()]

    def close(self) -> None:
        self.client.close()
