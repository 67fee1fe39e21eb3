"""Every text element keeps WCAG AA contrast (4.5:1) in every descriptor colour, by day and by
night; and 1,000 refresh cycles leave the JS heap and the DOM where they were."""
from __future__ import annotations

from datetime import timedelta

import pytest

from .checks import CONTRAST_JS
from .driving import open_at, refresh, sydney
from .fixtures import NOW

pytestmark = pytest.mark.browser

MIN_CONTRAST = 4.5
DESCRIBED_PRICES = {"extremelyLow": -2.0, "veryLow": 3.0, "low": 12.0, "neutral": 22.0, "high": 60.0, "spike": 480.0}
REFRESH_CYCLES = 1000
WARM_UP_CYCLES = 100
HEAP_GROWTH_LIMIT_BYTES = 512 * 1024  # keeping one old answer per cycle would add ~100 MB


def low_contrast(page) -> list[dict]:
    results = page.evaluate(CONTRAST_JS)
    assert len(results) > 20  # the check saw the page's text, chart labels included
    return [r for r in results if r["ratio"] < MIN_CONTRAST]


@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
def test_every_text_element_has_aa_contrast_in_every_descriptor_colour(fake_page, night):
    page, api, _ = fake_page
    when = sydney(2026, 1, 15, 23, 10) if night else NOW
    # A notice but a live price, so the price panel wears each descriptor's colour.
    everything = dict(
        spike_ahead=(timedelta(hours=2), "potential", 300.0), status="ok", source="cache",
        cached_ago=timedelta(minutes=4), mode="demo", budget=100.0, month_cost=60.0, advanced=True,
    )
    open_at(page, api, when, **everything)
    assert page.evaluate("() => document.body.classList.contains('night')") is night
    for descriptor, price in DESCRIBED_PRICES.items():
        api.use(when, price_now=price, **everything)
        refresh(page)
        assert page.locator("#now").get_attribute("data-descriptor") == descriptor
        assert low_contrast(page) == [], descriptor
    api.use(when, price_now=480.0, spike_now="spike")
    refresh(page)
    assert page.locator("#spike-banner").is_visible()
    assert low_contrast(page) == []
    # The price older than its interval: the dimmed panel still reads at AA.
    api.use(when, status="stale", source="cache", cached_ago=timedelta(minutes=40), mode="demo")
    refresh(page)
    assert "stale" in page.locator("#now").get_attribute("class")
    assert low_contrast(page) == []


def test_a_thousand_refreshes_keep_the_heap_and_dom_flat(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    # Alternate two answers, so every refresh redraws the price, the banner and the chart.
    quiet = api.use(NOW, price_now=12.0)
    spiky = api.use(NOW, price_now=480.0, spike_now="spike", mode="demo")
    cdp = page.context.new_cdp_session(page)
    # The answers come from a stub fetch inside the page, so 1,000 cycles take seconds, not minutes;
    # everything after fetch (parsing, state, drawing) is the page's own code.
    page.evaluate(
        """([a, b]) => {
            let n = 0;
            window.fetch = async (url) => {
                const bodies = Math.floor(n++ / 4) % 2 ? b : a;
                return new Response(JSON.stringify(bodies[new URL(url, location.href).pathname]), {status: 200});
            };
        }""",
        [quiet, spiky],
    )

    def run(cycles: int) -> None:
        page.evaluate("async (n) => { for (let i = 0; i < n; i++) await window.homeEnergy.refresh(); }", cycles)

    def heap_after_gc() -> int:
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("HeapProfiler.collectGarbage")
        return cdp.send("Runtime.getHeapUsage")["usedSize"]

    def dom_nodes() -> int:
        return page.evaluate("() => document.getElementsByTagName('*').length")

    run(WARM_UP_CYCLES)
    heap_before, nodes_before = heap_after_gc(), dom_nodes()
    refreshes_before = page.evaluate("() => window.homeEnergy.state.refreshes")
    run(REFRESH_CYCLES)
    heap_after, nodes_after = heap_after_gc(), dom_nodes()
    assert page.evaluate("() => window.homeEnergy.state.refreshes") - refreshes_before == REFRESH_CYCLES
    assert page.locator("#price-value").inner_text() in ("12", "480")
    assert nodes_after == nodes_before
    print(f"heap after GC: {heap_before} -> {heap_after} bytes over {REFRESH_CYCLES} refreshes")
    assert heap_after - heap_before < HEAP_GROWTH_LIMIT_BYTES, (heap_before, heap_after)
