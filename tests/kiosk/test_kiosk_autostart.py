"""The autostart files: they run the installed `home-energy-kiosk` under a restarting parent."""
from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

from tests.kiosk.kiosk_helpers import end_group

ROOT = Path(__file__).resolve().parents[2]
KIOSK = ROOT / "kiosk"
LABWC = KIOSK / "labwc-autostart"
DESKTOP = KIOSK / "home-energy-kiosk.desktop"
COMMAND = "@VENV@/bin/home-energy-kiosk --env-file @ENV_FILE@"  # the dashboard's own env file: its HOST and PORT


def test_the_installer_patterns_find_exactly_these_files():
    assert sorted(p.name for p in KIOSK.glob("*autostart*")) == ["labwc-autostart"]
    assert sorted(p.name for p in KIOSK.glob("*.desktop")) == ["home-energy-kiosk.desktop"]


def test_the_command_the_files_run_is_the_installed_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts[Path(COMMAND.split()[0]).name] == "kiosk.launcher:main"


def test_labwc_autostart_is_one_lwrespawn_line_in_the_background():
    lines = [line for line in LABWC.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    assert lines == [f"/usr/bin/lwrespawn {COMMAND} &"]


def test_labwc_autostart_is_clean_sh_once_the_placeholder_is_filled(tmp_path):
    filled = tmp_path / "autostart"
    filled.write_text(LABWC.read_text(encoding="utf-8").replace("@VENV@", "/opt/home-energy/.venv").replace(
        "@ENV_FILE@", "/etc/home-energy-analysis/dashboard.env"), encoding="utf-8")
    assert subprocess.run(["sh", "-n", str(filled)], capture_output=True, check=False).returncode == 0
    checked = subprocess.run(["shellcheck", "--shell=sh", str(filled)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_desktop_entry_is_a_hidden_application_skipped_under_labwc():
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Terminal"] == "false"
    assert entry["NoDisplay"] == "true"
    assert entry["NotShowIn"] == "labwc;"
    assert COMMAND in entry["Exec"]


def test_desktop_exec_runs_the_launcher_again_after_it_exits(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    runs = tmp_path / "runs"
    fake = venv / "bin" / "home-energy-kiosk"
    fake.write_text(f"#!/bin/sh\necho run >> {runs}\nexit 75\n", encoding="utf-8")
    fake.chmod(0o755)
    # Desktop Exec quoting is the shell's double quoting for what this file uses (no $ ` \\).
    argv = shlex.split(_desktop_entry()["Exec"].replace("@VENV@", str(venv)).replace("@ENV_FILE@", "/dev/null"))
    assert argv[:2] == ["sh", "-c"]
    loop = subprocess.Popen([shutil.which("sh") or "/bin/sh", *argv[1:]], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not runs.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        assert loop.poll() is None  # the loop outlives the launcher's exit 75 and will run it again
        assert runs.read_text().splitlines() == ["run"]
    finally:
        end_group(loop)
