"""The Pi's clock jumping years forward and back (no RTC, a bad NTP answer, then a fix).

Amber answers for the true time whatever the Pi believes, so the fake upstream here is pinned to
the true time while freezegun moves the Pi's clock. While the clocks disagree by years the sync
writes nothing (Amber's current interval is judged against this machine's now: `clock_wrong`,
exit 75); nothing cached may be pruned away, no age may go negative, and once the clock is right
again the sync must go back to fetching as usual.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

import tests.fake_amber as fake_module
from home_energy.sync import run_sync
from tests.reliability.helpers import table_rows

TRUE_NOW = datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC)
JUMPS = (timedelta(days=5 * 365), -timedelta(days=5 * 365), timedelta(days=40 * 365), -timedelta(days=30 * 365))
AGES = ("cache_age_seconds", "price_age_seconds", "usage_age_seconds")


@pytest.fixture
def true_time_upstream(monkeypatch, fake_amber):
    """The fake Amber answers for TRUE_NOW (plus `advance`), never for the Pi's clock."""
    upstream_now = {"t": TRUE_NOW}
    monkeypatch.setattr(fake_module, "now_utc", lambda: upstream_now["t"])
    return upstream_now


def _keys(config, table: str) -> set[tuple]:
    return {row[:3] for row in table_rows(config.sqlite_path, (table,))[table]}


@pytest.mark.parametrize("jump", JUMPS, ids=["5y-forward", "5y-back", "40y-forward", "30y-back"])
def test_a_clock_jump_prunes_nothing_and_ages_stay_non_negative(jump, amber_config, amber_client, app_for,
                                                                true_time_upstream):
    with freeze_time(TRUE_NOW):
        assert run_sync(amber_config, amber_client()).outcome == "ok"
    kept = {t: _keys(amber_config, t) for t in ("prices", "usage", "daily_usage")}
    assert all(kept.values())
    client = app_for(amber_config).test_client()
    with freeze_time(TRUE_NOW + jump):
        report = run_sync(amber_config, amber_client())
        assert (report.outcome, report.exit_code, report.pruned) == ("tempfail", 75, 0), report
        assert "check the date and time of this machine" in report.error
        health = client.get("/api/health").get_json()
    assert health["problem"] == "clock_wrong"
    for table, keys in kept.items():
        assert keys <= _keys(amber_config, table), f"{table} lost rows after a jump of {jump}"
    assert all(health[age] is not None and health[age] >= 0 for age in AGES), health
    with freeze_time(TRUE_NOW + jump + timedelta(minutes=5)):
        assert all(client.get("/api/health").get_json()[age] >= 0 for age in AGES)


def test_ages_are_never_negative_when_the_clock_goes_back_after_a_sync(amber_config, amber_client, app_for,
                                                                       true_time_upstream):
    client = app_for(amber_config).test_client()
    with freeze_time(TRUE_NOW):
        assert run_sync(amber_config, amber_client()).outcome == "ok"
    with freeze_time(TRUE_NOW + timedelta(days=3 * 365)):
        assert run_sync(amber_config, amber_client()).outcome == "tempfail"  # clock_wrong: nothing written
    with freeze_time(TRUE_NOW):
        body = client.get("/api/health").get_json()
    assert body["last_sync"]["at"].startswith("2029-")  # the run record is stamped three years ahead
    # The newest stamps may be three years "ahead": ages are 0, never -94 million seconds.
    assert (body["cache_age_seconds"], body["price_age_seconds"]) == (0, 0), body
    # Usage came from the true-time sync: it ended at NEM midnight, 11 h 7.5 min before TRUE_NOW.
    assert body["usage_age_seconds"] == 11 * 3600 + 450, body


def test_usage_is_fetched_again_once_a_clock_years_ahead_is_corrected(amber_config, amber_client, fake_amber,
                                                                      true_time_upstream):
    with freeze_time(TRUE_NOW + timedelta(days=5 * 365)):
        assert run_sync(amber_config, amber_client()).outcome == "tempfail"  # clock_wrong: nothing written
    calls = fake_amber.calls("usage"), fake_amber.calls("sites")
    true_time_upstream["t"] = TRUE_NOW + timedelta(days=2)
    with freeze_time(TRUE_NOW + timedelta(days=2)):  # NTP fixed the clock: two days of usage are due
        assert run_sync(amber_config, amber_client()).outcome == "ok"
    assert fake_amber.calls("usage") > calls[0], "usage was not fetched although it is two days old"
    assert fake_amber.calls("sites") > calls[1], "sites were not refreshed although they are two days old"


def test_a_rate_limit_seen_with_the_clock_years_ahead_does_not_block_once_it_is_fixed(amber_config, amber_client,
                                                                                     fake_amber, true_time_upstream):
    with freeze_time(TRUE_NOW + timedelta(days=5 * 365)):
        fake_amber.state.faults["prices"] = "429"
        assert run_sync(amber_config, amber_client()).outcome == "tempfail"
    del fake_amber.state.faults["prices"]
    with freeze_time(TRUE_NOW + timedelta(hours=1)):  # NTP fixed the clock, the 5-minute block is long over
        report = run_sync(amber_config, amber_client())
    assert report.outcome == "ok", report.error
