"""Disk full during a sync: the run fails cleanly, and the old data stays intact and served.

"Full" is SQLite's own: the writer's connection gets `PRAGMA max_page_count` set to the pages the
file already has, so the first page the sync needs beyond them fails with SQLITE_FULL, exactly as
a full SD card does.
"""
from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from typing import Any

from freezegun import freeze_time

from home_energy import store
from home_energy.sync import run_sync
from tests.reliability.helpers import DATA_TABLES, integrity, table_rows

NOW = "2026-11-23T01:07:30Z"
SERVED = ("/api/current", "/api/prices?hours=48", "/api/summary", "/api/usage")


def _full_disk(monkeypatch) -> None:
    real = store.cache._connect

    def connect_writer_on_a_full_disk(path):
        conn = real(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(store.cache, "_connect", connect_writer_on_a_full_disk)


def _served_afresh(app: Any) -> dict[str, tuple[int, Any]]:
    answers: dict[str, tuple[int, Any]] = {}

    def ask() -> None:
        client = app.test_client()
        for path in SERVED:
            response = client.get(path)
            answers[path] = (response.status_code, response.get_json())

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join(timeout=60)
    assert sorted(answers) == sorted(SERVED)
    return answers


def test_disk_full_during_a_sync_keeps_the_old_data_intact_and_served(amber_config, amber_client, app_for,
                                                                       monkeypatch):
    with freeze_time(NOW) as frozen:
        assert run_sync(amber_config, amber_client()).exit_code == 0
        client = app_for(amber_config).test_client()
        served = {path: client.get(path).get_json() for path in SERVED}
        before = table_rows(amber_config.sqlite_path, DATA_TABLES)

        _full_disk(monkeypatch)
        frozen.tick(timedelta(days=3))  # three days of new prices and usage: the file must grow
        try:
            run_sync(amber_config, amber_client())
        except sqlite3.OperationalError as exc:  # how it fails is the next test's business
            assert "full" in f"{exc} {exc.__context__}"
        frozen.tick(-timedelta(days=3))
        monkeypatch.undo()

        assert integrity(amber_config.sqlite_path) == "ok"
        assert table_rows(amber_config.sqlite_path, DATA_TABLES) == before
        # A new app in a new thread: a new reader connection and no answer kept from before, so
        # what is compared was read from the file now.
        after = _served_afresh(app_for(amber_config))
        assert {p: status for p, (status, _) in after.items()} == {p: 200 for p in SERVED}
        assert {p: body for p, (_, body) in after.items()} == served
        # Room again: the next sync writes as usual.
        frozen.tick(timedelta(days=3))
        assert run_sync(amber_config, amber_client()).outcome == "ok"
        assert len(table_rows(amber_config.sqlite_path, ("prices",))["prices"]) > len(before["prices"])


def test_disk_full_is_a_one_line_tempfail_not_an_exception(amber_config, amber_client, monkeypatch):
    with freeze_time(NOW) as frozen:
        assert run_sync(amber_config, amber_client()).exit_code == 0
        _full_disk(monkeypatch)
        frozen.tick(timedelta(days=3))
        report = run_sync(amber_config, amber_client())
    assert (report.outcome, report.exit_code) == ("tempfail", 75)
    assert "full" in report.error and "\n" not in report.error
