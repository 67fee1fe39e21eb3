"""Fake smart plugs: real HTTP servers on 127.0.0.1 that switch, record and misbehave on demand.

`FakeShellyPlug` answers Shelly Gen2+ RPC over HTTP GET (`/rpc/Switch.GetStatus?id=N`,
`/rpc/Switch.Set?id=N&on=true|false`, `/shelly`), with HTTP Digest (SHA-256, user admin, realm
= device id) when it has a password. `FakeTasmotaPlug` answers Tasmota's command API
(`/cm?cmnd=Power`, `Power On`, `Power1 Off`, with `user`/`password` when it has one).

Both record every command (`commands`: the states asked for, in order) and every request
(`requests`), can be switched by hand (`press`: a person at the wall) and can misbehave:
`slow` (answers after SLOW_S), `html` (a 200 HTML page), `401` (refuses), `impossible` (a
state it cannot have), `silent` (accepts the connection, never answers) and `set_then_silent`
(answers reads, but on a switch command switches and then never answers, as a plug does when
the program is killed mid-command); `closed_port_url()` is a plug that is unplugged.
"""
from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.fake_meters import digest_response, json_answer, send_answer

FAULTS = ("slow", "html", "401", "impossible", "silent", "set_then_silent")
SLOW_S = 20.0  # far past any plug deadline; the fake is released early when its test ends


class _FakePlug:
    def __init__(self, on: bool = False, password: str | None = None, channels: int = 1) -> None:
        self.lock = threading.Lock()
        self.states = [on] * channels
        self.password = password
        self.fault: str | None = None
        self.requests: list[str] = []
        self.commands: list[tuple[int, bool]] = []  # (channel, state asked for)
        self.release = threading.Event()  # ends a `silent` answer early (test teardown)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _FakePlug:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def on(self) -> bool:
        with self.lock:
            return self.states[0]

    def press(self, on: bool, channel: int = 0) -> None:
        """A person switches the plug at the wall: no command is recorded."""
        with self.lock:
            self.states[channel] = on

    def set_fault(self, fault: str | None) -> None:
        assert fault is None or fault in FAULTS, fault
        with self.lock:
            self.fault = fault

    def sets(self) -> list[bool]:
        """The states commanded on channel 0, in order."""
        with self.lock:
            return [state for channel, state in self.commands if channel == 0]

    def route(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, bytes, dict[str, str]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without this, Nagle holds the second until
            # the client's delayed ACK, 40 ms per exchange.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parsed = urlparse(self.path)
                with fake.lock:
                    fake.requests.append(self.path)
                    fault = fake.fault
                if fault == "silent":
                    fake.release.wait(30)
                    return
                if fault == "set_then_silent" and ("Switch.Set" in parsed.path or " " in unquote(parsed.query)):
                    with fake.lock:
                        fake.route(parsed.path, parse_qs(parsed.query), self.headers)
                    fake.release.wait(30)
                    return
                if fault == "slow":
                    fake.release.wait(SLOW_S)
                if fault == "html":
                    status, body, headers = 200, b"<html><body>Router login</body></html>", \
                        {"Content-Type": "text/html"}
                elif fault == "401":
                    status, body, headers = 401, b'{"code":401,"message":"unauthorized"}', \
                        {"Content-Type": "application/json"}
                else:
                    with fake.lock:
                        status, body, headers = fake.route(parsed.path, parse_qs(parsed.query), self.headers)
                send_answer(self, status, body, headers)

        return Handler




class FakeShellyPlug(_FakePlug):
    """A Shelly Plus Plug S (Gen2): Switch component(s), optional digest auth."""

    realm = "shellyplusplugs-a0b1c2d3e4f5"

    def __init__(self, on: bool = False, password: str | None = None, channels: int = 1) -> None:
        super().__init__(on, password, channels)
        self.nonces: dict[str, int] = {}

    def route(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, bytes, dict[str, str]]:
        if path == "/shelly":
            return json_answer(200, {"id": self.realm, "gen": 2, "app": "PlugS", "auth_en": self.password is not None})
        if self.password is not None and not self._authorised(headers):
            nonce = str(int(time.time()) * 1000 + secrets.randbelow(1000))
            self.nonces[nonce] = 0
            challenge = f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", algorithm=SHA-256'
            return 401, b"", {"WWW-Authenticate": challenge}
        ident = query.get("id", [""])[0]
        if not ident.isdigit() or int(ident) >= len(self.states):
            return json_answer(500, {"code": -105, "message": f"Argument 'id', value {ident} not found!"})
        channel = int(ident)
        if path == "/rpc/Switch.GetStatus":
            output: Any = self.states[channel]
            if self.fault == "impossible":
                output = "maybe"
            return json_answer(200, {"id": channel, "source": "init", "output": output, "apower": 0.0,
                               "voltage": 239.8, "current": 0.0, "aenergy": {"total": 1234.5},
                               "temperature": {"tC": 31.2, "tF": 88.2}})
        if path == "/rpc/Switch.Set":
            on = query.get("on", [""])[0]
            if on not in ("true", "false"):
                return json_answer(500, {"code": -103, "message": "Invalid argument 'on'"})
            was_on = self.states[channel]
            self.commands.append((channel, on == "true"))
            self.states[channel] = on == "true"
            return json_answer(200, {"was_on": was_on if self.fault != "impossible" else "yes"})
        return json_answer(404, {"code": 404, "message": f"No handler for {path[5:]}"})

    def _authorised(self, headers: Any) -> bool:
        header = headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[len("Digest "):]))
        nonce = fields.get("nonce", "")
        if nonce not in self.nonces or fields.get("username") != "admin" or fields.get("realm") != self.realm:
            return False

        if fields.get("response") != digest_response(self.realm, str(self.password), fields.get("uri", ""), fields):
            return False
        self.nonces[nonce] += 1
        return True


class FakeTasmotaPlug(_FakePlug):
    """A Tasmota plug (Sonoff S26 and the like): `cm?cmnd=Power[N] [On|Off]`, optional web password."""

    def route(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, bytes, dict[str, str]]:
        if path != "/cm":
            return 404, b"<html>404 Not Found</html>", {"Content-Type": "text/html"}
        if self.password is not None and (query.get("user", [""])[0] != "admin"
                                          or query.get("password", [""])[0] != self.password):
            return json_answer(401, {"WARNING": "Need user=<username>&password=<password>"})
        command = query.get("cmnd", [""])[0].strip()
        match = re.fullmatch(r"(?i)power(\d?)(?:\s+(on|off|1|0))?", command)
        if match is None:
            return json_answer(200, {"Command": "Unknown"})
        channel = int(match.group(1) or "1") - 1
        if not 0 <= channel < len(self.states):
            return json_answer(200, {"Command": "Unknown"})
        if match.group(2) is not None:
            on = match.group(2).lower() in ("on", "1")
            self.commands.append((channel, on))
            self.states[channel] = on
        key = "POWER" if len(self.states) == 1 else f"POWER{channel + 1}"
        word = "ON" if self.states[channel] else "OFF"
        if self.fault == "impossible":
            word = "BLINK"
        return json_answer(200, {key: word})


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (a plug that is unplugged)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
