"""Fixtures for the MQTT publisher and /metrics: a demo cache with a day of meter readings, a
real Mosquitto broker, and a publisher in a thread of this process."""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from home_energy import store
from home_energy.collector import Collector
from home_energy.config import load_config
from home_energy.models import Reading
from home_energy.publisher import Publisher
from home_energy.seed import seed_demo
from home_energy.sources import make_source
from home_energy.sync import run_sync
from tests.fake_meters import FakeFronius
from tests.mqtt_broker import Broker, Watcher


@pytest.fixture(scope="module")
def fronius() -> Iterator[FakeFronius]:
    with FakeFronius() as fake:
        fake.advance_wh = 25.0
        yield fake


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, fronius) -> Path:
    """A cache with three days of demo prices and usage, written once per module."""
    path = tmp_path_factory.mktemp("seeded") / "cache.sqlite"
    config = load_config(env={"SQLITE_PATH": str(path), "METER": "fronius", "METER_URL": fronius.url})
    seed_demo(config, 3)
    assert run_sync(config).exit_code == 0
    return path


@pytest.fixture
def env(tmp_path, seeded, fronius) -> dict[str, str]:
    """Settings of a display with a meter whose cache (a copy of `seeded`) holds fresh readings."""
    path = tmp_path / "cache.sqlite"
    source = sqlite3.connect(seeded)
    with sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()
    settings = {"SQLITE_PATH": str(path), "METER": "fronius", "METER_URL": fronius.url}
    config = load_config(env=settings)
    # Half an hour of finished minutes before this one, in the collector's row shape, so today's
    # energy and cost have figures (the fake's own polls all fall in the current minute).
    now = int(time.time())
    conn = store.open_writer(path)
    for minute in sorted(now - now % 60 - 60 * i for i in range(1, 31)):
        reading = Reading(datetime.fromtimestamp(minute, UTC), "fronius", 1703.0, 1111.0, None, None, 2815.0)
        store.save_reading(conn, reading, store.open_minute(conn, minute).add(reading), (28.0, 3.0))
    conn.close()
    collector = Collector(config, make_source(config))
    try:
        for _ in range(2):
            assert collector.poll_once()
    finally:
        collector.close()
    return settings


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def watch() -> Iterator:
    watchers: list[Watcher] = []

    def _watch(port: int, user: str | None = None, password: str | None = None) -> Watcher:
        watchers.append(Watcher(port, user, password))
        return watchers[-1]

    yield _watch
    for watcher in watchers:
        watcher.close()


@pytest.fixture
def publishing() -> Iterator:
    """Start a Publisher for a config in a thread; every one is stopped (and joined) at the end."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def _start(config) -> Publisher:
        publisher = Publisher(config, version="1.2.3-test")
        stop = threading.Event()
        thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        return publisher

    yield _start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
