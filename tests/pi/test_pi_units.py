"""The systemd units in pi/systemd: clean `systemd-analyze verify`, hardening, the timer schedule."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from home_energy.config import load_config
from tests.pi.pi_harness import PI, REPO

UNITS = ("home-energy-dashboard.service", "home-energy-sync-cache.service", "home-energy-sync-cache.timer",
         "home-energy-meter.service", "home-energy-publish.service", "home-energy-control.service")
SERVICES = (UNITS[0], UNITS[1], UNITS[3], UNITS[4], UNITS[5])
PUBLISH_EXPOSURE_MAX = 2.0
CONTROL_EXPOSURE_MAX = 2.0  # the plug controller switches mains loads: at least as tight as the others
EXPOSURE_RECORD = re.compile(r"Recorded exposure score: \*\*(\d+\.\d)\*\*")


def unit_keys(name: str) -> dict[str, list[str]]:
    """Key -> values (systemd allows repeated keys) across all sections of a unit file."""
    keys: dict[str, list[str]] = {}
    for line in (PI / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def exec_paths(name: str) -> set[str]:
    return {values.split()[0].lstrip("-@:+!") for key, vals in unit_keys(name).items()
            if key.startswith("Exec") for values in vals}


@pytest.fixture
def systemd_root(tmp_path: Path) -> Path:
    """A root with the distribution's units, ours under /etc, and stubs at our ExecStart paths."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(PI / "systemd" / name, unit_dir / name)
    for name in SERVICES:
        for path in exec_paths(name):
            stub = root / path.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    env_file = root / "etc/home-energy-analysis/dashboard.env"
    env_file.parent.mkdir(parents=True)
    shutil.copy(PI / "dashboard.env.example", env_file)
    return root


def verify(root: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", str(root / "etc/systemd/system" / name)],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_without_any_output(systemd_root: Path, name: str):
    result = verify(systemd_root, name)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_reports_a_mistake_it_still_exits_zero_on(systemd_root: Path):
    """Why the test above insists on no output: verify exits 0 on an unknown key."""
    unit = systemd_root / "etc/systemd/system" / SERVICES[0]
    unit.write_text(unit.read_text().replace("[Service]\n", "[Service]\nProtectEverything=yes\n"))
    result = verify(systemd_root, SERVICES[0])
    assert "Unknown key" in result.stdout + result.stderr


def test_services_run_the_checkouts_home_energy_command():
    assert exec_paths(SERVICES[0]) == exec_paths(SERVICES[1]) == exec_paths(SERVICES[2]) == \
        exec_paths(SERVICES[3]) == exec_paths(SERVICES[4]) == {"/opt/home-energy-analysis/.venv/bin/home-energy"}
    dashboard, sync = unit_keys(SERVICES[0]), unit_keys(SERVICES[1])
    assert dashboard["ExecStart"] == ["/opt/home-energy-analysis/.venv/bin/home-energy serve"]
    assert dashboard["ExecStartPre"] == ["/opt/home-energy-analysis/.venv/bin/home-energy init-db"]
    assert dashboard["Restart"] == ["on-failure"]
    assert sync["ExecStart"] == ["/opt/home-energy-analysis/.venv/bin/home-energy sync"]
    assert sync["Type"] == ["oneshot"]
    assert "TimeoutStartSec" in sync
    meter = unit_keys(SERVICES[2])
    assert meter["ExecStart"] == ["/opt/home-energy-analysis/.venv/bin/home-energy collect"]
    assert meter["Restart"] == ["on-failure"]
    assert meter["WantedBy"] == ["multi-user.target"]
    publish = unit_keys(SERVICES[3])
    assert publish["ExecStart"] == ["/opt/home-energy-analysis/.venv/bin/home-energy publish"]
    assert publish["Restart"] == ["on-failure"] and publish["RestartPreventExitStatus"] == ["78"]
    control = unit_keys(SERVICES[4])
    assert control["ExecStart"] == ["/opt/home-energy-analysis/.venv/bin/home-energy control"]
    assert control["Restart"] == ["on-failure"] and control["RestartPreventExitStatus"] == ["78"]
    assert control["WantedBy"] == ["multi-user.target"]


def _bytes(size: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_memory_and_task_limits(name: str):
    keys = unit_keys(name)
    assert 16 * 2**20 <= _bytes(keys["MemoryMax"][0]) <= 512 * 2**20
    assert 4 <= int(keys["TasksMax"][0]) <= 64


def test_only_the_sync_receives_the_amber_token_and_only_the_collector_the_meter_password():
    assert unit_keys(SERVICES[0])["UnsetEnvironment"] == ["AMBER_TOKEN METER_PASSWORD MQTT_PASSWORD"]
    assert unit_keys(SERVICES[2])["UnsetEnvironment"] == ["AMBER_TOKEN MQTT_PASSWORD"]
    # The plug controller takes Home Assistant's switch commands from the broker: it keeps MQTT_PASSWORD.
    assert unit_keys(SERVICES[4])["UnsetEnvironment"] == ["AMBER_TOKEN METER_PASSWORD"]
    assert "UnsetEnvironment" not in unit_keys(SERVICES[1])


def test_memory_limits_are_the_ones_docs_deploy_states():
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in SERVICES:
        keys = unit_keys(name)
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |") and "MemoryMax=" in line]
        assert len(rows) == 1, name
        row = rows[0]
        assert f"`MemoryMax={keys['MemoryMax'][0]}`" in row and f"`TasksMax={keys['TasksMax'][0]}`" in row


@pytest.mark.parametrize("name", SERVICES)
def test_service_is_sandboxed_with_only_the_cache_writable(name: str):
    keys = unit_keys(name)
    for key, value in {
        "User": "homeenergy", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "read-only", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "StateDirectory": "home-energy-analysis", "CapabilityBoundingSet": "",
        "EnvironmentFile": "/etc/home-energy-analysis/dashboard.env",
        "WorkingDirectory": "/var/lib/home-energy-analysis",
    }.items():
        assert keys.get(key) == [value], key
    assert "ReadWritePaths" not in keys


def test_sync_can_reach_amber_and_the_dashboard_only_loopback():
    sync, dashboard = unit_keys(SERVICES[1]), unit_keys(SERVICES[0])
    assert "PrivateNetwork" not in sync and "IPAddressDeny" not in sync
    assert "AF_INET" in sync["RestrictAddressFamilies"][0].split()
    assert "network-online.target" in sync["After"][0].split()
    assert dashboard["IPAddressDeny"] == ["any"] and dashboard["IPAddressAllow"] == ["localhost"]


def test_timer_runs_shortly_after_every_five_minute_boundary_and_after_boot():
    keys = unit_keys(UNITS[2])
    assert keys["Persistent"] == ["true"]
    assert keys["Unit"] == [SERVICES[1]]
    assert keys["WantedBy"] == ["timers.target"]
    boot = keys["OnBootSec"][0]
    assert boot.endswith("s") and int(boot[:-1]) <= 120
    delay = keys["RandomizedDelaySec"][0]
    assert delay.endswith("s") and int(delay[:-1]) < 60
    result = subprocess.run(["systemd-analyze", "calendar", "--iterations=3", keys["OnCalendar"][0]],
                            capture_output=True, text=True, timeout=30, check=True)
    assert "Normalized form: *-*-* *:00/5:20" in result.stdout
    times = re.findall(r"\d\d:(\d\d):(\d\d) ", result.stdout)
    assert len(times) == 3
    assert all(int(minute) % 5 == 0 and second == "20" for minute, second in times)


def test_dashboard_exposure_is_no_worse_than_the_recorded_score(systemd_root: Path):
    recorded = EXPOSURE_RECORD.search((REPO / "docs" / "deploy.md").read_text(encoding="utf-8"))
    assert recorded, "docs/deploy.md must say: Recorded exposure score: **N.N**"
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--root={systemd_root}", "--no-pager", SERVICES[0]],
        capture_output=True, text=True, timeout=60,
    )
    measured = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert measured, result.stdout + result.stderr
    assert float(measured.group(1)) <= float(recorded.group(1))


def test_publisher_exposure_is_at_most_2(systemd_root: Path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--root={systemd_root}", "--no-pager", SERVICES[3]],
        capture_output=True, text=True, timeout=60,
    )
    measured = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert measured, result.stdout + result.stderr
    assert float(measured.group(1)) <= PUBLISH_EXPOSURE_MAX


def test_env_example_is_valid_configuration_pointing_at_the_state_directory():
    config = load_config(env={}, env_file=PI / "dashboard.env.example")
    assert str(config.sqlite_path) == "/var/lib/home-energy-analysis/cache.sqlite"
    assert (config.mode, config.host, config.port) == ("demo", "127.0.0.1", 5050)


def test_the_plug_controller_is_exposed_no_more_than_the_limit_and_kept_off_the_internet(systemd_root: Path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--root={systemd_root}", "--no-pager", SERVICES[4]],
        capture_output=True, text=True, timeout=60,
    )
    measured = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert measured, result.stdout + result.stderr
    assert float(measured.group(1)) <= CONTROL_EXPOSURE_MAX
    keys = unit_keys(SERVICES[4])
    assert keys["IPAddressDeny"] == ["any"]
    allowed = keys["IPAddressAllow"][0].split()
    assert "192.168.0.0/16" in allowed and "0.0.0.0/0" not in allowed and "any" not in allowed
    assert "localhost" in allowed  # a broker on this Pi (Home Assistant's switch commands)
