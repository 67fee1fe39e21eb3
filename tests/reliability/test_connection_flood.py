"""A thousand connections from one address cannot keep /api/health from answering.

Against a real `home-energy serve`: 1,000 connections that connect and then say nothing, and a
client that keeps reconnecting as fast as it can while holding up to 1,000 open. Meanwhile
/api/health, asked on a fresh connection from the same address, answers within a second, and
the server holds at most PER_ADDRESS_CONNECTIONS of the flood's connections.
"""
from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time

from bench.slow_clients import closed_by_server
from home_energy.server import PER_ADDRESS_CONNECTIONS
from home_energy.sync import run_sync
from tests.reliability.helpers import ServeProcess

FLOOD = 1000
HEALTH_DEADLINE_S = 1.0  # what update.sh, the kiosk and a monitor may wait
PROBES = 5
SETTLE_S = 10.0  # the most the server may take to close the flood's surplus (it takes milliseconds)


def _health_takes(port: int) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200 and body.startswith(b"{"), (response.status, body[:80])
    finally:
        conn.close()
    return time.monotonic() - started


def _still_open(socks: list[socket.socket]) -> int:
    return sum(not closed_by_server(s) for s in socks)


def test_a_thousand_idle_connections_leave_health_answering(demo_config, tmp_path):
    run_sync(demo_config)
    with ServeProcess(demo_config.sqlite_path, tmp_path / "serve.log") as server:
        flood = []
        try:
            for _ in range(FLOOD):
                flood.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            took = [_health_takes(server.port) for _ in range(PROBES)]
            assert max(took) < HEALTH_DEADLINE_S, took
            deadline = time.monotonic() + SETTLE_S
            while _still_open(flood) > PER_ADDRESS_CONNECTIONS and time.monotonic() < deadline:
                time.sleep(0.1)
            # The newest of the flood stay (a browser's keep-alive connections would), no more.
            assert 0 < _still_open(flood) <= PER_ADDRESS_CONNECTIONS
            assert not closed_by_server(flood[-1])
        finally:
            for sock in flood:
                sock.close()
        assert "holds 64 connections" in server.output()
        assert server.output().count("holds 64 connections") == 1  # logged once per address


# The flood is another program, as an attacker's would be: it opens connections as fast as it can,
# holding up to FLOOD and dropping its oldest, says "ready" once it has opened FLOOD, and stops at EOF.
_RECONNECTING = """
import collections, select, socket, sys
port, flood = int(sys.argv[1]), int(sys.argv[2])
held, opened = collections.deque(), 0
while not select.select([sys.stdin], [], [], 0)[0]:
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    except OSError:
        continue
    opened += 1
    if opened == flood:
        print("ready", flush=True)
    if len(held) > flood:
        held.popleft().close()
"""


def test_a_client_reconnecting_a_thousand_times_leaves_health_answering(demo_config, tmp_path):
    run_sync(demo_config)
    with ServeProcess(demo_config.sqlite_path, tmp_path / "serve.log") as server:
        flooder = subprocess.Popen([sys.executable, "-c", _RECONNECTING, str(server.port), str(FLOOD)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert flooder.stdout is not None and flooder.stdout.readline() == "ready\n"
            took = []
            for _ in range(PROBES):
                took.append(_health_takes(server.port))
                time.sleep(0.2)
            assert flooder.poll() is None  # still flooding while health was asked
            assert max(took) < HEALTH_DEADLINE_S, took
        finally:
            assert flooder.stdin is not None
            flooder.stdin.close()
            try:
                flooder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                flooder.kill()
                flooder.wait(timeout=10)
            flooder.stdout.close()
