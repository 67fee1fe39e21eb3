"""Builders for plug tests: a cache holding prices as a sync leaves them, and controllers on fakes."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from freezegun import freeze_time

from home_energy import store
from home_energy.config import Config, load_config
from home_energy.models import PriceRow
from home_energy.plugs.controller import Controller
from home_energy.plugs.rules import parse_plugs

SITE = "01PLUGSITE"


def at(text: str) -> datetime:
    """An aware UTC time from 'YYYY-MM-DDTHH:MM'."""
    return datetime.fromisoformat(text + ":00+00:00")


def write_prices(conn: sqlite3.Connection, first: datetime, prices: Sequence[float], *, minutes: int = 30,
                 channel: str = "general", predicted: Sequence[float | None] | None = None,
                 spikes: Sequence[int] = (), fetched_at: datetime | None = None, outcome: str = "ok",
                 error: str | None = None) -> None:
    """Intervals from `first`, one per price, as a sync writes them (through the store), with the
    run record and freshness marks a sync leaves. `predicted`: Amber's own forecast per interval."""
    fetched = int((fetched_at or first).timestamp())
    rows = []
    for i, price in enumerate(prices):
        start = int(first.timestamp()) + i * minutes * 60
        rows.append(PriceRow(
            site_id=SITE, channel=channel, start=start, end=start + minutes * 60, duration=minutes,
            kind="forecast", per_kwh=price, spot_per_kwh=price / 2, renewables=40.0, descriptor="neutral",
            spike_status="spike" if i in spikes else "none", estimate=None, adv_low=None,
            adv_predicted=None if predicted is None else predicted[i], adv_high=None, range_min=None,
            range_max=None, tariff=None))
    with store.transaction(conn):
        store.save_prices(conn, rows, fetched)
        store.set_meta(conn, "site_id", SITE)
        store.set_meta(conn, "channels", json.dumps(["feedIn", "general"]))
        store.set_meta(conn, "mode", "amber")
        if outcome in ("ok", "partial"):
            store.set_meta(conn, "last_success_at", fetched)
    record_run(conn, fetched, outcome, error)


def record_run(conn: sqlite3.Connection, at_s: int, outcome: str, error: str | None = None) -> None:
    """A sync run started and finished at `at_s` (Unix seconds), recorded through the store."""
    with freeze_time(datetime.fromtimestamp(at_s, UTC)):
        run_id = store.start_run(conn, "amber")
        store.record_failure(conn, run_id, store.RunRecord(outcome, error, 1))


def config_for(tmp_path: Path, plugs_toml: str, **env: str) -> Config:
    plugs_file = tmp_path / "plugs.toml"
    plugs_file.write_text(plugs_toml)
    base = {"SQLITE_PATH": str(tmp_path / "cache.sqlite"), "PLUGS_FILE": str(plugs_file), "TIMEZONE": "UTC"}
    base.update(env)
    return load_config(env=base)


def controller_for(config: Config, dry_run: bool = False, **kwargs: Any) -> Controller:
    assert config.plugs_file is not None
    return Controller(config, parse_plugs(config.plugs_file.read_text(), config.plugs_file), dry_run=dry_run,
                      **kwargs)


def cache(config: Config) -> sqlite3.Connection:
    with store.writer_lock(config.sqlite_path):
        return store.open_cache(config.sqlite_path)


def minutes(start: datetime, count: int, step_min: int = 1) -> list[datetime]:
    return [start + timedelta(minutes=i * step_min) for i in range(count)]


def log_rows(conn: sqlite3.Connection, plug: str, kind: str = "command") -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT at, action, result FROM plug_log WHERE plug = ? AND kind = ? "
                                           "ORDER BY id", (plug, kind))]
