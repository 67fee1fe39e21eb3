"""What publishing to MQTT costs the web: nothing measurable is the target.

`python -m bench.publish_cost` (or from `python -m bench`) runs `home-energy run` (the publisher in
a thread of the web's own process, the tighter case than its own unit) three ways on one demo
cache, and measures each page endpoint with 8 clients:
- without MQTT (the baseline);
- publishing to a real Mosquitto while a fake Home Assistant sends its birth message every
  second, so the publisher recomputes and sends everything (~70 messages) once a second;
- with a broker that accepts the connection and never answers (the publisher waits and retries).
The target is the process's CPU time per request within 1.15x of the baseline's (latency under a
shared machine's load follows the neighbours; CPU time counts this process's own work only).
Also `home-energy publish` on its own: CPU as a share of one core
under the same birth-message storm, and its peak resident memory.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .datasets import server_env
from .load import measure, run_phase
from .server import Server, rss_mb

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("/", "/api/health", "/api/current", "/api/prices", "/api/summary")
CLIENTS = 8
REQUESTS_PER_CLIENT = 60
ROUNDS = 3
WARMUP_REQUESTS_PER_CLIENT = 30
BIRTH_EVERY_S = 1.0
PUBLISH_ALONE_S = 30.0
CPU_FACTOR = 1.15  # run-to-run spread of the baseline itself is a few percent
SEED_DAYS = 30
STORM = "publishing, HA birth every second"


@dataclass(frozen=True)
class Scenario:
    name: str
    p99_ms: dict[str, float]
    requests_per_s: dict[str, float]
    cpu_ms_per_request: float  # the whole process's CPU time over every measured request


@dataclass(frozen=True)
class PublishCost:
    scenarios: tuple[Scenario, ...]
    publisher_cpu_percent: float
    publisher_rss_peak_mb: float
    births: int


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _BirthStorm:
    """A fake Home Assistant announcing itself every BIRTH_EVERY_S: each one asks for everything."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(BIRTH_EVERY_S):
            self.client.publish("homeassistant/status", "online", qos=1)
            self.sent += 1

    def __enter__(self) -> _BirthStorm:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.client.loop_stop()
        self.client.disconnect()


def _start_run(cache: Path, work: Path, name: str, **extra: str) -> Server:
    server = Server(cache, SEED_DAYS, work / f"run-{name}.log")
    server.command = [sys.executable, "-m", "home_energy.cli", "run"]
    server.env.update(extra)
    return server


def _measure_side_by_side(servers: dict[str, Server]) -> list[Scenario]:
    """Every server up at once, measured in turn path by path over ROUNDS rounds: the machine's
    load drifts, so a scenario measured minutes after another would compare loads, not programs.
    Each figure is the median of its rounds."""
    for server in servers.values():
        server.__enter__()
    try:
        time.sleep(3.0)  # each schedule's first sync runs at start: let it finish before measuring
        for server in servers.values():
            run_phase(server.port, list(PATHS), CLIENTS, WARMUP_REQUESTS_PER_CLIENT)
        p99: dict[tuple[str, str], list[float]] = {}
        rate: dict[tuple[str, str], list[float]] = {}
        cpu = {name: 0.0 for name in servers}
        served = {name: 0 for name in servers}
        for _ in range(ROUNDS):
            for path in PATHS:
                for name, server in servers.items():
                    before = _cpu_seconds(server.pid)
                    stats = measure(server.port, path, CLIENTS, REQUESTS_PER_CLIENT)
                    cpu[name] += _cpu_seconds(server.pid) - before
                    served[name] += stats.requests
                    p99.setdefault((name, path), []).append(stats.p99_ms)
                    rate.setdefault((name, path), []).append(stats.requests_per_s)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
    return [Scenario(name, {path: statistics.median(p99[(name, path)]) for path in PATHS},
                     {path: statistics.median(rate[(name, path)]) for path in PATHS},
                     cpu[name] * 1000 / served[name]) for name in servers]


def _measure_publisher_alone(cache: Path, broker_url: str, port: int) -> tuple[float, float, int]:
    env = server_env(cache, SEED_DAYS, MQTT_URL=broker_url)
    proc = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "publish"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)  # imports, the first connection and the first full send
        with _BirthStorm(port) as storm:
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(PUBLISH_ALONE_S)
            cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
        peak = rss_mb(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    return (cpu1 - cpu0) / (t1 - t0) * 100, peak, storm.sent


def measure_publish(work: Path, dataset: Path | None = None,
                    progress: Callable[[str], None] = print) -> PublishCost:
    sys.path.insert(0, str(ROOT))
    from tests.mqtt_broker import Broker, SilentBroker

    work.mkdir(parents=True, exist_ok=True)
    cache = dataset or work / "cache.sqlite"
    if dataset is None:
        subprocess.run([sys.executable, "-m", "home_energy.cli", "seed-demo", "--days", str(SEED_DAYS)],
                       env=server_env(cache, SEED_DAYS), check=True, capture_output=True, timeout=600)
    silent = SilentBroker()
    try:
        with Broker(work / "broker") as broker:
            servers = {
                "without MQTT": _start_run(cache, work, "plain"),
                STORM: _start_run(cache, work, "storm", MQTT_URL=broker.url),
                "a broker that never answers": _start_run(cache, work, "silent", MQTT_URL=silent.url),
            }
            with _BirthStorm(broker.port):
                scenarios = _measure_side_by_side(servers)
            cpu, rss, births = _measure_publisher_alone(cache, broker.url, broker.port)
    finally:
        silent.close()
    for scenario in scenarios:
        progress(f"publish: {scenario.name:<36} {scenario.cpu_ms_per_request:.2f} ms CPU per request; p99 " + ", ".join(
            f"{path} {scenario.p99_ms[path]:.1f} ms" for path in PATHS))
    progress(f"publish: home-energy publish {cpu:.2f} % of one core over {births} birth messages, "
             f"peak RSS {rss:.1f} MB")
    return PublishCost(tuple(scenarios), cpu, rss, births)


def verdicts(cost: PublishCost) -> list[tuple[str, float, bool]]:
    """(scenario, CPU per request as a multiple of the baseline's, met) for each scenario with MQTT.

    CPU time per request, not latency, is the verdict: on a machine shared with other work the
    p99 follows the neighbours' load, while the process's own CPU time counts only its own work
    (the publisher's included, since it runs in the same process)."""
    base = cost.scenarios[0].cpu_ms_per_request
    return [(s.name, s.cpu_ms_per_request / base, s.cpu_ms_per_request <= CPU_FACTOR * base)
            for s in cost.scenarios[1:]]


def markdown(cost: PublishCost, load_average: str = "") -> list[str]:
    lines = [
        "## Publishing to MQTT",
        "",
        f"`home-energy run` three times side by side on one {SEED_DAYS}-day demo cache, the publisher in the "
        f"web's own process; {CLIENTS} clients, each path measured in turn on the three servers over {ROUNDS} "
        f"rounds (medians). Target: the process's CPU time per request within {CPU_FACTOR:g}x of the run "
        "without MQTT (the p99s are shown for reference: they follow the machine's load"
        + (f", {load_average} here" if load_average else "") + ").",
        "",
        "| | " + " | ".join(s.name for s in cost.scenarios) + " |",
        "|---|" + "---|" * len(cost.scenarios),
        "| CPU per request | " + " | ".join(f"{s.cpu_ms_per_request:.2f} ms" for s in cost.scenarios) + " |",
    ]
    for path in PATHS:
        lines.append(f"| `{path}` p99, req/s | " + " | ".join(
            f"{s.p99_ms[path]:.1f} ms, {s.requests_per_s[path]:.0f}/s" for s in cost.scenarios) + " |")
    lines.append("")
    for name, ratio, met in verdicts(cost):
        lines.append(f"- {name}: {ratio:.2f}x the CPU per request of the run without MQTT "
                     f"({'met' if met else '**missed**'})")
    lines += [
        "",
        f"`home-energy publish` alone (its own unit), answering a birth message every {BIRTH_EVERY_S:g} s "
        f"({cost.births} of them, ~70 messages each): {cost.publisher_cpu_percent:.2f} % of one core, peak RSS "
        f"{cost.publisher_rss_peak_mb:.1f} MB (its unit allows `MemoryMax=64M`). Run it alone with "
        "`python -m bench.publish_cost`.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="keep files here instead of a temporary folder")
    parser.add_argument("--out", type=Path, help="also write the section into this report (docs/performance.md)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.work:
        cost = measure_publish(args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="home-energy-publish-bench-") as work:
            cost = measure_publish(Path(work))
    text = "\n".join(markdown(cost, ", ".join(f"{x:.1f}" for x in os.getloadavg())))
    print(text)
    if args.out:
        from .fresh_install import write_section

        write_section(args.out, text)
    return 0 if all(ok for _n, _r, ok in verdicts(cost)) else 1


if __name__ == "__main__":
    sys.exit(main())
