"""The dashboard page in headless Chromium: first contentful paint, bytes and requests.

Debian's /usr/bin/chromium is driven through Playwright (no browser is downloaded). Every load is
a cold one in a new browser context, as after the kiosk restarts; bytes are what crossed the
wire (the DevTools protocol's encodedDataLength: headers and bodies of the page, its assets and
the API calls it makes while loading). The browser may reach only the server on 127.0.0.1.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when measured: the rest of the bench runs without a browser
    from playwright.sync_api import Browser, ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
PAGE_LOADS = 5
LOAD_TIMEOUT_MS = 15_000
SETTLE_MS = 2_000  # after `load`, the time the page gets to make its start-up API calls
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}

_FCP_JS = """() => new Promise(resolve => {
  const found = performance.getEntriesByName('first-contentful-paint')[0];
  if (found) { resolve(found.startTime); return; }
  new PerformanceObserver(list => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) resolve(entry.startTime);
  }).observe({type: 'paint', buffered: true});
  setTimeout(() => resolve(null), %d);
})"""


@dataclass(frozen=True)
class PageLoad:
    fcp_ms: float | None
    bytes: int
    requests: int
    failed: int
    urls: tuple[str, ...]


@dataclass(frozen=True)
class PageStats:
    loads: int
    fcp_median_ms: float | None
    fcp_max_ms: float | None
    bytes: int
    requests: int
    failed: int
    urls: tuple[str, ...]


def _load_once(browser: Browser, url: str) -> PageLoad:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        sizes: dict[str, int] = {}
        urls: dict[str, str] = {}
        failed: list[str] = []
        def sent(e: dict[str, Any]) -> None:
            urls.setdefault(e["requestId"], e["request"]["url"])

        cdp.on("Network.requestWillBeSent", sent)
        cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])))
        # Playwright's routing cancels the browser's own /favicon.ico fetch; a cancel is not a failure.
        cdp.on("Network.loadingFailed", lambda e: None if e.get("canceled") else failed.append(e["requestId"]))
        # Anything not on the loopback server is refused: the page must load nothing from outside.
        page.route(lambda u: not u.startswith(url.rstrip("/")), lambda route: route.abort())
        page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
        fcp = page.evaluate(_FCP_JS % LOAD_TIMEOUT_MS)
        page.wait_for_timeout(SETTLE_MS)
        return PageLoad(fcp_ms=None if fcp is None else float(fcp), bytes=sum(sizes.values()), requests=len(urls),
                        failed=len(failed), urls=tuple(sorted(set(urls.values()))))
    finally:
        context.close()


def measure_page(url: str) -> PageStats:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            _load_once(browser, url)  # the first start of the browser pays for its own caches
            loads = [_load_once(browser, url) for _ in range(PAGE_LOADS)]
        finally:
            browser.close()
    paints = [x.fcp_ms for x in loads if x.fcp_ms is not None]
    return PageStats(
        loads=len(loads),
        fcp_median_ms=statistics.median(paints) if paints else None,
        fcp_max_ms=max(paints) if paints else None,
        bytes=max(x.bytes for x in loads),
        requests=max(x.requests for x in loads),
        failed=max(x.failed for x in loads),
        urls=loads[-1].urls,
    )
