"""The door to the MQTT broker (`home_energy.mqtt`) keeps its guarantees for any session, whatever
the session's user asks: a bounded outgoing queue, and failures in one line without secrets."""
from __future__ import annotations

import logging
import threading

import pytest

from home_energy import mqtt
from home_energy.config import load_config
from tests.mqtt_broker import PASSWORD, USER, wait_until
from tests.ports import free_port

LINES = mqtt.Lines(up="MQTT: up at {url}", again="MQTT: up at {url} again", failing="MQTT: down at {url}: {error}")
log = logging.getLogger("tests.mqtt_door")


def _config(tmp_path, port: int):
    return load_config(env={"SQLITE_PATH": str(tmp_path / "cache.sqlite"),
                            "MQTT_URL": f"mqtt://{USER}@127.0.0.1:{port}", "MQTT_PASSWORD": PASSWORD})


@pytest.mark.parametrize("bound", [0, -1])
def test_a_session_without_a_bound_on_its_outgoing_queue_is_refused(tmp_path, bound):
    """paho reads a bound of 0 (or less) as no bound at all."""
    with pytest.raises(ValueError, match="max_queued must be at least 1"):
        mqtt.Session(_config(tmp_path, 1883), name="t", lines=LINES, log=log, max_queued=bound)
    assert mqtt.Session(_config(tmp_path, 1883), name="t", lines=LINES, log=log, max_queued=1).max_queued == 1


def test_a_failure_reaches_the_session_and_the_log_as_one_line_without_the_password(tmp_path, monkeypatch, caplog):
    """Whatever words a failure comes in (a broker or a library echoing the password, over lines),
    the session's user and the log get one line with the password removed, once."""
    monkeypatch.setattr(mqtt, "describe_failure", lambda exc: f"{type(exc).__name__} for {USER}:{PASSWORD}\n  at x")
    errors: list[str] = []
    session = mqtt.Session(_config(tmp_path, free_port()), name="t", lines=LINES, log=log, max_queued=1,
                           on_failure=errors.append)
    monkeypatch.setattr(mqtt, "BACKOFF_MIN_S", 0.05)
    stop = threading.Event()
    thread = threading.Thread(target=session.run, args=(stop,), daemon=True)
    caplog.set_level(logging.INFO, logger=log.name)
    thread.start()
    try:
        wait_until(lambda: len(errors) >= 2, what="two failed attempts")
    finally:
        stop.set()
        thread.join(timeout=mqtt.STOP_WAIT_S)
    assert not thread.is_alive()
    assert errors[0] == errors[1] == "ConnectionRefusedError for ***:*** at x"
    lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert lines == [f"MQTT: down at mqtt://127.0.0.1:{session.port}: ConnectionRefusedError for ***:*** at x"]
