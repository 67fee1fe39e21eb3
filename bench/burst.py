"""Bursts measured with wrk: every endpoint and static file at 1 and 8 keep-alive connections,
each run beside the bare Flask + Waitress route (bench/bare.py) in alternating rounds.

wrk is a C load generator, so no Python client shares the GIL-bound figures. The machine may be
busy with other work, so every path is paired with a bare run just before it and the report
gives ratios (path ÷ bare) as well as times; the median over rounds is what is reported.
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .server import POLL_INTERVAL_S, START_TIMEOUT_S, free_port

CONNECTIONS = (1, 8)
ROUNDS = 3
RUN_S = 2
# What Chromium sends, so the server answers the kiosk's way (gzip where it compresses).
WRK_HEADERS = ("Accept-Encoding: gzip, deflate, br", "Accept: */*")
WRK_TIMEOUT_S = 5  # a request slower than this is counted as a timeout by wrk


@dataclass(frozen=True)
class WrkRun:
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    requests: int
    errors: int  # non-2xx/3xx answers, socket errors and timeouts


@dataclass(frozen=True)
class Burst:
    path: str
    connections: int
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    bare_p50_ms: float
    bare_p99_ms: float
    bare_requests_per_s: float
    p99_ratio: float  # median over rounds of (path p99 ÷ the bare p99 of the same round)
    throughput_ratio: float  # median over rounds of (path req/s ÷ bare req/s)
    errors: int
    rounds: int
    bare_p99_low_ms: float  # the bare route's spread over the rounds: how steady the machine was
    bare_p99_high_ms: float


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a time this bench cannot read: {text!r}")
    number, unit = match.groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> WrkRun:
    """The figures of `wrk --latency` from its text report."""
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.M))
    done = re.search(r"^\s+(\d+) requests in", output, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not (done and rate and "50" in percentiles and "99" in percentiles):
        raise RuntimeError(f"cannot read wrk's report:\n{output}")
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return WrkRun(_ms(percentiles["50"]), _ms(percentiles["99"]), float(rate.group(1)), int(done.group(1)), errors)


def run_wrk(url: str, connections: int, seconds: int = RUN_S) -> WrkRun:
    command = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "--latency",
               f"--timeout={WRK_TIMEOUT_S}s"]
    for header in WRK_HEADERS:
        command += ["-H", header]
    result = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(result.stdout)


class BareServer:
    """`with BareServer(log) as bare:` runs bench/bare.py on a free port until the block ends."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> BareServer:
        log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.bare", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench.bare exited {self.proc.returncode}: see {self.log_path}")
            try:
                run_wrk(f"http://127.0.0.1:{self.port}/", 1, 1)
                return self
            except (subprocess.CalledProcessError, RuntimeError):
                time.sleep(POLL_INTERVAL_S)
        raise RuntimeError(f"bench.bare did not answer within {START_TIMEOUT_S:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def measure_bursts(port: int, bare_port: int, paths: list[str], rounds: int = ROUNDS,
                   connections: tuple[int, ...] = CONNECTIONS,
                   progress: Callable[[str], None] = print) -> list[Burst]:
    """For every path and connection count: `rounds` pairs of (bare run, path run), alternating."""
    found: dict[tuple[str, int], list[tuple[WrkRun, WrkRun]]] = {}
    for number in range(rounds):
        for clients in connections:
            for path in paths:
                bare = run_wrk(f"http://127.0.0.1:{bare_port}/", clients)
                ours = run_wrk(f"http://127.0.0.1:{port}{path}", clients)
                found.setdefault((path, clients), []).append((bare, ours))
        progress(f"  burst round {number + 1} of {rounds} done")
    out = []
    for (path, clients), pairs in found.items():
        med = statistics.median
        out.append(Burst(
            path=path, connections=clients,
            p50_ms=med(o.p50_ms for _b, o in pairs), p99_ms=med(o.p99_ms for _b, o in pairs),
            requests_per_s=med(o.requests_per_s for _b, o in pairs),
            bare_p50_ms=med(b.p50_ms for b, _o in pairs), bare_p99_ms=med(b.p99_ms for b, _o in pairs),
            bare_requests_per_s=med(b.requests_per_s for b, _o in pairs),
            p99_ratio=med(o.p99_ms / b.p99_ms for b, o in pairs),
            throughput_ratio=med(o.requests_per_s / b.requests_per_s for b, o in pairs),
            errors=sum(o.errors for _b, o in pairs), rounds=len(pairs),
            bare_p99_low_ms=min(b.p99_ms for b, _o in pairs), bare_p99_high_ms=max(b.p99_ms for b, _o in pairs),
        ))
    return out


@dataclass(frozen=True)
class Crowding:
    heavy_path: str
    heavy_connections: int
    heavy_requests_per_s: float
    probe_path: str
    probe_p50_ms: float
    probe_p99_ms: float
    alone_p50_ms: float  # the probe with the server otherwise idle, just before
    alone_p99_ms: float


def measure_crowding(port: int, heavy_path: str, probe_path: str, heavy_connections: int = 8,
                     seconds: int = 4) -> Crowding:
    """`probe_path` at one connection, alone and then while `heavy_connections` hammer `heavy_path`."""
    import threading

    alone = run_wrk(f"http://127.0.0.1:{port}{probe_path}", 1, seconds)
    heavy: list[WrkRun] = []
    load = threading.Thread(target=lambda: heavy.append(
        run_wrk(f"http://127.0.0.1:{port}{heavy_path}", heavy_connections, seconds + 2)), daemon=True)
    load.start()
    time.sleep(1)  # the heavy load is under way before the probe starts
    probe = run_wrk(f"http://127.0.0.1:{port}{probe_path}", 1, seconds)
    load.join(timeout=seconds + 40)
    return Crowding(heavy_path, heavy_connections, heavy[0].requests_per_s if heavy else float("nan"), probe_path,
                    probe.p50_ms, probe.p99_ms, alone.p50_ms, alone.p99_ms)
