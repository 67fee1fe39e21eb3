"""MQTT_URL, MQTT_PASSWORD and the topic prefixes: what is accepted, and no error or repr ever shows
the password or the URL's user-info."""
from __future__ import annotations

import pytest

from home_energy.config import Secret, config_warnings, load_config
from home_energy.errors import ConfigError


def test_user_info_is_split_out_decoded_and_kept_as_secrets():
    config = load_config(env={"MQTT_URL": "mqtts://display:p%40ss%3Aword@broker.lan"})
    assert config.mqtt_url == "mqtts://broker.lan:8883"
    assert isinstance(config.mqtt_user, Secret) and isinstance(config.mqtt_password, Secret)
    assert (config.mqtt_user.reveal(), config.mqtt_password.reveal()) == ("display", "p@ss:word")
    assert "p@ss" not in repr(config) and "display" not in repr(config) and "p%40ss" not in repr(config)


def test_defaults_and_the_password_setting():
    config = load_config(env={"MQTT_URL": "mqtt://display@10.0.0.2", "MQTT_PASSWORD": "from-the-setting"})
    assert config.mqtt_url == "mqtt://10.0.0.2:1883" and config.mqtt_password.reveal() == "from-the-setting"
    assert (config.mqtt_discovery_prefix, config.mqtt_topic_prefix) == ("homeassistant", "home-energy")
    assert load_config(env={}).mqtt_url is None
    assert load_config(env={"MQTT_URL": "mqtt://[fd00::2]:1884"}).mqtt_url == "mqtt://[fd00::2]:1884"
    assert load_config(env={"MQTT_TOPIC_PREFIX": "house/kitchen-display"}).mqtt_topic_prefix == "house/kitchen-display"


@pytest.mark.parametrize(("env", "starts"), [
    ({"MQTT_URL": "https://u:hunter2@broker"}, "MQTT_URL must be mqtt://"),
    ({"MQTT_URL": "mqtt://u:hunter2@broker/path"}, "MQTT_URL must be mqtt://"),
    ({"MQTT_URL": "mqtt://u:hunter2@broker:0"}, "MQTT_URL's port"),
    ({"MQTT_URL": "mqtt://u:hunter2@broker", "MQTT_PASSWORD": "hunter2"}, "MQTT_PASSWORD is set and"),
    ({"MQTT_URL": "mqtt://:hunter2@broker"}, "MQTT_URL needs a user name"),
    ({"MQTT_PASSWORD": "hunter2"}, "MQTT_PASSWORD is set but MQTT_URL is not"),
    ({"MQTT_TOPIC_PREFIX": "a/#"}, "MQTT_TOPIC_PREFIX must be"),
    ({"MQTT_TOPIC_PREFIX": "a//b"}, "MQTT_TOPIC_PREFIX must be"),
    ({"MQTT_TOPIC_PREFIX": "/a"}, "MQTT_TOPIC_PREFIX must be"),
    ({"MQTT_TOPIC_PREFIX": " a"}, "MQTT_TOPIC_PREFIX must be"),
    ({"MQTT_DISCOVERY_PREFIX": "home+assistant"}, "MQTT_DISCOVERY_PREFIX must be"),
])
def test_bad_settings_name_the_variable_and_never_the_password(env, starts):
    with pytest.raises(ConfigError) as caught:
        load_config(env=env)
    assert str(caught.value).startswith(starts) and "hunter2" not in str(caught.value)


def test_a_misspelt_mqtt_setting_is_warned_about():
    assert config_warnings(env={"MQTT_TOPIC_PREFX": "x"}) == [
        "MQTT_TOPIC_PREFX in the environment is not a home-energy setting and is ignored: "
        "did you mean MQTT_TOPIC_PREFIX?"]
