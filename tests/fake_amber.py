"""A fake Amber API: a real HTTP server on 127.0.0.1 that speaks Amber's public API.

Its payloads are built from the real responses in tests/fixtures/amber/samples (same keys, same shapes)
with times and prices set per interval, and every body it sends is validated against Amber's
OpenAPI document first, so a test can never pass against a payload Amber could not send.
Faults are switched on per endpoint to try every failure the sync must survive.
"""
from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from home_energy.clock import NEM_TZ, now_utc

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "amber"
SAMPLES = FIXTURES / "samples"
TOKEN = "psk_0123456789abcdef0123456789abcdef"
SITE_ID = "01FAKESITE0000000000000000"
READ_TIMEOUT_IN_TESTS_S = 2.0  # what tests give the client: generous on a loaded CI machine


def openapi_path() -> Path:
    return FIXTURES / "openapi.json"


def load_sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def _spec_validator(component: str):
    """Amber's document compiled (fastjsonschema, after OpenAPI's `nullable` is made explicit):
    the fake checks every body it sends without slowing the suite down."""
    from home_energy.schema import compile_array_validator

    return compile_array_validator(json.loads(openapi_path().read_text()), component)


_VALIDATORS: dict[str, Any] = {}


def assert_valid_amber(component: str, body: Any) -> None:
    if component not in _VALIDATORS:
        _VALIDATORS[component] = _spec_validator(component)
    _VALIDATORS[component](body)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def price_interval(kind: str, channel: str, start: datetime, minutes: int, per_kwh: float,
                   descriptor: str = "low", spike: str = "none", estimate: bool | None = None,
                   advanced: bool = False, renewables: float = 40.0) -> dict[str, Any]:
    """An interval shaped like the real samples (startTime one second after the boundary)."""
    template = load_sample("issue222-current-interval-general-5min.json")
    item = copy.deepcopy(template)
    end = start + timedelta(minutes=minutes)
    item.update(
        type=kind, duration=minutes, channelType=channel, perKwh=per_kwh, spotPerKwh=round(per_kwh * 0.6, 5),
        startTime=_iso(start + timedelta(seconds=1)), endTime=_iso(end),
        nemTime=end.astimezone(NEM_TZ).isoformat(), date=start.astimezone(NEM_TZ).date().isoformat(),
        renewables=renewables, descriptor=descriptor, spikeStatus=spike,
    )
    item.pop("estimate", None)
    if kind == "CurrentInterval":
        item["estimate"] = True if estimate is None else estimate
    if advanced and kind != "ActualInterval":
        item["advancedPrice"] = {"low": per_kwh - 2, "predicted": per_kwh, "high": per_kwh + 3}
    return item


def usage_interval(channel: str, identifier: str, start: datetime, minutes: int, kwh: float,
                   per_kwh: float) -> dict[str, Any]:
    item = copy.deepcopy(load_sample("issue256-usage-general-5min.json")[0])
    end = start + timedelta(minutes=minutes)
    cost = kwh * per_kwh if channel != "feedIn" else kwh * -per_kwh
    item.update(
        duration=minutes, channelType=channel, channelIdentifier=identifier, kwh=kwh, perKwh=per_kwh,
        cost=round(cost, 4), startTime=_iso(start + timedelta(seconds=1)), endTime=_iso(end),
        nemTime=end.astimezone(NEM_TZ).isoformat(), date=start.astimezone(NEM_TZ).date().isoformat(),
    )
    return item


def site(site_id: str = SITE_ID, status: str = "active", interval_length: int = 30,
         channels: tuple[str, ...] = ("general", "feedIn")) -> dict[str, Any]:
    ids = {"general": "E1", "controlledLoad": "E2", "feedIn": "B1"}
    return {
        "id": site_id, "nmi": "4102345678", "network": "Ausgrid", "status": status,
        "intervalLength": interval_length, "activeFrom": "2023-01-01",
        "channels": [{"identifier": ids[c], "type": c, "tariff": "EA116"} for c in channels],
    }


def general_price_at(start: datetime) -> float:
    """A known, deterministic price curve: the half-hour index, with a negative dip at 03:00 UTC."""
    hour = start.hour + start.minute / 60
    if 2.5 <= hour < 4:
        return -3.5
    return round(10 + (start.hour * 2 + start.minute // 30) * 0.5, 5)


@dataclass
class FakeAmberState:
    sites: list[dict[str, Any]] = field(default_factory=lambda: [site()])
    faults: dict[str, Any] = field(default_factory=dict)  # endpoint -> fault name or callable
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    bad_auth: list[str] = field(default_factory=list)
    rate_limit: int = 50
    remaining: int = 50
    reset_s: int = 240
    usage_lag_days: int = 1
    five_minute_forecasts: int = 12  # on 5-minute sites, then 30-minute forecasts
    delay_s: float = 0.0
    token: str = TOKEN  # the token it accepts
    echo: tuple[str, ...] | None = None  # set: its 401 for a wrong token quotes the credentials, then these


class FakeAmber:
    """Start with `with FakeAmber() as amber:`; `amber.url` is the AMBER_API_URL to use."""

    def __init__(self, state: FakeAmberState | None = None) -> None:
        self.state = state or FakeAmberState()
        handler = _make_handler(self.state)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAmber:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, endpoint: str | None = None) -> int:
        return sum(1 for path, _ in self.state.requests if endpoint is None or _endpoint(path) == endpoint)


def _endpoint(path: str) -> str:
    if path.endswith("/prices/current"):
        return "prices"
    if path.endswith("/usage"):
        return "usage"
    if path.endswith("/sites"):
        return "sites"
    return "other"


def build_prices(state: FakeAmberState, site_obj: dict[str, Any], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    resolution = int(query.get("resolution", [site_obj["intervalLength"]])[0])
    next_n = int(query.get("next", ["0"])[0])
    previous_n = int(query.get("previous", ["0"])[0])
    now = now_utc()
    step = timedelta(minutes=resolution)
    current = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % resolution)
    out = []
    channels = [c["type"] for c in site_obj["channels"]]
    for channel in ("general", "controlledLoad", "feedIn"):
        if channel not in channels:
            continue
        sign = -1 if channel == "feedIn" else 1
        offset = 0 if channel != "controlledLoad" else -2

        def price(start: datetime, channel: str = channel, sign: int = sign, offset: int = offset) -> float:
            value = general_price_at(start) + offset
            return round(sign * (value - 4 if channel == "feedIn" else value), 5)

        for i in range(previous_n, 0, -1):
            start = current - step * i
            out.append(price_interval("ActualInterval", channel, start, resolution, price(start)))
        out.append(price_interval("CurrentInterval", channel, current, resolution, price(current),
                                  advanced=True))
        start = current + step
        for i in range(next_n):
            minutes = resolution
            if resolution == 5 and i >= state.five_minute_forecasts and start.minute % 30 == 0:
                minutes = 30
            out.append(price_interval("ForecastInterval", channel, start, minutes, price(start), advanced=True))
            start += timedelta(minutes=minutes)
    return out


def build_usage(state: FakeAmberState, site_obj: dict[str, Any], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    first = date.fromisoformat(query["startDate"][0])
    last = date.fromisoformat(query["endDate"][0])
    newest = now_utc().astimezone(NEM_TZ).date() - timedelta(days=state.usage_lag_days)
    out = []
    day = first
    while day <= min(last, newest):
        begin = datetime(day.year, day.month, day.day, tzinfo=NEM_TZ).astimezone(UTC)
        for slot in range(48):
            start = begin + timedelta(minutes=30 * slot)
            out.append(usage_interval("general", "E1", start, 30, 0.5, 20.0))
            if 8 <= slot < 32:
                out.append(usage_interval("feedIn", "B1", start, 30, -0.25, -6.0))
        day += timedelta(days=1)
    return out


def echo_message(handler: BaseHTTPRequestHandler, extra: tuple[str, ...]) -> str:
    """An error message that quotes the request's credentials back, as some APIs do: the bearer
    token (or a basic-auth `user:password`) without its scheme, then `extra` text."""
    scheme, _, credential = (handler.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        credential = base64.b64decode(credential).decode("utf-8", "replace")
    return " ".join((f"API key {credential} is not valid", *extra))


def echoing(status: int, *extra: str) -> Callable[[BaseHTTPRequestHandler], bool]:
    """A fault: an error answer of `status` whose message echoes the credentials (echo_message)."""

    def fault(handler: BaseHTTPRequestHandler) -> bool:
        body = json.dumps({"message": echo_message(handler, extra)}).encode()
        handler._send(status, body)  # type: ignore[attr-defined]
        return True

    return fault


def _make_handler(state: FakeAmberState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _rate_headers(self) -> dict[str, str]:
            return {"RateLimit-Limit": str(state.rate_limit), "RateLimit-Remaining": str(state.remaining),
                    "RateLimit-Reset": str(state.reset_s), "RateLimit-Policy": f"{state.rate_limit};w=300"}

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parsed = urlparse(self.path)
            query = parse_qs(parsed.query)
            path = parsed.path
            state.requests.append((path, query))
            endpoint = _endpoint(path)
            if state.delay_s:
                time.sleep(state.delay_s)
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                state.bad_auth.append(path)
                if state.echo is not None:
                    self._send(401, json.dumps({"message": echo_message(self, state.echo)}).encode())
                    return
                self._send(401, b'{"message":"Unauthorized"}')
                return
            state.remaining = max(0, state.remaining - 1)
            fault = state.faults.get(endpoint)
            if fault is not None and self._fault(fault, endpoint):
                return
            if not path.startswith("/v1/"):
                self._send(403, b'{"message":"Forbidden"}')
                return
            if endpoint == "sites":
                body = state.sites
                component = "Site"
            else:
                site_id = path.split("/")[3]
                matches = [s for s in state.sites if s["id"] == site_id]
                if not matches:
                    self._send(404, b'{"message":"Site not found"}')
                    return
                if endpoint == "prices":
                    if int(query.get("next", ["0"])[0]) + int(query.get("previous", ["0"])[0]) > 2048:
                        self._send(422, b'{"message":"Requested number of intervals is greater than 2048"}')
                        return
                    body = build_prices(state, matches[0], query)
                    component = "Interval"
                elif endpoint == "usage":
                    first = date.fromisoformat(query["startDate"][0])
                    last = date.fromisoformat(query["endDate"][0])
                    if (last - first).days > 7:
                        self._send(422, b'{"message":"date range too long"}')
                        return
                    body = build_usage(state, matches[0], query)
                    component = "Usage"
                else:
                    self._send(403, b'{"message":"Forbidden"}')
                    return
            assert_valid_amber(component, body)
            self._send(200, json.dumps(body).encode(), self._rate_headers())

        def _fault(self, fault: Any, endpoint: str) -> bool:
            if callable(fault):
                return fault(self)
            if fault == "timeout":
                time.sleep(READ_TIMEOUT_IN_TESTS_S + 1.5)
                self._send(200, b"[]", self._rate_headers())
                return True
            if fault == "429":
                self._send(429, b'{"message":"Too Many Requests"}', self._rate_headers())
                return True
            if fault == "429-no-headers":
                self._send(429, b'{"message":"Too Many Requests"}')
                return True
            if isinstance(fault, int):
                self._send(fault, b'{"message":"fault"}', self._rate_headers())
                return True
            if fault == "truncated":
                self._send(200, b'[{"type": "CurrentInterval", "duration": 5, "per', self._rate_headers())
                return True
            if fault == "empty":
                self._send(200, b"[]", self._rate_headers())
                return True
            if fault in ("wrong-type", "unknown-enum"):
                body = (build_prices(state, state.sites[0], {"next": ["4"], "previous": ["2"]})
                        if endpoint == "prices" else
                        build_usage(state, state.sites[0],
                                    {"startDate": [(now_utc().date() - timedelta(days=3)).isoformat()],
                                     "endDate": [now_utc().date().isoformat()]}))
                if fault == "wrong-type":
                    body[-1]["perKwh"] = "12.5"
                else:
                    body[-1]["descriptor"] = "superCheap"
                self._send(200, json.dumps(body).encode(), self._rate_headers())
                return True
            raise AssertionError(f"unknown fault {fault!r}")

    return Handler
