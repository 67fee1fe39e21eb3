"""pi/update.sh end to end: a bare origin, a Pi checkout, stub systemctl/sudo, a real server."""
from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from home_energy.store import SCHEMA_VERSION
from tests.pi.pi_harness import FakePi, git


def touch_readme(src: Path) -> None:
    with (src / "README.md").open("a") as fh:
        fh.write("\nA line added by a newer commit.\n")


def break_the_server_and_add_a_migration(src: Path) -> None:
    """A commit that migrates the cache, changes the dependencies, and cannot serve."""
    with (src / "home_energy" / "store" / "migrations.py").open("a") as fh:
        fh.write('\nMIGRATIONS = MIGRATIONS + (("CREATE TABLE update_probe (x INTEGER)",),)\n'
                 "SCHEMA_VERSION = len(MIGRATIONS)\n")
    with (src / "home_energy" / "web.py").open("a") as fh:
        fh.write('\nraise RuntimeError("this build cannot serve")\n')
    with (src / "pyproject.toml").open("a") as fh:
        fh.write("\n# a dependency change\n")


def calls(pi: FakePi) -> list[str]:
    return pi.stub_log.read_text().splitlines() if pi.stub_log.exists() else []


def schema_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def start_installed_version(pi: FakePi) -> str:
    """The state after install.sh: the current checkout serving its (empty) cache."""
    old = pi.head()
    pi.systemctl("restart", "home-energy-dashboard.service")
    pi.wait_for_version(old)
    pi.stub_log.unlink()
    return old


def test_update_when_already_up_to_date_is_a_no_op(fake_pi: FakePi):
    old = start_installed_version(fake_pi)
    result = fake_pi.update()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already up to date" in result.stdout
    assert fake_pi.head() == old
    assert not any(" restart " in line or " stop " in line for line in calls(fake_pi))


def test_update_refuses_a_dirty_tree_and_changes_nothing(fake_pi: FakePi):
    old = fake_pi.head()
    fake_pi.push_commit("newer", touch_readme)
    readme = fake_pi.checkout / "README.md"
    readme.write_text(readme.read_text() + "local edit\n")
    result = fake_pi.update()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "local changes" in result.stdout
    assert "README.md" in result.stdout
    assert "nothing was changed" in result.stdout
    assert fake_pi.head() == old
    assert readme.read_text().endswith("local edit\n")
    assert not any(line.startswith("systemctl") for line in calls(fake_pi))


def test_update_refuses_a_branch_other_than_main(fake_pi: FakePi):
    old = fake_pi.head()
    fake_pi.push_commit("newer", touch_readme)
    git(fake_pi.checkout, "switch", "-q", "-c", "experiment")
    result = fake_pi.update()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "on 'experiment', not 'main'" in result.stdout
    assert git(fake_pi.checkout, "branch", "--show-current") == "experiment"
    assert fake_pi.head() == old
    assert not any(line.startswith("systemctl") for line in calls(fake_pi))


def test_update_refuses_without_passwordless_sudo(fake_pi: FakePi):
    old = fake_pi.head()
    fake_pi.push_commit("newer", touch_readme)
    fake_pi.env["STUB_SUDO_NEEDS_PASSWORD"] = "1"
    result = fake_pi.update()
    assert result.returncode == 2
    assert "passwordless sudo" in result.stdout
    assert fake_pi.head() == old


def test_update_fast_forwards_restarts_and_waits_for_the_new_version(fake_pi: FakePi):
    old = start_installed_version(fake_pi)
    new = fake_pi.push_commit("Say more in the README", touch_readme)
    result = fake_pi.update()
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert fake_pi.head() == new
    assert fake_pi.health()["version"] == new
    log = calls(fake_pi)
    assert "systemctl stop home-energy-sync-cache.timer home-energy-sync-cache.service" in log
    assert "systemctl restart home-energy-dashboard.service" in log
    assert "systemctl start home-energy-sync-cache.service" in log
    assert log.index("systemctl restart home-energy-dashboard.service") > log.index(
        "systemctl stop home-energy-sync-cache.timer home-energy-sync-cache.service")
    assert log[-1] != "systemctl stop home-energy-sync-cache.timer home-energy-sync-cache.service"
    assert "systemctl start home-energy-sync-cache.timer" in log
    # The status block: old -> new, the change, units, next timer run, health JSON.
    status = out[out.index("==== home-energy update: updated ===="):]
    assert f"commit:    {old} -> {new}" in status
    assert "Say more in the README" in status
    assert re.search(r"home-energy-dashboard.service\s+active", status)
    assert "home-energy-sync-cache.timer home-energy-sync-cache.service" in status
    assert f'"version":"{new}"' in status
    assert "deps:      unchanged" in status
    assert not fake_pi.pip_log.exists()
    backup = Path(str(fake_pi.cache) + ".pre-update")
    assert schema_version(backup) == schema_version(fake_pi.cache) == SCHEMA_VERSION


def test_update_whose_server_fails_health_is_rolled_back(fake_pi: FakePi):
    old = start_installed_version(fake_pi)
    fake_pi.env["HEALTH_TIMEOUT_S"] = "10"  # long enough for the old server to start on a busy machine
    new = fake_pi.push_commit("A build that cannot serve", break_the_server_and_add_a_migration)
    result = fake_pi.update()
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert fake_pi.head() == old
    assert git(fake_pi.checkout, "status", "--porcelain") == ""
    assert fake_pi.wait_for_version(old)["version"] == old
    assert f"did not report {new}" in out
    assert "FAILED, rolled back to the previous version" in out
    # pyproject.toml changed: dependencies installed for the new commit, then for the old one.
    assert fake_pi.pip_log.read_text().count("-m pip install") == 2
    # The new code migrated the cache one schema further; the old code needs its own schema back.
    assert f"cache schema is {SCHEMA_VERSION + 1}, was {SCHEMA_VERSION}" in out
    assert schema_version(fake_pi.cache) == SCHEMA_VERSION
    with sqlite3.connect(fake_pi.cache) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "update_probe" not in tables and "prices" in tables
    # After the restore, the previous version synced once more and serves fresh prices.
    assert calls(fake_pi).count("systemctl start home-energy-sync-cache.service") == 2
    assert fake_pi.health()["status"] == "ok"


def test_update_survives_the_ssh_connection_dropping(fake_pi: FakePi):
    start_installed_version(fake_pi)
    new = fake_pi.push_commit("newer", touch_readme)
    proc = subprocess.Popen([str(fake_pi.checkout / "pi" / "update.sh")], cwd=fake_pi.checkout,
                            env=fake_pi.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    first = proc.stdout.readline()
    match = re.search(r"running as pid (\d+)", first)
    assert match, first
    worker = int(match.group(1))
    # The connection drops: the login session's processes get SIGHUP.
    os.killpg(proc.pid, signal.SIGHUP)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode != 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{worker}").exists():
        time.sleep(0.2)
    assert not Path(f"/proc/{worker}").exists(), "the detached update did not finish"
    assert fake_pi.head() == new
    assert fake_pi.health()["version"] == new
    log = Path(git(fake_pi.checkout, "rev-parse", "--path-format=absolute",
                   "--git-path", "home-energy-update.log")).read_text()
    assert "==== home-energy update: updated ====" in log


def test_update_refuses_while_another_update_holds_the_lock(fake_pi: FakePi):
    old = fake_pi.head()
    fake_pi.push_commit("newer", touch_readme)
    lock = git(fake_pi.checkout, "rev-parse", "--path-format=absolute", "--git-path", "home-energy-update.lock")
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = fake_pi.update()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "another update is running" in result.stdout
    assert fake_pi.head() == old


def test_update_refuses_when_local_main_cannot_be_fast_forwarded(fake_pi: FakePi):
    fake_pi.push_commit("upstream change", touch_readme)
    (fake_pi.checkout / "LOCAL.md").write_text("made on the Pi\n")
    git(fake_pi.checkout, "add", "LOCAL.md")
    git(fake_pi.checkout, "commit", "-q", "-m", "local change")
    local = fake_pi.head()
    result = fake_pi.update()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot be fast-forwarded" in result.stdout
    assert fake_pi.head() == local
    assert not any(line.startswith("systemctl") for line in calls(fake_pi))


def test_update_stopped_halfway_puts_the_previous_version_back(fake_pi: FakePi):
    old = start_installed_version(fake_pi)
    new = fake_pi.push_commit("newer", touch_readme)
    fake_pi.env["STUB_SYNC_DELAY_S"] = "1"
    proc = subprocess.Popen([str(fake_pi.checkout / "pi" / "update.sh"), "--foreground"], cwd=fake_pi.checkout,
                            env=fake_pi.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server_log = Path(fake_pi.env["SERVER_LOG"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "sync started" not in server_log.read_text():
        time.sleep(0.1)
    assert git(fake_pi.checkout, "rev-parse", "HEAD") == new  # fast-forwarded, not yet checked
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 1, out
    assert "update.sh stopped unexpectedly (exit 143)" in out
    assert fake_pi.head() == old
    assert fake_pi.wait_for_version(old)["version"] == old


def test_update_finds_the_cache_in_the_env_file_and_never_shows_the_token(fake_pi: FakePi):
    token = "psk_kitchen0123456789abcdef"
    cache = fake_pi.root / "env-state" / "cache.sqlite"
    env_file = fake_pi.root / "dashboard.env"
    env_file.write_text(f'AMBER_TOKEN={token}\nAMBER_API_URL=http://127.0.0.1:9/v1\nSQLITE_PATH="{cache}"\n')
    del fake_pi.env["SQLITE_PATH"]
    fake_pi.env["HOME_ENERGY_ENV_FILE"] = str(env_file)  # what the services and update.sh read
    old = start_installed_version(fake_pi)
    new = fake_pi.push_commit("newer", touch_readme)
    result = fake_pi.update()
    log = Path(git(fake_pi.checkout, "rev-parse", "--path-format=absolute",
                   "--git-path", "home-energy-update.log")).read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"backing up the cache {cache}" in result.stdout
    assert Path(str(cache) + ".pre-update").exists()
    assert fake_pi.health()["mode"] == "amber" and fake_pi.head() == new != old
    # Amber is unreachable here: the sync fails, which is reported but is no reason to roll back.
    assert "the sync did not succeed" in result.stdout
    for text in (result.stdout, result.stderr, log, fake_pi.stub_log.read_text()):
        assert token not in text


def state_file(pi: FakePi) -> Path:
    return Path(git(pi.checkout, "rev-parse", "--path-format=absolute", "--git-path", "home-energy-update.state"))


def test_already_up_to_date_repairs_a_stopped_dashboard_and_timer(fake_pi: FakePi):
    head = fake_pi.head()
    fake_pi.env["STUB_INACTIVE"] = "home-energy-sync-cache.timer"
    result = fake_pi.update()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already up to date" in result.stdout
    assert "home-energy-sync-cache.timer is not active: starting it" in result.stdout
    assert f"the dashboard does not report {head}" in result.stdout
    log = calls(fake_pi)
    assert "systemctl start home-energy-sync-cache.timer" in log
    assert "systemctl restart home-energy-dashboard.service" in log
    assert fake_pi.health()["version"] == head


def test_a_rolled_back_commit_is_not_applied_again_until_origin_moves_past_it(fake_pi: FakePi):
    old = start_installed_version(fake_pi)
    fake_pi.env["HEALTH_TIMEOUT_S"] = "10"
    broken = fake_pi.push_commit("A build that cannot serve", break_the_server_and_add_a_migration)
    assert fake_pi.update().returncode == 1
    fake_pi.stub_log.unlink()
    again = fake_pi.update()
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"origin/main is {broken}, which was rolled back" in again.stdout
    assert "--retry" in again.stdout
    assert fake_pi.head() == old
    assert not any(" restart " in line or " stop " in line for line in calls(fake_pi))
    retried = fake_pi.update("--retry")
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert f"did not report {broken}" in retried.stdout

    def fix(src: Path) -> None:
        text = (src / "home_energy" / "web.py").read_text()
        (src / "home_energy" / "web.py").write_text(text.replace('raise RuntimeError("this build cannot serve")', ""))
    fixed = fake_pi.push_commit("Serve again", fix)
    result = fake_pi.update()
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_pi.head() == fixed
    assert fake_pi.wait_for_version(fixed)["version"] == fixed


@pytest.mark.parametrize("point", ["fetched", "fast-forwarded", "syncing"])
def test_an_update_killed_at_any_point_is_finished_by_the_next_run(fake_pi: FakePi, point: str):
    old = start_installed_version(fake_pi)
    new = fake_pi.push_commit("newer", touch_readme)
    fake_pi.env["HOME_ENERGY_UPDATE_KILL_AT"] = point
    fake_pi.env["STUB_SYNC_DELAY_S"] = "2"
    killed = fake_pi.update()
    assert killed.returncode == 128 + signal.SIGKILL, killed.stdout + killed.stderr
    assert state_file(fake_pi).exists()
    assert calls(fake_pi)[-1] != "systemctl start home-energy-sync-cache.timer"
    del fake_pi.env["HOME_ENERGY_UPDATE_KILL_AT"]
    fake_pi.stub_log.unlink()
    result = fake_pi.update()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "an earlier update stopped while" in result.stdout
    assert fake_pi.head() == new != old
    assert fake_pi.health()["version"] == new
    assert "systemctl start home-energy-sync-cache.timer" in calls(fake_pi)
    assert not state_file(fake_pi).exists()


def test_a_rollback_that_was_killed_is_carried_out_by_the_next_run(fake_pi: FakePi):
    old = start_installed_version(fake_pi)
    fake_pi.env["HEALTH_TIMEOUT_S"] = "10"
    broken = fake_pi.push_commit("A build that cannot serve", break_the_server_and_add_a_migration)
    fake_pi.env["HOME_ENERGY_UPDATE_KILL_AT"] = "rolling-back"
    killed = fake_pi.update()
    assert killed.returncode == 128 + signal.SIGKILL, killed.stdout + killed.stderr
    assert "PHASE=rolling-back" in state_file(fake_pi).read_text()
    del fake_pi.env["HOME_ENERGY_UPDATE_KILL_AT"]
    result = fake_pi.update()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "an earlier update stopped while rolling-back" in result.stdout
    assert "FAILED, rolled back to the previous version" in result.stdout
    assert fake_pi.head() == old
    assert fake_pi.wait_for_version(old)["version"] == old
    assert schema_version(fake_pi.cache) == SCHEMA_VERSION
    assert not state_file(fake_pi).exists()
    again = fake_pi.update()
    assert again.returncode == 2 and f"origin/main is {broken}, which was rolled back" in again.stdout


class SilentOrigin:
    """A TCP listener that accepts every connection and never says a word: an origin that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def all_hung_up(self, timeout_s: float) -> bool:
        """Whether every accepted connection was closed by the client (EOF) within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for conn in list(self.accepted):
            while True:
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    if conn.recv(4096) == b"":
                        break
                except (TimeoutError, OSError):
                    return False
        return True

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_an_origin_that_never_answers_ends_the_update_and_frees_the_lock(fake_pi: FakePi, scheme: str):
    old = fake_pi.head()
    origin = SilentOrigin()
    try:
        git(fake_pi.checkout, "remote", "set-url", "origin", f"{scheme}://127.0.0.1:{origin.port}/origin.git")
        fake_pi.env["HOME_ENERGY_UPDATE_FETCH_TIMEOUT_S"] = "3"
        started = time.monotonic()
        result = fake_pi.update(timeout=60)
        elapsed = time.monotonic() - started
        assert result.returncode == 2, result.stdout + result.stderr
        assert "origin did not answer git fetch within 3s (network?): try again later" in result.stdout
        assert "nothing was changed" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr
        assert origin.accepted, "git never connected: the test did not try a hanging origin"
        # 3 s, then TERM; KILL 5 s later at the latest; the rest is start-up on a loaded machine.
        assert elapsed < 30, f"the update took {elapsed:.1f} s"
        assert origin.all_hung_up(timeout_s=10), "a git process is still connected to the origin"
        lock = git(fake_pi.checkout, "rev-parse", "--path-format=absolute", "--git-path", "home-energy-update.lock")
        with open(lock, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError while still held
        assert fake_pi.head() == old
    finally:
        origin.close()
