"""A household's first hour, on the real server and the real sync: the demo, then a token while
Amber cannot be reached, then a mistyped token, then Amber answering.

The dashboard runs without the token (as its service does on the Pi); each step is a real
`home-energy sync` into the same cache, and the page is refreshed as its timer would. Until
Amber's first prices arrive no simulated number may be on screen and the notice must say why;
then Amber's price appears. DEMO is in the price card, at least 5 % of the height, only while
the numbers are simulated.
"""
from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest

from tests.fake_amber import TOKEN, FakeAmber
from tests.ports import free_port

from .checks import cents_text
from .harness import BIN, Server, _env, sync_demo
from .problem_states import READY_JS, WRONG_TOKEN

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 800, 480
FIGURES = ("#price-value", "#cheapest-times", "#feedin-value", "#renewables-value", "#yesterday-value",
           "#month-value")


def sync(cache, **env: str) -> int:
    return subprocess.run([str(BIN / "home-energy"), "sync"], env=_env(cache, None, env), capture_output=True,
                          timeout=90).returncode


def health(server: Server) -> dict:
    with urllib.request.urlopen(server.url + "/api/health", timeout=5) as response:
        return json.load(response)


def text(page, selector: str) -> str:
    return " ".join(page.locator(selector).inner_text().split())


def refresh_until(page, condition_js: str) -> None:
    page.evaluate("() => window.homeEnergy.refresh()")
    page.wait_for_function(condition_js, timeout=15000)


def numbers_on_screen(page) -> list[str]:
    """Every figure the page shows that is a number (a dash is not)."""
    shown = []
    for selector in FIGURES:
        node = page.locator(selector)
        if node.is_visible() and re.search(r"\d", node.inner_text()):
            shown.append(f"{selector}: {node.inner_text()}")
    return shown


def test_demo_then_token_unreachable_then_refused_then_amber(browser, tmp_path):
    cache = tmp_path / "cache.sqlite"
    sync_demo(cache)
    server = Server(cache).start()  # no token: the dashboard's service never has it
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    try:
        # 1. The demo: simulated numbers, and DEMO in the price card big enough to read from the door.
        page.goto(server.url + "/")
        page.wait_for_function(READY_JS)
        assert (health(server)["mode"], health(server)["prices_source"]) == ("demo", "demo")
        assert page.locator("#demo-mark").is_visible() and text(page, "#demo-mark") == "DEMO"
        size = float(page.locator("#demo-mark").evaluate("e => getComputedStyle(e).fontSize")[:-2])
        assert size >= 0.05 * HEIGHT
        assert re.fullmatch(r"−?\d+(\.\d)?", text(page, "#price-value"))

        # 2. The token is set while Amber cannot be reached: the demo's numbers go, the notice says why.
        nowhere = f"http://127.0.0.1:{free_port()}/v1"
        assert sync(cache, AMBER_TOKEN=TOKEN, AMBER_API_URL=nowhere) == 75
        refresh_until(page, "() => document.getElementById('notice-text').textContent"
                            " === \"Waiting for Amber's first prices\"")
        assert text(page, "#notice-detail") == "Amber cannot be reached: check the Pi's internet"
        assert numbers_on_screen(page) == []
        assert text(page, "#price-value") == "—"
        assert page.locator("#demo-mark").is_hidden() and page.locator("#demo-badge").is_hidden()
        assert "last known" not in page.locator("body").inner_text()
        body = health(server)
        assert (body["mode"], body["prices_source"], body["problem"]) == ("amber", None, "upstream_unreachable")

        with FakeAmber() as amber:
            # 3. A mistyped token: still nothing simulated, and the notice names the token.
            assert sync(cache, AMBER_TOKEN=WRONG_TOKEN, AMBER_API_URL=amber.url) == 78
            refresh_until(page, "() => document.getElementById('notice-text').textContent"
                                " === 'Amber refused the token'")
            assert text(page, "#notice-detail") == "Check the Amber token in the settings on the Pi"
            assert numbers_on_screen(page) == []
            assert page.locator("#demo-mark").is_hidden()

            # 4. The right token and Amber answering: Amber's price is the big number.
            assert sync(cache, AMBER_TOKEN=TOKEN, AMBER_API_URL=amber.url) == 0
            refresh_until(page, "() => document.getElementById('notice').hidden")
            with urllib.request.urlopen(server.url + "/api/current", timeout=5) as response:
                current = json.load(response)["channels"]["general"]
            assert text(page, "#price-value") == cents_text(current["per_kwh"])
            assert page.locator("#demo-mark").is_hidden() and page.locator("#demo-badge").is_hidden()
            body = health(server)
            assert (body["mode"], body["prices_source"], body["problem"]) == ("amber", "amber", None)
    finally:
        context.close()
        server.stop()
