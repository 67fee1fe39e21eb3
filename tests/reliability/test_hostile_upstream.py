"""A hostile or broken upstream costs one sync, never more.

A raw socket server speaks just enough of the Amber API to misbehave in each way below on
/prices/current (the first call of a run once the sites are cached). Every case runs the real
`home-energy sync` in its own process (its clock pinned through the clock seam), all cases at
once, each on a copy of the same good cache. The JSON cases include what the door refuses by
decision: NaN, Infinity, 1e400 and a key given twice in one object (either reading is a guess).
For each: the contract exit code, wall time within 60 s, peak RSS within 150 MB (of the sync
process, measured from outside), no traceback, the cached data byte-identical, health showing the
failed run, the token nowhere, and every endpoint answering strict JSON afterwards.
"""
from __future__ import annotations

import gzip
import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from freezegun import freeze_time

from home_energy.config import load_config
from home_energy.web import create_app
from tests.fake_amber import TOKEN, FakeAmber, FakeAmberState, site
from tests.reliability.helpers import DATA_TABLES, cli_env, fingerprint, pinned_cli

RUN_LIMIT_S = 60
RSS_LIMIT_MB = 150
TRICKLE_EVERY_S = 2.0
NOW = datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC)  # every process's clock (the clock seam)
# Runs a command and writes its peak RSS (kB) to a file: RUSAGE_CHILDREN of the test process
# itself would also count every child the suite started before.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
            "sys.exit(code)")
ENDPOINTS = ("/api/health", "/api/current", "/api/prices", "/api/summary", "/api/usage")


def _prices_body(value_key: str, value: str) -> bytes:
    item = {"type": "CurrentInterval", "date": "2026-11-23", "duration": 30, "startTime": "2026-11-23T01:00:01Z",
            "endTime": "2026-11-23T01:30:00Z", "nemTime": "2026-11-23T11:30:00+10:00", "perKwh": 25.0,
            "renewables": 40.0, "spotPerKwh": 9.0, "channelType": "general", "spikeStatus": "none",
            "descriptor": "neutral", "estimate": True}
    text = json.dumps([item]).replace(f'"{value_key}": {item[value_key]}', f'"{value_key}": {value}')
    assert value in text
    return text.encode()


def _deep_tariff() -> bytes:
    depth = 985
    tariff = '{"period": "peak", "note": ' + "[" * depth + "]" * depth + "}"
    return _prices_body("perKwh", "25.0").replace(b'"estimate": true', b'"estimate": true, "tariffInformation": '
                                                   + tariff.encode())


def _tiny_objects() -> bytes:
    body = b"[" + b'{"":{}},' * (7_900_000 // 8) + b"{}]"
    assert len(body) < 8 * 1024 * 1024
    return body


def _gzip_bomb() -> bytes:
    member = gzip.compress(b" " * (100 * 1024 * 1024), compresslevel=9)
    return b"".join([member] * 20)  # 2 GB inflated, every member a valid gzip stream


def _send(conn: socket.socket, data: bytes) -> None:
    conn.sendall(data)


def _trickle(conn: socket.socket, data: bytes) -> None:
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(TRICKLE_EVERY_S)


def _stream_forever(conn: socket.socket, head: bytes, chunk: bytes) -> None:
    conn.sendall(head)
    for _ in range(300 * 1024 * 1024 // len(chunk)):
        conn.sendall(chunk)


def _response(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers,
             "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


CASES = {
    # name: (what the server does with the prices request, exit code, outcome recorded)
    "trickled-headers": (lambda c: _trickle(c, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100), 75,
                         "tempfail"),
    "trickled-body": (lambda c: (_send(c, b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n["),
                                 _trickle(c, b" " * 60000)), 75, "tempfail"),
    "300mb-declared": (lambda c: _stream_forever(c, b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\n\r\n[",
                                                 b" " * 65536), 65, "dataerror"),
    "300mb-streamed": (lambda c: _stream_forever(c, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[",
                                                 b" " * 65536), 65, "dataerror"),
    "gzip-bomb": (lambda c: _send(c, _response("200 OK", BOMB, "Content-Encoding: gzip")), 65, "dataerror"),
    "infinity-perKwh": (lambda c: _send(c, _response("200 OK", _prices_body("perKwh", "Infinity"))), 65, "dataerror"),
    "nan-spotPerKwh": (lambda c: _send(c, _response("200 OK", _prices_body("spotPerKwh", "NaN"))), 65, "dataerror"),
    "nan-renewables": (lambda c: _send(c, _response("200 OK", _prices_body("renewables", "NaN"))), 65, "dataerror"),
    "985-deep-tariff": (lambda c: _send(c, _response("200 OK", _deep_tariff())), 65, "dataerror"),
    # ~7.9 MB of valid JSON, under the 8 MB cap: a million objects each holding another (two million).
    "2M-tiny-objects": (lambda c: _send(c, _response("200 OK", _tiny_objects())), 65, "dataerror"),
    "duplicate-perKwh": (lambda c: _send(c, _response("200 OK", _prices_body("perKwh", "25.0").replace(
        b'"perKwh": 25.0', b'"perKwh": 25.0, "perKwh": -900.0'))), 65, "dataerror"),
    "1e400-perKwh": (lambda c: _send(c, _response("200 OK", _prices_body("perKwh", "1e400"))), 65, "dataerror"),
    "rate-limit-2^63": (lambda c: _send(c, _response("429 Too Many Requests", b"{}", f"RateLimit-Reset: {2**63 + 7}",
                                                     f"RateLimit-Remaining: {2**64}")), 75, "tempfail"),
    "redirect-elsewhere": (lambda c: _send(c, _response("302 Found", b"", "Location: http://evil.example/x")), 75,
                           "tempfail"),
    "422-echoing-auth": (lambda c: _send(c, _response("422 Unprocessable Entity", json.dumps(
        {"message": f"bad request. Headers: Authorization: Bearer {TOKEN}"}).encode())), 65, "dataerror"),
}
BOMB = b""


class _Hostile(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(behaviour, sites: bytes) -> _Hostile:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                request += chunk
            path = request.split(b" ", 2)[1]
            try:
                if path.startswith(b"/sites?") or path == b"/sites":
                    self.request.sendall(_response("200 OK", sites))
                else:
                    behaviour(self.request)
            except OSError:  # the client gave up, as it should
                pass

    server = _Hostile(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_every_hostile_upstream_costs_one_sync_and_nothing_else(tmp_path):
    global BOMB
    BOMB = _gzip_bomb()
    good = tmp_path / "good" / "cache.sqlite"
    good.parent.mkdir()
    with freeze_time(NOW, tick=True), FakeAmber(FakeAmberState(sites=[site()])) as amber:
        prep = subprocess.run(pinned_cli(NOW, "sync"), env=cli_env(good, AMBER_TOKEN=TOKEN, AMBER_API_URL=amber.url),
                              capture_output=True, text=True, timeout=120)
    assert prep.returncode == 0, prep.stderr
    sites = json.dumps([site()]).encode()
    before = fingerprint(good, DATA_TABLES)

    runs = {}
    servers = []
    try:
        for name, (behaviour, _code, _outcome) in CASES.items():
            server = _serve(behaviour, sites)
            servers.append(server)
            cache = tmp_path / name / "cache.sqlite"
            cache.parent.mkdir()
            for suffix in ("", "-wal"):
                if Path(str(good) + suffix).exists():
                    shutil.copyfile(str(good) + suffix, str(cache) + suffix)
            url = f"http://user:hunter2@127.0.0.1:{server.server_address[1]}/v1"
            env = cli_env(cache, AMBER_TOKEN=TOKEN, AMBER_API_URL=url)
            runs[name] = (cache, time.monotonic(), subprocess.Popen(
                [sys.executable, "-c", PEAK_RSS, str(cache.parent / "peak-rss"),
                 *pinned_cli(NOW, "sync")], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = {}
        for name, (cache, started, child) in runs.items():
            out, err = child.communicate(timeout=RUN_LIMIT_S + 30)
            results[name] = (child.returncode, time.monotonic() - started, out + err, cache)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()

    for name, (code, seconds, output, cache) in results.items():
        peak_mb = int((cache.parent / "peak-rss").read_text()) / 1024
        assert peak_mb <= RSS_LIMIT_MB, f"{name}: the sync process peaked at {peak_mb:.0f} MB"
        expected_code, expected_outcome = CASES[name][1], CASES[name][2]
        assert code == expected_code, (name, code, output)
        assert seconds <= RUN_LIMIT_S, (name, seconds)
        assert "Traceback" not in output and len(output.strip().splitlines()) <= 1, (name, output)
        assert TOKEN not in output and "hunter2" not in output, (name, output)
        assert fingerprint(cache, DATA_TABLES) == before, name
        assert TOKEN.encode() not in cache.read_bytes() + Path(str(cache) + "-wal").read_bytes(), name
        client = create_app(load_config(env={"SQLITE_PATH": str(cache)})).test_client()
        for path in ENDPOINTS:
            response = client.get(path)
            assert response.status_code == 200, (name, path, response.status_code)
            body = _strict(response.get_data(as_text=True))
            assert TOKEN not in json.dumps(body) and "hunter2" not in json.dumps(body), (name, path)
        health = _strict(client.get("/api/health").get_data(as_text=True))
        assert health["last_sync"]["outcome"] == expected_outcome, (name, health["last_sync"])


def test_sigterm_ends_home_energy_run_within_10_s_even_mid_sync(tmp_path):
    """A sync stuck on a trickling upstream must not keep `home-energy run` alive after SIGTERM."""
    from tests.reliability.helpers import free_port

    started_trickle = threading.Event()

    def trickle(conn: socket.socket) -> None:
        started_trickle.set()
        _trickle(conn, b"HTTP/1.1 200 OK\r\n" * 100)

    server = _serve(trickle, json.dumps([site()]).encode())
    port = free_port()
    env = cli_env(tmp_path / "cache.sqlite", AMBER_TOKEN=TOKEN, PORT=str(port),
                  AMBER_API_URL=f"http://127.0.0.1:{server.server_address[1]}/v1")
    log = tmp_path / "run.log"
    try:
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "run"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            assert started_trickle.wait(30), log.read_text()  # the sync is now inside a trickled call
            time.sleep(1)
            stopped = time.monotonic()
            proc.terminate()
            code = proc.wait(timeout=20)
            assert time.monotonic() - stopped <= 10, log.read_text()
            assert code == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in log.read_text()
