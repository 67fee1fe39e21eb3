"""Health's `publish` member from the publisher's status file: what each state reads as, and files
that are not the publisher's (missing, garbage, a FIFO) never hold a request up or break it."""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from home_energy.publish_status import NOT_RUNNING_AFTER_S, PublishState, read_status, write_status

NOW = datetime(2026, 11, 23, 1, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BROKER = "mqtt://broker.lan:1883"


def test_a_fresh_connected_state_reads_as_connected(tmp_path):
    path = tmp_path / "publish-status.json"
    write_status(path, PublishState("connected", BROKER, T - 100, T - 10, None, T - 5))
    assert read_status(path, NOW, BROKER) == {
        "status": "connected", "broker": BROKER, "since": "2026-11-23T00:58:20Z", "last_error": None,
        "last_published_at": "2026-11-23T00:59:55Z"}


def test_a_publisher_silent_for_three_minutes_is_not_running_unless_it_stopped(tmp_path):
    path = tmp_path / "publish-status.json"
    write_status(path, PublishState("failing", BROKER, T - 900, T - NOT_RUNNING_AFTER_S - 1, "connection refused"))
    assert read_status(path, NOW, BROKER)["status"] == "not_running"
    write_status(path, PublishState("stopped", BROKER, T - 900, T - 900))
    assert read_status(path, NOW, BROKER)["status"] == "stopped"


def test_files_that_are_not_the_publishers_read_as_waiting(tmp_path):
    path = tmp_path / "publish-status.json"
    waiting = {"status": "waiting", "broker": BROKER, "since": None, "last_error": None, "last_published_at": None}
    assert read_status(path, NOW, BROKER) == waiting  # missing
    for garbage in (b"{", b"[]", json.dumps({"status": "connected"}).encode(),
                    json.dumps({"status": "x", "broker": "b", "since": "soon", "updated_at": 1}).encode(),
                    b"{" + b" " * 10_000):
        path.write_bytes(garbage)
        assert read_status(path, NOW, BROKER) == waiting, garbage
    path.unlink()
    os.mkfifo(path)  # a plain open() would wait for a writer forever
    assert read_status(path, NOW, BROKER) == waiting
