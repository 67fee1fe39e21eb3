"""The health gate against a real local HTTP server: refused, then 503, then 200; and giving up."""
from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from kiosk.errors import EX_TEMPFAIL, HealthTimeoutError
from kiosk.health import BACKOFF_FIRST_S, BACKOFF_MAX_S, backoff_delays, probe_health, wait_for_health
from tests.kiosk.kiosk_helpers import free_port


def _kind(reason: str) -> str:
    if reason == "connection refused":
        return "refused"
    return reason.split(":")[0]


def test_gate_waits_through_refused_and_503_and_opens_on_200(health_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/health"
    started = threading.Timer(1.0, lambda: health_server(port, [503, 503, 200]))
    started.start()
    probes = []
    try:
        result = wait_for_health(url, 20, on_probe=probes.append)
    finally:
        started.cancel()
        started.join()

    assert result is not None and result.ok and result.status == 200
    kinds = [_kind(p.reason) for p in probes]
    # Each phase was seen, in order, and nothing after the first 200.
    assert [k for k, _ in itertools.groupby(kinds)] == ["refused", "HTTP 503", "HTTP 200"]
    assert kinds.count("HTTP 503") == 2
    assert probes[-2].reason == "HTTP 503: cache cannot be read: no such table: prices"


def test_gate_gives_up_after_the_timeout_naming_the_last_failure(health_server):
    port = free_port()
    health_server(port, [503])
    started = time.monotonic()
    with pytest.raises(HealthTimeoutError) as caught:
        wait_for_health(f"http://127.0.0.1:{port}/api/health", 1.5)
    elapsed = time.monotonic() - started

    assert 1.5 <= elapsed < 4
    message = str(caught.value)
    assert "\n" not in message
    assert f"http://127.0.0.1:{port}/api/health was not healthy after 1.5 s" in message
    assert "last: HTTP 503: cache cannot be read" in message
    assert caught.value.exit_code == EX_TEMPFAIL


def test_a_server_that_never_answers_cannot_hang_the_gate():
    with socket.socket() as silent:  # accepts connections into its backlog, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(HealthTimeoutError, match=r"last: timed out"):
            wait_for_health(f"http://127.0.0.1:{port}/api/health", 1.0, request_timeout_s=0.3)
        assert time.monotonic() - started < 3


def test_probe_reports_refused_without_raising():
    probe = probe_health(f"http://127.0.0.1:{free_port()}/api/health", 1.0)
    assert (probe.ok, probe.reason, probe.status) == (False, "connection refused", None)


def test_probe_ignores_proxy_settings_from_the_environment(health_server, monkeypatch):
    port = free_port()
    health_server(port, [200])
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("no_proxy", "")
    assert probe_health(f"http://127.0.0.1:{port}/api/health", 2.0).status == 200


def test_backoff_doubles_and_is_capped():
    delays = list(itertools.islice(backoff_delays(), 7))
    assert delays[0] == BACKOFF_FIRST_S
    assert delays[1] == BACKOFF_FIRST_S * 2
    assert max(delays) == BACKOFF_MAX_S
    assert delays[-3:] == [BACKOFF_MAX_S] * 3
    assert delays == sorted(delays)


def test_a_stop_request_ends_the_wait_without_an_error():
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert wait_for_health(f"http://127.0.0.1:{free_port()}/api/health", 30, stop=stop) is None
    assert time.monotonic() - started < 3


def test_launcher_gives_up_with_one_line_and_exit_75_when_nothing_listens(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "kiosk.launcher", "--url", f"http://127.0.0.1:{port}/",
         "--browser", "chromium", "--health-timeout", "1"],
        env=env, capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == EX_TEMPFAIL
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"error: the dashboard at http://127.0.0.1:{port}/api/health was not healthy after 1 s "
                    "(last: connection refused); is `home-energy serve` running?")
    # No browser profile was made: the browser never started. Only the one-kiosk lock is left.
    assert [p.name for p in tmp_path.iterdir()] == ["home-energy-kiosk-none.lock"]
