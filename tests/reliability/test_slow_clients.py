"""Clients that trickle a request a byte at a time cannot make the real server deaf.

70 connections each send one byte of a request every 10 s (they never finish it) against a real
`home-energy serve`. Meanwhile /api/health must keep answering within a second, and the server
must close each trickler once its request head is overdue instead of holding it for ever.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time

from home_energy.server import REQUEST_HEAD_DEADLINE_S
from home_energy.sync import run_sync
from tests.reliability.helpers import ServeProcess

TRICKLERS = 70
TRICKLE_EVERY_S = 10.0
HEALTH_DEADLINE_S = 1.0  # what update.sh, the kiosk and a monitor may wait
HEALTH_PROBES = 12
REQUEST = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64


def _health_takes(port: int) -> float:
    """Seconds for a fresh connection to get a whole /api/health answer (at most 5 s)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    return time.monotonic() - started


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_seventy_tricklers_cannot_keep_health_from_answering(demo_config, tmp_path):
    run_sync(demo_config)
    with ServeProcess(demo_config.sqlite_path, tmp_path / "serve.log") as server:
        tricklers = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(TRICKLERS)]
        stop = threading.Event()

        def trickle() -> None:
            sent = 0
            while not stop.is_set() and sent < len(REQUEST):
                for sock in tricklers:
                    try:
                        sock.send(REQUEST[sent:sent + 1])
                    except OSError:
                        pass  # closed by the server: what the deadline is for
                sent += 1
                stop.wait(TRICKLE_EVERY_S)

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            time.sleep(0.5)  # every trickler has sent its first byte
            started = time.monotonic()
            took = []
            for _ in range(HEALTH_PROBES):
                took.append(_health_takes(server.port))
                time.sleep(0.5)
            assert max(took) < HEALTH_DEADLINE_S, took
            # Every trickler is closed once its head is overdue (checked about once a second).
            time.sleep(max(0.0, REQUEST_HEAD_DEADLINE_S + 3.0 - (time.monotonic() - started)))
            still_open = [s for s in tricklers if not _closed_by_peer(s)]
            assert still_open == []
            assert _health_takes(server.port) < HEALTH_DEADLINE_S
        finally:
            stop.set()
            sender.join(timeout=5)
            for sock in tricklers:
                sock.close()


def test_a_prompt_keep_alive_client_is_not_cut_by_the_head_deadline(demo_config, tmp_path):
    run_sync(demo_config)
    with ServeProcess(demo_config.sqlite_path, tmp_path / "serve.log") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            # Requests spread over more than the head deadline on one connection all succeed.
            statuses = []
            for _ in range(4):
                conn.request("GET", "/api/health")
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
                time.sleep(REQUEST_HEAD_DEADLINE_S / 3)
            assert statuses == [200] * 4
        finally:
            conn.close()
