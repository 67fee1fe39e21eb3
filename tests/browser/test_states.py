"""The page's states, driven by fixture API answers and the page's clock: spike, negative price,
estimate, stale and offline, demo, night, budget, the 1st of a month, feed-in, Amber's own
forecast, one number per spike, chart labels, countdowns, reloads and settings."""
from __future__ import annotations

from datetime import timedelta

import pytest

from .checks import LAYOUT_PROBLEMS_JS, MINUS, cents_text
from .driving import READY_JS, open_at, refresh, sydney, text
from .fixtures import NOW, empty_cache, find, iso

pytestmark = pytest.mark.browser

def test_spike_now_shows_an_unmissable_banner_in_words(fake_page):
    page, api, watch = fake_page
    open_at(page, api, NOW, price_now=1450.2, spike_now="spike")
    assert page.locator("#spike-banner").is_visible()
    assert text(page, "#spike-text") == "PRICE SPIKE NOW · 1450 c/kWh · avoid heavy use"
    assert text(page, "#price-value") == "1450"
    assert text(page, "#price-descriptor") == "Spike"
    assert page.locator("#now").get_attribute("data-descriptor") == "spike"
    banner = page.locator("#spike-banner").bounding_box()
    assert banner["width"] > 0.9 * 800
    assert watch.errors == []


def test_spike_ahead_warns_with_its_time_and_a_countdown(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, spike_ahead=(timedelta(hours=3, minutes=20), "potential", 312.0))
    # The 30-minute interval holding 16:32 local starts at 16:30: 3 h 17 m 30 s away, shown rounded up.
    assert text(page, "#spike-text") == "Possible price spike at 16:30 (in 3 h 18 m) · 312 c/kWh"
    assert "banner-potential" in page.locator("#spike-banner").get_attribute("class")
    page.clock.run_for(60_000)
    assert text(page, "#spike-text") == "Possible price spike at 16:30 (in 3 h 17 m) · 312 c/kWh"


def test_no_banner_without_a_spike_status(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, price_now=250.0)  # dear, described "spike", but Amber flags no spike
    assert page.locator("#spike-banner").is_hidden()


def test_negative_price_is_shown_with_a_minus_and_drawn_below_the_axis(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, price_now=-3.24)
    assert text(page, "#price-value") == f"{MINUS}3.2"
    assert text(page, "#price-descriptor") == "Extremely low"
    current_start = api.bodies["/api/current"]["channels"]["general"]["start"]
    bar = page.locator(f'#chart rect.bar[data-start="{current_start}"]')
    zero_y = float(page.locator("#chart line.grid.zero").get_attribute("y1"))
    assert float(bar.get_attribute("y")) == pytest.approx(zero_y, abs=0.2)
    assert float(bar.get_attribute("height")) > 1
    positive = page.locator("#chart rect.bar").first  # the night's prices are positive
    bottom = float(positive.get_attribute("y")) + float(positive.get_attribute("height"))
    assert bottom == pytest.approx(zero_y, abs=0.2)


def test_estimate_is_labelled_only_while_the_price_is_an_estimate(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, estimate=True)
    assert page.locator("#price-estimate").is_visible()
    assert text(page, "#price-estimate") == "estimated"
    api.use(NOW, estimate=False)
    refresh(page)
    assert page.locator("#price-estimate").is_hidden()


def test_time_left_in_the_interval_counts_down(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)  # 13:12:30 in a 13:10-13:15 interval
    assert text(page, "#price-left") == "3 m left"
    page.clock.run_for(61_000)
    assert text(page, "#price-left") == "2 m left"


def test_stale_prices_show_when_they_were_cached(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, status="stale", source="cache", cached_ago=timedelta(minutes=32, seconds=30))
    assert page.locator("#notice").is_visible()
    assert text(page, "#notice-text") == "No new prices since 12:40"
    assert text(page, "#notice-detail") == "Amber or the internet is down; showing the last known"
    assert page.locator("#notice").get_attribute("title") == "Amber did not answer"
    # The price shown was fetched before its interval began: the panel says so.
    assert "stale" in page.locator("#now").get_attribute("class")
    assert text(page, "#price-stale") == "last known at 12:40"
    assert page.locator("#price-left").inner_text() == ""


def test_cache_source_alone_shows_the_offline_notice(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, status="ok", source="cache", cached_ago=timedelta(minutes=7, seconds=30))
    assert page.locator("#notice").is_visible()
    assert text(page, "#notice-text") == "No new prices since 13:05"
    # 13:05 is this interval's own fetch: the price itself is still the live one.
    assert "stale" not in page.locator("#now").get_attribute("class")
    assert page.locator("#price-stale").is_hidden()


def test_fresh_live_prices_show_no_notice(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    assert page.locator("#notice").is_hidden()
    assert page.locator("#freshness").is_visible()
    assert text(page, "#freshness") == "Updated 13:10 · 2 min ago"


def test_demo_badge_only_in_demo_mode(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, mode="demo")
    assert page.locator("#demo-badge").is_visible()
    assert text(page, "#demo-badge") == "DEMO data"
    api.use(NOW, mode="amber")
    refresh(page)
    assert page.locator("#demo-badge").is_hidden()


def test_night_mode_between_the_configured_hours(fake_page):
    page, api, _ = fake_page
    evening = sydney(2026, 1, 15, 21, 59, 0)
    open_at(page, api, evening)
    is_night = lambda: page.evaluate("() => document.body.classList.contains('night')")  # noqa: E731
    background = lambda: page.evaluate("() => getComputedStyle(document.body).backgroundColor")  # noqa: E731
    assert not is_night()
    day_background = background()
    page.clock.pause_at(sydney(2026, 1, 15, 22, 0, 30))
    page.clock.run_for(1_000)
    assert is_night()
    assert background() == "rgb(0, 0, 0)" != day_background
    page.clock.pause_at(sydney(2026, 1, 16, 5, 59, 30))
    page.clock.run_for(1_000)
    assert is_night()
    page.clock.pause_at(sydney(2026, 1, 16, 6, 0, 30))
    page.clock.run_for(1_000)
    assert not is_night()


def test_cheapest_window_counts_down_live_and_cycles_hours(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)  # the 2 h window starts at 15:25, 2 h 12 m 30 s after 13:12:30
    assert text(page, "#cheapest-times") == "15:25–17:25"
    assert text(page, "#cheapest-avg") == "avg 5.2 c ·"
    assert text(page, "#cheapest-countdown") == "starts in 2 h 13 m"
    page.clock.run_for(60_000)
    assert text(page, "#cheapest-countdown") == "starts in 2 h 12 m"
    page.clock.pause_at(sydney(2026, 1, 15, 15, 40, 0))
    page.clock.run_for(1_000)
    assert text(page, "#cheapest-countdown") == "on now · 1 h 45 m left"
    page.locator("#cheapest").click()
    assert text(page, "#cheapest-hours") == "3 h"
    assert text(page, "#cheapest-times") == "14:55–17:55"


def test_feed_in_shows_what_the_household_earns(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    feed = api.bodies["/api/current"]["channels"]["feedIn"]["per_kwh"]
    assert feed < 0  # Amber's sign: negative means the household is paid
    assert text(page, "#feedin-value") == cents_text(-feed)
    assert text(page, "#feedin-label") == "earning"


def test_feed_in_that_costs_the_household_says_so(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    api.bodies["/api/current"]["channels"]["feedIn"]["per_kwh"] = 2.46  # positive: exporting costs
    refresh(page)
    assert text(page, "#feedin-value") == "2.5"
    assert text(page, "#feedin-label") == "you pay to export"


def test_no_feed_in_channel_hides_feed_in(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, feed_in=False)
    assert page.locator("#feedin-stat").is_hidden()
    assert page.locator("#renewables-value").is_visible()


@pytest.mark.parametrize(
    ("spent", "state", "fill"),
    [(40.0, "ok", "40%"), (55.0, "budget-warn", "55%"), (85.0, "budget-over", "85%"), (130.0, "budget-over", "100%")],
)
def test_budget_bar_turns_amber_at_half_and_red_at_four_fifths(fake_page, spent, state, fill):
    page, api, _ = fake_page
    open_at(page, api, NOW, budget=100.0, month_cost=spent)
    budget = page.locator("#budget")
    assert budget.is_visible()
    classes = budget.get_attribute("class").split()
    assert ("budget-warn" in classes) == (state == "budget-warn")
    assert ("budget-over" in classes) == (state == "budget-over")
    assert page.locator("#budget-fill").evaluate("(n) => n.style.width") == fill
    assert text(page, "#budget-text") == f"{round(spent)}% of $100 budget"
    assert text(page, "#month-value") == f"${spent:.2f}"


def test_no_budget_bar_without_a_budget(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, budget=None)
    assert page.locator("#budget").is_hidden()


def test_unreachable_server_keeps_the_numbers_and_backs_off(fake_page):
    page, api, watch = fake_page
    open_at(page, api, NOW, price_now=23.4)
    before = {sel: text(page, sel) for sel in ("#price-value", "#cheapest-times", "#yesterday-value", "#feedin-value")}
    api.down = True
    refresh(page)
    after = {sel: text(page, sel) for sel in before}
    assert after == before
    assert page.locator("#notice").is_visible()
    assert text(page, "#notice-text") == "The Pi stopped answering at 13:12"
    assert text(page, "#notice-detail") == "Prices shown are from 13:10; restart the Pi if this lasts"
    assert page.locator("#notice").get_attribute("data-problem") == "server_unreachable"
    assert page.locator("#notice").get_attribute("title").startswith("retrying in ")
    delays = []
    for _ in range(8):
        delays.append(page.evaluate("() => window.homeEnergy.state.nextRetryAt - Date.now()"))
        refresh(page)
    assert 5_000 <= delays[0] <= 6_500
    assert delays[1] >= 10_000
    assert all(d <= 120_000 * 1.3 for d in delays)
    assert delays[-1] >= 120_000
    assert watch.navigations == 1  # the first load only: never reload while the server is down
    api.down = False
    refresh(page)
    assert page.locator("#notice").is_hidden()


def test_offline_past_the_interval_end_shows_the_cached_forecast(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    api.down = True
    later = NOW + timedelta(minutes=40)
    page.clock.pause_at(later)
    refresh(page)
    expected = next(
        iv for iv in api.bodies["/api/prices"]["channels"]["general"] if iv["start"] <= iso(later) < iv["end"]
    )
    assert text(page, "#price-value") == cents_text(expected["per_kwh"])
    assert page.locator("#notice").is_visible()


def test_new_server_version_reloads_the_page_exactly_once(fake_page):
    page, api, watch = fake_page
    open_at(page, api, NOW)
    assert watch.navigations == 1
    api.version = "a-newer-version"
    api.use(NOW)
    with page.expect_event("load"):
        page.evaluate("() => { window.homeEnergy.refresh(); }")
    page.wait_for_function(READY_JS)
    for _ in range(3):
        refresh(page)
    assert watch.navigations == 2


def test_same_version_never_reloads(fake_page):
    page, api, watch = fake_page
    open_at(page, api, NOW)
    for _ in range(5):
        refresh(page)
    assert watch.navigations == 1


def test_daily_reload_happens_once_at_the_quiet_hour_while_healthy(fake_page):
    page, api, watch = fake_page
    open_at(page, api, sydney(2026, 1, 16, 0, 40))
    refresh(page)
    assert watch.navigations == 1
    api.down = True
    page.clock.pause_at(sydney(2026, 1, 16, 3, 5))
    refresh(page)
    assert watch.navigations == 1  # never while the server is down
    api.down = False
    with page.expect_event("load"):
        page.evaluate("() => { window.homeEnergy.refresh(); }")
    page.wait_for_function(READY_JS)
    refresh(page)
    refresh(page)
    assert watch.navigations == 2


def test_kiosk_parameter_hides_the_cursor(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, path="/?kiosk=1")
    assert page.evaluate("() => getComputedStyle(document.getElementById('grid')).cursor") == "none"


def test_chime_is_off_by_default_and_a_tap_turns_it_on(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    assert page.evaluate("() => window.homeEnergy.state.chime") is False
    assert text(page, "#chime-toggle") == "Chime off"
    page.locator("#chime-toggle").click()
    assert text(page, "#chime-toggle") == "Chime on"
    assert page.evaluate("() => localStorage.getItem('home-energy.chime')") == "on"


def test_burn_in_shift_moves_the_frame_a_few_pixels_every_few_minutes(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    start = page.locator("#frame").bounding_box()
    offsets = set()
    for _ in range(8):
        page.clock.run_for(3 * 60_000)
        box = page.locator("#frame").evaluate(
            "(n) => { const m = new DOMMatrix(getComputedStyle(n).transform); return [m.e, m.f]; }")
        offsets.add(tuple(box))
    assert len(offsets) >= 4
    assert all(abs(dx) <= 4 and abs(dy) <= 4 for dx, dy in offsets)
    assert start["x"] >= 8


CHIME_SPY_JS = """() => {
    window.__oscillators = 0;
    class FakeAudioContext {
        constructor() { this.state = "running"; this.currentTime = 0; this.destination = {}; }
        resume() {}
        createOscillator() {
            window.__oscillators += 1;
            return { frequency: {}, connect: (n) => n, start() {}, stop() {} };
        }
        createGain() {
            return { gain: { setValueAtTime() {}, exponentialRampToValueAtTime() {} }, connect: (n) => n };
        }
    }
    window.AudioContext = FakeAudioContext;
}"""


@pytest.mark.parametrize(("path", "chimes"), [("/", 0), ("/?chime=1", 1)], ids=["off-by-default", "on"])
def test_chime_sounds_once_when_a_spike_warning_appears_only_if_enabled(fake_page, path, chimes):
    page, api, _ = fake_page
    open_at(page, api, NOW, path=path)
    page.evaluate(CHIME_SPY_JS)
    api.use(NOW, price_now=900.0, spike_now="spike")
    for _ in range(3):
        refresh(page)
    assert page.locator("#spike-banner").is_visible()
    oscillators = page.evaluate("() => window.__oscillators")
    assert oscillators == 2 * chimes  # one chime is two tones


def test_empty_cache_shows_placeholders_and_says_it_is_waiting(fake_page):
    page, api, watch = fake_page
    open_at(page, api, NOW)
    api.bodies = empty_cache(api.version)
    refresh(page)
    assert text(page, "#price-value") == "—"
    assert text(page, "#price-descriptor") == "No price for now: see the notice"
    assert page.locator("#notice").is_visible()
    assert text(page, "#notice-text") == "Waiting for Amber's first prices"  # a token is set (mode amber)
    assert text(page, "#notice-detail") == "If this lasts 10 minutes, check the Pi's internet"
    assert page.locator("#demo-mark").is_hidden()
    assert text(page, "#cheapest-times") == "—"
    assert text(page, "#yesterday-value") == "—"
    assert page.locator("#feedin-stat").is_hidden()
    assert page.locator("#chart").text_content() == "No forecast yet: see the notice above"
    assert (text(page, "#month-value"), text(page, "#month-note")) == ("—", "no usage yet")
    assert watch.errors == []


def test_server_error_keeps_the_numbers_and_names_the_error(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, price_now=23.4)
    api.failing["/api/health"] = (503, {"error": "cache cannot be read: disk I/O error"})
    refresh(page)
    assert text(page, "#price-value") == "23"
    assert page.locator("#notice").is_visible()
    assert text(page, "#notice-text") == "The Pi cannot read its saved prices"
    assert text(page, "#notice-detail") == "Restart the Pi; if this stays, reinstall"
    title = page.locator("#notice").get_attribute("title")
    assert title.startswith("cache cannot be read: disk I/O error; retrying in ")


def test_chime_stays_silent_in_night_hours(fake_page):
    page, api, _ = fake_page
    night = sydney(2026, 1, 15, 23, 30)
    open_at(page, api, night, path="/?chime=1")
    page.evaluate(CHIME_SPY_JS)
    api.use(night, price_now=900.0, spike_now="spike")
    refresh(page)
    assert page.locator("#spike-banner").is_visible()
    assert page.evaluate("() => window.homeEnergy.state.chime") is True
    assert page.evaluate("() => window.__oscillators") == 0


def test_chart_bars_are_as_wide_as_their_intervals_and_hours_are_local(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    general = api.bodies["/api/prices"]["channels"]["general"]
    five = next(iv for iv in general if iv["duration_minutes"] == 5 and iv["start"] > iso(NOW))
    thirty = next(iv for iv in general if iv["duration_minutes"] == 30)
    bar = lambda iv: page.locator(f'#chart rect.bar[data-start="{iv["start"]}"]')  # noqa: E731
    five_w = float(bar(five).get_attribute("width"))
    thirty_w = float(bar(thirty).get_attribute("width"))
    assert thirty_w / five_w == pytest.approx(6, rel=0.2)  # bars have a sub-pixel gap
    # 16:00 in Sydney is 05:00 UTC in January: its label sits where that interval's bar starts.
    label = page.locator("#chart text.hour-label", has_text="16:00")
    assert label.count() == 1
    at_four = bar({"start": "2026-01-15T05:00:00Z"})
    assert float(label.get_attribute("x")) == pytest.approx(float(at_four.get_attribute("x")), abs=1.0)
    now_x = float(page.locator("#chart line.now-line").get_attribute("x1"))
    current = bar(api.bodies["/api/current"]["channels"]["general"])
    current_x = float(current.get_attribute("x"))
    assert current_x <= now_x <= current_x + float(current.get_attribute("width")) + 1


def test_first_of_the_month_shows_last_months_total_and_no_budget_bar(fake_page):
    page, api, watch = fake_page
    first = sydney(2026, 12, 1, 9, 0)
    open_at(page, api, first, budget=120.0, month_cost=None, last_month_cost=84.2)
    assert api.bodies["/api/summary"]["month_to_date"] is None
    assert (text(page, "#month-label"), text(page, "#month-value"), text(page, "#month-note")) == (
        "November", "$84.20", "last month")
    assert page.locator("#budget").is_hidden()
    assert "—" not in page.locator("#stats").inner_text()
    assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
    # The 2nd: this month again, with its budget bar.
    open_at(page, api, sydney(2026, 12, 2, 9, 0), budget=120.0, month_cost=6.5)
    assert (text(page, "#month-label"), text(page, "#month-value")) == ("This month", "$6.50")
    assert page.locator("#budget").is_visible()
    assert watch.errors == []


def test_forecasts_are_drawn_at_ambers_prediction_with_its_band(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, advanced=True)
    forecast = next(iv for iv in api.bodies["/api/prices"]["channels"]["general"] if iv["duration_minutes"] == 30)
    bar = page.locator(f'#chart rect.bar[data-start="{forecast["start"]}"]')
    assert float(bar.get_attribute("data-price")) == forecast["advanced_price"]["predicted"] != forecast["per_kwh"]
    band = page.locator(f'#chart rect.band[data-start="{forecast["start"]}"]')
    assert float(band.get_attribute("data-low")) == forecast["advanced_price"]["low"]
    assert float(band.get_attribute("data-high")) == forecast["advanced_price"]["high"]
    # The band spans low..high on the price scale: taller than nothing, around the bar's top.
    assert float(band.get_attribute("y")) < float(bar.get_attribute("y")) < float(band.get_attribute("y")) + float(
        band.get_attribute("height"))
    # A legend names the whiskers, inside the chart, clear of "now" and of every other label.
    legend = page.locator("#chart .legend")
    assert legend.locator(".legend-label").text_content() == "Amber's low–high"
    box = legend.bounding_box()
    chart = page.locator("#chart").bounding_box()
    assert chart["x"] <= box["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"] + 0.5
    for other in page.locator("#chart .now-label, #chart .peak-label, #chart .axis-label").all():
        o = other.bounding_box()
        assert box["x"] + box["width"] <= o["x"] or o["x"] + o["width"] <= box["x"] or (
            box["y"] + box["height"] <= o["y"] or o["y"] + o["height"] <= box["y"]), other.text_content()
    # The current interval keeps its settled-rate perKwh.
    current = api.bodies["/api/current"]["channels"]["general"]
    assert float(page.locator(f'#chart rect.bar[data-start="{current["start"]}"]').get_attribute(
        "data-price")) == current["per_kwh"]


def test_the_aemo_setting_draws_per_kwh_without_a_band(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, advanced=True, forecast_price="aemo")
    forecast = next(iv for iv in api.bodies["/api/prices"]["channels"]["general"] if iv["duration_minutes"] == 30)
    bar = page.locator(f'#chart rect.bar[data-start="{forecast["start"]}"]')
    assert float(bar.get_attribute("data-price")) == forecast["per_kwh"]
    assert page.locator("#chart rect.band").count() == 0
    assert page.locator("#chart .legend").count() == 0


@pytest.mark.parametrize("advanced", [False, True])
def test_banner_and_chart_name_the_same_spike_interval_and_value(fake_page, advanced):
    page, api, _ = fake_page
    # A potential spike at 15:30 and a dearer interval later that the banner does not name.
    open_at(page, api, NOW, advanced=advanced, spike_ahead=(timedelta(hours=2, minutes=20), "spike", 348.0))
    later = find(api.bodies["/api/prices"]["channels"]["general"], NOW + timedelta(hours=5))
    later.update(per_kwh=768.0, descriptor="spike")
    if advanced:
        later["advanced_price"] = {"low": 500.0, "predicted": 700.0, "high": 900.0}
    refresh(page)
    shown = "313" if advanced else "348"  # Amber's prediction is 90 % of the market's here
    assert text(page, "#spike-text") == f"Price spike expected at 15:30 (in 2 h 18 m) · {shown} c/kWh"
    label = page.locator("#chart text.peak-label")
    assert label.count() == 1
    assert label.text_content() == f"15:30 {shown}c"
    assert label.get_attribute("data-start") == iso(sydney(2026, 1, 15, 15, 30))


@pytest.mark.parametrize(("width", "height"), [(800, 480), (1024, 600), (1280, 800), (1920, 1080), (720, 1280)])
def test_chart_labels_never_touch_at_any_viewport(fake_page, width, height):
    page, api, _ = fake_page
    page.set_viewport_size({"width": width, "height": height})
    # A spike just after now: its label wants the place of the "now" label.
    open_at(page, api, NOW, spike_ahead=(timedelta(minutes=20), "spike", 1234.0))
    boxes = page.evaluate(
        "() => [...document.querySelectorAll('#chart text')].map((n) => { const b = n.getBBox();"
        " return {t: n.textContent, x: b.x, y: b.y, w: b.width, h: b.height}; })")
    assert any(b["t"].endswith("1234c") for b in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] or \
                b["y"] + b["h"] <= a["y"]
            assert apart, (a, b)
    assert page.evaluate(LAYOUT_PROBLEMS_JS) == []


def test_a_problem_looks_nothing_like_the_demo_badge(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, mode="demo", status="stale", source="cache", cached_ago=timedelta(minutes=40))
    notice, badge = page.locator("#notice"), page.locator("#demo-badge")
    assert notice.is_visible() and badge.is_visible()
    style = ("(n) => { const s = getComputedStyle(n); "
             "return [s.backgroundColor, s.borderTopLeftRadius, s.borderTopWidth]; }")
    notice_bg, notice_radius, notice_border = notice.evaluate(style)
    badge_bg, badge_radius, _ = badge.evaluate(style)
    assert notice_bg != badge_bg
    assert float(notice_radius.rstrip("px")) < 4 < float(badge_radius.rstrip("px"))  # square, not a pill
    assert float(notice_border.rstrip("px")) >= 2
    # Top of the screen, above the price; the badge sits in the footer.
    assert notice.bounding_box()["y"] < page.locator("#grid").bounding_box()["y"] < badge.bounding_box()["y"]
    assert text(page, "#notice .notice-icon") == "!"


def test_old_prices_after_good_syncs_say_the_fetching_stopped(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW, status="stale", source="cache", problem=None, cached_ago=timedelta(minutes=50))
    assert page.locator("#notice").get_attribute("data-problem") == "sync_stopped"
    assert text(page, "#notice-text") == "No new prices since 12:22"
    assert text(page, "#notice-detail") == "The Pi has stopped fetching prices; restart the Pi"
    assert text(page, "#price-stale") == "last known at 12:22"
