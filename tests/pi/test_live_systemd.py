"""The appliance under a real systemd: install, restarts, a power cut and updates, as on a Pi.

A second systemd (the distribution's, 252 on Debian 12 as on Raspberry Pi OS Bookworm) boots as
PID 1 of a new PID and mount namespace over a copy-on-write overlay of `/`, so nothing on the
machine changes. Inside it a Pi-like user `pi` with passwordless sudo clones the project from a
bare origin to /opt/home-energy-analysis and runs `sudo ./pi/install.sh` for real; the tests then
check what a household relies on: the units run hardened and limited, the timer fires by itself,
a crash and a power cut heal, and `pi/update.sh` cannot strand the display, even when killed.

The namespace shares the machine's network: the dashboard listens on a free port chosen here (set
in the env file, which also proves update.sh reads it) and is probed from outside. The tests in
this module run in order on one booted system and each leaves it healthy. The Pi clones the
committed HEAD of this checkout: commit before running it.
"""
from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKOUT = "/opt/home-energy-analysis"
ORIGIN = "/srv/home-energy-origin.git"
SRC = "/home/pi/src"
ENV_FILE = "/etc/home-energy-analysis/dashboard.env"
CACHE = "/var/lib/home-energy-analysis/cache.sqlite"
DASHBOARD = "home-energy-dashboard.service"
SYNC = "home-energy-sync-cache.service"
TIMER = "home-energy-sync-cache.timer"
METER = "home-energy-meter.service"

BOOT_SCRIPT = """#!/bin/sh
# Runs in the new namespaces: the overlay becomes / and systemd becomes PID 1.
set -e
dir="$1"
mkdir -p "$dir/upper" "$dir/work" "$dir/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
mount -t proc proc "$dir/root/proc"
mount --rbind /sys "$dir/root/sys"
mount --rbind /dev "$dir/root/dev"
mount -t tmpfs tmpfs "$dir/root/run"
mount -t tmpfs tmpfs "$dir/root/tmp"
cd "$dir/root"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
export container=other
exec /lib/systemd/systemd --system --log-target=null
"""

# Prints "PEAK LIMIT" in bytes for the memory cgroup of a process (default: itself), on the
# unified hierarchy (memory.peak) or the legacy one (memory.max_usage_in_bytes).
CGROUP_PEAK = """#!/bin/sh
pid="${1:-$$}"
legacy="$(sed -n 's/^[0-9]*:memory:\\(.*\\)$/\\1/p' "/proc/$pid/cgroup")"
if [ -n "$legacy" ]; then
  d="/sys/fs/cgroup/memory$legacy"
  echo "$(cat "$d/memory.max_usage_in_bytes") $(cat "$d/memory.limit_in_bytes")"
else
  d="/sys/fs/cgroup$(sed -n 's/^0::\\(.*\\)$/\\1/p' "/proc/$pid/cgroup")"
  echo "$(cat "$d/memory.peak") $(cat "$d/memory.max")"
fi
"""

SYNC_PEAK_DROPIN = """[Service]
ExecStopPost=+/bin/sh -c '/usr/local/sbin/cgroup-peak >/run/home-energy-sync.peak'
"""


OVERLAY_PROBE = """\
set -e
mkdir -p "$1/upper" "$1/work" "$1/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$1/root"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _why_not_possible() -> str | None:
    if os.geteuid() != 0:
        return "needs root to boot systemd in a namespace"
    if not Path("/lib/systemd/systemd").exists() or not shutil.which("unshare"):
        return "needs systemd and unshare installed"
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "-q", "HEAD"],
                      capture_output=True).returncode != 0:
        return "the project is not a git checkout (the Pi clones its HEAD)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount", "true"], capture_output=True, text=True,
                           timeout=30)
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip()}"
    # The boot mounts an overlay of / with its upper layer in /var/tmp; where /var/tmp is itself
    # an overlay (a container's), the kernel refuses. Try it in a throwaway mount namespace first.
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="home-energy-overlay-probe-") as folder:
        mount = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", OVERLAY_PROBE, "sh",
                                folder], capture_output=True, text=True, timeout=30)
    if mount.returncode != 0:
        lines = mount.stderr.strip().splitlines() or [f"exit {mount.returncode}"]
        return f"cannot mount an overlay of / over /var/tmp: {lines[0].strip()}"
    return None


# One skip for the whole module, with a reason the suite's skip policy accepts as the machine's.
_REASON = _why_not_possible()
if _REASON:
    pytest.skip(f"this machine does not permit the live systemd test: {_REASON}", allow_module_level=True)


class BootedSystem:
    """systemd as PID 1 of a namespace over an overlay of /; the overlay outlives power cuts."""

    def __init__(self, base: Path, port: int):
        self.base = base
        self.port = port
        self.script = base / "boot.sh"
        self.script.write_text(BOOT_SCRIPT)
        self.script.chmod(0o755)
        self.unshare: subprocess.Popen | None = None
        self.pid = 0

    def boot(self) -> float:
        started = time.monotonic()
        log = open(self.base / "boot.log", "ab")
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--propagation", "private",
             str(self.script), str(self.base)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = children.read_text().split() if children.exists() else []
            if text:
                self.pid = int(text[0])
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return time.monotonic() - started
            if self.unshare.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"systemd did not come up: {(self.base / 'boot.log').read_text()[-2000:]}")

    def run(self, *cmd: str, user: str | None = None, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        inner = list(cmd)
        if env:
            inner = ["env", *(f"{k}={v}" for k, v in env.items()), *inner]
        if cwd:
            inner = ["sh", "-c", 'cd "$0" && exec "$@"', cwd, *inner]
        if user:
            inner = ["runuser", "-u", user, "--", *inner]
        result = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--", *inner],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run("bash", "-c", script, **kwargs)

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def power_cut(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.unshare.wait(timeout=30)

    def shutdown(self) -> None:
        if self.unshare is None or self.unshare.poll() is not None:
            return
        self.run("systemctl", "--no-block", "poweroff", check=False, timeout=20)
        try:
            self.unshare.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.unshare.wait(timeout=30)

    # --- the appliance ---

    def health(self) -> dict | None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}/api/health", timeout=3) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def wait_healthy(self, version: str, timeout_s: float) -> tuple[dict, float]:
        started = time.monotonic()
        body = None
        while time.monotonic() - started < timeout_s:
            body = self.health()
            if body and body.get("status") == "ok" and body.get("version") == version:
                return body, time.monotonic() - started
            time.sleep(0.25)
        raise AssertionError(f"not healthy with {version} within {timeout_s}s; last answer: {body}")

    def head(self) -> str:
        return self.run("git", "-C", CHECKOUT, "rev-parse", "HEAD", user="pi").stdout.strip()

    def push(self, message: str, script: str) -> str:
        """As pi: change the source clone with a shell script, commit, push to origin."""
        self.sh(f"cd {SRC} && {script} && git add -A && "
                f"git -c user.name=pi -c user.email=pi@kitchen.invalid commit -q -m '{message}' && "
                "git push -q origin main", user="pi")
        return self.run("git", "-C", SRC, "rev-parse", "HEAD", user="pi").stdout.strip()

    def update(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("./pi/update.sh", *args, user="pi", cwd=CHECKOUT, check=False, timeout=240,
                        env={"HEALTH_TIMEOUT_S": "30", **(env or {})})

    def seconds_to_next_elapse(self, timer: str) -> float:
        """From now to the timer's next run: its calendar (realtime) or boot-relative (monotonic) elapse."""
        realtime = self.run("systemctl", "show", "-p", "NextElapseUSecRealtime", "--value", timer,
                            env={"TZ": "UTC"}).stdout.strip()
        monotonic = self.show(timer, "NextElapseUSecMonotonic")
        waits = []
        if realtime:
            at = datetime.datetime.strptime(realtime.rsplit(" ", 1)[0], "%a %Y-%m-%d %H:%M:%S")
            waits.append(at.replace(tzinfo=datetime.UTC).timestamp() - time.time())
        if monotonic and monotonic != "0":
            # A time span such as "27min 38.142578s" on CLOCK_MONOTONIC, which this process shares.
            units = {"d": 86400, "h": 3600, "min": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
            total = 0.0
            for part in monotonic.split():
                number = part.rstrip("abcdefghijklmnopqrstuvwxyz")
                total += float(number) * units[part[len(number):]]
            waits.append(total - time.monotonic())
        assert waits, f"{timer} has no next elapse"
        return max(0.0, min(waits))

    def active(self, unit: str) -> str:
        return self.run("systemctl", "is-active", unit, check=False).stdout.strip()

    def cache_facts(self) -> tuple[str, int]:
        out = self.run("python3", "-c", (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
            "print(c.execute('PRAGMA quick_check').fetchone()[0],"
            " c.execute('SELECT count(*) FROM prices').fetchone()[0])"), CACHE, user="homeenergy").stdout.split()
        return out[0], int(out[1])


@pytest.fixture(scope="module")
def pi(tmp_path_factory):
    base = Path("/var/tmp") / f"home-energy-live-{os.getpid()}"
    base.mkdir(mode=0o700)
    system = BootedSystem(base, _free_port())
    # This checkout's HEAD as a bundle beside the overlay, written before the boot: the checkout
    # itself may live where the namespace cannot see it (its /tmp is a fresh tmpfs).
    bundle = base / "head.bundle"
    subprocess.run(["git", "-C", str(REPO), "bundle", "create", "-q", str(bundle), "HEAD"], check=True,
                   capture_output=True, timeout=120)
    bundle.chmod(0o644)
    try:
        system.boot()
        if system.run("sh", "-c", "command -v sudo", check=False).returncode != 0:
            # The machine image lacks sudo (a Pi has it): install it inside the overlay only.
            system.run("apt-get", "install", "-y", "-q", "sudo", timeout=300)
        system.sh("useradd -m -s /bin/bash pi && "
                  "echo 'pi ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/010_pi-nopasswd && "
                  "chmod 0440 /etc/sudoers.d/010_pi-nopasswd")
        system.sh(f"cat >/usr/local/sbin/cgroup-peak <<'EOF'\n{CGROUP_PEAK}EOF\nchmod 0755 /usr/local/sbin/cgroup-peak")
        # The origin holds this checkout's HEAD as main; pi clones it as on a fresh Pi.
        system.sh(f"git init -q --bare {ORIGIN} && git -C {ORIGIN} fetch -q {bundle} HEAD:refs/heads/main && "
                  f"git -C {ORIGIN} symbolic-ref HEAD refs/heads/main && chown -R pi:pi {ORIGIN} && "
                  f"install -d -o pi -g pi {CHECKOUT}")
        system.run("git", "clone", "-q", "--no-local", ORIGIN, CHECKOUT, user="pi")
        system.run("git", "clone", "-q", "--no-local", ORIGIN, SRC, user="pi")
        # The household's settings before the install: a port of our choosing, demo data.
        system.sh(f"install -d -m 0755 /etc/home-energy-analysis && "
                  f"sed 's/^PORT=.*/PORT={system.port}/' {CHECKOUT}/pi/dashboard.env.example >{ENV_FILE} && "
                  f"chmod 0640 {ENV_FILE}")
        started = time.monotonic()
        install = system.run("sudo", "./pi/install.sh", user="pi", cwd=CHECKOUT, timeout=400)
        system.install_seconds = time.monotonic() - started
        system.install_output = install.stdout
        yield system
    finally:
        system.shutdown()
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False, timeout=120)


def test_install_enables_and_starts_the_units_and_health_is_ok(pi: BootedSystem):
    assert "done:" in pi.install_output
    for unit in (DASHBOARD, TIMER, METER):
        assert pi.run("systemctl", "is-enabled", unit, check=False).stdout.strip() == "enabled", unit
    assert pi.active(DASHBOARD) == "active" and pi.active(TIMER) == "active"
    body, _ = pi.wait_healthy(pi.head(), timeout_s=60)
    assert body["mode"] == "demo"
    assert body["last_sync"]["outcome"] == "ok"
    for unit in (DASHBOARD, SYNC, TIMER, METER):
        verify = pi.run("systemd-analyze", "verify", f"/etc/systemd/system/{unit}", check=False)
        assert (verify.returncode, verify.stdout + verify.stderr) == (0, ""), unit


def test_the_sync_runs_as_the_service_user_and_writes_nothing_in_the_checkout(pi: BootedSystem):
    pi.run("systemctl", "start", SYNC)
    assert pi.show(SYNC, "Result") == "success"
    assert pi.run("stat", "-c", "%U:%G %a", CACHE).stdout.split() == ["homeenergy:homeenergy", "600"]
    assert pi.run("find", CHECKOUT, "-user", "homeenergy").stdout == ""
    assert pi.run("git", "-C", CHECKOUT, "status", "--porcelain", user="pi").stdout == ""
    assert pi.cache_facts()[0] == "ok"


def test_every_service_is_hardened_on_the_running_system(pi: BootedSystem):
    for unit in (DASHBOARD, SYNC, METER):
        out = pi.run("systemd-analyze", "security", "--no-pager", unit).stdout
        score = float(out.rsplit("Overall exposure level for ", 1)[1].split(":")[1].split()[0])
        assert score <= 2.0, (unit, score)


def test_the_dashboard_never_receives_the_amber_token(pi: BootedSystem):
    main_pid = pi.show(DASHBOARD, "MainPID")
    environ = pi.run("cat", f"/proc/{main_pid}/environ").stdout.split("\0")
    names = {entry.partition("=")[0] for entry in environ if entry}
    assert f"PORT={pi.port}" in environ  # the env file did reach it
    assert "AMBER_TOKEN" not in names


def test_memory_and_tasks_stay_well_under_the_units_limits(pi: BootedSystem):
    # A full cache (the retention period of history) and its heaviest answers, four at a time.
    pi.run(f"{CHECKOUT}/.venv/bin/home-energy", "--env-file", ENV_FILE, "seed-demo", "--days", "90",
           user="homeenergy", timeout=300)
    today = datetime.date.today()
    heavy = f"/api/usage?from={today - datetime.timedelta(days=92)}&to={today}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch(path: str) -> int:
        with opener.open(f"http://127.0.0.1:{pi.port}{path}", timeout=60) as response:
            return len(response.read())

    paths = ("/", "/api/current", "/api/prices?hours=48", "/api/summary", "/api/usage", heavy, heavy) * 4
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(size > 0 for size in pool.map(fetch, paths))
    peak, limit = map(int, pi.run("/usr/local/sbin/cgroup-peak", pi.show(DASHBOARD, "MainPID")).stdout.split())
    tasks, tasks_max = int(pi.show(DASHBOARD, "TasksCurrent")), int(pi.show(DASHBOARD, "TasksMax"))
    print(f"\ndashboard: memory peak {peak / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB, tasks {tasks} of {tasks_max}")
    assert limit == int(pi.show(DASHBOARD, "MemoryMax"))
    assert peak * 2 <= limit and tasks * 2 <= tasks_max
    # The sync is over in a second: its cgroup's peak is read as it ends.
    pi.sh(f"mkdir -p /run/systemd/system/{SYNC}.d && cat >/run/systemd/system/{SYNC}.d/peak.conf <<'EOF'\n"
          f"{SYNC_PEAK_DROPIN}EOF\nsystemctl daemon-reload")
    try:
        pi.run("systemctl", "start", SYNC)
        sync_peak, sync_limit = map(int, pi.run("cat", "/run/home-energy-sync.peak").stdout.split())
    finally:
        pi.sh(f"rm -rf /run/systemd/system/{SYNC}.d && systemctl daemon-reload")
    print(f"sync: memory peak {sync_peak / 2**20:.1f} MiB of {sync_limit / 2**20:.0f} MiB")
    assert sync_limit == int(pi.show(SYNC, "MemoryMax"))
    assert sync_peak * 2 <= sync_limit


def test_a_killed_dashboard_is_healthy_again_within_10_seconds(pi: BootedSystem):
    before = pi.show(DASHBOARD, "MainPID")
    pi.run("kill", "-9", before)
    _, seconds = pi.wait_healthy(pi.head(), timeout_s=10)
    assert pi.show(DASHBOARD, "MainPID") not in ("0", before)
    print(f"\nhealthy again {seconds:.1f} s after kill -9")


def test_a_power_cut_heals_with_the_cache_intact_and_the_timer_fires_by_itself(pi: BootedSystem):
    check, prices = pi.cache_facts()
    assert check == "ok" and prices > 0
    synced = pi.health()["last_sync"]["at"]
    head = pi.head()
    pi.power_cut()
    boot_seconds = pi.boot()
    _, seconds = pi.wait_healthy(head, timeout_s=60)
    check_after, prices_after = pi.cache_facts()
    assert check_after == "ok" and prices_after >= prices
    # Nobody starts the sync: the timer does (30 s after boot, then every five minutes). Wait for
    # its next elapse, not longer.
    wait = pi.seconds_to_next_elapse(TIMER)
    assert wait <= 60, f"the timer's next run is {wait:.0f} s away after a boot"
    deadline = time.monotonic() + wait + 30
    while time.monotonic() < deadline and pi.health()["last_sync"]["at"] == synced:
        time.sleep(1)
    assert pi.health()["last_sync"]["at"] != synced
    assert pi.show(TIMER, "LastTriggerUSec") != ""
    assert pi.show(SYNC, "Result") == "success"
    print(f"\nboot {boot_seconds:.1f} s, healthy {seconds:.1f} s after boot; timer fired by itself after {wait:.0f} s")


def test_update_to_a_good_commit_then_a_broken_one_is_rolled_back(pi: BootedSystem):
    old = pi.head()
    good = pi.push("Say more in the README", "echo 'A newer line.' >>README.md")
    result = pi.update()
    assert result.returncode == 0, result.stdout + result.stderr
    # The port of the env file, as the program reads it (not a default, not update.sh's own parsing).
    assert f"for http://127.0.0.1:{pi.port}/api/health to report" in result.stdout
    assert "config --health-url did not answer" not in result.stdout
    assert pi.head() == good != old
    pi.wait_healthy(good, timeout_s=10)
    broken = pi.push("A build that cannot serve",
                     "echo 'raise RuntimeError(\"this build cannot serve\")' >>home_energy/web.py")
    result = pi.update()
    assert result.returncode == 1, result.stdout + result.stderr
    assert pi.head() == good
    pi.wait_healthy(good, timeout_s=30)
    assert pi.active(TIMER) == "active"
    again = pi.update()
    assert again.returncode == 2 and "which was rolled back" in again.stdout, again.stdout
    assert pi.head() == good
    fixed = pi.push("Serve again", "git revert --no-edit -n HEAD")
    assert fixed != broken


@pytest.mark.parametrize("point", ["fetched", "fast-forwarded", "syncing"])
def test_an_update_killed_at_any_point_is_finished_by_the_next_run(pi: BootedSystem, point: str):
    before = pi.head()
    target = pi.push(f"Another line ({point})", f"echo 'Killed at {point}.' >>README.md")
    killed = pi.update(env={"HOME_ENERGY_UPDATE_KILL_AT": point})
    assert killed.returncode == 128 + signal.SIGKILL, killed.stdout + killed.stderr
    assert pi.active(TIMER) != "active"  # what a killed update leaves behind
    result = pi.update()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "an earlier update stopped while" in result.stdout
    assert pi.head() == target != before
    pi.wait_healthy(target, timeout_s=10)
    assert pi.active(TIMER) == "active" and pi.active(DASHBOARD) == "active"
