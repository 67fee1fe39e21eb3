"""Settings: flags over the environment over the env file over defaults, and one-line errors."""
from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from home_energy.errors import ConfigError
from kiosk.browser import CHROMIUM_KIOSK_FLAGS
from kiosk.settings import (
    DEFAULT_HEALTH_TIMEOUT_S,
    Session,
    build_parser,
    detect_session,
    load_settings,
    normalise_url,
)


def test_defaults_match_the_dashboard_defaults():
    settings = load_settings([], {})
    assert settings.url == "http://127.0.0.1:5050/"
    assert settings.browser == "auto"
    assert settings.health_timeout_s == DEFAULT_HEALTH_TIMEOUT_S
    assert (settings.night_start, settings.night_end) == (time(22, 0), time(6, 0))
    assert settings.timezone == "Australia/Sydney"
    assert settings.chromium_flags == ()
    assert settings.session == Session("none")


def test_flags_beat_the_environment_which_beats_the_env_file(tmp_path):
    env_file = tmp_path / "kiosk.env"
    env_file.write_text("KIOSK_URL=http://file:1/\nKIOSK_BROWSER=webview\nKIOSK_HEALTH_TIMEOUT=30\n"
                        "NIGHT_START=21:30\nNIGHT_END=07:15\nTIMEZONE=Australia/Perth\n", encoding="utf-8")
    environ = {"KIOSK_URL": "http://env:2/", "KIOSK_HEALTH_TIMEOUT": "45"}

    from_file_and_env = load_settings(["--env-file", str(env_file)], environ)
    assert from_file_and_env.url == "http://env:2/"
    assert from_file_and_env.browser == "webview"
    assert from_file_and_env.health_timeout_s == 45
    assert (from_file_and_env.night_start, from_file_and_env.night_end) == (time(21, 30), time(7, 15))
    assert from_file_and_env.timezone == "Australia/Perth"

    flags = load_settings(["--env-file", str(env_file), "--url", "http://flag:3", "--browser", "chromium",
                           "--health-timeout", "5"], environ)
    assert (flags.url, flags.browser, flags.health_timeout_s) == ("http://flag:3/", "chromium", 5)


def test_the_env_file_can_come_from_home_energy_env_file(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("KIOSK_BROWSER=chromium\n", encoding="utf-8")
    assert load_settings([], {"HOME_ENERGY_ENV_FILE": str(env_file)}).browser == "chromium"


def test_settings_only_the_server_reads_do_not_stop_the_kiosk(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("MONTHLY_BUDGET=lots\nRETENTION_DAYS=many\nKIOSK_BROWSER=chromium\n", encoding="utf-8")
    assert load_settings(["--env-file", str(env_file)], {}).browser == "chromium"


def test_the_dashboards_address_comes_from_its_host_and_port(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("HOST=0.0.0.0\nPORT=8123\n", encoding="utf-8")
    assert load_settings(["--env-file", str(env_file)], {}).url == "http://127.0.0.1:8123/"
    assert load_settings(["--env-file", str(env_file)], {"PORT": "9000"}).url == "http://127.0.0.1:9000/"
    assert load_settings([], {"HOST": "::", "PORT": "8123"}).url == "http://[::1]:8123/"
    # Another screen's kiosk names the dashboard itself; then PORT is not the kiosk's business.
    env_file.write_text("PORT=http\nKIOSK_URL=http://kitchen.local:8123\n", encoding="utf-8")
    assert load_settings(["--env-file", str(env_file)], {}).url == "http://kitchen.local:8123/"


def test_a_bad_port_is_named_when_the_kiosk_needs_it(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("PORT=http\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="^PORT must be a whole number"):
        load_settings(["--env-file", str(env_file)], {})


def test_chromium_flags_from_the_environment_and_the_command_line_add_up():
    settings = load_settings(["--chromium-flag=--no-sandbox"],
                             {"KIOSK_CHROMIUM_FLAGS": "--force-device-scale-factor=1 --remote-debugging-port=9"})
    assert settings.chromium_flags == ("--force-device-scale-factor=1", "--remote-debugging-port=9", "--no-sandbox")


@pytest.mark.parametrize(("argv", "environ", "message"), [
    ([], {"KIOSK_URL": "ftp://x/"}, "KIOSK_URL must be the dashboard's address"),
    ([], {"KIOSK_URL": "http://x/?a=1"}, "KIOSK_URL must be the dashboard's address"),
    (["--url", "localhost:5050"], {}, "--url must be the dashboard's address"),
    ([], {"KIOSK_BROWSER": "firefox"}, "KIOSK_BROWSER must be one of auto, chromium, webview"),
    ([], {"KIOSK_HEALTH_TIMEOUT": "soon"}, "KIOSK_HEALTH_TIMEOUT must be a number of seconds"),
    (["--health-timeout", "0"], {}, "--health-timeout must be a number of seconds"),
    ([], {"NIGHT_START": "10pm"}, "NIGHT_START must be a time of day as HH:MM"),
    ([], {"TIMEZONE": "Mars/Olympus"}, "TIMEZONE must be an IANA zone name"),
    ([], {"KIOSK_CHROMIUM_FLAGS": "kiosk"}, "Chromium flags must start with --"),
    ([], {"KIOSK_CHROMIUM_FLAGS": "--a='b"}, "KIOSK_CHROMIUM_FLAGS cannot be split"),
])
def test_a_bad_value_is_a_config_error_naming_it(argv, environ, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(argv, environ)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_missing_env_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read env file"):
        load_settings(["--env-file", str(tmp_path / "absent.env")], {})


@pytest.mark.parametrize(("raw", "expected"), [
    ("http://127.0.0.1:5050", "http://127.0.0.1:5050/"),
    ("http://127.0.0.1:5050/", "http://127.0.0.1:5050/"),
    (" https://pi.local/energy ", "https://pi.local/energy/"),
])
def test_urls_get_exactly_one_trailing_slash(raw, expected):
    assert normalise_url(raw) == expected


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WAYLAND_DISPLAY": "wayland-1", "DISPLAY": ":0"}, Session("wayland", ":0", "wayland-1")),
    ({"DISPLAY": ":0"}, Session("x11", ":0", None)),
    ({"DISPLAY": " ", "WAYLAND_DISPLAY": ""}, Session("none")),
])
def test_the_session_is_read_from_the_display_variables(environ, expected):
    assert detect_session(environ) == expected


def test_profiles_and_the_lock_go_to_the_sessions_runtime_directory():
    assert load_settings([], {"XDG_RUNTIME_DIR": "/run/user/1000"}).runtime_dir == "/run/user/1000"
    assert load_settings([], {"XDG_RUNTIME_DIR": ""}).runtime_dir is None


def test_every_flag_and_variable_is_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "kiosk.md").read_text(encoding="utf-8")
    flags = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert len(flags) == 5
    for name in [*flags, "KIOSK_URL", "KIOSK_BROWSER", "KIOSK_HEALTH_TIMEOUT", "KIOSK_CHROMIUM_FLAGS",
                 "NIGHT_START", "NIGHT_END", "TIMEZONE", *CHROMIUM_KIOSK_FLAGS]:
        assert f"`{name}" in docs, name
