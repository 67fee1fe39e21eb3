"""Fixtures for the kiosk tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kiosk.kiosk_helpers import ScriptedHealthServer


@pytest.fixture
def health_server() -> Iterator[type[ScriptedHealthServer]]:
    """Start ScriptedHealthServer(port, statuses) as often as a test likes; all are closed after."""
    started: list[ScriptedHealthServer] = []

    class Tracked(ScriptedHealthServer):
        def __init__(self, port: int, statuses: list[int]) -> None:
            super().__init__(port, statuses)
            started.append(self)

    yield Tracked
    for server in started:
        server.close()
