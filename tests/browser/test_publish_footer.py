"""MQTT publishing on the page: one word in the footer, only when it is configured, never a notice."""
from __future__ import annotations

import pytest

from .checks import LAYOUT_PROBLEMS_JS
from .driving import open_at, refresh, text
from .fixtures import NOW

pytestmark = pytest.mark.browser


def _publish(status: str) -> dict:
    return {"status": status, "broker": "mqtt://broker.lan:1883", "since": None, "last_error": None,
            "last_published_at": None}


def test_the_footer_says_whether_mqtt_is_publishing_only_when_it_is_configured(fake_page):
    page, api, _ = fake_page
    open_at(page, api, NOW)
    assert page.locator("#publish-status").is_hidden()
    api.bodies["/api/health"]["publish"] = _publish("connected")
    refresh(page)
    assert page.locator("#publish-status").is_visible() and text(page, "#publish-status") == "MQTT ok"
    api.bodies["/api/health"]["publish"] = _publish("failing")
    refresh(page)
    assert text(page, "#publish-status") == "MQTT offline"
    assert page.locator("#notice").is_hidden()  # the household's display is fine: no notice
    assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
