"""Configuration: defaults, the env file, one-line errors naming the variable, a token that never prints."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from home_energy.config import load_config, parse_env_file
from home_energy.errors import ConfigError

TOKEN = "psk_abcdefabcdefabcdefabcdef"


def test_defaults_without_environment():
    config = load_config(env={})
    assert config.mode == "demo"
    assert (config.host, config.port) == ("127.0.0.1", 5050)
    assert config.sqlite_path == Path("data/cache.sqlite")
    assert (config.retention_days, config.stale_after_seconds) == (90, 900)
    assert config.amber_api_url == "https://api.amber.com.au/v1"


def test_env_file_is_read_like_systemd_and_environment_wins(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text(
        f"# comment\n\nAMBER_TOKEN=\"{TOKEN}\"\nexport PORT=6000\nRETENTION_DAYS = 30\nHOST='0.0.0.0'\n"
    )
    assert parse_env_file(env_file)["AMBER_TOKEN"] == TOKEN
    config = load_config(env={"PORT": "7000"}, env_file=env_file)
    assert config.mode == "amber"
    assert config.amber_token.reveal() == TOKEN
    assert (config.port, config.retention_days, config.host) == (7000, 30, "0.0.0.0")


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("PORT", "http", "PORT must be a whole number from 1 to 65535"),
        ("PORT", "70000", "PORT must be a whole number from 1 to 65535"),
        ("RETENTION_DAYS", "0", "RETENTION_DAYS must be a whole number from 1 to 3650"),
        ("STALE_AFTER_SECONDS", "5", "STALE_AFTER_SECONDS must be a whole number from 60 to 86400"),
        ("DEBUG", "maybe", "DEBUG must be one of"),
        ("AMBER_API_URL", "ftp://x", "AMBER_API_URL must be an http(s) URL"),
        ("AMBER_SITE_ID", "../etc", "AMBER_SITE_ID must be"),
        ("TIMEZONE", "Mars/Olympus", "TIMEZONE must be an IANA zone name"),
        ("MONTHLY_BUDGET", "-5", "MONTHLY_BUDGET must be a positive number"),
        ("NIGHT_START", "25:00", "NIGHT_START must be a time of day"),
        ("AMBER_TOKEN", "psk bad token!", "AMBER_TOKEN must be an Amber API key"),
    ],
)
def test_bad_value_names_the_variable_and_what_is_allowed(name, value, expected):
    with pytest.raises(ConfigError) as info:
        load_config(env={name: value})
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)
    assert value not in str(info.value) or name != "AMBER_TOKEN"


def test_token_never_shows_in_repr_str_or_format():
    config = load_config(env={"AMBER_TOKEN": TOKEN})
    for text in (repr(config), str(config), f"{config.amber_token}", repr(config.amber_token)):
        assert TOKEN not in text


def test_cli_bad_config_exits_78_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PORT": "nope", "SQLITE_PATH": str(tmp_path / "c.sqlite")}
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "sync"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78
    assert result.stderr == "error: PORT must be a whole number from 1 to 65535\n"


def test_cli_missing_env_file_exits_78(tmp_path):
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "--env-file", str(tmp_path / "none.env"),
                             "sync"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert result.stderr.startswith("error: cannot read env file")
    assert len(result.stderr.splitlines()) == 1


def test_an_env_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_bytes(b"\xef\xbb\xbfPORT=6001\r\nTIMEZONE=Australia/Perth\r\n")
    config = load_config(env={}, env_file=env_file)
    assert (config.port, config.timezone) == (6001, "Australia/Perth")


@pytest.mark.parametrize("data, offset", [
    (b"PORT=6001\nTIMEZONE=Australia/\xffSydney\n", 29),
    (b"\xef\xbb\xbfPORT=6001\n# caf\xe9 (Latin-1)\n", 18),  # the offset counts the mark too
    (b"\xef\xbb\xbf\xef\xbb\xbfPORT=\xc3", 11),  # a second mark is text, then a cut-off character
])
def test_an_env_file_that_is_not_utf8_is_one_line_naming_the_file_and_the_byte(tmp_path, data, offset):
    env_file = tmp_path / "dashboard.env"
    env_file.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(env={}, env_file=env_file)
    assert str(info.value) == f"env file {env_file} is not UTF-8 text at byte offset {offset}: save it as UTF-8"
    assert data[offset:offset + 1] != b"" and data[:offset].decode("utf-8-sig")  # the bytes before it are fine


def test_cli_env_file_that_is_not_utf8_exits_78_with_one_line(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_bytes(b"AMBER_SITE_ID=\x80\x81\n")
    env = {"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(tmp_path / "c.sqlite")}
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "--env-file", str(env_file), "sync"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert result.stderr == f"error: env file {env_file} is not UTF-8 text at byte offset 14: save it as UTF-8\n"
    assert not (tmp_path / "c.sqlite").exists()


@pytest.mark.parametrize("command", ["init-db", "sync", "seed-demo"])
def test_a_cache_folder_is_created_only_inside_one_that_exists(tmp_path, command):
    missing = tmp_path / "missing" / "dir" / "c.sqlite"
    env = {"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(missing)}
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", command], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78, result.stderr
    assert result.stderr == (f"error: SQLITE_PATH {missing}: the folder {tmp_path / 'missing'} does not exist: "
                             "create it, or correct SQLITE_PATH\n")
    assert not (tmp_path / "missing").exists()
    # One level down from a folder that exists is created, as the default data/cache.sqlite is.
    env["SQLITE_PATH"] = str(tmp_path / "new" / "c.sqlite")
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", command], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new" / "c.sqlite").is_file()


@pytest.mark.parametrize("below", ["c.sqlite", "dir/c.sqlite"])
def test_a_file_in_the_way_of_the_cache_folder_is_one_line_exit_78(tmp_path, below):
    (tmp_path / "a-file").write_text("not a folder\n")
    path = tmp_path / "a-file" / below
    env = {"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(path)}
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "init-db"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 78, result.stderr
    assert result.stderr == (f"error: SQLITE_PATH {path}: a file is in the way of the folder {path.parent}: "
                             "correct SQLITE_PATH\n")
    assert (tmp_path / "a-file").read_text() == "not a folder\n"
