"""Meter fixtures: fake devices from the real samples, a short client timeout, a frozen day."""
from __future__ import annotations

import pytest

from tests.fake_meters import FakeFronius, FakeShelly

READ_TIMEOUT_IN_TESTS_S = 0.5  # the fakes' `timeout` fault answers after 2 s


@pytest.fixture(autouse=True)
def short_meter_timeout(monkeypatch):
    monkeypatch.setattr("home_energy.sources.base.READ_TIMEOUT_S", READ_TIMEOUT_IN_TESTS_S)


@pytest.fixture
def fronius():
    with FakeFronius() as fake:
        yield fake


@pytest.fixture
def shelly():
    with FakeShelly() as fake:
        yield fake


@pytest.fixture(autouse=True)
def close_meter_connections(monkeypatch):
    """Close every device connection a test opened (sources keep one alive between polls)."""
    from home_energy.sources.base import JsonHttp

    opened: list[JsonHttp] = []
    original = JsonHttp.__init__

    def tracking(self, *args, **kwargs):
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(JsonHttp, "__init__", tracking)
    yield
    for client in opened:
        client.close()
