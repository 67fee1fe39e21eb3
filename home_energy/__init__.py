"""home-energy: an offline-first kitchen display of Amber Electric prices and usage.

Everything shown comes from a local SQLite cache: `store` is its one writer (for the sync, the meter
collector, init-db and seed-demo); the web app only reads it, through `queries`. docs/architecture.md
maps the modules and the rules the tests check.
"""
from __future__ import annotations

__version__ = "0.1.0"
