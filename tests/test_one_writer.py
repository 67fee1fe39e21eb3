"""The store's policies: when a file is moved aside (only when SQLite says it is damaged), what
busy, unwritable and incomplete caches mean, and how often the integrity check runs. What the web
may import is checked in test_architecture_rules.py."""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from home_energy import store
from home_energy.errors import CacheBusyError
from home_energy.sync import run_sync
from tests.as_another_user import readable_copy

PACKAGE = Path(__file__).resolve().parents[1] / "home_energy"
NOW = "2026-11-23T01:07:30Z"


def test_a_locked_cache_is_a_tempfail_and_is_left_untouched(demo_config, monkeypatch):
    assert run_sync(demo_config).exit_code == 0
    before = demo_config.sqlite_path.read_bytes()
    holder = sqlite3.connect(demo_config.sqlite_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr("home_energy.db.BUSY_TIMEOUT_MS", 100)
    try:
        with pytest.raises(CacheBusyError) as caught:
            run_sync(demo_config)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.exit_code == 75 and str(demo_config.sqlite_path) in str(caught.value)
    assert list(demo_config.sqlite_path.parent.glob("*.corrupt-*")) == []
    assert demo_config.sqlite_path.read_bytes() == before


def test_an_unwritable_cache_folder_is_exit_78_with_one_line_and_no_traceback(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    env = {**os.environ, "SQLITE_PATH": str(folder / "cache.sqlite")}
    env.pop("AMBER_TOKEN", None)
    command = [sys.executable, "-m", "home_energy.cli", "sync"]
    if os.geteuid() == 0:
        # root may write anywhere: run as nobody, with the folder left owned by root, from a copy
        # of the code nobody can read (the checkout itself may sit in a private folder).
        shared = Path(tempfile.mkdtemp(prefix="home-energy-nobody-"))
        try:
            probe_env = {**env, "SQLITE_PATH": str(shared / "probe.sqlite")}
            command, env = readable_copy(shared, "home_energy.cli", ["sync"], probe_env)
            env["SQLITE_PATH"] = str(folder / "cache.sqlite")
            tmp_path.chmod(0o755)
            folder.chmod(0o755)
            result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=shared, timeout=60)
        finally:
            shutil.rmtree(shared)
    else:
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PACKAGE.parent, timeout=60)
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(folder / "cache.sqlite") in lines[0] and "Traceback" not in result.stderr


def test_at_most_three_damaged_files_are_kept(demo_config, caplog):
    for n in range(5):
        demo_config.sqlite_path.write_bytes(b"not a database " * 100)
        with freeze_time(f"2026-11-23T01:0{n}:00Z"), caplog.at_level(logging.ERROR, logger="home_energy.store"):
            assert run_sync(demo_config).exit_code == 0
    aside = sorted(p.name for p in demo_config.sqlite_path.parent.glob("cache.sqlite.corrupt-*")
                   if not p.name.endswith(("-wal", "-shm")))
    assert aside == [f"cache.sqlite.corrupt-20261123T010{n}00Z" for n in (2, 3, 4)]
    assert len([r for r in caplog.records if "moved it aside" in r.getMessage()]) == 5


def _checks(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT value FROM meta WHERE key = 'integrity_checked_at'")]
    finally:
        conn.close()


def test_the_integrity_check_runs_daily_and_after_an_interrupted_run(demo_config):
    with freeze_time(NOW) as frozen:
        run_sync(demo_config)
        first = _checks(demo_config.sqlite_path)
        frozen.tick(timedelta(hours=6))
        run_sync(demo_config)
        assert _checks(demo_config.sqlite_path) == first  # not again within a day
        frozen.tick(timedelta(hours=19))
        run_sync(demo_config)
        second = _checks(demo_config.sqlite_path)
        assert second != first
        # A run killed after it was recorded as started: the next one checks the file again.
        conn = store.open_writer(demo_config.sqlite_path)
        killed_run = store.start_run(conn, "demo")  # and nothing after it, as a killed sync leaves it
        conn.close()
        frozen.tick(timedelta(minutes=5))
        run_sync(demo_config)
        assert _checks(demo_config.sqlite_path) != second
        conn = sqlite3.connect(demo_config.sqlite_path)
        killed = conn.execute("SELECT outcome FROM sync_runs WHERE id = ?", (killed_run,)).fetchone()[0]
        assert killed == "interrupted"
        conn.close()


def test_migrations_are_safe_to_run_twice(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None)
    for _ in range(2):
        for migration in store.MIGRATIONS:
            for statement in migration:
                conn.execute(statement)
    conn.close()


def test_a_cache_missing_a_table_at_the_current_schema_is_exit_78_and_kept(tmp_path):
    cache = tmp_path / "cache.sqlite"
    store.init_cache(cache)
    conn = sqlite3.connect(cache)
    conn.execute("DROP TABLE daily_usage")
    conn.commit()
    conn.close()
    before = cache.read_bytes()
    env = {**os.environ, "SQLITE_PATH": str(cache)}
    env.pop("AMBER_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "sync"], env=env, capture_output=True,
                            text=True, cwd=PACKAGE.parent, timeout=60)
    assert result.returncode == 78, result.stderr
    assert result.stderr.count("\n") == 1 and "daily_usage" in result.stderr and "Traceback" not in result.stderr
    assert cache.read_bytes() == before and list(tmp_path.glob("*.corrupt-*")) == []
