"""20 readers of the web API against a real `home-energy serve` while syncs write without pause.

The server opens the cache read-only per request; the sync writes in one transaction per run,
in WAL mode. Readers must never see an error, a 5xx or "database is locked", and they must see
the syncs' new data arrive (or the test would pass against a server that read nothing new).
"""
from __future__ import annotations

import http.client
import json
import threading
import time

from home_energy import store
from home_energy.clock import now_utc
from home_energy.demo import DemoUpstream
from home_energy.sync import price_window, run_sync
from tests.reliability.helpers import PayloadUpstream, ServeProcess, get

READERS = 20
READ_FOR_S = 6.0
PATHS = ("/api/health", "/api/current", "/api/prices?hours=48", "/api/summary", "/api/usage", "/")
SYNCS_AT_LEAST = 3
READER_TIMEOUT_S = 10.0


def _recorded_demo_answers() -> PayloadUpstream:
    """The demo's answers made once, so each sync spends its time writing, not simulating."""
    demo = DemoUpstream()
    previous, next_ = price_window(now_utc(), 5)
    today = now_utc().date()
    return PayloadUpstream(demo.sites(), demo.current_prices("x", next_=next_, previous=previous, resolution=5),
                           demo.usage("x", today.replace(day=1) if today.day > 3 else today, today))


def test_twenty_readers_see_no_errors_while_syncs_write_continuously(demo_config, tmp_path):
    answers = _recorded_demo_answers()
    assert run_sync(demo_config, answers).exit_code == 0
    failures: list[str] = []
    seen_syncs: set[str] = set()
    counts = [0] * READERS
    stop = threading.Event()

    with ServeProcess(demo_config.sqlite_path, tmp_path / "serve.log") as server:
        def read(index: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=READER_TIMEOUT_S)
            try:
                while not stop.is_set():
                    path = PATHS[(counts[index] + index) % len(PATHS)]
                    try:
                        status, body = get(conn, path)
                    except (OSError, http.client.HTTPException) as exc:
                        failures.append(f"{path}: {type(exc).__name__}: {exc}")
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=READER_TIMEOUT_S)
                        continue
                    counts[index] += 1
                    if status != 200 or b"locked" in body:
                        failures.append(f"{path}: {status} {body[:200]!r}")
                    elif path == "/api/health":
                        seen_syncs.add(json.loads(body)["last_sync"]["at"])
            finally:
                conn.close()

        readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(READERS)]
        for thread in readers:
            thread.start()
        reports = []
        deadline = time.monotonic() + READ_FOR_S
        try:
            while time.monotonic() < deadline:
                reports.append(run_sync(demo_config, answers))
                # Usage due again on every run: each one rewrites usage and its daily roll-ups too.
                _force_usage_next_time(demo_config)
                time.sleep(0.2)  # let the wall clock move on, so each run's record is a new one
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=READER_TIMEOUT_S)
        log = server.output()

    assert failures == [], failures[:5]
    assert [r.outcome for r in reports] == ["ok"] * len(reports)
    assert len(reports) >= SYNCS_AT_LEAST and all(r.rows_written > 0 for r in reports)
    assert min(counts) > 0 and sum(counts) > 10 * READERS, counts
    assert len(seen_syncs) >= 2, f"readers saw only {seen_syncs}: the syncs' writes never showed"
    assert "locked" not in log and "Traceback" not in log, log[-2000:]


def _force_usage_next_time(config) -> None:
    conn = store.open_writer(config.sqlite_path)
    try:
        keys = [key for (key,) in conn.execute("SELECT key FROM meta WHERE key LIKE 'usage_fetched_at:%'")]
        with store.transaction(conn):
            for key in keys:
                store.set_meta(conn, key, None)
    finally:
        conn.close()
