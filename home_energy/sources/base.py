"""What every source shares: the Reading record, the three failures, and a JSON-over-HTTP client.

Rules it keeps:
- One request in flight at a time, each with a short timeout: meters are small devices that
  crash or throttle under floods, and a poll that overruns its slot is worth less than the next.
- An answer is JSON or it is a failure: an HTML error page (a Datamanager's 404, a captive
  portal) is never parsed as data.
- Numbers are checked at the boundary: null stays None, booleans and strings are rejected,
  values outside what a household connection can carry are rejected.
- Errors are one line and never contain a password.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests

from ..errors import UpstreamAuthError, UpstreamDataError, UpstreamError

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 4.0  # Fronius asks for 4 s between realtime calls; a slower answer is a fault
MAX_POWER_W = 200_000.0  # far above any household connection: beyond this the value is garbage
MAX_BODY_BYTES = 256 * 1024  # the largest documented status is a few KB


class MeterUnavailableError(UpstreamError):
    """The meter did not answer usefully this time (timeout, refused, 5xx, 429, HTML)."""


class MeterDataError(UpstreamDataError):
    """The meter answered JSON that fails validation; nothing from it is used."""


class MeterConfigError(UpstreamAuthError):
    """The address or password is wrong, or the device is not a supported meter."""


@dataclass(frozen=True)
class Reading:
    """One poll, in the project's signs (W, + import, + discharge), None where unknown."""

    at: datetime  # when it was read (the collector's clock, UTC)
    source: str
    grid_w: float | None  # + importing, − exporting
    solar_w: float | None  # ≥ 0; None without PV or when the device says null (night)
    battery_w: float | None  # + discharging into the house, − charging; None without a battery
    battery_soc_percent: float | None
    load_w: float | None  # the house's consumption
    import_wh: float | None = None  # the meter's cumulative import counter, when read this poll
    export_wh: float | None = None  # the meter's cumulative export counter


class Source(Protocol):
    name: str
    poll_seconds: int
    has_counters: bool  # True once the source has read energy counters (else energy is integrated)

    def fetch(self) -> Reading: ...
    def close(self) -> None: ...


def number(value: Any, where: str, *, low: float = -MAX_POWER_W, high: float = MAX_POWER_W) -> float | None:
    """A JSON number as float, None for null; anything else is a data error naming the field."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MeterDataError(f"{where} is not a number: {str(value)[:40]!r}")
    if not low <= value <= high:
        raise MeterDataError(f"{where} is out of range: {value}")
    return float(value)


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MeterDataError(f"{where} is missing or not an object")
    return value


class JsonHttp:
    """GET JSON from one device with a session built once, a timeout and no retries.

    No retry is mounted on purpose: the next poll is the retry, and a device that is failing
    should see fewer requests, not more.
    """

    def __init__(self, base_url: str, label: str, auth: requests.auth.AuthBase | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.auth = auth
        self.session.trust_env = False  # a LAN device: never through a proxy from the environment

    def get(self, path: str) -> tuple[int, Any]:
        """(status, parsed JSON body) for any status; raises on network faults and non-JSON."""
        url = self.base_url + path
        try:
            response = self.session.get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False)
        except requests.Timeout as exc:
            raise MeterUnavailableError(f"{self.label} at {self.base_url} did not answer within "
                                        f"{READ_TIMEOUT_S:.0f} s") from exc
        except requests.ConnectionError as exc:
            raise MeterUnavailableError(f"{self.label} at {self.base_url} cannot be reached "
                                        "(is it on and is METER_URL right?)") from exc
        except requests.RequestException as exc:
            raise MeterUnavailableError(f"{self.label} request failed: {type(exc).__name__}") from exc
        body = response.content[:MAX_BODY_BYTES + 1]
        if response.status_code == 401:
            raise MeterConfigError(f"{self.label} asks for a password or refused it: check METER_PASSWORD")
        if response.status_code == 429:
            raise MeterUnavailableError(f"{self.label} answered 429 Too Many Requests: backing off")
        if response.status_code >= 500:
            raise MeterUnavailableError(f"{self.label} answered HTTP {response.status_code}")
        if len(body) > MAX_BODY_BYTES:
            raise MeterDataError(f"{self.label} answered more than {MAX_BODY_BYTES // 1024} KB at {path}")
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            kind = "HTML" if body.lstrip()[:1] == b"<" else "something that is not JSON"
            raise _not_json(self.label, response.status_code, path, kind, body) from exc
        return response.status_code, parsed

    def close(self) -> None:
        self.session.close()


def _not_json(label: str, status: int, path: str, kind: str, body: bytes) -> Exception:
    text = body.decode("utf-8", "replace").lower()
    if "disabled by customer config" in text.replace("solarapi", "solar api"):
        return MeterConfigError(f"{label}'s Solar API is switched off: enable it in the inverter's web page "
                                "under Communication → Solar API")
    if status == 404:
        return MeterConfigError(f"{label} answered 404 ({kind}) at {path}: is METER_URL the device's address?")
    if status >= 400:
        return MeterUnavailableError(f"{label} answered HTTP {status} ({kind}) at {path}")
    return MeterDataError(f"{label} answered {kind} at {path}, not JSON")
