"""Clients that trickle a request a byte at a time cannot make the real server deaf.

70 connections each send one byte of a request every 10 s (they never finish it) against a real
`home-energy serve`. Meanwhile /api/health must keep answering within a second, and the server
must close each trickler once its request head is overdue instead of holding it for ever.
"""
from __future__ import annotations

import http.client
import time

from home_energy.server import REQUEST_HEAD_DEADLINE_S
from home_energy.sync import run_sync
from tests.reliability.helpers import ServeProcess
from tests.tricklers import closed_by_server, trickling

HEALTH_DEADLINE_S = 1.0  # what update.sh, the kiosk and a monitor may wait
HEALTH_PROBES = 12
CLOSE_MARGIN_S = 10.0  # past the head deadline; the server checks about once a second, the machine is busy


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


def test_seventy_tricklers_cannot_keep_health_from_answering(demo_config, tmp_path):
    run_sync(demo_config)
    with ServeProcess(demo_config.sqlite_path, tmp_path / "serve.log") as server:
        with trickling(server.port) as tricklers:  # each has sent its first byte
            started = time.monotonic()
            took = []
            for _ in range(HEALTH_PROBES):
                took.append(_health_takes(server.port))
                time.sleep(0.5)  # probes spread over the tricklers' life, not a wait for a state
            assert max(took) < HEALTH_DEADLINE_S, took
            # Every trickler is closed once its head is overdue (checked about once a second).
            still_open = list(tricklers)
            while still_open and time.monotonic() - started < REQUEST_HEAD_DEADLINE_S + CLOSE_MARGIN_S:
                still_open = [s for s in still_open if not closed_by_server(s)]
                time.sleep(0.2)
            assert still_open == []
            assert _health_takes(server.port) < HEALTH_DEADLINE_S


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
