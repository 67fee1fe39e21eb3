"""kill -9 of `home-energy sync` at random moments: the cache is never damaged nor half-written.

Each round copies the cache aside (the state before), runs the real CLI sync against the fake Amber
(a 30-minute site, general and feed-in) with the clock pinned an hour and a second later than the
round before (so every sync fetches prices, usage and roll-ups and writes a new state), and kills
it after a random delay drawn over the whole run. Afterwards `PRAGMA integrity_check` must say `ok`
and the cache must be exactly the state before, or exactly the state that the same sync produces
when left to finish (computed on the copy, in-process, with the same pinned clock). "State" is the
data and the meta the sync keeps; the runs table is left out, since a run is recorded as started
before it fetches (a killed one then shows as `interrupted`).
"""
from __future__ import annotations

import random
import select
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import home_energy.amber as amber_module
import home_energy.clock as clock_module
import home_energy.store.cache as store_cache_module
import home_energy.store.sync_writes as store_sync_module
import home_energy.sync as sync_module
import tests.fake_amber as fake_module
from home_energy.amber import AmberClient
from home_energy.config import load_config
from home_energy.sync import run_sync
from tests.fake_amber import TOKEN, FakeAmber, FakeAmberState, site
from tests.reliability.helpers import DATA_TABLES, cli_env, fingerprint, integrity, table_rows

KILLS_REQUIRED = 30
MAX_ROUNDS = 120
TEST_BUDGET_S = 75.0
READY_TIMEOUT_S = 20.0
CHILD_TIMEOUT_S = 20.0
ROUND_STEP = timedelta(hours=1, seconds=1)  # past USAGE_EVERY_S: every round fetches usage again
DELAY_SPREAD = 1.3  # kill delays are drawn from 0 to 1.3 x a full run's length (median of the last few)
RUNS_REMEMBERED = 9
POLL_S = 0.002

# The child imports everything, says "ready", then waits for the instant to pin its clock to and
# runs the CLI as systemd does. The next round's child is started while this one runs, so its
# start-up (most of a sync's wall time) overlaps instead of adding up.
CHILD = """
import sys
from datetime import datetime
import home_energy.clock as clock
pinned = []
clock.now_utc = lambda: pinned[0]
import requests, fastjsonschema
import home_energy.amber, home_energy.cli, home_energy.store, home_energy.sync
print("ready", flush=True)
pinned.append(datetime.fromisoformat(sys.stdin.readline().strip()))
sys.exit(home_energy.cli.main(["sync"]))
"""


def _spawn(env: dict[str, str], stderr) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=stderr, text=True)


def _go(child: subprocess.Popen, at: datetime) -> float:
    """Wait for the child's "ready", send it its instant; returns when it was sent."""
    ready, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT_S)
    assert ready and child.stdout.readline().strip() == "ready", "sync child did not start"
    child.stdin.write(at.isoformat() + "\n")
    child.stdin.flush()
    return time.monotonic()


def _reap(child: subprocess.Popen) -> int:
    code = child.wait(timeout=CHILD_TIMEOUT_S)
    for stream in (child.stdin, child.stdout):
        stream.close()
    return code


def _backup(source: Path, target: Path) -> None:
    for stale in target.parent.glob(target.name + "*"):
        stale.unlink()
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def cache_state(path: Path) -> str:
    """The data tables and the meta the sync keeps, without the integrity check's own stamp."""
    meta = [row for row in table_rows(path, ("meta",))["meta"] if row[0] != "integrity_checked_at"]
    return fingerprint(path, DATA_TABLES) + repr(meta)


def test_kill_9_at_random_moments_leaves_the_old_or_the_new_state(tmp_path, monkeypatch):
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    cache = tmp_path / "cache.sqlite"
    shadow = tmp_path / "shadow" / "cache.sqlite"
    shadow.parent.mkdir()
    pinned = {"now": datetime(2026, 11, 18, 1, 7, 30, tzinfo=UTC)}  # a fixed day: no test reads the date
    # The fake answers for the pinned time too, so a round's answers do not depend on the wall clock.
    monkeypatch.setattr(fake_module, "now_utc", lambda: pinned["now"])
    for module in (clock_module, store_cache_module, store_sync_module, sync_module, amber_module):
        monkeypatch.setattr(module, "now_utc", lambda: pinned["now"])

    # The fake checks each body against the OpenAPI document before sending it; its builders are
    # proven by the other tests, and here that check would be most of every round's time.
    monkeypatch.setattr(fake_module, "assert_valid_amber", lambda component, body: None)
    state = FakeAmberState(sites=[site()])
    with FakeAmber(state) as amber:
        env = cli_env(cache, AMBER_TOKEN=TOKEN, AMBER_API_URL=amber.url)
        shadow_config = load_config(env={"SQLITE_PATH": str(shadow), "AMBER_TOKEN": TOKEN,
                                         "AMBER_API_URL": amber.url})

        def finish_on_shadow() -> str:
            state.remaining = state.rate_limit
            report = run_sync(shadow_config, AmberClient(amber.url, shadow_config.amber_token, read_timeout_s=5))
            assert report.exit_code == 0, report.error
            return cache_state(shadow)

        # A full run first, to learn how long one takes from "go" to exit.
        state.remaining = state.rate_limit
        with (tmp_path / "first-run.err").open("w") as errors:
            child = _spawn(env, errors)
            started = _go(child, pinned["now"])
            code = _reap(child)
        run_s = time.monotonic() - started
        full_runs = [run_s]
        assert code == 0, (tmp_path / "first-run.err").read_text()

        kills = kept_old = got_new = rounds = 0
        deadline = time.monotonic() + TEST_BUDGET_S
        upcoming = _spawn(env, subprocess.DEVNULL)
        try:
            while kills < KILLS_REQUIRED and rounds < MAX_ROUNDS and time.monotonic() < deadline:
                rounds += 1
                pinned["now"] += ROUND_STEP
                before = cache_state(cache)
                _backup(cache, shadow)
                state.remaining = state.rate_limit
                delay = rng.uniform(0, run_s * DELAY_SPREAD)
                child, upcoming = upcoming, None
                started = _go(child, pinned["now"])
                upcoming = _spawn(env, subprocess.DEVNULL)
                while child.poll() is None and time.monotonic() - started < delay:
                    time.sleep(POLL_S)
                if child.poll() is None:
                    child.send_signal(signal.SIGKILL)
                else:  # it finished first: learn from it how long a run takes now
                    full_runs.append(time.monotonic() - started)
                    run_s = statistics.median(full_runs[-RUNS_REMEMBERED:])
                code = _reap(child)
                killed = code == -signal.SIGKILL
                kills += killed

                assert integrity(cache) == "ok", f"round {rounds} (seed {seed}, delay {delay:.3f} s)"
                after = cache_state(cache)
                if after == before:
                    assert killed, f"round {rounds}: a sync that ran to the end wrote nothing (seed {seed})"
                    kept_old += 1
                    continue
                assert after == finish_on_shadow(), (
                    f"round {rounds}: the cache is neither the state before nor the finished sync's "
                    f"(seed {seed}, delay {delay:.3f} s, exit {code})")
                got_new += 1
        finally:
            if upcoming is not None:
                upcoming.kill()
                _reap(upcoming)

    assert kills >= KILLS_REQUIRED, f"only {kills} kills in {rounds} rounds (seed {seed}, run {run_s:.2f} s)"
    # Both outcomes must have been seen, or the random delays never straddled the commit.
    assert kept_old and got_new, f"old kept {kept_old}, new {got_new} (seed {seed})"
