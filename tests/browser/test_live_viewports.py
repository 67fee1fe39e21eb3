"""The page on the real server and a demo cache, at every screen size the display is used at.

The numbers on screen are compared with the API answers the page itself received (recorded as
they pass through), so a price that changes between two reads cannot make the test flaky. The
server and the page run on a chosen date (the 1st of a month and a mid-month day), never today's.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from .checks import (
    LAYOUT_PROBLEMS_JS,
    PRICE_DIGIT_HEIGHT_JS,
    avg_text,
    cents_text,
    dollars_text,
    js_round,
    month_expected,
)
from .conftest import PageWatch
from .harness import Server

pytestmark = pytest.mark.browser

VIEWPORTS = [(800, 480), (1024, 600), (1280, 800), (1920, 1080), (720, 1280)]
SYDNEY = ZoneInfo("Australia/Sydney")
DESCRIPTOR_WORDS = {"extremelyLow": "Extremely low", "veryLow": "Very low", "low": "Low", "neutral": "Neutral",
                    "high": "High", "spike": "Spike"}
# 09:01:30 NEM on the 1st of a month and on the 15th: three and a half minutes from the next
# interval boundary, so no boundary falls between the API's answers and the assertions.
DATES = {
    "1st": datetime(2026, 11, 30, 23, 1, 30, tzinfo=UTC),
    "15th": datetime(2026, 11, 14, 23, 1, 30, tzinfo=UTC),
}


def hhmm(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(SYDNEY).strftime("%H:%M")


@pytest.fixture(scope="module", params=sorted(DATES), ids=sorted(DATES))
def dated_server(request, tmp_path_factory):
    """`home-energy serve` over a demo cache filled at a chosen instant, its clock running from there."""
    when = DATES[request.param]
    cache = tmp_path_factory.mktemp(f"dated-{request.param}") / "cache.sqlite"
    server = Server(cache, version="dated", HOME_ENERGY_TEST_NOW=when.isoformat(), HOME_ENERGY_TEST_SYNC="1",
                    start_timeout_s=60).start()
    server.when = when
    yield server
    server.stop()


def open_recorded(browser, server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    when = getattr(server, "when", None)
    if when is not None:
        page.clock.install(time=when)
    watch = PageWatch(page, server.url)
    answers: dict[str, object] = {}

    def record(route):
        response = route.fetch()
        path = route.request.url.split("?")[0].removeprefix(server.url)
        answers[path] = json.loads(response.text())
        route.fulfill(response=response)

    page.route("**/api/**", record)
    page.goto(server.url + "/")
    page.wait_for_function("() => window.homeEnergy && window.homeEnergy.state.data !== null")
    return context, page, watch, answers


@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_numbers_on_screen_equal_the_api_at_every_viewport(browser, dated_server, width, height):
    context, page, watch, answers = open_recorded(browser, dated_server, width, height)
    try:
        current = answers["/api/current"]["channels"]
        summary = answers["/api/summary"]
        text = lambda selector: page.locator(selector).inner_text().strip()  # noqa: E731

        assert text("#price-value") == cents_text(current["general"]["per_kwh"])
        earning = -current["feedIn"]["per_kwh"]
        assert text("#feedin-value") == cents_text(abs(earning))
        assert text("#feedin-label") == ("earning" if earning >= 0 else "you pay to export")
        assert text("#feedin-word") in ("", f"· {DESCRIPTOR_WORDS[current['feedIn']['descriptor']]}")

        window = summary["cheapest"]["2h"]
        assert text("#cheapest-times") == f"{hhmm(window['start'])}–{hhmm(window['end'])}"
        assert text("#cheapest-avg") == f"avg {avg_text(window['avg_per_kwh'])} c ·"
        assert text("#yesterday-value") == dollars_text(summary["yesterday"]["cost_dollars"])
        assert (text("#month-label"), text("#month-value")) == month_expected(summary)
        if dated_server.when.astimezone(SYDNEY).day == 1:
            assert page.locator("#budget").is_hidden()
        assert text("#renewables-value") == f"{int(js_round(current['general']['renewables']))}%"
        assert page.locator("#demo-badge").is_visible()
        assert page.locator("#notice").is_hidden()

        assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
        assert watch.errors == []
        assert watch.foreign == []
        assert {"/api/health", "/api/current", "/api/prices", "/api/summary"} <= set(answers)
    finally:
        context.close()


def test_price_digits_are_a_quarter_of_the_small_screen(browser, demo_server):
    context, page, _watch, _answers = open_recorded(browser, demo_server, 800, 480)
    try:
        digits_px = page.evaluate(PRICE_DIGIT_HEIGHT_JS)
        assert digits_px >= 0.25 * 480
        price_size = page.locator("#price-value").evaluate("(n) => parseFloat(getComputedStyle(n).fontSize)")
        others = page.locator("body *:not(#price-value)").evaluate_all(
            "(nodes) => Math.max(...nodes.map((n) => parseFloat(getComputedStyle(n).fontSize)))")
        assert price_size > others
    finally:
        context.close()


def test_page_sends_a_content_security_policy_that_forbids_other_origins(demo_server):
    import urllib.request

    with urllib.request.urlopen(demo_server.url + "/", timeout=5) as response:
        policy = response.headers["Content-Security-Policy"]
        html = response.read().decode()
    assert "default-src 'self'" in policy
    assert "<title>home-energy</title>" in html
    assert "style=" not in html and "<style" not in html
    assert "<script>" not in html


def test_script_and_styles_are_versioned_so_an_update_is_not_served_from_cache(demo_server, server_version):
    import urllib.request

    with urllib.request.urlopen(demo_server.url + "/", timeout=5) as response:
        html = response.read().decode()
    assert f'/static/dashboard.js?v={server_version}"' in html
    assert f'/static/dashboard.css?v={server_version}"' in html
