"""Fixtures for plug tests: fake plugs started and stopped per test."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from home_energy.config import Config
from home_energy.plugs.controller import Controller
from tests.fake_plugs import FakeShellyPlug, FakeTasmotaPlug
from tests.plugs.helpers import controller_for


@pytest.fixture
def shelly() -> Iterator[FakeShellyPlug]:
    with FakeShellyPlug() as plug:
        yield plug


@pytest.fixture
def tasmota() -> Iterator[FakeTasmotaPlug]:
    with FakeTasmotaPlug() as plug:
        yield plug


@pytest.fixture
def control() -> Iterator[Callable[..., Controller]]:
    """Controllers for a test, closed (connections, sockets, workers) when it ends."""
    made: list[Controller] = []

    def _make(config: Config, dry_run: bool = False, **kwargs: Any) -> Controller:
        controller = controller_for(config, dry_run=dry_run, **kwargs)
        made.append(controller)
        return controller

    yield _make
    for controller in made:
        controller.close()
