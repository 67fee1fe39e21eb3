"""A hostile or broken meter costs one poll, never more.

A raw socket server answers like a Fronius (PowerFlow, meter counters) or a Shelly Pro 3EM
(/shelly, EM, EMData) from the real samples, and misbehaves on the data call in each way below.
Every case runs the real `home-energy collect` in its own process, all cases at once, each on its
own cache. For each: the failed poll ends within the poll's budget (wall time), the fault is
recorded as one line in `last_error`, health's meter says `not_answering` with that line, the
collector's peak RSS stays under the meter unit's 64 MB, nothing in its log is a traceback, and
the next good poll recovers by itself (health `ok`). Then SIGTERM ends it at once.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from home_energy import store
from home_energy.config import load_config
from home_energy.web import create_app
from tests.fake_meters import FakeFronius, load_fixture

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 5  # the shortest METER_POLL_SECONDS allowed
POLL_BUDGET_S = 8.0  # sources.base.POLL_BUDGET_S: every exchange of one poll together
FAULT_WITHIN_S = POLL_BUDGET_S + 7  # from the hostile answer starting to the fault being in the cache
RECOVER_WITHIN_S = 3 * POLL_S + 10
RSS_LIMIT_MB = 64  # the meter unit's MemoryMax
STOP_WITHIN_S = 10
START_WITHIN_S = 30
TRICKLE_EVERY_S = 0.5
PASSWORD = "pa55-w0rd_meter"

FRONIUS_FLOW = "/solar_api/v1/GetPowerFlowRealtimeData.fcgi"
FRONIUS_METER = "/solar_api/v1/GetMeterRealtimeData.cgi"
SHELLY_DATA = "/rpc/EM.GetStatus"


def _response(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers,
             "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


def _good_bodies(kind: str) -> dict[str, bytes]:
    if kind == "fronius":
        return {FRONIUS_FLOW: json.dumps(load_fixture("ha_symo_GetPowerFlowRealtimeData_day.json")).encode(),
                FRONIUS_METER: json.dumps(load_fixture("ha_symo_GetMeterRealtimeData_System.json")).encode()}
    dump = load_fixture("ha_pro_3em_fw1.6.1_device_dump.json")
    return {"/shelly": json.dumps(dict(dump["shelly"], auth_en=False)).encode(),
            SHELLY_DATA: json.dumps(dump["status"]["em:0"]).encode(),
            "/rpc/EMData.GetStatus": json.dumps(dump["status"]["emdata:0"]).encode()}


def _with_power(kind: str, good: bytes, literal: str) -> bytes:
    """The good data answer with its power figure replaced by `literal` (valid JSON or not)."""
    key = b'"P_Grid": ' if kind == "fronius" else b'"total_act_power": '
    start = good.index(key) + len(key)
    end = min(i for i in (good.find(b",", start), good.find(b"}", start)) if i > 0)
    return good[:start] + literal.encode() + good[end:]


def _trickle(conn: socket.socket, data: bytes) -> None:
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(TRICKLE_EVERY_S)


def _stream(conn: socket.socket, head: bytes, total_bytes: int) -> None:
    conn.sendall(head)
    chunk = b" " * 65536
    for _ in range(total_bytes // len(chunk)):
        conn.sendall(chunk)


BOMB = gzip.compress(b" " * (10 * 1024 * 1024), compresslevel=9) * 50  # 500 MB inflated, ~0.5 MB sent


def _hostile(case: str, kind: str, good: bytes, conn: socket.socket) -> None:
    if case == "trickled-headers":
        _trickle(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100)
    elif case == "trickled-body":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n")
        _trickle(conn, b" " * 60000)
    elif case == "500mb":
        _stream(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
                500 * 1024 * 1024)
    elif case == "gzip-bomb":
        conn.sendall(_response("200 OK", BOMB, "Content-Encoding: gzip"))
    elif case == "deep-json":
        conn.sendall(_response("200 OK", b"[" * 10_000 + b"]" * 10_000))
    elif case == "400-digit-integer":
        conn.sendall(_response("200 OK", _with_power(kind, good, "9" * 400)))
    elif case in ("NaN", "Infinity"):
        conn.sendall(_response("200 OK", _with_power(kind, good, case)))
    elif case == "html":
        conn.sendall(_response("200 OK", b"<html><body>Router login</body></html>", "X-Kind: html")
                     .replace(b"application/json", b"text/html"))
    elif case == "302-with-json":
        conn.sendall(_response("302 Found", good, "Location: http://elsewhere.example/data"))
    elif case == "401-forever":
        conn.sendall(_response("401 Unauthorized", b"{}", 'WWW-Authenticate: Digest qop="auth", realm="shellypro3em",'
                                                          f' nonce="{time.time_ns()}", algorithm=SHA-256'))
    else:
        raise AssertionError(case)


class HostileMeter(socketserver.ThreadingTCPServer):
    """Answers like the real device; while `case` is set, the data call misbehaves that way."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, kind: str, case: str | None) -> None:
        self.kind = kind
        self.case = case
        self.good = _good_bodies(kind)
        self.hostile_started: list[float] = []  # when each misbehaving answer began
        self.paths: list[str] = []
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                path = head.split(b" ", 2)[1].decode().split("?")[0]
                server.paths.append(path)
                data_call = path == (FRONIUS_FLOW if server.kind == "fronius" else SHELLY_DATA) or \
                    (server.case == "401-forever" and path.startswith("/rpc/"))
                try:
                    if server.case is not None and data_call:
                        server.hostile_started.append(time.monotonic())
                        _hostile(server.case, server.kind, server.good[path if path in server.good else SHELLY_DATA],
                                 self.request)
                    elif path in server.good:
                        self.request.sendall(_response("200 OK", server.good[path]))
                    else:
                        self.request.sendall(_response("404 Not Found", b'{"code":404}'))
                except OSError:  # the collector gave up, as it should
                    pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HostileMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


# The collector under test, with the cache's writer connection on a "full disk" while the file
# `full` exists: SQLite's own SQLITE_FULL, from `PRAGMA max_page_count`, as the disk-full sync test
# does. A poll reopens the cache after a database error, so removing the file frees the disk.
_COLLECT = (
    "import sys\n"
    "from pathlib import Path\n"
    "import home_energy.sources.base as base\n"
    "import home_energy.store.cache as cache\n"
    "full, read_timeout = Path(sys.argv[1]), float(sys.argv[2])\n"
    "base.READ_TIMEOUT_S = read_timeout\n"
    "real = cache._connect\n"
    "def connect(path):\n"
    "    conn = real(path)\n"
    "    if full.exists():\n"
    "        conn.execute(f'PRAGMA max_page_count = {conn.execute(\"PRAGMA page_count\").fetchone()[0]}')\n"
    "    return conn\n"
    "cache._connect = connect\n"
    "import home_energy.cli\n"
    "sys.exit(home_energy.cli.main(sys.argv[3:]))\n"
)


def _env(cache: Path, kind: str, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AMBER_", "METER", "HOME_ENERGY_", "SQLITE_PATH", "PORT"))}
    env.update(SQLITE_PATH=str(cache), METER=kind, METER_URL=url, METER_POLL_SECONDS=str(POLL_S),
               PYTHONPATH=str(ROOT), **extra)
    if kind == "shelly":
        env["METER_PASSWORD"] = PASSWORD
    return env


def _collect(cache: Path, kind: str, url: str, log: Path, read_timeout_s: float = 4.0, command: str = "collect",
             **env: str) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-c", _COLLECT, str(cache.parent / "full"), str(read_timeout_s),
                                 command], env=_env(cache, kind, url, **env), stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT)


def _state(cache: Path) -> dict[str, Any] | None:
    try:
        conn = sqlite3.connect(f"{cache.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT status, failures, last_error FROM meter_state WHERE id = 1").fetchone()
        return dict(row) if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _wait(what: str, predicate, timeout_s: float, proc: subprocess.Popen, log: Path) -> float:
    """Seconds until `predicate()` held; fails naming `what` (and the log) on timeout or exit."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic()
        assert proc.poll() is None, f"collector exited ({proc.returncode}) waiting for {what}: {log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s} s: {log.read_text()[-2000:]}")


def _health_meter(cache: Path, kind: str, url: str) -> dict[str, Any]:
    env = {"SQLITE_PATH": str(cache), "METER": kind, "METER_URL": url}
    if kind == "shelly":
        env["METER_PASSWORD"] = PASSWORD
    response = create_app(load_config(env=env)).test_client().get("/api/health")
    return response.get_json()["meter"]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _fill_minutes_page(cache: Path) -> None:
    """Fill meter_minutes' last page exactly, so the next new minute needs a page of its own."""
    store.init_cache(cache)
    conn = sqlite3.connect(cache, isolation_level=None)
    conn.execute("VACUUM")  # no free pages: a new page can only come from growing the file
    minute = (int(time.time()) - 86400) // 60 * 60
    while True:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute("BEGIN")
        conn.execute("INSERT INTO meter_minutes (minute, samples, grid_w, solar_w, battery_w, load_w, import_wh, "
                     "export_wh) VALUES (?, 6, 1703, 1111, -200, 2815, 28, 0)", (minute,))
        if conn.execute("PRAGMA page_count").fetchone()[0] > pages:
            conn.execute("ROLLBACK")
            break
        conn.execute("COMMIT")
        minute += 60
    conn.close()


CASES = {
    # case: what last_error must say
    "trickled-headers": "did not answer",
    "trickled-body": "did not finish answering",
    "500mb": "is larger than the 262144-byte limit: refused",
    "gzip-bomb": "is larger than the 262144-byte limit: refused",
    "deep-json": "answered JSON nested deeper than 16 levels",
    "400-digit-integer": "a 400-digit integer",
    "NaN": "NaN is not a number JSON allows",
    "Infinity": "Infinity is not a number JSON allows",
    "html": "answered HTML",
    "302-with-json": "answered 302 on",
    "401-forever": "check METER_PASSWORD",
    "disk-full": "cannot be written: the disk is full",
}


def _one_case(tmp_path: Path, kind: str, case: str) -> str:
    """Runs one case to its end; returns the recorded last_error (assertions raise)."""
    folder = tmp_path / f"{kind}-{case}"
    folder.mkdir()
    cache = folder / "cache.sqlite"
    log = folder / "collect.log"
    meter = HostileMeter(kind, None if case == "disk-full" else case)
    with meter:
        if case == "disk-full":
            _fill_minutes_page(cache)
            (folder / "full").touch()
        proc = _collect(cache, kind, meter.url, log)
        try:
            if case == "disk-full":
                started = time.monotonic()
            else:
                _wait("the hostile answer", lambda: meter.hostile_started, START_WITHIN_S, proc, log)
                started = meter.hostile_started[0]
            recorded = _wait("the fault", lambda: (_state(cache) or {}).get("status") == "failing",
                             START_WITHIN_S if case == "disk-full" else FAULT_WITHIN_S, proc, log)
            if case != "disk-full":
                assert recorded - started <= FAULT_WITHIN_S, (kind, case, recorded - started)
            state = _state(cache)
            assert state is not None and CASES[case] in state["last_error"], (kind, case, state)
            assert "\n" not in state["last_error"] and len(state["last_error"]) < 300, state
            assert PASSWORD not in state["last_error"]
            health = _health_meter(cache, kind, meter.url)
            assert (health["status"], health["last_error"]) == ("not_answering", state["last_error"]), health

            meter.case = None  # the meter behaves again
            (folder / "full").unlink(missing_ok=True)
            _wait("recovery", lambda: (_state(cache) or {}).get("status") == "ok", RECOVER_WITHIN_S, proc, log)
            health = _health_meter(cache, kind, meter.url)
            assert (health["status"], health["last_error"]) == ("ok", None), health

            peak = _peak_rss_mb(proc.pid)
            assert peak <= RSS_LIMIT_MB, (kind, case, f"peak RSS {peak:.0f} MB")
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=STOP_WITHIN_S + 5) == 0, log.read_text()
            assert time.monotonic() - sent <= STOP_WITHIN_S
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log.read_text()
    assert "Traceback" not in output and PASSWORD not in output, (kind, case, output)
    # One line when failing starts, one when it recovers: never one per poll.
    assert output.count("meter not answering") == 1 and output.count("meter answering again") == 1, output
    return state["last_error"]


def test_every_hostile_meter_costs_one_poll_and_recovers_by_itself(tmp_path):
    runs = [(kind, case) for kind in ("fronius", "shelly") for case in CASES]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {run: pool.submit(_one_case, tmp_path, *run) for run in runs}
        errors = {run: future.result() for run, future in futures.items()}
    assert errors[("shelly", "trickled-headers")] == "the Shelly meter did not answer EM.GetStatus within 4 s"
    assert errors[("fronius", "302-with-json")] == ("the Fronius inverter answered 302 on GetPowerFlowRealtimeData"
                                                    ".fcgi, redirecting to elsewhere.example: not followed")


@pytest.mark.parametrize("command", ["collect", "run"])
def test_sigterm_during_a_trickled_poll_ends_at_once_and_blames_no_one(tmp_path, command):
    """The exchange's own deadline is 30 s here: only the abort can end it within 10 s."""
    from tests.ports import free_port

    cache, log = tmp_path / "cache.sqlite", tmp_path / f"{command}.log"
    with HostileMeter("fronius", "trickled-body") as meter:
        proc = _collect(cache, "fronius", meter.url, log, read_timeout_s=30.0, command=command,
                        PORT=str(free_port()), HOST="127.0.0.1")
        try:
            _wait("the trickle", lambda: meter.hostile_started, START_WITHIN_S, proc, log)
            time.sleep(1.0)  # well inside the trickled body
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=STOP_WITHIN_S + 20)
            stopped_s = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log.read_text()
    assert code == 0 and stopped_s <= STOP_WITHIN_S, (code, stopped_s, output)
    assert "Traceback" not in output and "stopping on SIGTERM" in output, output
    assert _state(cache) is None  # stopping is not the meter's fault: nothing recorded against it


@pytest.mark.parametrize("command", ["collect", "run"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://[::1"])
def test_a_bad_meter_url_is_one_line_and_exit_78(tmp_path, command, url):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", command],
                            env=_env(tmp_path / "cache.sqlite", "fronius", url), capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 78, result.stderr
    assert result.stderr.startswith("error: METER_URL must be") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 30


def test_two_collectors_on_one_cache_the_second_exits_75_and_run_only_serves(tmp_path):
    from tests.ports import free_port

    cache = tmp_path / "cache.sqlite"
    with FakeFronius() as meter:
        first_log = tmp_path / "first.log"
        first = _collect(cache, "fronius", meter.url, first_log)
        try:
            _wait("a reading", lambda: (_state(cache) or {}).get("status") == "ok", START_WITHIN_S, first, first_log)
            second = subprocess.run([sys.executable, "-m", "home_energy.cli", "collect"],
                                    env=_env(cache, "fronius", meter.url), capture_output=True, text=True, timeout=60,
                                    cwd=ROOT)
            assert second.returncode == 75, second.stderr
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr, second.stderr
            assert f"another collector (process {first.pid})" in second.stderr, second.stderr

            port = free_port()
            run_log = tmp_path / "run.log"
            with run_log.open("w") as out:
                run = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "run"],
                                       env=_env(cache, "fronius", meter.url, PORT=str(port), HOST="127.0.0.1"),
                                       stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            try:
                _wait("run to serve", lambda: _answers(port), START_WITHIN_S, run, run_log)
                time.sleep(2 * POLL_S)  # long enough that a collector in `run` would have polled twice
            finally:
                run.send_signal(signal.SIGTERM)
                assert run.wait(timeout=STOP_WITHIN_S + 5) == 0
        finally:
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=STOP_WITHIN_S + 5) == 0
    output = run_log.read_text()
    assert output.count("not collecting from the meter: another collector") == 1, output
    assert "collecting from the fronius meter every" not in output and "Traceback" not in output, output
    assert (tmp_path / "cache.sqlite.collector.lock").read_text().strip() == str(first.pid)


def _answers(port: int) -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/api/health")
        status = conn.getresponse().status
        conn.close()
        return status in (200, 503)
    except OSError:
        return False
