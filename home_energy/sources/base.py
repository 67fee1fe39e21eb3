"""What every source shares: the Reading record, the three failures, and JSON over the door.

Rules it keeps:
- One request in flight at a time, each with a short timeout: meters are small devices that
  crash or throttle under floods, and a poll that overruns its slot is worth less than the next.
- An answer is JSON or it is a failure: an HTML error page (a Datamanager's 404, a captive
  portal) is never parsed as data.
- Numbers are checked at the boundary: null stays None, booleans and strings are rejected,
  values outside what a household connection can carry are rejected.
- Errors are one line and never contain a password. Every exchange goes through the door
  (`home_energy.fetch`), which bounds its time, size and JSON cost.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

from ..digest import DigestAuth
from ..errors import ConfigError, UpstreamDataError, UpstreamError
from ..fetch import Answer, Client, Faults, Limits, now, redact_url
from ..models import Reading

READ_TIMEOUT_S = 4.0  # Fronius asks for 4 s between realtime calls; a slower answer is a fault
POLL_BUDGET_S = 8.0  # every exchange of one poll together (a Shelly EM1 poll makes six)
MAX_COUNTER_WH = 1e12  # a lifetime energy counter beyond a terawatt-hour is garbage
MAX_POWER_W = 200_000.0  # far above any household connection: beyond this the value is garbage
MAX_STATUS_BYTES = 256 * 1024  # the largest documented status is a few KB
MAX_JSON_DEPTH = 16  # the deepest documented answer (Fronius meter data) nests 5 levels
MAX_JSON_VALUES = 20_000  # the largest documented answer holds a few hundred


class MeterUnavailableError(UpstreamError):
    """The meter did not answer usefully this time (timeout, refused, 5xx, 429, HTML)."""


class MeterDataError(UpstreamDataError):
    """The meter answered JSON that fails validation; nothing from it is used."""


class MeterConfigError(ConfigError):
    """The address or password is wrong, or the device is not a supported meter."""


METER_FAULTS = Faults(unavailable=MeterUnavailableError, data=MeterDataError)


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
    try:
        finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise MeterDataError(f"{where} is not a number: {str(value)[:40]!r}")
    if not low <= value <= high:
        raise MeterDataError(f"{where} is out of range: {value}")
    return float(value)


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MeterDataError(f"{where} is missing or not an object")
    return value


def meter_limits() -> Limits:
    """What one exchange with a meter may cost (read at call time, so a test can shorten it)."""
    return Limits(deadline_s=READ_TIMEOUT_S, connect_s=READ_TIMEOUT_S, read_s=READ_TIMEOUT_S,
                  max_bytes=MAX_STATUS_BYTES, max_depth=MAX_JSON_DEPTH, max_values=MAX_JSON_VALUES)


class JsonHttp:
    """JSON from one device through the door (`fetch`): one kept-alive connection, no retries.

    No retry policy on purpose: the next poll is the retry, and a device that is failing should
    see fewer requests, not more. Every exchange is bounded by the door (deadline, size, JSON
    cost) and a whole poll by POLL_BUDGET_S, started by `begin_poll()`. The standard library's
    http.client underneath, not requests: the collector runs all day on a Pi.
    """

    def __init__(self, base_url: str, label: str, auth: DigestAuth | None = None) -> None:
        self.base_url = redact_url(base_url.rstrip("/"))
        self.label = label
        self.client = Client(base_url, label=label, faults=METER_FAULTS, digest=auth)
        self.poll_deadline: float | None = None

    def begin_poll(self) -> None:
        """Start a poll's budget: every exchange until the next `begin_poll` ends by then."""
        self.poll_deadline = now() + POLL_BUDGET_S

    def answer(self, path: str) -> Answer:
        """The device's answer to GET `path`, any status (a 3xx and every network fault raise)."""
        return self.client.request("GET", path, limits=meter_limits(), deadline=self.poll_deadline)

    def get(self, path: str) -> Any:
        """The JSON of a 2xx answer; any other status is a one-line error of the right kind."""
        answer = self.answer(path)
        if not answer.ok:
            raise status_error(answer, self.label, path)
        try:
            return answer.json()
        except MeterDataError as exc:
            if _solar_api_off(answer.body):
                raise _solar_api_off_error(self.label) from exc
            raise

    def close(self) -> None:
        self.client.close()


def _solar_api_off(body: bytes) -> bool:
    text = body[:4096].decode("utf-8", "replace").lower()
    return "disabled by customer config" in text.replace("solarapi", "solar api")


def _solar_api_off_error(label: str) -> MeterConfigError:
    return MeterConfigError(f"{label}'s Solar API is switched off: enable it in the inverter's web page "
                            "under Communication → Solar API")


def status_error(answer: Answer, label: str, path: str) -> Exception:
    """The error a non-2xx answer stands for: a person must act (401, 404) or try again later."""
    status = answer.status
    if _solar_api_off(answer.body):
        return _solar_api_off_error(label)
    if status == 401:
        return MeterConfigError(f"{label} asks for a password or refused it: check METER_PASSWORD")
    if status == 404:
        return MeterConfigError(f"{label} answered 404 at {path}: is METER_URL the device's address?")
    if status == 429:
        return MeterUnavailableError(f"{label} answered 429 Too Many Requests: backing off")
    reason = answer.reason()
    return MeterUnavailableError(f"{label} answered HTTP {status} at {path}" + (f" ({reason})" if reason else ""))
