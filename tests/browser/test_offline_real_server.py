"""The real server goes away mid-test and comes back after an update: the page must keep its
numbers and say it is offline while the server is down, and reload exactly once when it returns
with a new version."""
from __future__ import annotations

import pytest

from .conftest import PageWatch
from .harness import Server, sync_demo

pytestmark = pytest.mark.browser

NUMBERS = ("#price-value", "#feedin-value", "#cheapest-times", "#yesterday-value", "#month-value")
READY_JS = "() => window.homeEnergy && window.homeEnergy.state.data !== null"


def test_server_stops_then_returns_with_a_new_version(browser, tmp_path):
    cache = tmp_path / "cache.sqlite"
    sync_demo(cache)
    server = Server(cache).start()
    context = browser.new_context(viewport={"width": 800, "height": 480})
    try:
        page = context.new_page()
        watch = PageWatch(page, server.url)
        page.goto(server.url + "/")
        page.wait_for_function(READY_JS)
        old_version = page.locator("body").get_attribute("data-version")
        before = {sel: page.locator(sel).inner_text() for sel in NUMBERS}
        assert page.locator("#notice").is_hidden()

        server.stop()
        page.evaluate("() => window.homeEnergy.refresh()")
        page.evaluate("() => window.homeEnergy.refresh()")
        assert {sel: page.locator(sel).inner_text() for sel in NUMBERS} == before
        assert page.locator("#notice").is_visible()
        notice = page.locator("#notice-text").inner_text()
        assert notice.startswith("The Pi stopped answering at ")
        assert page.locator("#notice-detail").inner_text().startswith("Prices shown are from ")
        assert watch.navigations == 1

        server = Server(cache, port=server.port, version="after-update-2").start()
        with page.expect_event("load"):
            page.evaluate("() => { window.homeEnergy.refresh(); }")
        page.wait_for_function(READY_JS)
        assert page.locator("body").get_attribute("data-version") == "after-update-2" != old_version
        page.evaluate("() => window.homeEnergy.refresh()")
        page.evaluate("() => window.homeEnergy.refresh()")
        assert watch.navigations == 2  # the first load and one reload
        assert page.locator("#notice").is_hidden()
        # Chromium logs each refused connection itself; nothing else may reach the console.
        assert [e for e in watch.errors if "ERR_CONNECTION_REFUSED" not in e] == []
        assert watch.foreign == []
    finally:
        context.close()
        server.stop()
