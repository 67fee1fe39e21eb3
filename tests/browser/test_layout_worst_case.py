"""The layout with everything on screen at once (spike banner, offline notice, budget, demo badge,
four-digit price, feed-in) must still fit every screen size without clipping or overlap."""
from __future__ import annotations

from datetime import timedelta

import pytest

from .checks import LAYOUT_PROBLEMS_JS
from .driving import open_at, refresh, sydney, text
from .fixtures import NOW

pytestmark = pytest.mark.browser

VIEWPORTS = [(800, 480), (1024, 600), (1280, 800), (1920, 1080), (720, 1280)]


@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_everything_showing_still_fits_without_clipping(fake_page, width, height):
    page, api, watch = fake_page
    page.set_viewport_size({"width": width, "height": height})
    open_at(page, api, NOW, price_now=1999.7, spike_now="spike", mode="demo", budget=150.0, month_cost=131.25,
            yesterday_cost=12.34)
    api.down = True
    refresh(page)  # the longest notice: the server unreachable
    assert page.locator("#spike-banner").is_visible() and page.locator("#notice").is_visible()
    assert text(page, "#price-value") == "2000"
    assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
    api.down = False
    night = sydney(2026, 1, 15, 23, 30)
    open_at(page, api, night, price_now=-12.4, spike_ahead=(timedelta(hours=2), "potential", 150.0))
    assert text(page, "#price-value") == "\u221212"
    assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
    assert watch.foreign == []
