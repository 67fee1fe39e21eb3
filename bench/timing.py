"""Where a request's time goes inside the server under a burst: queue, handler and send.

`python -m bench.timing PORT OUT.json` serves the real app with the real Waitress settings
(home_energy.server), plus three stopwatches per request, and writes them to OUT.json when it
gets SIGTERM:
- queue: from the event loop handing the connection to the task queue until a worker thread
  picks it up (the first request of each hand-over; later pipelined ones have none);
- handler: the WSGI application call (routing, SQL, JSON, gzip);
- send: from the application's return until Waitress closes its answer, i.e. writing the body
  into the connection's buffer and flushing what it can.
What a client sees beyond their sum is the event-loop thread: accepting, reading, parsing and
the last flush, all of it needing the GIL.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from waitress.task import ThreadedTaskDispatcher

from home_energy.config import load_config
from home_energy.server import WAITRESS_OPTIONS, DeadlineChannel, build_server
from home_energy.web import create_app

_local = threading.local()


class TimedChannel(DeadlineChannel):
    queued_at: float | None = None

    def service(self) -> None:
        if self.queued_at is not None:
            _local.queue_s = time.perf_counter() - self.queued_at
            self.queued_at = None
        super().service()


class TimedDispatcher(ThreadedTaskDispatcher):
    def add_task(self, task: Any) -> None:
        task.queued_at = time.perf_counter()
        super().add_task(task)


class _TimedBody:
    def __init__(self, body: Any, record: Callable[[], None]) -> None:
        self.body = body
        self.record = record

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.record()


def timed(app: Any, records: list[tuple[str, float, float, float]]) -> Any:
    def wrapper(environ: dict, start_response: Any) -> Any:
        queue_s = getattr(_local, "queue_s", 0.0)
        _local.queue_s = 0.0
        began = time.perf_counter()
        body = app(environ, start_response)
        returned = time.perf_counter()
        query = environ.get("QUERY_STRING", "")
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        return _TimedBody(body, lambda: records.append(
            (path, queue_s, returned - began, time.perf_counter() - returned)))

    return wrapper


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as `home-energy serve` does
    records: list[tuple[str, float, float, float]] = []
    app = create_app(load_config())
    dispatcher = TimedDispatcher()
    dispatcher.set_thread_count(WAITRESS_OPTIONS["threads"])
    server = build_server(timed(app, records), "127.0.0.1", port, _dispatcher=dispatcher)
    for listener in [server, *getattr(server, "map", {}).values()]:
        if hasattr(listener, "channel_class"):
            listener.channel_class = TimedChannel

    def stop(_signum: int, _frame: FrameType | None) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(records, handle)
        server.close()


# ---- the measuring side: run the timed server, burst each path with wrk, read the stopwatches

BURST_S = 3
PY_SPY_S = 4
PY_SPY_RATE_HZ = 250


@dataclass(frozen=True)
class Phases:
    path: str
    requests: int
    client_p50_ms: float  # wrk, the whole request as the client sees it
    client_p99_ms: float
    queue_p50_ms: float
    queue_p99_ms: float
    handler_p50_ms: float
    handler_p99_ms: float
    send_p50_ms: float
    send_p99_ms: float


@dataclass(frozen=True)
class GilShare:
    path: str
    gil_busy_percent: float  # of the sampled time, how much some thread held the GIL
    event_loop_percent: float  # of the GIL-holding samples, the share of Waitress's event loop thread
    top: tuple[tuple[str, float], ...]  # (function, percent of GIL-holding samples)


def _percentile_ms(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))] * 1000


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _gil_share(pid: int, url: str, path: str, work: Path) -> GilShare | None:
    spy = py_spy()
    if spy is None:
        return None
    from .burst import run_wrk

    raw = work / "py-spy.raw"
    load = threading.Thread(target=run_wrk, args=(url, 8, PY_SPY_S + 2), daemon=True)
    load.start()
    time.sleep(0.5)
    result = subprocess.run([spy, "record", "--gil", "--nonblocking", "-r", str(PY_SPY_RATE_HZ), "-d", str(PY_SPY_S),
                             "-f", "raw", "-o", str(raw), "-p", str(pid)], capture_output=True, text=True, timeout=60)
    load.join(timeout=PY_SPY_S + 30)
    if result.returncode != 0 or not raw.exists():
        return None
    total = loop = 0
    leaves: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        if not frames[0].startswith("Thread._bootstrap"):
            loop += n
        leaf = frames[-1].split(" (")[0]
        leaves[leaf] = leaves.get(leaf, 0) + n
    if not total:
        return None
    top = tuple((name, 100 * n / total) for name, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:3])
    return GilShare(path, 100 * total / (PY_SPY_RATE_HZ * PY_SPY_S), 100 * loop / total, top)


def measure_phases(sqlite_path: Path, days: int, paths: list[str], work: Path) -> tuple[list[Phases], GilShare | None]:
    """Each path burst by wrk at 8 connections against the timed server; its stopwatches per path."""
    from .burst import run_wrk
    from .datasets import server_env
    from .server import free_port

    port = free_port()
    out = work / "timing.json"
    log = (work / "timing-server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bench.timing", str(port), str(out)],
                            env=server_env(sqlite_path, days), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                run_wrk(f"http://127.0.0.1:{port}/api/health", 1, 1)
                break
            except (subprocess.CalledProcessError, RuntimeError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"bench.timing did not answer: see {log.name}") from None
                time.sleep(0.1)
        clients = {path: run_wrk(f"http://127.0.0.1:{port}{path}", 8, BURST_S) for path in paths}
        gil = _gil_share(proc.pid, f"http://127.0.0.1:{port}/api/health", "/api/health", work)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    records = json.loads(out.read_text())
    found = []
    for path, client in clients.items():
        mine = [r for r in records if r[0] == path]
        found.append(Phases(
            path=path, requests=client.requests, client_p50_ms=client.p50_ms, client_p99_ms=client.p99_ms,
            queue_p50_ms=_percentile_ms([r[1] for r in mine], 0.5),
            queue_p99_ms=_percentile_ms([r[1] for r in mine], 0.99),
            handler_p50_ms=_percentile_ms([r[2] for r in mine], 0.5),
            handler_p99_ms=_percentile_ms([r[2] for r in mine], 0.99),
            send_p50_ms=_percentile_ms([r[3] for r in mine], 0.5),
            send_p99_ms=_percentile_ms([r[3] for r in mine], 0.99),
        ))
    return found, gil


if __name__ == "__main__":
    main()
