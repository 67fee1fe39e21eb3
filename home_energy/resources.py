"""Where the page's templates and static files are, in a checkout and in an installed wheel.

The checkout keeps them at its top (templates/, static/); a wheel carries them as package data
inside home_energy. Both are found from the package itself, never from the working directory.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def package_folder(name: str) -> str:
    """The folder `name` ("templates" or "static") that ships with this code."""
    installed = resources.files("home_energy") / name
    if installed.is_dir():
        return str(installed)
    return str(CHECKOUT / name)
