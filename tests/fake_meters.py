"""Fake Fronius and Shelly meters: real HTTP servers on 127.0.0.1 serving the real samples.

Bodies start as the published payloads in tests/fixtures/meters and change only through named
setters (`set_site`, `set_counters`, `set_power`), so every answer keeps the device's shape.
Faults are switched on per fake: `timeout` (answers after the client gave up), `html` (a 200
HTML page), `404` (the device's HTML 404), `500`, `429`, `garbage` (truncated JSON). The Shelly
fake asks for HTTP Digest (SHA-256, user admin, realm = device id) when it has a password, and
reuses a nonce the way firmware 2.x does, so the client's nonce handling is exercised.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "meters"
FAULTS = ("timeout", "html", "404", "500", "429", "garbage")
TIMEOUT_SLEEP_S = 2.0  # tests set the client's read timeout well below this


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class _FakeMeter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fault: str | None = None
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def route(self, path: str, query: str, headers) -> tuple[int, bytes, dict[str, str]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parsed = urlparse(self.path)
                with fake.lock:
                    fake.requests.append(self.path)
                    fault = fake.fault
                if fault == "timeout":
                    time.sleep(TIMEOUT_SLEEP_S)
                    status, body, headers = 200, b"{}", {"Content-Type": "application/json"}
                elif fault == "html":
                    html = b"<html><body>Router login</body></html>"
                    status, body, headers = 200, html, {"Content-Type": "text/html"}
                elif fault == "404":
                    status, body, headers = 404, (FIXTURES / "pyfronius_404_error.html").read_bytes(), \
                        {"Content-Type": "text/html"}
                elif fault in ("500", "429"):
                    status, body, headers = int(fault), b'{"code":-1,"message":"busy"}', \
                        {"Content-Type": "application/json"}
                elif fault == "garbage":
                    status, body, headers = 200, b'{"Body": {"Data": {"Site": {"P_Grid": 12', \
                        {"Content-Type": "application/json"}
                else:
                    with fake.lock:
                        status, body, headers = fake.route(parsed.path, parsed.query, self.headers)
                send_answer(self, status, body, headers)

        return Handler


def json_answer(status: int, body: Any) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps(body).encode(), {"Content-Type": "application/json"}


def digest_response(realm: str, password: str, uri: str, fields: dict[str, str]) -> str:
    """The SHA-256 Digest response (qop=auth, user admin) a client must send for a GET of `uri`."""

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1 = sha(f"admin:{realm}:{password}")
    ha2 = sha(f"GET:{uri}")
    return sha(f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")


def send_answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Write one whole answer; a client that has gone away is not the fake's failure."""
    try:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


class FakeFronius(_FakeMeter):
    """A Datamanager or GEN24 answering PowerFlow (and the meter endpoint when `meter` is set)."""

    def __init__(self, flow: str = "ha_symo_GetPowerFlowRealtimeData_day.json",
                 meter: str | None = "ha_symo_GetMeterRealtimeData_System.json") -> None:
        self.flow = load_fixture(flow)
        self.meter = load_fixture(meter) if meter else None
        self.advance_wh = 0.0  # added to the import counter after each read, like a house drawing power
        super().__init__()

    def set_site(self, **fields: Any) -> None:
        with self.lock:
            self.flow["Body"]["Data"]["Site"].update(fields)

    def set_counters(self, import_wh: float, export_wh: float) -> None:
        with self.lock:
            meter = self.meter["Body"]["Data"]["0"]
            meter["EnergyReal_WAC_Plus_Absolute"] = import_wh
            meter["EnergyReal_WAC_Minus_Absolute"] = export_wh

    def route(self, path, query, headers):
        if path == "/solar_api/v1/GetPowerFlowRealtimeData.fcgi":
            return json_answer(200, copy.deepcopy(self.flow))
        if path == "/solar_api/v1/GetMeterRealtimeData.cgi" and self.meter is not None:
            body = copy.deepcopy(self.meter)
            self.meter["Body"]["Data"]["0"]["EnergyReal_WAC_Plus_Absolute"] += self.advance_wh
            return json_answer(200, body)
        return 404, (FIXTURES / "pyfronius_404_error.html").read_bytes(), {"Content-Type": "text/html"}


class FakeShelly(_FakeMeter):
    """A Pro 3EM (triphase EM/EMData) from Home Assistant's fw 1.6.1 dump, optionally with a password."""

    NONCE_USES = 30_000  # fw 2.x lets a client reuse a nonce this many times (incrementing nc)

    def __init__(self, password: str | None = None, dump: str = "ha_pro_3em_fw1.6.1_device_dump.json") -> None:
        data = load_fixture(dump)
        self.info = copy.deepcopy(data["shelly"])
        self.info["auth_en"] = password is not None
        self.em = copy.deepcopy(data["status"]["em:0"])
        self.emdata = copy.deepcopy(data["status"]["emdata:0"])
        self.password = password
        self.realm = self.info["id"]
        self.em1: dict[int, tuple[dict, dict]] | None = None  # set by use_em1
        self.nonces: dict[str, int] = {}
        self.challenges = 0
        self.authorised = 0
        super().__init__()

    def set_power(self, total_act_power: float | None) -> None:
        with self.lock:
            self.em["total_act_power"] = total_act_power

    def set_counters(self, import_wh: float, export_wh: float) -> None:
        with self.lock:
            self.emdata["total_act"] = import_wh
            self.emdata["total_act_ret"] = export_wh

    def use_em1(self, profile: str | None, channels: dict[int, tuple[float, float, float]]) -> None:
        """Answer as EM1 channels {id: (act_power W, import Wh, export Wh)}, shaped like evcc's
        EM1Data sample; `profile` None drops the key, as on a Pro EM."""
        with self.lock:
            if profile is None:
                self.info.pop("profile", None)
            else:
                self.info["profile"] = profile
            data = load_fixture("evcc_EM1Data.GetStatus.json")
            self.em1 = {
                ident: ({"id": ident, "current": 1.0, "voltage": 230.0, "act_power": power, "aprt_power": abs(power),
                         "pf": 1.0, "freq": 50.0, "calibration": "factory"},
                        dict(data, id=ident, total_act_energy=imported, total_act_ret_energy=exported))
                for ident, (power, imported, exported) in channels.items()
            }

    def set_errors(self, errors: list[str]) -> None:
        with self.lock:
            self.em["errors"] = errors

    def route(self, path, query, headers):
        if path == "/shelly":
            return json_answer(200, self.info)
        if path.startswith("/rpc/") and self.password is not None and not self._authorised(path, query, headers):
            self.challenges += 1
            nonce = str(int(time.time()) * 1000 + secrets.randbelow(1000))
            self.nonces[nonce] = 0
            challenge = f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", algorithm=SHA-256'
            return 401, b"", {"WWW-Authenticate": challenge}
        if self.em1 is not None:  # a monophase 3EM or a Pro EM: EM1 channels, no EM component
            channel = int(query[3:]) if query.startswith("id=") and query[3:].isdigit() else -1
            if path == "/rpc/EM1.GetStatus" and channel in self.em1:
                return json_answer(200, self.em1[channel][0])
            if path == "/rpc/EM1Data.GetStatus" and channel in self.em1:
                return json_answer(200, self.em1[channel][1])
            return json_answer(404, {"code": 404, "message": f"No handler for {path[5:]}"})
        if path == "/rpc/EM.GetStatus" and query == "id=0":
            return json_answer(200, self.em)
        if path == "/rpc/EMData.GetStatus" and query == "id=0":
            return json_answer(200, self.emdata)
        return json_answer(404, {"code": 404, "message": f"No handler for {path[5:]}"})

    def _authorised(self, path: str, query: str, headers) -> bool:
        header = headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[len("Digest "):]))
        nonce = fields.get("nonce", "")
        if nonce not in self.nonces or self.nonces[nonce] >= self.NONCE_USES:
            return False
        if fields.get("username") != "admin" or fields.get("realm") != self.realm:
            return False
        if fields.get("algorithm", "").upper() != "SHA-256" or fields.get("qop") != "auth":
            return False
        uri = path + ("?" + query if query else "")
        if fields.get("uri") != uri:
            return False

        if fields.get("response") != digest_response(self.realm, str(self.password), uri, fields):
            return False
        self.nonces[nonce] += 1
        self.authorised += 1
        return True
