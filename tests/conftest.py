"""Shared fixtures: configuration and a cache per test in tmp_path, the fake Amber, the app.
Skips are failures here, but for what the machine refuses (tests/skip_policy.py)."""
from __future__ import annotations

import pytest

from home_energy.amber import AmberClient
from home_energy.config import load_config
from home_energy.web import create_app
from tests.fake_amber import READ_TIMEOUT_IN_TESTS_S, TOKEN, FakeAmber

pytest_plugins = ["tests.skip_policy"]

# Run in parallel (`pytest -n 2 --dist loadgroup`, as `make test` does), these share one worker and
# so never run beside each other: they drive a browser or an X server, boot systemd, or measure
# time, memory and concurrency, which a neighbour on a loaded 2-core machine would disturb.
EXCLUSIVE = ("tests/browser/", "tests/kiosk/", "tests/reliability/", "tests/pi/test_live_systemd.py",
             "tests/meter/test_live_page.py")
EXCLUSIVE_MARKERS = ("browser", "xvfb")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every other module is a group of its own, so its module-scoped fixtures are built once."""
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        exclusive = path.startswith(EXCLUSIVE) or any(item.get_closest_marker(m) for m in EXCLUSIVE_MARKERS)
        item.add_marker(pytest.mark.xdist_group("exclusive" if exclusive else path))


@pytest.fixture(scope="session")
def playwright():
    """The one Playwright of the session: its sync API refuses to start a second one beside it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def make_config(tmp_path):
    def _make(**env: str):
        base = {"SQLITE_PATH": str(tmp_path / "cache.sqlite")}
        base.update(env)
        return load_config(env=base)

    return _make


@pytest.fixture
def demo_config(make_config):
    return make_config()


@pytest.fixture
def fake_amber():
    with FakeAmber() as amber:
        yield amber


@pytest.fixture
def amber_config(make_config, fake_amber):
    return make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake_amber.url)


@pytest.fixture
def amber_client(amber_config):
    """A client with a short read timeout, so timeout faults take a second, not twenty."""

    def _client():
        return AmberClient(amber_config.amber_api_url, amber_config.amber_token, read_timeout_s=READ_TIMEOUT_IN_TESTS_S)

    return _client


@pytest.fixture
def app_for():
    def _app(config):
        app = create_app(config)
        app.config["TESTING"] = True
        return app

    return _app
