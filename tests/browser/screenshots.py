"""Write docs/screenshots/dashboard-<w>x<h>.png (the page on demo data) and
docs/screenshots/state-<problem>-800x480.png (each abnormal state, produced as in
tests/browser/problem_states.py), as `make screenshots` asks.

Run from the checkout: .venv/bin/python tests/browser/screenshots.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.harness import Server, launch_chromium, sync_demo  # noqa: E402
from tests.browser.problem_states import STATES, open_state, serve_state  # noqa: E402

SIZES = [(800, 480), (1920, 1080)]
STATE_SIZE = (800, 480)  # the smallest screen: if a state reads there, it reads everywhere
OUT = ROOT / "docs" / "screenshots"
DEMO_BUDGET_DOLLARS = "120"  # so the screenshots show the budget bar


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.sqlite"
        sync_demo(cache)
        server = Server(cache, MONTHLY_BUDGET=DEMO_BUDGET_DOLLARS).start()
        try:
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                for width, height in SIZES:
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(server.url + "/?kiosk=1")
                    page.wait_for_function("() => window.homeEnergy && window.homeEnergy.state.data !== null")
                    page.wait_for_timeout(300)
                    path = OUT / f"dashboard-{width}x{height}.png"
                    page.screenshot(path=str(path))
                    print(path.relative_to(ROOT))
                    page.close()
                for name, expected in STATES.items():
                    with serve_state(name, Path(tmp)) as state_server:
                        context, page = open_state(browser, state_server, expected, *STATE_SIZE)
                        path = OUT / f"state-{name}-{STATE_SIZE[0]}x{STATE_SIZE[1]}.png"
                        page.screenshot(path=str(path))
                        print(path.relative_to(ROOT))
                        context.close()
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
