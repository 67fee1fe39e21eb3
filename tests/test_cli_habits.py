"""Habits of the `home-energy` command a person meets first: --version, --env-file anywhere,
exit codes in --help, and warnings for settings that are probably mistakes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from home_energy import __version__
from home_energy.cli import COMMANDS, build_parser
from home_energy.config import config_warnings
from tests.fake_amber import TOKEN

CLI = [sys.executable, "-m", "home_energy.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"AMBER_TOKEN", "PORT", "SQLITE_PATH"}}
    env.update(SQLITE_PATH=str(tmp_path / "cache.sqlite"), **extra)
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def env_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "dashboard.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_version_prints_the_package_version_and_exits_0(tmp_path):
    result = run_cli(["--version"], tmp_path)
    assert result.returncode == 0
    assert re.fullmatch(rf"home-energy {re.escape(__version__)}( \([0-9a-f]{{12}}\))?\n", result.stdout)


@pytest.mark.parametrize("where", ["before", "after"])
def test_env_file_is_read_before_or_after_the_command(tmp_path, where):
    path = env_file(tmp_path, "RETENTION_DAYS=forever\n")
    args = ["--env-file", str(path), "init-db"] if where == "before" else ["init-db", "--env-file", str(path)]
    result = run_cli(args, tmp_path)
    assert (result.returncode, result.stderr) == (78, "error: RETENTION_DAYS must be a whole number from 1 to 3650\n")


def test_env_file_after_the_command_wins_over_one_before_it(tmp_path):
    bad = env_file(tmp_path, "RETENTION_DAYS=forever\n")
    good = tmp_path / "good.env"
    good.write_text("RETENTION_DAYS=30\n")
    assert build_parser().parse_args(["--env-file", str(bad), "sync", "--env-file", str(good)]).env_file == str(good)
    assert build_parser().parse_args(["--env-file", str(bad), "sync"]).env_file == str(bad)
    assert build_parser().parse_args(["sync"]).env_file is None
    assert run_cli(["--env-file", str(bad), "init-db", "--env-file", str(good)], tmp_path).returncode == 0


# What each command can exit with, written out here rather than read from the table the help is
# printed from: a code dropped from (or added to) a command's help must fail this test.
PROMISED_EXIT_CODES = {
    "sync": ["0", "2", "65", "75", "78"],
    "serve": ["0", "2", "69", "78"],
    "run": ["0", "2", "69", "78"],
    "collect": ["0", "2", "75", "78"],
    "control": ["0", "2", "75", "78"],
    "publish": ["0", "2", "78"],
    "init-db": ["0", "2", "75", "78"],
    "config": ["0", "2", "78"],
    "seed-demo": ["0", "2", "75", "78"],
}


def test_every_command_has_promised_exit_codes():
    assert sorted(PROMISED_EXIT_CODES) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(PROMISED_EXIT_CODES))
def test_every_command_help_lists_its_exit_codes(command, tmp_path):
    result = run_cli([command, "--help"], tmp_path)
    assert result.returncode == 0
    listed = re.findall(r"^  (\d+)  ", result.stdout.split("exit codes:\n", 1)[1], re.M)
    assert listed == PROMISED_EXIT_CODES[command]


@pytest.mark.parametrize("command", ["serve", "run"])
def test_server_commands_document_69_for_a_taken_port(command, tmp_path):
    assert "69  the port is already in use" in run_cli([command, "--help"], tmp_path).stdout


def test_a_misspelt_setting_is_named_with_the_right_one_and_never_its_value(tmp_path):
    result = run_cli(["init-db"], tmp_path, AMBER_TOKN=TOKEN)
    assert result.returncode == 0
    assert result.stderr == ("warning: AMBER_TOKN in the environment is not a home-energy setting and is ignored: "
                             "did you mean AMBER_TOKEN?\n")
    assert TOKEN not in result.stdout + result.stderr


def test_an_unknown_key_in_the_env_file_is_named(tmp_path):
    path = env_file(tmp_path, "RETENTON_DAYS=30\nKIOSK_URL=http://127.0.0.1:5050/\nPORT=5051\n")
    result = run_cli(["init-db", "--env-file", str(path)], tmp_path)
    assert result.returncode == 0
    assert result.stderr == (f"warning: RETENTON_DAYS in {path} is not a home-energy setting and is ignored: "
                             "did you mean RETENTION_DAYS?\n")


def test_unrelated_variables_of_a_login_shell_give_no_warning():
    env = {"HOSTNAME": "pi", "DEBUGINFOD_URLS": "x", "PATH": "/usr/bin", "HOME": "/root", "TZ": "UTC",
           "HOME_ENERGY_UPDATE_DETACHED": "1", "KIOSK_URL": "http://127.0.0.1:5050/", "AMBER_TOKEN": TOKEN}
    assert config_warnings(env=env) == []


def test_a_token_file_every_user_can_read_gets_a_warning_without_the_token(tmp_path):
    path = env_file(tmp_path, f"AMBER_TOKEN={TOKEN}\nAMBER_API_URL=http://127.0.0.1:9/v1\n", mode=0o644)
    result = run_cli(["init-db", "--env-file", str(path)], tmp_path)
    assert result.returncode == 0
    assert result.stderr == (f"warning: {path} holds AMBER_TOKEN and every user of this machine can read it: "
                             f"chmod o-rwx {path}\n")
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_a_token_file_closed_to_other_users_gives_no_warning(tmp_path, mode):
    # 0640 is what pi/install.sh gives it: readable by the service's group only.
    path = env_file(tmp_path, f"AMBER_TOKEN={TOKEN}\n", mode=mode)
    assert config_warnings(env={}, env_file=path) == []


def test_a_world_readable_env_file_without_a_token_gives_no_warning(tmp_path):
    path = env_file(tmp_path, "PORT=5051\nAMBER_TOKEN=\n", mode=0o644)
    assert config_warnings(env={}, env_file=path) == []
