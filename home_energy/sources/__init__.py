"""Sources: things on the home network the collector polls, each behind one small interface.

A source has a `name`, a `poll_seconds` and `fetch()`, which returns one validated `Reading`
or raises: `MeterUnavailableError` (timeout, refused, 5xx, 429, HTML where JSON was due: try
again next poll), `MeterDataError` (an answer that fails validation: rejected whole) or
`MeterConfigError` (wrong address, a password needed: a person must act). Nothing a source
returns has been guessed: a quantity the device marks null, or does not measure, is None and
stays None all the way to the page. The web never imports this package; only the collector does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (
    MeterConfigError,
    MeterDataError,
    MeterUnavailableError,
    Reading,
    Source,
)

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "MeterConfigError",
    "MeterDataError",
    "MeterUnavailableError",
    "Reading",
    "Source",
    "make_source",
]


def make_source(config: Config) -> Source | None:
    """The configured meter's source, or None when METER is unset."""
    if config.meter is None or config.meter_url is None:  # the settings give both or neither
        return None
    if config.meter == "fronius":
        from .fronius import FroniusSource

        return FroniusSource(config.meter_url, config.meter_poll_seconds)
    if config.meter == "shelly":
        from .shelly import ShellySource

        return ShellySource(config.meter_url, config.meter_poll_seconds, config.meter_password)
    raise MeterConfigError(f"unknown METER {config.meter!r}")
