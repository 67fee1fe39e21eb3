"""End to end: a fake Shelly → `home-energy control` → the cache → /api/plugs → the page in Chromium.

The real controller and the real server run as subprocesses over a demo-synced cache; the line
on the wall must say what the API says, in the household's time, and fit an 800×480 screen
without shrinking the price."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.browser.harness import BIN, Server, _env, launch_chromium, sync_demo
from tests.fake_plugs import FakeShellyPlug

pytestmark = pytest.mark.browser
TZ = "Australia/Sydney"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _wait(predicate, timeout_s: float = 60, every_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("timed out waiting")


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(TZ)).strftime("%H:%M")


def test_the_plugs_line_shows_what_the_controller_decided(playwright, tmp_path):
    cache = tmp_path / "cache.sqlite"
    sync_demo(cache)
    with FakeShellyPlug() as shelly:
        plugs = tmp_path / "plugs.toml"
        plugs.write_text(f'[plugs.dishwasher]\ndriver = "shelly"\nurl = "{shelly.url}"\n'
                         'cheapest = { hours = 2, from = "00:00", to = "23:55" }\n')
        extra = {"PLUGS_FILE": str(plugs), "TIMEZONE": TZ}
        controller = subprocess.Popen([str(BIN / "home-energy"), "control"], env=_env(cache, None, extra),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server(cache, **extra).start()
        browser = launch_chromium(playwright)
        try:
            body = _wait(lambda: (b := _get(server.url + "/api/plugs"))["plugs"] and b)
            (plug,) = body["plugs"]
            assert body["controller"] == "running" and plug["block"] is not None, plug
            page = browser.new_context(viewport={"width": 800, "height": 480}).new_page()
            errors: list[str] = []
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.goto(server.url + "/")
            page.wait_for_function("() => window.homeEnergyPlugs && window.homeEnergyPlugs.state.body "
                                   "&& window.homeEnergyPlugs.state.body.plugs.length === 1")
            shown = " ".join(page.locator("#plugs-line").inner_text().split())
            start, end = _clock(plug["block"]["start"]), _clock(plug["block"]["end"])
            assert shown in (f"Dishwasher · on {start}–{end} · cheapest 2 h",
                             f"Dishwasher · on until {end} · cheapest 2 h",
                             f"Dishwasher · off · ran {start}–{end} · cheapest 2 h"), shown
            assert page.locator(".plug").first.get_attribute("title") == plug["why"]
            box = page.locator("#plugs-line").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 480
            with_line = page.locator("#price-value").bounding_box()
            page.evaluate("() => { document.getElementById('plugs-line').hidden = true; }")
            assert page.locator("#price-value").bounding_box() == with_line
            assert errors == []
        finally:
            browser.close()
            server.stop()
            controller.terminate()
            controller.wait(timeout=15)
