"""Serve the app exactly as `home-energy serve` does, but reporting the version given as argv[1],
and optionally at a chosen instant.

The browser tests use the version to stand for "the server came back after an update" without
making a commit: the version is otherwise read from the checkout once at start-up. With
HOME_ENERGY_TEST_NOW (ISO 8601) the server's clock starts at that instant and runs on, and with
HOME_ENERGY_TEST_SYNC=1 the demo cache is filled at that instant first, so a test can see the
display on a chosen date (the 1st of a month, say) whatever today is.
"""
from __future__ import annotations

import os
import sys
from contextlib import nullcontext

from waitress import serve

from home_energy.config import load_config
from home_energy.web import create_app


def main() -> None:
    config = load_config()
    frozen = os.environ.get("HOME_ENERGY_TEST_NOW")
    if frozen:
        from freezegun import freeze_time

        clock = freeze_time(frozen, tick=True)
    else:
        clock = nullcontext()
    with clock:
        if os.environ.get("HOME_ENERGY_TEST_SYNC") == "1":
            from home_energy.sync import run_sync

            report = run_sync(config)
            if report.exit_code != 0:
                raise SystemExit(f"sync failed: {report.error}")
        app = create_app(config)
        app.config["VERSION"] = sys.argv[1]
        serve(app, host=config.host, port=config.port, threads=4, ident="home-energy", _quiet=True)


if __name__ == "__main__":
    main()
