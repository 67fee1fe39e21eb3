"""Writers started together never throw a cache away.

A cache one migration behind (built from the program's own migrations minus the last) holding
100,000+ usage rows is opened by `init-db` twice and `sync` twice at the same moment, as the
dashboard's ExecStartPre and the timer's sync do after an update. Every process must succeed,
nothing may be moved aside, the rows must survive and the schema must end current. The clock of
the processes is pinned through the clock seam, so the run does not depend on today's date.
"""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from home_energy import store
from home_energy.demo import DEMO_SITE_ID
from tests.reliability.helpers import cli_env, integrity, pinned_cli

TRIALS = 20
ROWS = 100_000
NOW = datetime(2026, 12, 1, 0, 4, 30, tzinfo=UTC)
WRITERS = (["init-db"], ["sync"], ["init-db"], ["sync"])


def build_cache_one_migration_behind(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    version = store.SCHEMA_VERSION - 1
    conn.execute("BEGIN")
    for migration in store.MIGRATIONS[:version]:
        for statement in migration:
            conn.execute(statement)
    first = int((NOW - timedelta(days=30)).timestamp())
    first -= first % 300
    conn.executemany(
        "INSERT INTO usage (site_id, channel_identifier, channel, start, end, duration, day, kwh, cost_cents, "
        "per_kwh, quality, fetched_at) VALUES (?, 'X9', 'general', ?, ?, 5, ?, 0.1, 2.5, 25.0, 'billable', ?)",
        [(DEMO_SITE_ID, first + i * 20, first + i * 20 + 300, "2026-11-01", first) for i in range(ROWS)],
    )
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_two_init_db_and_two_syncs_started_together_keep_the_cache(tmp_path):
    template = tmp_path / "template.sqlite"
    build_cache_one_migration_behind(template)
    for trial in range(TRIALS):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        cache = folder / "cache.sqlite"
        shutil.copyfile(template, cache)
        env = cli_env(cache)
        children = [subprocess.Popen(pinned_cli(NOW, *args), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for args in WRITERS]
        results = [(child.args[-1], child.wait(timeout=60), child.stderr.read()) for child in children]
        for child in children:
            child.stdout.close()
            child.stderr.close()
        assert [code for _name, code, _err in results] == [0] * len(WRITERS), (trial, results)
        assert sorted(p.name for p in folder.iterdir() if "corrupt" in p.name) == [], trial
        assert integrity(cache) == "ok"
        conn = sqlite3.connect(cache)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION, trial
            assert conn.execute("SELECT COUNT(*) FROM usage WHERE channel_identifier = 'X9'").fetchone()[0] == ROWS
            outcomes = [r[0] for r in conn.execute("SELECT outcome FROM sync_runs ORDER BY id")]
        finally:
            conn.close()
        assert outcomes == ["ok", "ok"], (trial, outcomes)
