"""What every plug driver shares: the small interface, the three failures, the exchange limits.

Rules it keeps:
- Every exchange goes through the project's one network door (`fetch.Client`): one deadline
  for the whole exchange, a byte cap, no redirects, the status checked, bounded JSON, secrets
  kept out of every message. A driver adds only what its device's answers mean.
- A state is `True` (on) or `False` (off); any other answer ("maybe", a number, HTML) is a
  data error, never guessed.
- Errors are one line naming the plug, never its password.
"""
from __future__ import annotations

from typing import Protocol

from ..errors import UpstreamAuthError, UpstreamDataError, UpstreamError
from ..fetch import Faults, Limits
from .rules import PlugConfig

# A plug is on the home network and answers in milliseconds: a few seconds is already a fault,
# and the controller must get round every plug well within its one-minute cadence.
PLUG_LIMITS = Limits(deadline_s=5.0, connect_s=3.0, read_s=4.0, max_bytes=16 * 1024, max_depth=8,
                     max_values=2_000, error_bytes=1024)


class PlugUnavailableError(UpstreamError):
    """The plug did not answer usefully this time (timeout, refused, 5xx, HTML): retried with backoff."""


class PlugDataError(UpstreamDataError):
    """The plug answered something it cannot mean (a state that is neither on nor off)."""


class PlugAuthError(UpstreamAuthError):
    """The plug asks for a password, or refused the one in PLUGS_FILE."""


FAULTS = Faults(unavailable=PlugUnavailableError, data=PlugDataError)


class Plug(Protocol):
    """One switch on one device."""

    key: str

    def read(self) -> bool:
        """The switch's state now: True on, False off."""
        ...

    def switch(self, on: bool) -> bool:
        """Set the switch; returns the state the device reports afterwards."""
        ...

    def close(self) -> None: ...


def make_plug(plug: PlugConfig, limits: Limits = PLUG_LIMITS) -> Plug:
    if plug.driver == "shelly":
        from .shelly import ShellyPlug

        return ShellyPlug(plug, limits)
    if plug.driver == "tasmota":
        from .tasmota import TasmotaPlug

        return TasmotaPlug(plug, limits)
    raise ValueError(f"no driver {plug.driver!r}")  # rules.py admits only the drivers above
