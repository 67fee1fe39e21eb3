"""Plugs that misbehave: each failure is one recorded line, retried with backoff, and never holds
up the other plugs; passwords never show; a killed controller reads real states on restart."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from home_energy.fetch import Limits
from home_energy.plugs.base import PLUG_LIMITS
from home_energy.store import plug_writes
from tests.fake_plugs import SLOW_S, FakeShellyPlug, FakeTasmotaPlug, closed_port_url
from tests.plugs.helpers import at, cache, config_for, log_rows, write_prices

DAY = "2026-12-07"
FAST = Limits(deadline_s=1.0, connect_s=1.0, read_s=1.0, max_bytes=16 * 1024, max_depth=8, max_values=2_000,
              error_bytes=1024)
ROOT = Path(__file__).resolve().parents[2]


def two_plugs(bad_url: str, good_url: str, bad_password: str | None = None) -> str:
    password = f'password = "{bad_password}"\n' if bad_password else ""
    return (f'[plugs.pump]\ndriver = "shelly"\nurl = "{bad_url}"\n{password}'
            'below = { price = 10, min_on_minutes = 0, min_off_minutes = 0 }\n'
            f'[plugs.heater]\ndriver = "tasmota"\nurl = "{good_url}"\n'
            'below = { price = 10, min_on_minutes = 0, min_off_minutes = 0 }\n')


@pytest.mark.parametrize("fault, says", [
    # Whichever the door's clocks see first: the read timeout or the whole exchange's deadline.
    ("slow", ("did not answer Switch.GetStatus within 1 s", "did not finish answering Switch.GetStatus")),
    ("silent", ("did not answer Switch.GetStatus within 1 s", "did not finish answering Switch.GetStatus")),
    ("html", "answered HTML at Switch.GetStatus"),
    ("401", "asks for a password: set `password` in PLUGS_FILE"),
    ("impossible", "reported a state it cannot have (output is str, not true or false)"),
    ("closed", "cannot reach the Pump plug (Shelly)"),
])
def test_a_failing_plug_is_recorded_and_retried_with_backoff_without_delaying_the_others(
        tmp_path, shelly, tasmota, control, fault, says):
    bad_url = closed_port_url() if fault == "closed" else shelly.url
    if fault != "closed":
        shelly.set_fault(fault)
    config = config_for(tmp_path, two_plugs(bad_url, tasmota.url))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 8, fetched_at=at(f"{DAY}T10:00"))
    controller = control(config, limits=FAST)
    now = at(f"{DAY}T10:00") + timedelta(seconds=5)
    started = time.monotonic()
    outcomes = {o.plug: o for o in controller.decide_once(now)}
    took = time.monotonic() - started
    assert outcomes["heater"].result == "ok" and tasmota.sets() == [True]
    options = (says,) if isinstance(says, str) else says
    assert outcomes["pump"].result == "unreadable"
    assert any(text in (outcomes["pump"].error or "") for text in options), outcomes["pump"].error
    assert took < FAST.deadline_s + 8.0  # bounded by the door's deadline (the slow plug takes 20 s)
    row = plug_writes.load_plug(conn, "pump")
    assert row is not None and row.mode == "failing" and row.failures == 1
    assert row.next_attempt_at == int(now.timestamp()) + 60 and any(text in row.why for text in options)
    assert "\n" not in (row.last_error or "") and "Traceback" not in (row.last_error or "")

    # Not retried before its time; then retried, and the wait doubles on each failure.
    asked = len(shelly.requests)
    assert {o.plug: o.result for o in controller.decide_once(now + timedelta(seconds=30))}["pump"] == "skipped"
    assert len(shelly.requests) == asked
    controller.decide_once(now + timedelta(seconds=61))
    row = plug_writes.load_plug(conn, "pump")
    assert row is not None and (row.failures, row.next_attempt_at) == (2, int(now.timestamp()) + 61 + 120)
    faults = log_rows(conn, "pump", kind="fault")
    assert len(faults) == 2 and all(result == "failing" for _at, _action, result in faults)

    # It comes back: read, decided on, switched, and the failure is cleared.
    shelly.set_fault(None)
    shelly.release.set()
    if fault != "closed":
        outcomes = {o.plug: o for o in controller.decide_once(now + timedelta(minutes=4))}
        assert outcomes["pump"].result == "ok" and shelly.sets() == [True]
        row = plug_writes.load_plug(conn, "pump")
        assert row is not None and (row.mode, row.failures, row.last_error) == ("auto", 0, None)


def test_plug_exchanges_are_bounded_by_the_door_deadline():
    assert PLUG_LIMITS.deadline_s <= 10 and SLOW_S > FAST.deadline_s and PLUG_LIMITS.max_bytes <= 64 * 1024


def test_a_tasmota_state_it_cannot_have_is_not_quoted(tmp_path, tasmota, control):
    tasmota.set_fault("impossible")
    config = config_for(tmp_path, f'[plugs.heater]\ndriver = "tasmota"\nurl = "{tasmota.url}"\n'
                                  'below = { price = 10 }\n')
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 8)
    (outcome,) = control(config, limits=FAST).decide_once(at(f"{DAY}T10:00") + timedelta(seconds=5))
    assert outcome.error == "the Heater plug (Tasmota) reported a state it cannot have (not ON or OFF)"


def test_passwords_work_and_never_show(tmp_path, control):
    secret = "hunter2-plug-pw"
    with FakeShellyPlug(password=secret) as shelly, FakeTasmotaPlug(password=secret) as tasmota:
        toml = two_plugs(shelly.url, tasmota.url, bad_password=secret).replace(
            'driver = "tasmota"\n', f'driver = "tasmota"\npassword = "{secret}"\n')
        config = config_for(tmp_path, toml)
        conn = cache(config)
        write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 8)
        controller = control(config, limits=FAST)
        outcomes = controller.decide_once(at(f"{DAY}T10:00") + timedelta(seconds=5))
        assert [o.result for o in outcomes] == ["ok", "ok"]
        assert shelly.sets() == [True] and tasmota.sets() == [True]
        # A wrong password: one line naming the setting, and not the password.
        shelly.password = "changed-on-the-device"
        tasmota.password = "changed-on-the-device"
        outcomes = controller.decide_once(at(f"{DAY}T10:05") + timedelta(seconds=5))
        assert [o.error for o in outcomes] == ["the Pump plug (Shelly) refused the password in PLUGS_FILE",
                                               "the Heater plug (Tasmota) refused the password in PLUGS_FILE"]
        dump = "\n".join(str(tuple(r)) for table in ("plug_state", "plug_log")
                         for r in conn.execute(f"SELECT * FROM {table}"))
        assert secret not in dump and "changed-on" not in dump
        assert secret not in repr(controller.plugs)


def test_a_controller_killed_mid_command_reads_the_real_state_on_restart(tmp_path, shelly, control):
    """A real `home-energy control` is killed while its Switch.Set is unanswered, after the plug
    did switch. The next start marks the command interrupted, reads the state before deciding,
    and does not take the new state for a person's override."""
    config = config_for(tmp_path, f'[plugs.pump]\ndriver = "shelly"\nurl = "{shelly.url}"\n'
                                  'below = { price = 10, min_on_minutes = 0, min_off_minutes = 0 }\n')
    conn = cache(config)
    now = datetime.now(UTC)  # the command runs on the real clock
    first = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    write_prices(conn, first - timedelta(hours=1), [5.0] * 8, fetched_at=now)
    shelly.set_fault("set_then_silent")
    env = {**os.environ, "SQLITE_PATH": str(config.sqlite_path), "PLUGS_FILE": str(config.plugs_file),
           "TIMEZONE": "UTC", "PYTHONPATH": str(ROOT)}
    env.pop("HOME_ENERGY_ENV_FILE", None)
    process = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "control"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and shelly.sets() != [True] and process.poll() is None:
            time.sleep(0.02)
        assert shelly.sets() == [True] and shelly.on  # the plug switched; the answer never came
    finally:
        process.kill()
        stderr = process.communicate(timeout=10)[1]
    assert "Traceback" not in stderr
    assert log_rows(conn, "pump") == [(log_rows(conn, "pump")[0][0], "on", "sent")]

    shelly.set_fault(None)
    shelly.release.set()
    asked = len(shelly.requests)
    controller = control(config)
    assert log_rows(conn, "pump")[0][2] == "interrupted"
    outcomes = controller.decide_once()
    assert [(o.result, o.state) for o in outcomes] == [("idle", True)]
    assert [r.split("?")[0] for r in shelly.requests[asked:]] == ["/rpc/Switch.GetStatus"]
    row = plug_writes.load_plug(conn, "pump")
    assert row is not None and (row.state, row.mode, row.expected) == ("on", "auto", "on")
    assert shelly.sets() == [True]


def test_sigterm_ends_control_at_once_even_with_a_plug_that_never_answers(tmp_path, shelly):
    config = config_for(tmp_path, f'[plugs.pump]\ndriver = "shelly"\nurl = "{shelly.url}"\n'
                                  'below = { price = 10 }\n')
    cache(config).close()
    shelly.set_fault("silent")
    env = {**os.environ, "SQLITE_PATH": str(config.sqlite_path), "PLUGS_FILE": str(config.plugs_file),
           "TIMEZONE": "UTC", "PYTHONPATH": str(ROOT)}
    env.pop("HOME_ENERGY_ENV_FILE", None)
    process = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "control"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not shelly.requests and process.poll() is None:
            time.sleep(0.02)
        assert shelly.requests, "the controller read the plug"
        process.terminate()
        started = time.monotonic()
        stderr = process.communicate(timeout=30)[1]
        took = time.monotonic() - started
    finally:
        process.kill()
    assert process.returncode == 0 and took < 2 * PLUG_LIMITS.deadline_s  # the plug would hold it 30 s
    assert "Traceback" not in stderr
    conn = cache(config)
    assert log_rows(conn, "pump", kind="fault") == []  # stopping is not the plug's fault


def test_only_one_controller_switches_the_plugs_of_a_cache(tmp_path, shelly, control):
    from home_energy.errors import CacheBusyError

    config = config_for(tmp_path, f'[plugs.pump]\ndriver = "shelly"\nurl = "{shelly.url}"\nbelow = {{ price = 1 }}\n')
    first = control(config)
    with pytest.raises(CacheBusyError, match="another plug controller is already running"):
        control(config)
    control(config, dry_run=True)  # a dry run switches nothing: it may watch beside the real one
    first.close()
    control(config).close()  # the lock went with the first


class _Broken:
    key = "pump"

    def read(self) -> bool:
        raise RuntimeError("a bug in a driver")

    def switch(self, on: bool) -> bool:
        raise AssertionError("never reached")

    def close(self) -> None:
        pass


def test_a_driver_bug_is_one_plugs_failure_not_the_rounds(tmp_path, tasmota, control, caplog):
    from home_energy.plugs.base import make_plug
    from home_energy.plugs.rules import parse_plugs

    config = config_for(tmp_path, two_plugs("http://10.0.0.5", tasmota.url))
    conn = cache(config)
    write_prices(conn, at(f"{DAY}T10:00"), [5.0] * 8)
    heater = [p for p in parse_plugs(config.plugs_file.read_text()) if p.key == "heater"][0]
    controller = control(config, drivers={"pump": _Broken(), "heater": make_plug(heater, FAST)})
    outcomes = {o.plug: o for o in controller.decide_once(at(f"{DAY}T10:00") + timedelta(seconds=5))}
    assert outcomes["heater"].result == "ok" and tasmota.sets() == [True]
    assert outcomes["pump"].error == "the Pump plug's exchange failed unexpectedly (RuntimeError)"
    assert "a bug in a driver" in caplog.text  # the trace goes to the log for whoever fixes it


def test_plug_passwords_are_removed_from_every_log_line_once_the_file_is_read(tmp_path, caplog):
    from home_energy import redact
    from home_energy.config import Config
    from home_energy.plugs.controller import load_configured_plugs

    secret = "plug-pw-Zq81x"
    config = config_for(tmp_path, f'[plugs.pump]\ndriver = "shelly"\nurl = "http://192.0.2.1"\npassword = "{secret}"\n'
                                  'below = { price = 10 }\n')
    try:
        assert [p.key for p in load_configured_plugs(config) or []] == ["pump"]
        with caplog.at_level(logging.INFO):
            logging.getLogger("some.library").warning("GET /cm?user=admin&password=%s failed", secret)
        assert "password=*** failed" in caplog.text and secret not in caplog.text
        assert redact.scrub(f"refused {secret[:10]}") == "refused ***"
    finally:
        redact.install(Config())
