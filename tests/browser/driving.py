"""Driving the page in tests: load it at a chosen time, refresh it, read its text."""
from __future__ import annotations

from datetime import datetime, timedelta

from .fixtures import SYDNEY, UTC

READY_JS = "() => window.homeEnergy && window.homeEnergy.state.data !== null"


def open_at(page, api, when: datetime, path: str = "/", **options) -> None:
    """Load the page with the clock just before `when`, then pause at `when` and refresh."""
    api.use(when, **options)
    page.clock.install(time=when - timedelta(seconds=5))
    page.goto(page.base_url + path)
    page.wait_for_function(READY_JS)
    page.clock.pause_at(when)
    refresh(page)


def refresh(page) -> None:
    page.evaluate("() => window.homeEnergy.refresh()")


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def sydney(year, month, day, hour, minute, second=0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SYDNEY).astimezone(UTC)
