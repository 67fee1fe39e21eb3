"""Screen control: night hours, the commands per session, and warnings instead of crashes."""
from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime, time

import pytest

from kiosk.screen import (
    ScreenControl,
    cursor_hider_command,
    display_power_commands,
    is_night,
    keep_awake_commands,
    local_time,
)
from kiosk.settings import Session

X11 = Session("x11", ":0", None)
WAYLAND = Session("wayland", None, "wayland-0")


@pytest.mark.parametrize(("now", "night"), [
    (time(21, 59), False), (time(22, 0), True), (time(23, 59), True), (time(0, 0), True),
    (time(5, 59), True), (time(6, 0), False), (time(12, 0), False),
])
def test_night_wraps_past_midnight(now, night):
    assert is_night(now, time(22, 0), time(6, 0)) is night


@pytest.mark.parametrize(("now", "night"), [(time(0, 59), False), (time(1, 0), True), (time(4, 59), True),
                                            (time(5, 0), False)])
def test_night_within_one_day(now, night):
    assert is_night(now, time(1, 0), time(5, 0)) is night


def test_equal_start_and_end_means_no_night():
    assert not any(is_night(time(h, 0), time(6, 0), time(6, 0)) for h in range(24))


def test_night_is_judged_in_the_household_time_zone():
    # 12:30 UTC is 22:30 in Brisbane (UTC+10, no daylight saving) and 13:30 in London in winter.
    instant = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
    assert local_time(instant, "Australia/Brisbane") == time(22, 30)
    assert is_night(local_time(instant, "Australia/Brisbane"), time(22, 0), time(6, 0))
    assert not is_night(local_time(instant, "Europe/London"), time(22, 0), time(6, 0))


def test_x11_keeps_awake_with_xset_and_wayland_leaves_it_to_the_compositor():
    assert keep_awake_commands(X11) == [["xset", "s", "off", "-dpms"], ["xset", "s", "noblank"]]
    assert keep_awake_commands(WAYLAND) == []


def test_display_power_commands_per_session():
    assert display_power_commands(WAYLAND, on=False) == [["wlopm", "--off", "*"]]
    assert display_power_commands(WAYLAND, on=True) == [["wlopm", "--on", "*"]]
    assert display_power_commands(X11, on=False) == [["xset", "+dpms"], ["xset", "dpms", "force", "off"]]
    on = display_power_commands(X11, on=True)
    assert on[0] == ["xset", "dpms", "force", "on"]
    assert ["xset", "s", "off", "-dpms"] in on  # daytime: blanking off again
    assert display_power_commands(Session("none"), on=False) == []


def test_unclutter_is_used_only_on_x11_and_only_when_installed():
    assert cursor_hider_command(X11, lambda name: "/usr/bin/unclutter") == ["unclutter", "-idle", "1"]
    assert cursor_hider_command(X11, lambda name: None) is None
    assert cursor_hider_command(WAYLAND, lambda name: "/usr/bin/unclutter") is None


class Recorder:
    def __init__(self, result: tuple[int, str] = (0, "")) -> None:
        self.calls: list[list[str]] = []
        self.result = result

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.result


def test_night_switches_the_display_only_when_the_state_changes():
    run = Recorder()
    screen = ScreenControl(WAYLAND, which=lambda name: f"/usr/bin/{name}", run=run)
    screen.apply_night(False)
    screen.apply_night(False)
    screen.apply_night(True)
    screen.apply_night(True)
    screen.apply_night(False)
    assert run.calls == [["wlopm", "--on", "*"], ["wlopm", "--off", "*"], ["wlopm", "--on", "*"]]


def test_a_missing_tool_is_one_warning_and_nothing_runs(caplog):
    run = Recorder()
    screen = ScreenControl(X11, which=lambda name: None, run=run)
    with caplog.at_level(logging.WARNING, logger="kiosk"):
        screen.keep_awake()
        screen.apply_night(True)
        screen.apply_night(False)
        screen.keep_awake()
    assert run.calls == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["xset not found (sudo apt install x11-xserver-utils): the screen may blank or stay on"]


def test_a_failing_tool_is_a_warning_per_command_not_a_crash(caplog):
    run = Recorder((0, "server does not have extension for -dpms option"))
    screen = ScreenControl(X11, which=lambda name: "/usr/bin/xset", run=run)
    with caplog.at_level(logging.WARNING, logger="kiosk"):
        assert screen.run_commands(keep_awake_commands(X11)) is False
        screen.keep_awake()
    assert len(run.calls) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "`xset s off -dpms` failed: server does not have extension for -dpms option",
        "`xset s noblank` failed: server does not have extension for -dpms option",
    ]


def test_a_tool_that_cannot_be_run_is_a_warning(caplog):
    def broken(argv):
        raise subprocess.TimeoutExpired(argv, 5)

    screen = ScreenControl(WAYLAND, which=lambda name: "/usr/bin/wlopm", run=broken)
    with caplog.at_level(logging.WARNING, logger="kiosk"):
        screen.apply_night(True)
    assert any("`wlopm --off *` failed" in r.getMessage() for r in caplog.records)


def test_real_xset_without_a_display_warns_and_returns(caplog, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    screen = ScreenControl(X11)  # the real which() and subprocess
    with caplog.at_level(logging.WARNING, logger="kiosk"):
        assert screen.run_commands([["xset", "s", "noblank"]]) is False
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_requested_stop_switches_a_dark_display_back_on_and_a_failure_does_not():
    run = Recorder()
    screen = ScreenControl(WAYLAND, which=lambda name: "/usr/bin/wlopm", run=run)
    screen.apply_night(True)
    screen.close(restore_display=False)
    assert run.calls == [["wlopm", "--off", "*"]]
    screen.close(restore_display=True)
    assert run.calls == [["wlopm", "--off", "*"], ["wlopm", "--on", "*"]]


def test_without_a_session_the_screen_is_left_alone_with_one_warning(caplog):
    run = Recorder()
    with caplog.at_level(logging.WARNING, logger="kiosk"):
        screen = ScreenControl(Session("none"), which=lambda name: f"/usr/bin/{name}", run=run)
        screen.keep_awake()
        screen.apply_night(True)
    assert run.calls == []
    assert [r.getMessage()[:40] for r in caplog.records] == ["neither WAYLAND_DISPLAY nor DISPLAY is s"]
