"""pi/install.sh --root: the files it lays down, their modes, idempotence, and the user's env file."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from datetime import date
from pathlib import Path

import pytest

from tests.pi.pi_harness import PI, REPO

UNIT_DIR = Path("etc/systemd/system")
ENV_FILE = Path("etc/home-energy-analysis/dashboard.env")


def install(checkout: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(checkout / "pi" / "install.sh"), "--root", str(root), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, mtime and content (or link target)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                detail = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                detail = None
            state[str(path.relative_to(root))] = (stat.filemode(info.st_mode), info.st_mtime_ns, detail)
    return state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def checkout_with_kiosk(tmp_path: Path) -> Path:
    """A checkout holding pi/ and the kiosk's autostart files."""
    checkout = tmp_path / "checkout"
    shutil.copytree(PI, checkout / "pi")
    kiosk = checkout / "kiosk"
    kiosk.mkdir()
    (kiosk / "labwc-autostart").write_text(
        "# home-energy kiosk for labwc\n/usr/bin/lwrespawn @VENV@/bin/home-energy-kiosk &\n")
    (kiosk / "home-energy-kiosk.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=home-energy kiosk\n"
        'Exec=sh -c "while :; do @VENV@/bin/home-energy-kiosk; sleep 10; done"\n')
    return checkout


def test_install_lays_down_units_env_file_and_state_directory_with_their_modes(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    result = install(REPO, root)
    env_file = root / ENV_FILE
    assert env_file.read_text() == (PI / "dashboard.env.example").read_text()
    assert mode(env_file) == 0o640
    assert mode(root / "var/lib/home-energy-analysis") == 0o750
    assert mode(root / "etc/home-energy-analysis") == 0o755
    for name in ("home-energy-dashboard.service", "home-energy-sync-cache.service", "home-energy-sync-cache.timer",
                 "home-energy-meter.service", "home-energy-control.service"):
        unit = root / UNIT_DIR / name
        assert mode(unit) == 0o644
        expected = [line if line.startswith("#") else line.replace("/opt/home-energy-analysis", str(REPO))
                    for line in (PI / "systemd" / name).read_text().splitlines()]
        assert unit.read_text().splitlines() == expected
    dashboard = (root / UNIT_DIR / "home-energy-dashboard.service").read_text()
    assert f"ExecStart={REPO}/.venv/bin/home-energy serve\n" in dashboard
    assert os.readlink(root / UNIT_DIR / "multi-user.target.wants/home-energy-dashboard.service") == \
        "/etc/systemd/system/home-energy-dashboard.service"
    assert os.readlink(root / UNIT_DIR / "timers.target.wants/home-energy-sync-cache.timer") == \
        "/etc/systemd/system/home-energy-sync-cache.timer"
    assert not (root / UNIT_DIR / "multi-user.target.wants/home-energy-sync-cache.service").exists()
    assert "skip (--root): groupadd --system homeenergy" in result.stdout
    assert "Next steps" in result.stdout


def test_second_install_changes_nothing(tmp_path: Path, checkout_with_kiosk: Path):
    root = tmp_path / "root"
    root.mkdir()
    install(checkout_with_kiosk, root, "--desktop-user", "kitchen")
    before = snapshot(root)
    result = install(checkout_with_kiosk, root, "--desktop-user", "kitchen")
    assert snapshot(root) == before
    assert "nothing changed" in result.stdout
    assert "+ install" not in result.stdout


def test_install_never_overwrites_an_existing_env_file(tmp_path: Path):
    root = tmp_path / "root"
    env_file = root / ENV_FILE
    env_file.parent.mkdir(parents=True)
    env_file.write_text("AMBER_TOKEN=psk_the_households_own_token\n")
    env_file.chmod(0o644)
    result = install(REPO, root)
    assert env_file.read_text() == "AMBER_TOKEN=psk_the_households_own_token\n"
    assert mode(env_file) == 0o640  # others lose read access to the token
    assert "never overwritten" in result.stdout
    assert "psk_the_households_own_token" not in result.stdout + result.stderr
    install(REPO, root)
    assert env_file.read_text() == "AMBER_TOKEN=psk_the_households_own_token\n"


def test_dry_run_prints_the_actions_and_does_none_of_them(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    result = install(REPO, root, "--dry-run")
    assert list(root.iterdir()) == []
    assert f"+ install -m 0640 {PI}/dashboard.env.example {root}/{ENV_FILE}" in result.stdout
    assert f"+ install -d -m 0750 {root}/var/lib/home-energy-analysis" in result.stdout
    assert "+ systemctl --root=" in result.stdout
    assert "would be made" in result.stdout


def test_install_sets_up_the_kiosk_for_a_desktop_user_without_an_autostart(
        tmp_path: Path, checkout_with_kiosk: Path):
    root = tmp_path / "root"
    root.mkdir()
    install(checkout_with_kiosk, root, "--desktop-user", "kitchen")
    autostart = root / "home/kitchen/.config/labwc/autostart"
    assert autostart.read_text() == (
        f"# home-energy kiosk for labwc\n/usr/bin/lwrespawn {checkout_with_kiosk}/.venv/bin/home-energy-kiosk &\n")
    assert mode(autostart) == 0o644
    desktop = root / "home/kitchen/.config/autostart/home-energy-kiosk.desktop"
    assert f'Exec=sh -c "while :; do {checkout_with_kiosk}/.venv/bin/home-energy-kiosk; sleep 10; done"\n' \
        in desktop.read_text()
    assert mode(desktop) == 0o644


def test_install_keeps_the_users_own_autostart_lines_and_adds_the_kiosk_once(
        tmp_path: Path, checkout_with_kiosk: Path):
    root = tmp_path / "root"
    labwc = root / "home/kitchen/.config/labwc"
    labwc.mkdir(parents=True)
    (labwc / "autostart").write_text("their-own-panel &\n/old/venv/bin/home-energy-kiosk &\n")
    install(checkout_with_kiosk, root, "--desktop-user", "kitchen")
    expected = ("their-own-panel &\n# home-energy kiosk (added by pi/install.sh)\n"
                f"/usr/bin/lwrespawn {checkout_with_kiosk}/.venv/bin/home-energy-kiosk &\n")
    assert (labwc / "autostart").read_text() == expected
    result = install(checkout_with_kiosk, root, "--desktop-user", "kitchen")
    assert (labwc / "autostart").read_text() == expected
    assert "nothing changed" in result.stdout


def test_install_says_so_when_the_checkout_has_no_kiosk_files(tmp_path: Path):
    checkout = tmp_path / "checkout"
    shutil.copytree(PI, checkout / "pi")
    root = tmp_path / "root"
    root.mkdir()
    result = install(checkout, root, "--desktop-user", "kitchen")
    assert "no kiosk/*autostart* or kiosk/*.desktop" in result.stdout
    assert not (root / "home").exists()


def test_units_only_installs_just_the_units(tmp_path: Path):
    """What pi/update.sh runs when an update changes pi/systemd/."""
    root = tmp_path / "root"
    root.mkdir()
    install(REPO, root, "--units-only")
    installed = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())
    assert installed == [
        "etc/home-energy-analysis/installed.sha256",  # what install.sh wrote, to notice later edits
        "etc/systemd/system/home-energy-control.service",
        "etc/systemd/system/home-energy-dashboard.service",
        "etc/systemd/system/home-energy-meter.service",
        "etc/systemd/system/home-energy-sync-cache.service",
        "etc/systemd/system/home-energy-sync-cache.timer",
        "etc/systemd/system/multi-user.target.wants/home-energy-control.service",
        "etc/systemd/system/multi-user.target.wants/home-energy-dashboard.service",
        "etc/systemd/system/multi-user.target.wants/home-energy-meter.service",
        "etc/systemd/system/timers.target.wants/home-energy-sync-cache.timer",
    ]


def test_an_unknown_option_is_one_line_and_nothing_else(tmp_path: Path):
    result = subprocess.run([str(REPO / "pi" / "install.sh"), "--bogus"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "install.sh: unknown option: --bogus (./pi/install.sh --help lists the options)\n"


def test_an_env_file_anyone_could_write_gets_the_documented_0640(tmp_path: Path):
    root = tmp_path / "root"
    env_file = root / ENV_FILE
    env_file.parent.mkdir(parents=True)
    env_file.write_text("AMBER_TOKEN=psk_the_households_own_token\n")
    env_file.chmod(0o666)
    install(REPO, root)
    assert mode(env_file) == 0o640
    assert env_file.read_text() == "AMBER_TOKEN=psk_the_households_own_token\n"


def test_the_summary_names_the_dashboard_address_from_the_env_file(tmp_path: Path):
    root = tmp_path / "root"
    env_file = root / ENV_FILE
    env_file.parent.mkdir(parents=True)
    env_file.write_text("HOST=0.0.0.0\nPORT=8123\n")
    result = install(REPO, root)
    assert "The dashboard: http://127.0.0.1:8123/ " in result.stdout
    assert "curl -s http://127.0.0.1:8123/api/health" in result.stdout
    assert "5050" not in result.stdout


def test_a_unit_the_household_edited_is_kept_beside_the_new_one_and_named(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    install(REPO, root)
    unit = root / UNIT_DIR / "home-energy-dashboard.service"
    installed = unit.read_text()
    unit.write_text(installed + "# the household's own line\n")
    result = install(REPO, root)
    backup = unit.with_name(f"{unit.name}.{date.today().isoformat()}.bak")
    assert backup.read_text() == installed + "# the household's own line\n"
    assert unit.read_text() == installed
    assert "kept your edited copies" in result.stdout and str(backup) in result.stdout
    # The next run finds what it installed: nothing to keep, nothing changed.
    again = install(REPO, root)
    assert "kept your edited copies" not in again.stdout and "nothing changed" in again.stdout
    assert sorted(p.name for p in unit.parent.glob("*.bak")) == [backup.name]


def test_a_unit_install_sh_wrote_itself_is_replaced_without_a_copy(tmp_path: Path):
    checkout = tmp_path / "checkout"
    shutil.copytree(PI, checkout / "pi")
    root = tmp_path / "root"
    root.mkdir()
    install(checkout, root)
    source = checkout / "pi/systemd/home-energy-dashboard.service"
    source.write_text(source.read_text() + "# a newer release\n")  # an update changed the unit
    result = install(checkout, root)
    assert "# a newer release" in (root / UNIT_DIR / "home-energy-dashboard.service").read_text()
    assert list((root / UNIT_DIR).glob("*.bak")) == [] and "kept your edited copies" not in result.stdout


def test_the_kiosk_autostart_reads_the_dashboards_env_file(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    result = install(REPO, root, "--desktop-user", "kitchen")
    autostart = (root / "home/kitchen/.config/labwc/autostart").read_text()
    assert (f"/usr/bin/lwrespawn {REPO}/.venv/bin/home-energy-kiosk "
            "--env-file /etc/home-energy-analysis/dashboard.env &") in autostart
    desktop = (root / "home/kitchen/.config/autostart/home-energy-kiosk.desktop").read_text()
    assert "home-energy-kiosk --env-file /etc/home-energy-analysis/dashboard.env;" in desktop
    assert "skip (--root): usermod -a -G homeenergy kitchen" in result.stdout


@pytest.mark.parametrize("line", ["MQTT_URL=mqtt://homeassistant.local:1883", "export MQTT_URL='mqtts://broker'"])
def test_the_publisher_unit_is_installed_and_enabled_only_when_mqtt_url_is_set(tmp_path: Path, line: str):
    root = tmp_path / "root"
    env_file = root / ENV_FILE
    env_file.parent.mkdir(parents=True)
    env_file.write_text("# MQTT_URL=mqtt://commented.out\nMQTT_URL=\n")
    install(REPO, root, "--units-only")
    assert not (root / UNIT_DIR / "home-energy-publish.service").exists()
    env_file.write_text(f"{line}\n")
    install(REPO, root, "--units-only")
    unit = (root / UNIT_DIR / "home-energy-publish.service").read_text()
    assert f"ExecStart={REPO}/.venv/bin/home-energy publish\n" in unit
    assert os.readlink(root / UNIT_DIR / "multi-user.target.wants/home-energy-publish.service") == \
        "/etc/systemd/system/home-energy-publish.service"
