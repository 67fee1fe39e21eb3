"""METER settings: all checked together, one line naming the variable, the password never shown."""
from __future__ import annotations

import pytest

from home_energy.config import load_config
from home_energy.errors import ConfigError


def test_no_meter_by_default():
    config = load_config(env={})
    assert (config.meter, config.meter_url, config.meter_password, config.meter_poll_seconds) == (None, None, None, 10)


def test_a_shelly_with_a_password():
    config = load_config(env={"METER": "Shelly", "METER_URL": "http://192.168.1.50/", "METER_PASSWORD": "s3cret pw",
                              "METER_POLL_SECONDS": "5"})
    assert (config.meter, config.meter_url, config.meter_poll_seconds) == ("shelly", "http://192.168.1.50", 5)
    assert config.meter_password.reveal() == "s3cret pw"
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.meter_password)


@pytest.mark.parametrize(("env", "message"), [
    ({"METER": "enphase"}, "METER must be one of fronius, shelly"),
    ({"METER": "fronius"}, "METER_URL must be the meter's address"),
    ({"METER": "fronius", "METER_URL": "192.168.1.50"}, "METER_URL must be"),
    ({"METER": "shelly", "METER_URL": "http://admin:pw@192.168.1.50"}, "METER_URL must be"),
    ({"METER": "fronius", "METER_URL": "http://10.0.0.2", "METER_PASSWORD": "x"}, "only used with METER=shelly"),
    ({"METER": "fronius", "METER_URL": "http://10.0.0.2", "METER_POLL_SECONDS": "4"}, "from 5 to 60"),
    ({"METER": "fronius", "METER_URL": "http://10.0.0.2", "METER_POLL_SECONDS": "61"}, "from 5 to 60"),
    ({"METER": "fronius", "METER_URL": "http://127.0.0.1:99999"}, r"METER_URL must be .* \(its port must be 1"),
    ({"METER": "fronius", "METER_URL": "http://127.0.0.1:0"}, r"its port must be 1 to 65535"),
    ({"METER": "fronius", "METER_URL": "http://127.0.0.1:abc"}, r"METER_URL must be .* \(its port must be 1"),
    ({"METER": "fronius", "METER_URL": "http://127.0.0.1:"}, r"METER_URL must be .* \(its port is empty\)"),
    ({"METER": "shelly", "METER_URL": "http://[::1"}, r"METER_URL must be .* \(its IPv6 address needs both brackets\)"),
    ({"METER": "shelly", "METER_URL": "http://[fronius]"}, r"not an IPv6 address"),
    ({"METER": "shelly", "METER_URL": "http://:80"}, r"its host is missing"),
])
def test_bad_meter_settings_are_one_line_errors(env, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(env=env)
    assert "\n" not in str(caught.value) and "pw@" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://192.168.1.50:80", "https://fronius.local:8443", "http://[fe80::1]:8080",
                                 "http://[::1]", "http://10.0.0.2:65535"])
def test_good_meter_urls_pass_whole(url):
    assert load_config(env={"METER": "fronius", "METER_URL": url}).meter_url == url
