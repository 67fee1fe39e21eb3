"""A failing /usage is tried again after 15 minutes, doubling to 2 hours, and warns only when it
starts failing and when it recovers; the prices keep flowing every run meanwhile."""
from __future__ import annotations

import logging
from datetime import timedelta
from itertools import pairwise

from freezegun import freeze_time

from home_energy.sync import run_sync

NOW = "2026-11-23T01:07:30Z"


def test_failing_usage_backs_off_and_logs_only_on_transitions(amber_config, amber_client, fake_amber, caplog):
    with freeze_time(NOW) as frozen, caplog.at_level(logging.INFO, logger="home_energy.sync"):
        assert run_sync(amber_config, amber_client()).outcome == "ok"
        fake_amber.state.faults["usage"] = 500
        frozen.tick(timedelta(hours=1, seconds=1))
        attempts = []
        outcomes = []
        for _ in range(12 * 8):  # eight hours of 5-minute runs
            before = fake_amber.calls("usage")
            outcomes.append(run_sync(amber_config, amber_client()).outcome)
            if fake_amber.calls("usage") > before:
                attempts.append(frozen.time_to_freeze)
            frozen.tick(timedelta(minutes=5))
        gaps = [round((b - a).total_seconds() / 60) for a, b in pairwise(attempts)]
        assert gaps[:4] == [15, 30, 60, 120] and set(gaps[4:]) <= {120}
        assert set(outcomes) == {"ok", "partial"} and outcomes[0] == "partial"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "usage" in warnings[0].getMessage()

        del fake_amber.state.faults["usage"]
        frozen.tick(timedelta(hours=2))
        assert run_sync(amber_config, amber_client()).outcome == "ok"
        assert any("usage recovered" in r.getMessage() for r in caplog.records)
        calls = fake_amber.calls("usage")
        frozen.tick(timedelta(minutes=5))
        run_sync(amber_config, amber_client())
        assert fake_amber.calls("usage") == calls  # back to hourly
