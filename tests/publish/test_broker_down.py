"""A broker that never answers costs the page nothing: `home-energy run` with and without one,
side by side, each endpoint's p99 within 2x of the run without MQTT."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.mqtt_broker import SilentBroker, wait_until
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = ("/", "/api/health", "/api/current", "/api/prices", "/api/summary", "/api/live", "/api/today")
ROUNDS = 150
BLOCK = 50  # rounds per block; each block's p99 is taken on its own
CPU_FACTOR = 1.3
CPU_NOISE_S = 0.2
WARM_UP_ROUNDS = 5
# Added to the bound: on a machine shared by parallel runs a sub-10 ms p99 swings by this much
# either way; a publisher that held the web up (a shared lock, a blocking connect) costs far more.
NOISE_S = 0.025


def _start(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, int]:
    folder.mkdir()
    cache = folder / "cache.sqlite"
    shutil.copy(env["SQLITE_PATH"], cache)
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "METER", "AMBER_", "SQLITE"))}
    settings = {**clean, **env, "SQLITE_PATH": str(cache), "PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "run"], env=settings, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port


def _health(port: int) -> dict | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/api/health")
        return json.loads(connection.getresponse().read())
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def _p99(samples: list[float]) -> float:
    """The lowest of the blocks' p99s: a neighbour's burst on a shared machine only ever adds
    latency, and lands in one block, while a cost of the publisher's would be in every block."""
    blocks = [sorted(samples[i:i + BLOCK]) for i in range(0, len(samples), BLOCK)]
    return min(block[min(len(block) - 1, int(len(block) * 0.99))] for block in blocks)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_silent_broker_leaves_every_page_endpoint_within_2x_of_its_p99(env, tmp_path):
    silent = SilentBroker()
    plain, plain_port = _start(env, tmp_path / "plain")
    hub, hub_port = _start({**env, "MQTT_URL": silent.url}, tmp_path / "hub")
    try:
        for port in (plain_port, hub_port):
            wait_until(lambda p=port: (_health(p) or {}).get("last_sync"), timeout=30, what="the first sync")
        wait_until(lambda: silent.held, timeout=10, what="the publisher to connect")
        connections = {port: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                       for port in (plain_port, hub_port)}
        times: dict[tuple[int, str], list[float]] = {(p, e): [] for p in connections for e in ENDPOINTS}
        cpu_before = {port: _cpu_seconds(process.pid) for port, process in ((plain_port, plain), (hub_port, hub))}
        for round_number in range(WARM_UP_ROUNDS + ROUNDS):  # interleaved: both see the same machine load
            for endpoint in ENDPOINTS:
                for port, connection in connections.items():
                    started = time.perf_counter()
                    connection.request("GET", endpoint, headers={"Accept-Encoding": "gzip"})
                    response = connection.getresponse()
                    response.read()
                    if round_number >= WARM_UP_ROUNDS:
                        times[(port, endpoint)].append(time.perf_counter() - started)
                    assert response.status == 200, (port, endpoint)
        cpu = {port: _cpu_seconds(process.pid) - cpu_before[port] for port, process in
               ((plain_port, plain), (hub_port, hub))}
        for connection in connections.values():
            connection.close()
        publish = _health(hub_port)["publish"]
        assert publish["status"] in ("connecting", "failing")
        p99 = {e: (_p99(times[(plain_port, e)]), _p99(times[(hub_port, e)])) for e in ENDPOINTS}
        assert {e: (a, b) for e, (a, b) in p99.items() if b > 2 * a + NOISE_S} == {}, p99
        # The same requests cost the process with a publisher no more CPU (its own work included).
        assert cpu[hub_port] <= CPU_FACTOR * cpu[plain_port] + CPU_NOISE_S, cpu
    finally:
        for process in (plain, hub):
            process.terminate()
            process.wait(timeout=15)
        silent.close()
