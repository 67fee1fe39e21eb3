"""home-energy: an offline-first kitchen display of Amber Electric prices and usage.

The sync is the only writer of the SQLite cache; the web app only reads it.
"""
from __future__ import annotations

__version__ = "0.1.0"
