"""End to end: a fake meter → `home-energy collect` → the cache → the API → the page in Chromium.

The real server and the real collector run as subprocesses over one cache; nothing is routed or
faked between them. The figures on screen must be the API's, the strip must not shrink the
price at 800×480, it must be absent without a meter, and a meter that stops answering must be
named on the page with the time it stopped.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.browser.harness import BIN, Server, launch_chromium, sync_demo
from tests.fake_meters import FakeFronius

pytestmark = pytest.mark.browser

POLL_S = "5"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _text(page, selector: str) -> str:
    return " ".join(page.locator(selector).inner_text().split())


def _wait(predicate, timeout_s: float = 30, every_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("timed out waiting")


@pytest.fixture
def metered(tmp_path):
    """A Fronius fake, the collector and the server over one demo-synced cache."""
    cache = tmp_path / "cache.sqlite"
    sync_demo(cache)
    with FakeFronius() as meter:
        meter.advance_wh = 450.0  # each counter read finds 450 Wh more imported
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AMBER", "METER"))}
        env.update(SQLITE_PATH=str(cache), METER="fronius", METER_URL=meter.url, METER_POLL_SECONDS=POLL_S)
        collector = subprocess.Popen([str(BIN / "home-energy"), "collect"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server(cache, METER="fronius", METER_URL=meter.url, METER_POLL_SECONDS=POLL_S).start()
        try:
            yield meter, server
        finally:
            server.stop()
            collector.send_signal(signal.SIGTERM)
            collector.wait(timeout=10)


def test_meter_to_page_end_to_end(playwright, metered):
    meter, server = metered
    today = _wait(lambda: (body := _get(server.url + "/api/today"))["import_kwh"] and body, timeout_s=20)
    live = _get(server.url + "/api/live")
    assert live["grid_w"] == 1703.74 and live["solar_w"] == 1111.0 and live["battery_w"] is None

    browser = launch_chromium(playwright)
    try:
        page = browser.new_context(viewport={"width": 800, "height": 480}).new_page()
        errors: list[str] = []
        foreign: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("request", lambda req: req.url.startswith(server.url) or foreign.append(req.url))
        page.goto(server.url + "/")
        page.wait_for_function("() => window.homeEnergyLive && window.homeEnergyLive.state.today "
                               "&& window.homeEnergyLive.state.today.cost_dollars !== null")
        strip = page.locator("#live-strip")
        assert strip.is_visible()
        assert _text(page, "#live-house") == "House 2.8 kW"
        assert _text(page, "#live-solar") == "Solar 1.1 kW"
        assert _text(page, "#live-grid") == "Grid in 1.7 kW"
        assert page.locator("#live-battery").is_hidden()  # no battery: no tile, never "0 W"
        api_live = _get(server.url + "/api/live")
        api_today = _get(server.url + "/api/today")
        cents = api_live["cost_cents_per_hour"]
        assert cents is not None  # the demo cache has a price for now
        shown = f"{abs(cents):.1f}" if abs(cents) < 10 else f"{round(abs(cents))}"
        assert _text(page, "#live-cost") == f"{'Earning' if cents < 0 else 'Costing'} {shown} c/h"
        # The collector started just now: unless that is the NEM day's first minutes, the figure
        # says since when it counts.
        started = datetime.fromisoformat(api_today["from"].replace("Z", "+00:00"))
        day_start = datetime.fromisoformat(api_today["date"] + "T00:00:00+10:00")
        label = "so far" if started == day_start else f"since {started.astimezone(ZoneInfo('Australia/Sydney')):%H:%M}"
        assert _text(page, "#live-today") == f"Today {label} ${api_today['cost_dollars']:.2f} est."
        assert api_today["import_kwh"] in (0.45, 0.9) and today["estimated"] is True  # one or two steps

        # Legible at 800×480 and the price now is exactly as large as without the strip.
        box = strip.bounding_box()
        assert box["y"] + box["height"] <= 480 and page.locator("#live-today").bounding_box()["x"] + 10 < 800
        font_px = float(page.locator("#live-house .live-value").evaluate("e => getComputedStyle(e).fontSize")[:-2])
        assert font_px >= 16
        assert box["height"] < 2 * 1.2 * font_px  # one line: the chart gives up its height, not the price
        with_strip = page.locator("#price-value").bounding_box()
        page.evaluate("() => { document.getElementById('live-strip').hidden = true; }")
        without_strip = page.locator("#price-value").bounding_box()
        assert with_strip == without_strip
        page.evaluate("() => { document.getElementById('live-strip').hidden = false; }")

        # The meter stops answering: the page names it, with the local time it stopped.
        meter.fault = "timeout"
        live = _wait(lambda: (b := _get(server.url + "/api/live"))["status"] == "not_answering" and b, timeout_s=30)
        page.evaluate("() => window.homeEnergyLive.refresh()")
        since = datetime.fromisoformat(live["not_answering_since"].replace("Z", "+00:00"))
        hhmm = since.astimezone(ZoneInfo("Australia/Sydney")).strftime("%H:%M")
        page.wait_for_function("() => !document.getElementById('live-status').hidden")
        assert _text(page, "#live-status") == f"Meter not answering since {hhmm}"
        assert _text(page, "#live-grid") == "Grid in 1.7 kW"  # the last figures stay
        assert errors == [] and foreign == []
    finally:
        browser.close()


def test_without_a_meter_the_page_has_no_strip_and_asks_for_nothing(playwright, tmp_path):
    cache = tmp_path / "cache.sqlite"
    sync_demo(cache)
    server = Server(cache).start()
    browser = launch_chromium(playwright)
    try:
        page = browser.new_context(viewport={"width": 800, "height": 480}).new_page()
        asked: list[str] = []
        page.on("request", lambda req: asked.append(req.url))
        page.goto(server.url + "/")
        page.wait_for_function("() => window.homeEnergy && window.homeEnergy.state.data !== null")
        assert page.locator("#live-strip").is_hidden()
        assert not any("/api/live" in url or "/api/today" in url for url in asked)
    finally:
        browser.close()
        server.stop()
