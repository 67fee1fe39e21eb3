"""Shelly Gen2+ switches and plugs (Plus Plug S, Plus 1PM, Pro 2PM …) over their local RPC.

What it sends, and why:
- `GET /rpc/Switch.GetStatus?id=N`: the switch's `output` (true/false). Nothing else in the
  answer is used; an `output` that is not a boolean is a data error.
- `GET /rpc/Switch.Set?id=N&on=true|false`: answers `{"was_on": …}`; the state is then read
  back, so what is recorded is what the device says, not what was asked.
- Password: HTTP Digest (SHA-256, user `admin`, realm = device id), answered by the door's
  `DigestAuth`, which keeps the nonce so a minute's reads are not challenged each time.
- A 401 that survives the digest answer means the password is missing or wrong: one line saying
  which setting to fix. A JSON-RPC error (`{"code": -105, "message": …}`) names the switch id.
"""
from __future__ import annotations

from typing import Any

from ..digest import DigestAuth
from ..fetch import Answer, Client, Limits
from .base import FAULTS, PlugAuthError, PlugDataError, PlugUnavailableError
from .rules import PlugConfig

SHELLY_USER = "admin"  # fixed by Shelly for Gen2+ digest auth


class ShellyPlug:
    def __init__(self, plug: PlugConfig, limits: Limits) -> None:
        self.key = plug.key
        self.channel = plug.channel
        self.label = f"the {plug.name} plug (Shelly)"
        self.has_password = plug.password is not None
        digest = DigestAuth(SHELLY_USER, plug.password) if plug.password is not None else None
        self.client = Client(plug.url, label=self.label, faults=FAULTS, limits=limits, digest=digest)

    def read(self) -> bool:
        body = self._rpc("Switch.GetStatus", f"id={self.channel}")
        output = body.get("output") if isinstance(body, dict) else None
        if not isinstance(output, bool):
            # The value itself is not quoted: a device's own words never reach a log or the screen.
            raise PlugDataError(f"{self.label} reported a state it cannot have "
                                f"(output is {type(output).__name__}, not true or false)")
        return output

    def switch(self, on: bool) -> bool:
        body = self._rpc("Switch.Set", f"id={self.channel}&on={'true' if on else 'false'}")
        if not isinstance(body, dict) or not isinstance(body.get("was_on"), bool):
            raise PlugDataError(f"{self.label} answered Switch.Set with something other than was_on")
        return self.read()

    def _rpc(self, method: str, query: str) -> Any:
        answer = self.client.request("GET", f"/rpc/{method}?{query}")
        if answer.status == 401:
            hint = "refused the password in PLUGS_FILE" if self.has_password else \
                "asks for a password: set `password` in PLUGS_FILE"
            raise PlugAuthError(f"{self.label} {hint}")
        if not answer.ok:
            raise PlugUnavailableError(f"{self.label} answered HTTP {answer.status} to {method}{_reason(answer)}")
        return answer.json()

    def close(self) -> None:
        self.client.close()


def _reason(answer: Answer) -> str:
    text = answer.reason()
    return f" ({text})" if text else ""
