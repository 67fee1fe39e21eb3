"""Health names the problem from a real failing sync, and the summary ranks Amber's own forecast."""
from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from home_energy import queries
from home_energy.clock import now_utc
from home_energy.db import connect_reader
from home_energy.errors import ConfigError
from home_energy.store import init_cache, open_cache
from home_energy.sync import run_sync
from tests.fake_amber import FakeAmber

NOW = "2026-11-23T01:07:30Z"


def health_of(config, app_for):
    return app_for(config).test_client().get("/api/health").get_json()


def test_empty_cache_is_first_sync_pending(amber_config, app_for):
    init_cache(amber_config.sqlite_path)
    with freeze_time(NOW):
        assert health_of(amber_config, app_for)["problem"] == "first_sync_pending"


@pytest.mark.parametrize(
    ("fault", "problem"),
    [(429, "rate_limited"), (503, "upstream_unreachable"), ("truncated", "invalid_data"), (404, "site_missing")],
)
def test_a_failed_sync_after_a_good_one_names_its_problem(amber_config, amber_client, fake_amber, app_for,
                                                          fault, problem):
    with freeze_time(NOW) as frozen:
        run_sync(amber_config, amber_client())
        assert health_of(amber_config, app_for)["problem"] is None
        frozen.tick(timedelta(minutes=5))
        fake_amber.state.faults["prices"] = "429" if fault == 429 else fault
        run_sync(amber_config, amber_client())
        body = health_of(amber_config, app_for)
    assert body["problem"] == problem
    assert body["status"] == "ok"  # the prices themselves are still fresh


def test_a_refused_token_is_named_even_before_any_prices(make_config, fake_amber, app_for):
    config = make_config(AMBER_TOKEN="psk_wrong", AMBER_API_URL=fake_amber.url)
    with freeze_time(NOW):
        run_sync(config)
        body = health_of(config, app_for)
    assert (body["problem"], body["status"]) == ("token_refused", "unknown")


def test_unreachable_amber_is_named(make_config, app_for):
    with FakeAmber() as amber:
        url = amber.url
    config = make_config(AMBER_TOKEN="psk_0123456789abcdef0123456789abcdef", AMBER_API_URL=url)
    with freeze_time(NOW):
        run_sync(config)
        assert health_of(config, app_for)["problem"] == "upstream_unreachable"


def test_cheapest_windows_follow_ambers_forecast_unless_set_to_aemo(amber_config, amber_client, fake_amber):
    with freeze_time(NOW):
        run_sync(amber_config, amber_client())
    # Amber's own forecast says 02:00-03:00 UTC is cheapest; the AEMO-based perKwh says otherwise.
    conn = open_cache(amber_config.sqlite_path)
    with conn:
        conn.execute("UPDATE prices SET adv_predicted = per_kwh + 50 WHERE adv_predicted IS NOT NULL")
        conn.execute(
            "UPDATE prices SET adv_predicted = -20 WHERE channel = 'general' AND adv_predicted IS NOT NULL "
            "AND start >= strftime('%s', '2026-11-23 05:00:00') AND start < strftime('%s', '2026-11-23 06:00:00')"
        )
    conn.close()
    with freeze_time(NOW):
        conn = connect_reader(amber_config.sqlite_path)
        amber = queries.summary(conn, now_utc(), None)
        aemo = queries.summary(conn, now_utc(), None, "aemo")
        conn.close()
    assert amber["forecast_price"] == "amber" and aemo["forecast_price"] == "aemo"
    assert (amber["cheapest"]["1h"]["start"], amber["cheapest"]["1h"]["avg_per_kwh"]) == ("2026-11-23T05:00:00Z", -20)
    # perKwh dips to -3.5 c from 02:30 to 04:00 UTC (the fake's curve).
    assert (aemo["cheapest"]["1h"]["start"], aemo["cheapest"]["1h"]["avg_per_kwh"]) == ("2026-11-23T02:30:00Z", -3.5)


def test_forecast_price_setting_is_checked(make_config):
    assert make_config().forecast_price == "amber"
    assert make_config(FORECAST_PRICE="AEMO").forecast_price == "aemo"
    with pytest.raises(ConfigError, match="FORECAST_PRICE must be amber"):
        make_config(FORECAST_PRICE="spot")
