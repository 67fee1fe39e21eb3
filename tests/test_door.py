"""The one door to the network (home_energy.fetch): nothing else opens a connection to a peer,
and every exchange through it is bounded, whatever the peer does."""
from __future__ import annotations

import ast
import gzip
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from freezegun import freeze_time

from home_energy import fetch
from home_energy.config import Secret
from home_energy.digest import DigestAuth
from home_energy.errors import UpstreamDataError, UpstreamError
from tests.fake_meters import FakeFronius, FakeShelly
from tests.raw_http import RawServer

PACKAGE = Path(__file__).resolve().parents[1] / "home_energy"
# Modules that can open a connection to a peer. Only the door may import them; the web server
# (waitress) listens and answers, it never connects out.
NETWORK = ("socket", "ssl", "http.client", "urllib.request", "urllib3", "requests", "httpx", "aiohttp", "asyncio",
           "smtplib", "ftplib", "telnetlib", "xmlrpc.client", "socketserver", "paho", "websocket", "websockets")
DOOR = "home_energy.fetch"
# The one other module allowed a network client, and why: the door to the home's MQTT broker
# (paho), which every session with it (the publisher's, the plug controller's command listener)
# goes through; it asks no peer for data and bounds every wait of a session (docs/architecture.md).
ALLOWED = {
    "home_energy.mqtt": {"socket", "ssl", "paho.mqtt.client"},
    # The listening side, which never connects out: the server peeks at connections Waitress has
    # already accepted, and the Host allow-list asks the kernel for this machine's own addresses
    # (an unconnected datagram socket's ioctl) and its host name.
    "home_energy.server": {"socket"},
    "home_energy.hosts": {"socket"},
}
FAULTS = fetch.Faults(unavailable=UpstreamError, data=UpstreamDataError)
LIMITS = fetch.Limits(deadline_s=3.0, connect_s=1.0, read_s=2.0, max_bytes=64 * 1024, max_depth=8, max_values=1000)


def _modules() -> dict[str, Path]:
    return {"home_energy." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _network_uses(path: Path) -> set[str]:
    """Network modules `path` imports anywhere (function-level too), or names in a dynamic import."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        found.update(n for n in names if any(n == m or n.startswith(m + ".") for m in NETWORK))
    return found


def test_no_module_but_the_door_can_open_a_network_connection():
    modules = _modules()
    assert DOOR in modules and "home_energy.sources.fronius" in modules  # the walk sees the package
    assert _network_uses(modules[DOOR]) >= {"socket", "http.client"}  # and can see an import
    users = {name: _network_uses(path) - ALLOWED.get(name, set()) for name, path in modules.items() if name != DOOR}
    assert {name: sorted(uses) for name, uses in users.items() if uses} == {}


def test_the_collector_and_a_source_load_no_http_library_beyond_the_standard_one():
    code = ("import sys\nimport home_energy.collector, home_energy.sources.fronius, home_energy.sources.shelly\n"
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=PACKAGE.parent).stdout.split())
    assert "home_energy.fetch" in loaded
    assert {m for m in loaded if m.split(".")[0] in ("requests", "urllib3", "fastjsonschema")} == set()


# -- the JSON the door accepts ---------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (b'{"perKwh": NaN}', "NaN is not a number JSON allows"),
    (b'{"perKwh": Infinity}', "Infinity is not a number JSON allows"),
    (b'{"perKwh": -Infinity}', "-Infinity is not a number JSON allows"),
    (b'{"perKwh": 1e400}', "the number 1e400 does not fit a float"),
    (b'{"perKwh": ' + b"9" * 41 + b"}", "a 41-digit integer"),
    (b'{"perKwh": 25.0, "perKwh": -900.0}', "the key 'perKwh' appears twice in one object"),
    (b'[{"a": 1, "b": {"c": 2, "c": 3}}]', "the key 'c' appears twice in one object"),
    (b"[" * 9 + b"]" * 9, "nested deeper than 8 levels"),
    (b"[" + b"0," * 1000 + b"0]", "more than 1000 JSON values"),
    (b"[" + b'"",' * 1000 + b'""]', "more than 1000 JSON values"),
    (b"<html>nope</html>", "answered HTML"),
    (b'{"a": "\xff"}', "text that is not JSON"),
    (b'{"id": "01SITE\\ud800"}', "a string holds half of a UTF-16 surrogate pair"),
    (b'{"\\udc00": 1}', "a string holds half of a UTF-16 surrogate pair"),
    (b"", "text that is not JSON"),
])
def test_json_the_door_refuses_is_the_callers_data_error_in_one_line(body, message):
    with pytest.raises(UpstreamDataError, match=message) as caught:
        fetch.parse_json(body, what="prices", limits=LIMITS, error=UpstreamDataError, label="Amber")
    assert "\n" not in str(caught.value)


def test_json_within_the_limits_parses_exactly():
    body = b'{"a": [1, 2.5, -3e2, "x,:[{", {"b": null, "c": true}], "d": "\\"]", "e": "\\ud83d\\ude00"}'
    assert fetch.parse_json(body, what="x", limits=LIMITS, error=ValueError) == \
        {"a": [1, 2.5, -300.0, "x,:[{", {"b": None, "c": True}], "d": '"]', "e": "\N{GRINNING FACE}"}
    deepest = b"[" * 8 + b"]" * 8
    assert fetch.parse_json(deepest, what="x", limits=LIMITS, error=ValueError) == \
        [[[[[[[[]]]]]]]]  # exactly the depth allowed


def test_two_million_tiny_objects_under_the_cap_cost_a_bounded_parse():
    """7.9 MB of `{"":{}}`: parsed whole, ~300 MB of objects; refused on the bytes, a few MB."""
    code = ("import resource, sys\n"
            "from home_energy import amber, fetch\n"
            "body = b'[' + b'{\"\":{}},' * (7_900_000 // 8) + b'{}]'\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "limits = fetch.Limits(max_bytes=amber.MAX_ANSWER_BYTES, max_depth=amber.MAX_JSON_DEPTH,"
            " max_values=amber.MAX_JSON_VALUES)\n"
            "try:\n"
            "    fetch.parse_json(body, what='prices', limits=limits, error=ValueError, label='Amber')\n"
            "except ValueError as exc:\n"
            "    print(exc)\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent, timeout=60)
    message, grown_mb = result.stdout.splitlines()
    assert message == "Amber answered more than 400000 JSON values at prices: refused"
    assert int(grown_mb) <= 20, f"the refused parse grew the process by {grown_mb} MB"


# -- exchanges -------------------------------------------------------------------------------------

def _raw(behaviour: Callable[[socket.socket], None]) -> RawServer:
    """A server that answers every request with `behaviour(conn)`."""
    return RawServer(lambda _request, conn: behaviour(conn))


@pytest.fixture
def raw():
    servers: list[RawServer] = []

    def make(behaviour: Callable[[socket.socket], None]) -> RawServer:
        servers.append(_raw(behaviour))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _answer(status: str, body: bytes, *headers: str) -> bytes:
    return "\r\n".join([f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "", ""]).encode() + body


def _trickle(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        conn.sendall(b" ")
        time.sleep(0.2)


def test_the_deadline_covers_the_whole_exchange_even_under_a_frozen_clock(raw):
    server = raw(_trickle)
    client = fetch.Client(server.url, label="the peer", faults=FAULTS, limits=LIMITS)
    started = fetch.now()
    with freeze_time("2026-11-23T01:00:00Z"):  # a test's frozen clock must not hold a deadline
        with pytest.raises(UpstreamError, match="the peer did not finish answering x within 3 s"):
            client.get_json("/x")
    assert 2.5 <= fetch.now() - started <= 6
    client.close()


def test_a_callers_deadline_caps_the_exchange(raw):
    server = raw(_trickle)
    client = fetch.Client(server.url, label="the peer", faults=FAULTS, limits=LIMITS)
    started = fetch.now()
    with pytest.raises(UpstreamError, match="within 1 s"):
        client.get_json("/x", deadline=fetch.now() + 1.0)
    assert fetch.now() - started <= 3
    client.close()


def test_redirects_are_never_followed_and_error_bodies_are_never_data(raw):
    redirect = raw(lambda c: c.sendall(_answer("301 Moved", b'{"ok": 1}', "Location: https://evil.example/")))
    client = fetch.Client(redirect.url, label="the peer", faults=FAULTS, limits=LIMITS)
    with pytest.raises(UpstreamError, match="answered 301 on x, redirecting to evil.example: not followed"):
        client.request("GET", "/x")
    big_error = raw(lambda c: c.sendall(_answer("500 Oops", json.dumps({"message": "busy " * 50_000}).encode())))
    client = fetch.Client(big_error.url, label="the peer", faults=FAULTS, limits=LIMITS)
    answer = client.request("GET", "/x")
    assert (answer.status, len(answer.body)) == (500, LIMITS.error_bytes)
    assert answer.reason() == ""  # cut short, so not JSON: no reason is made up from it
    with pytest.raises(UpstreamError, match="the peer answered HTTP 500 at x"):
        answer.json()


def test_the_cap_counts_bytes_after_decompression(raw):
    small = json.dumps({"fits": "x" * 1000}).encode()
    fits = raw(lambda c: c.sendall(_answer("200 OK", gzip.compress(small), "Content-Encoding: gzip")))
    assert fetch.Client(fits.url, label="p", faults=FAULTS, limits=LIMITS).get_json("/x") == {"fits": "x" * 1000}
    bomb = gzip.compress(b" " * (10 * 1024 * 1024))
    bombed = raw(lambda c: c.sendall(_answer("200 OK", bomb, "Content-Encoding: gzip")))
    with pytest.raises(UpstreamDataError, match="larger than the 65536-byte limit"):
        fetch.Client(bombed.url, label="p", faults=FAULTS, limits=LIMITS).get_json("/x")
    declared = raw(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n["))
    with pytest.raises(UpstreamDataError, match="is 999999999 bytes, above the 65536-byte limit"):
        fetch.Client(declared.url, label="p", faults=FAULTS, limits=LIMITS).get_json("/x")


def test_abort_ends_an_exchange_in_flight_and_refuses_the_next(tmp_path):
    """In a child process: abort() is for good (the process is stopping)."""
    code = (
        "import socket, threading, time\n"
        "from home_energy import fetch\n"
        "from home_energy.errors import UpstreamDataError, UpstreamError\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "def serve():\n"
        "    conn, _ = server.accept()\n"
        "    conn.recv(4096)\n"
        "    time.sleep(60)\n"
        "threading.Thread(target=serve, daemon=True).start()\n"
        "client = fetch.Client(f'http://127.0.0.1:{server.getsockname()[1]}', label='the peer',\n"
        "                      faults=fetch.Faults(UpstreamError, UpstreamDataError),\n"
        "                      limits=fetch.Limits(deadline_s=60, read_s=60))\n"
        "threading.Timer(0.5, fetch.abort).start()\n"
        "started = time.monotonic()\n"
        "for _ in range(2):\n"
        "    try:\n"
        "        client.get_json('/x')\n"
        "    except UpstreamError as exc:\n"
        "        print(f'{time.monotonic() - started:.1f}', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=PACKAGE.parent)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    assert all(line.endswith("the peer: the x exchange was stopped (the program is stopping)") for line in lines)
    assert float(lines[1].split()[0]) < 5


def test_a_kept_alive_connection_is_reused_and_a_post_answers_a_digest_challenge():
    with FakeFronius() as fronius:
        client = fetch.Client(fronius.url, label="the Fronius inverter", faults=FAULTS, limits=LIMITS)
        for _ in range(3):
            assert client.get_json("/solar_api/v1/GetPowerFlowRealtimeData.fcgi")["Head"]["Status"]["Code"] == 0
        assert client.conn is not None and client.exchanges == 3
        client.close()
    with FakeShelly(password="correct horse") as shelly:
        client = fetch.Client(shelly.url, label="the Shelly meter", faults=FAULTS, limits=LIMITS,
                              digest=DigestAuth("admin", Secret("correct horse")))
        assert client.get_json("/rpc/EM.GetStatus?id=0")["total_act_power"] == 2413.825
        assert client.get_json("/rpc/EM.GetStatus?id=0")["total_act_power"] == 2413.825
        assert (shelly.challenges, shelly.authorised) == (1, 2)
        client.close()


def test_a_json_body_is_sent_strict(raw):
    server = raw(lambda c: c.sendall(_answer("200 OK", b'{"was_on": false}', "Connection: close")))
    client = fetch.Client(server.url, label="the plug", faults=FAULTS, limits=LIMITS)
    try:
        answer = client.request("POST", "/rpc", json_body={"id": 1, "method": "Switch.Set"})
        assert answer.json() == {"was_on": False}
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        assert head.startswith(b"POST /rpc HTTP/1.1") and b"Content-Type: application/json" in head
        assert body == b'{"id":1,"method":"Switch.Set"}'
        with pytest.raises(ValueError):
            client.request("POST", "/rpc", json_body={"x": float("nan")})
    finally:
        client.close()


def test_url_user_info_never_reaches_a_message():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = fetch.Client(f"http://user:hunter2@127.0.0.1:{port}", label="the peer", faults=FAULTS, limits=LIMITS)
    with pytest.raises(UpstreamError) as caught:
        client.get_json("/x")
    assert str(caught.value) == f"cannot reach the peer at http://127.0.0.1:{port}: connection refused"
