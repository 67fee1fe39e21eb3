"""PLUGS_FILE: what a good file gives, and every mistake as one line naming the line and key."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from home_energy.config import Secret
from home_energy.errors import ConfigError
from home_energy.plugs.rules import Avoid, Below, Cheapest, load_plugs, parse_plugs

ROOT = Path(__file__).resolve().parents[2]
FOUR_LINES = """[plugs.dishwasher]
driver = "shelly"
url = "http://192.168.1.40"
cheapest = { hours = 2, from = "20:00", to = "07:00" }
"""


def test_four_lines_make_a_dishwasher():
    (plug,) = parse_plugs(FOUR_LINES)
    assert (plug.key, plug.name, plug.driver, plug.url, plug.channel, plug.fallback) == (
        "dishwasher", "Dishwasher", "shelly", "http://192.168.1.40", 0, "leave")
    assert plug.rule == Cheapest(minutes=120, start=time(20), end=time(7), split=False)
    assert plug.rule.label() == "cheapest 2 h"
    assert (plug.max_switches_per_hour, plug.override_hours, plug.password) == (6, 2.0, None)


def test_every_setting_is_read():
    (pump, heater) = parse_plugs("""
[plugs.pool_pump]
name = "Pool pump"
driver = "tasmota"
url = "http://pump.local:8080/"
password = "s3cret"
channel = 1
fallback = "off"
override_hours = 4
max_switches_per_hour = 2
below = { price = -1.5, channel = "feed_in", min_on_minutes = 30, min_off_minutes = 20 }

[plugs.heater]
driver = "shelly"
url = "http://10.0.0.9"
[plugs.heater.avoid]
price = 35
spikes = false
""")
    assert (pump.name, pump.url, pump.channel, pump.fallback, pump.override_hours, pump.max_switches_per_hour) == (
        "Pool pump", "http://pump.local:8080", 1, "off", 4.0, 2)
    assert pump.rule == Below(price=-1.5, channel="feed_in", min_on_minutes=30, min_off_minutes=20)
    assert isinstance(pump.password, Secret) and pump.password.reveal() == "s3cret"
    assert "s3cret" not in repr(pump) and "s3cret" not in str(pump)
    assert heater.rule == Avoid(price=35.0, spikes=False)


BASE = '[plugs.d]\ndriver = "shelly"\nurl = "http://10.0.0.5"\n'
BAD = [
    # (file, line, what the message says)
    ('[plugs.d]\ndriver = "kasa"\nurl = "http://a"\nbelow = { price = 1 }\n', 2,
     "plugs.d.driver must be one of shelly, tasmota"),
    ('[plugs.d]\ndriver = "shelly"\nurl = "ftp://10.0.0.5"\nbelow = { price = 1 }\n', 3, "plugs.d.url must be http://"),
    ('[plugs.d]\ndriver = "shelly"\nurl = "http://10.0.0.5/rpc"\nbelow = { price = 1 }\n', 3,
     "plugs.d.url must be http://HOST or http://HOST:PORT (no path)"),
    ('[plugs.d]\ndriver = "shelly"\nurl = "http://10.0.0.5:70000"\nbelow = { price = 1 }\n', 3,
     "plugs.d.url has a port outside 1 to 65535"),
    ('[plugs.d]\ndriver = "shelly"\nurl = "http://admin:pw@10.0.0.5"\nbelow = { price = 1 }\n', 3,
     "plugs.d.url must not hold a user or password"),
    (BASE + 'below = { price = "ten" }\n', 4, "plugs.d.below.price must be a number"),
    (BASE + "avoid = { price = nan }\n", 4, "plugs.d.avoid.price must be a number"),
    (BASE + "[plugs.d.below]\nmin_on_minutes = 5\nprice = true\n", 6, "plugs.d.below.price must be a number"),
    (BASE + 'cheapest = { hours = 2, from = "20:00", to = "20:00" }\n', 4,
     "plugs.d.cheapest.to is the same time as `from`: the span is empty"),
    (BASE + 'cheapest = { hours = 3, from = "23:00", to = "01:00" }\n', 4,
     "plugs.d.cheapest.hours is 3 h, longer than the span 23:00–01:00 (2 h)"),
    (BASE + 'cheapest = { hours = 1.1, from = "20:00", to = "07:00" }\n', 4, "whole number of 5-minute steps"),
    (BASE + 'cheapest = { hours = 2, from = "8pm", to = "07:00" }\n', 4, "plugs.d.cheapest.from must be a time"),
    (BASE + 'cheapest = { hours = 2, from = "20:00", to = "07:00", splt = true }\n', 4,
     "plugs.d.cheapest.splt is not a cheapest setting"),
    (BASE + "below = { price = 1 }\nmin_on_minutes = 5\n", 5, "plugs.d.min_on_minutes is not a plug setting"),
    (BASE, 1, "plugs.d needs exactly one rule: cheapest, below or avoid"),
    (BASE + "below = { price = 1 }\navoid = { price = 2 }\n", 1, "plugs.d has 2 rules (below, avoid)"),
    (BASE + 'below = { price = 1 }\nfallback = "maybe"\n', 5, "plugs.d.fallback must be one of leave, off, on"),
    (BASE + "below = { price = 1 }\nmax_switches_per_hour = 0\n", 5,
     "plugs.d.max_switches_per_hour must be a whole number from 1 to 60"),
    (BASE + "below = { price = 1 }\n" + BASE.replace("plugs.d]", "plugs.e]") + "avoid = { price = 1 }\n", 7,
     "plugs.e.url is the same switch as plugs.d"),
    (BASE + "below = { price = 1 }\n" + BASE.replace("plugs.d]", "plugs.e]").replace("10.0.0.5", "10.0.0.5:80")
     + "avoid = { price = 1 }\n", 7, "plugs.e.url is the same switch as plugs.d"),
    (BASE + "below = { price = 1 }\n[plugs.e]\nname = \"D\"\ndriver = \"tasmota\"\nurl = \"http://10.0.0.6\"\n"
     "below = { price = 1 }\n", 6, "plugs.e.name is also the name of plugs.d"),
    ('[plug.d]\ndriver = "shelly"\n', 1, "plug is not a PLUGS_FILE section"),
    ("", None, "has no plugs"),
    ('[plugs.d]\ndriver = "shelly\n', 2, "not valid TOML"),
]


@pytest.mark.parametrize("text, line, says", BAD, ids=[b[2][:40] for b in BAD])
def test_every_mistake_is_one_line_naming_the_line_and_key(tmp_path, text, line, says):
    path = tmp_path / "plugs.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_plugs(path)
    message = str(caught.value)
    assert "\n" not in message and says in message
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_a_password_is_never_in_an_error(tmp_path):
    path = tmp_path / "plugs.toml"
    path.write_text(BASE + 'password = "topsecret"\nbelow = { price = "x" }\n')
    with pytest.raises(ConfigError) as caught:
        load_plugs(path)
    assert "topsecret" not in str(caught.value)


def test_a_missing_or_huge_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_plugs(tmp_path / "nope.toml")
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 70_000)
    with pytest.raises(ConfigError, match="larger than 64 KB"):
        load_plugs(huge)


@pytest.mark.parametrize("command", [["control"], ["control", "--dry-run"], ["run"]])
def test_the_commands_exit_78_with_one_line_on_a_bad_file(tmp_path, command):
    plugs = tmp_path / "plugs.toml"
    plugs.write_text(BASE + 'below = { price = "ten" }\n')
    env = {**os.environ, "SQLITE_PATH": str(tmp_path / "cache.sqlite"), "PLUGS_FILE": str(plugs),
           "PORT": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HOME_ENERGY_ENV_FILE", None)
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", *command], env=env, capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [f"error: {plugs}:4: plugs.d.below.price must be a number "
                                                  "from -100000 to 100000"]


def test_control_without_plugs_file_says_so_and_exits_0(tmp_path):
    env = {**os.environ, "SQLITE_PATH": str(tmp_path / "cache.sqlite"), "PYTHONPATH": str(ROOT)}
    env.pop("PLUGS_FILE", None)
    env.pop("HOME_ENERGY_ENV_FILE", None)
    result = subprocess.run([sys.executable, "-m", "home_energy.cli", "control"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert (result.returncode, result.stdout.strip()) == (0, "no plugs configured (PLUGS_FILE is unset): "
                                                             "nothing to control")
