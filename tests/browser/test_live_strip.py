"""The live power strip read from across the kitchen: figure sizes, one row, "since 22:03".

The real server (with a meter configured, so the page shows the strip) serves the page and every
price answer; /api/live and /api/today are fixture answers, so a battery can join the strip and
the collector's start time can be chosen. At each supported screen size every figure must be at
least 5 % of the viewport's height, in one row in landscape (with and without a battery), in two
columns in portrait (720 px cannot hold six 64 px figures side by side), and nothing may be cut
off, overflow or overlap.
"""
from __future__ import annotations

import json

import pytest

from .checks import LAYOUT_PROBLEMS_JS
from .harness import Server, sync_demo

pytestmark = pytest.mark.browser

VIEWPORTS = [(800, 480), (1024, 600), (1920, 1080), (720, 1280)]
MIN_FIGURE_SHARE = 0.05  # of the viewport's height, the notices' rule
TILES = ("house", "solar", "battery", "grid", "cost", "today")


def live_answer(battery: bool) -> dict:
    return {
        "at": "2026-12-07T11:00:00Z", "age_seconds": 3, "grid_w": 1703.7, "solar_w": 1111.0,
        "battery_w": 1234.0 if battery else None, "battery_soc_percent": 85.4 if battery else None,
        "load_w": 2814.7, "cost_cents_per_hour": 68.4, "source": "fronius", "status": "ok",
        "not_answering_since": None,
    }


# The collector started at 22:03 Sydney time (11:03 UTC) on a NEM day that began at 14:00 UTC
# the day before: the figure counts only since then, and says so.
TODAY_FROM_2203 = {
    "date": "2026-12-07", "from": "2026-12-07T11:03:00Z", "to": "2026-12-07T11:10:00Z", "import_kwh": 0.05,
    "export_kwh": 0.0, "cost_dollars": 3.1, "estimated": True, "basis": "meter", "unpriced_kwh": 0.0,
    "source": "fronius",
}
TODAY_WHOLE_DAY = {**TODAY_FROM_2203, "from": "2026-12-06T14:00:00Z"}


@pytest.fixture(scope="module")
def metered_server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("strip") / "cache.sqlite"
    sync_demo(cache)
    # The meter's address is never polled here: only the server runs, and it reads the cache.
    server = Server(cache, METER="fronius", METER_URL="http://127.0.0.1:9").start()
    yield server
    server.stop()


def open_strip(browser, server, width: int, height: int, live: dict, today: dict):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.route("**/api/live", lambda route: route.fulfill(json=live))
    page.route("**/api/today", lambda route: route.fulfill(json=today))
    page.goto(server.url + "/")
    page.wait_for_function("() => window.homeEnergy && window.homeEnergy.state.data !== null "
                           "&& window.homeEnergyLive && window.homeEnergyLive.state.today !== null")
    return context, page


def figures(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('#live-strip .live-tile')]
        .filter((t) => !t.hidden)
        .map((t) => { const v = t.querySelector('.live-value'); const r = v.getBoundingClientRect();
                      return { id: t.id, px: parseFloat(getComputedStyle(v).fontSize), top: r.top,
                               bottom: r.bottom, left: r.left, right: r.right,
                               lines: Math.round(r.height / parseFloat(getComputedStyle(v).lineHeight)) }; })""")


@pytest.mark.parametrize("battery", [False, True], ids=["no-battery", "battery"])
@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_live_figures_are_a_twentieth_of_the_screen_in_one_row(browser, metered_server, width, height, battery):
    context, page = open_strip(browser, metered_server, width, height, live_answer(battery), TODAY_FROM_2203)
    try:
        shown = figures(page)
        assert [f["id"] for f in shown] == [f"live-{t}" for t in TILES if battery or t != "battery"]
        for figure in shown:
            assert figure["px"] >= MIN_FIGURE_SHARE * height, (figure, height)
            assert figure["lines"] == 1, figure  # a figure never wraps inside its tile
        tops = sorted({round(f["top"]) for f in shown})
        if width > height:
            assert len(tops) == 1, f"the figures take {len(tops)} rows at {width}x{height}: {shown}"
        else:
            assert len(tops) == (4 if battery else 3), shown  # portrait: two columns, the battery a row
        for a, b in zip(shown, shown[1:], strict=False):  # figures never touch one another
            if round(a["top"]) == round(b["top"]):
                assert a["right"] < b["left"], (a, b)
        strip = page.locator("#live-strip").bounding_box()
        assert strip["x"] >= 0 and strip["x"] + strip["width"] <= width and strip["y"] + strip["height"] <= height
        assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
        assert " ".join(page.locator("#live-today").inner_text().split()) == "Today since 22:03 $3.10 est."
        if battery:
            assert " ".join(page.locator("#live-battery").inner_text().split()) == "Battery out 1.2 kW 85%"
    finally:
        context.close()


def test_today_says_so_far_when_the_meter_saw_the_whole_day(browser, metered_server):
    context, page = open_strip(browser, metered_server, 800, 480, live_answer(False), TODAY_WHOLE_DAY)
    try:
        assert " ".join(page.locator("#live-today").inner_text().split()) == "Today so far $3.10 est."
    finally:
        context.close()


def test_amber_figures_for_the_day_carry_no_estimate_mark(browser, metered_server):
    amber = {**TODAY_WHOLE_DAY, "estimated": False, "basis": "amber", "cost_dollars": 4.25}
    context, page = open_strip(browser, metered_server, 800, 480, live_answer(False), amber)
    try:
        assert " ".join(page.locator("#live-today").inner_text().split()) == "Today so far $4.25"
    finally:
        context.close()


def test_the_strip_keeps_its_figures_and_names_a_silent_meter(browser, metered_server):
    silent = {**live_answer(True), "status": "not_answering", "not_answering_since": "2026-12-07T03:05:00Z"}
    context, page = open_strip(browser, metered_server, 800, 480, silent, TODAY_FROM_2203)
    try:
        assert page.locator("#live-status").inner_text() == "Meter not answering since 14:05"
        shown = figures(page)
        assert len(shown) == 6 and len({round(f["top"]) for f in shown}) == 1
        assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
        assert json.loads(json.dumps(shown))[0]["px"] >= 24
    finally:
        context.close()


# A spike hour on a big house: the longest figures the strip can meet.
WORST_LIVE = {**live_answer(True), "load_w": 8345.0, "solar_w": 8543.0, "battery_w": -9940.0,
              "battery_soc_percent": 100, "grid_w": 12345.0, "cost_cents_per_hour": 245678.0}
WORST_TODAY = {**TODAY_FROM_2203, "cost_dollars": -12345.67}


@pytest.mark.parametrize(("width", "height", "tight"), [(800, 480, False), (720, 480, True), (1920, 1080, False)],
                         ids=["800x480", "720x480", "1920x1080"])
def test_the_longest_figures_stay_on_one_row_at_full_size(browser, metered_server, width, height, tight):
    context, page = open_strip(browser, metered_server, width, height, WORST_LIVE, WORST_TODAY)
    try:
        shown = figures(page)
        texts = {f["id"]: " ".join(page.locator(f"#{f['id']} .live-value").inner_text().split()) for f in shown}
        assert texts == {"live-house": "8.3 kW", "live-solar": "8.5 kW", "live-battery": "9.9 kW 100%",
                         "live-grid": "12 kW", "live-cost": "$2457/h", "live-today": "−$12345.67"}
        assert len({round(f["top"]) for f in shown}) == 1, shown
        assert all(f["px"] >= MIN_FIGURE_SHARE * height and f["lines"] == 1 for f in shown), shown
        # Tighter spacing only where the row would otherwise wrap.
        assert ("live-tight" in page.locator("#live-strip").get_attribute("class")) is tight
        assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
    finally:
        context.close()
