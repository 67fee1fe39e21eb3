"""Serve the app exactly as `home-energy serve` does, but reporting the version given as argv[1].

The browser tests use it to stand for "the server came back after an update" without making a
commit: the version is otherwise read from the checkout once at start-up.
"""
from __future__ import annotations

import sys

from waitress import serve

from home_energy.config import load_config
from home_energy.web import create_app


def main() -> None:
    config = load_config()
    app = create_app(config)
    app.config["VERSION"] = sys.argv[1]
    serve(app, host=config.host, port=config.port, threads=4, ident="home-energy", _quiet=True)


if __name__ == "__main__":
    main()
