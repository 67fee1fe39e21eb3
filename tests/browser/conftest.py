"""Fixtures for the browser tests: one Chromium per session, a demo-cache server per module,
and fixture API answers routed into the page, with the page's clock under the test's control."""
from __future__ import annotations

import json
import urllib.request

import pytest

from .fixtures import FakeApi
from .harness import Server, launch_chromium, sync_demo


@pytest.fixture(scope="session")
def browser(playwright):
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`home-energy serve` over a cache the demo upstream filled: the real page, CSP and API."""
    cache = tmp_path_factory.mktemp("demo") / "cache.sqlite"
    sync_demo(cache)
    server = Server(cache).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_version(demo_server):
    with urllib.request.urlopen(demo_server.url + "/api/health", timeout=5) as response:
        return json.load(response)["version"]


class PageWatch:
    """What a page did that it must not: console errors, uncaught errors, requests elsewhere."""

    def __init__(self, page, origin: str):
        self.origin = origin
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.navigations = 0
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", self._request)
        page.on("framenavigated", lambda frame: frame == page.main_frame and self._navigated())

    def _request(self, request) -> None:
        url = request.url
        if not (url == self.origin or url.startswith(self.origin + "/") or url.startswith("data:")):
            self.foreign.append(url)

    def _navigated(self) -> None:
        self.navigations += 1


@pytest.fixture
def fake_page(browser, demo_server, server_version):
    """An 800x480 page served by the real server whose /api/* answers come from a FakeApi.

    Yields (page, api, watch); `driving.open_at` loads it at a chosen time and scenario.
    `page.base_url` is the server's address.
    """
    context = browser.new_context(viewport={"width": 800, "height": 480})
    page = context.new_page()
    api = FakeApi(version=server_version)
    page.route("**/api/**", api.handle)
    watch = PageWatch(page, demo_server.url)
    page.base_url = demo_server.url
    yield page, api, watch
    context.close()
