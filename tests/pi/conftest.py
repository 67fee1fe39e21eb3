"""Fixtures for the Raspberry Pi appliance tests; the harness itself is in pi_harness.py."""
from __future__ import annotations

from tests.pi.pi_harness import fake_pi

__all__ = ["fake_pi"]
