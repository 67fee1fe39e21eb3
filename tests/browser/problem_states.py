"""Each abnormal state the display must name, produced the way it happens in a kitchen: the real
`home-energy sync` against a fake Amber that refuses the token, rate-limits or is gone, the real
server stopped, the cache file gone from under the server, a cache before its first sync. Shared by
the browser tests and the screenshots.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fake_amber import TOKEN, FakeAmber

from .harness import BIN, Server, _env

WRONG_TOKEN = "psk_thisisnotthetoken000000000000"
READY_JS = "() => window.homeEnergy && window.homeEnergy.state.data !== null"


@dataclass(frozen=True)
class Expected:
    problem: str
    headline: str  # a regular expression: times vary with the run
    detail: str
    stale_price: bool = False  # the price panel says "last known at"
    clock_ahead: timedelta = timedelta(0)  # the page's clock ahead of the server's
    stop_server: bool = False  # stop the server once the page has loaded
    break_cache: bool = False  # take the cache file away once the page has loaded


STATES = {
    "token_refused": Expected("token_refused", r"Amber refused the token",
                              r"Check the Amber token in the settings on the Pi"),
    "upstream_unreachable": Expected("upstream_unreachable", r"No new prices since \d\d:\d\d",
                                     r"Amber or the internet is down; showing the last known",
                                     stale_price=True, clock_ahead=timedelta(minutes=45)),
    "rate_limited": Expected("rate_limited", r"No new prices since \d\d:\d\d",
                             r"Amber asked for a pause: new prices within minutes; showing the last known"),
    "server_unreachable": Expected("server_unreachable", r"The Pi stopped answering at \d\d:\d\d",
                                   r"Prices shown are from \d\d:\d\d; restart the Pi if this lasts",
                                   stop_server=True),
    "site_missing": Expected("site_missing", r"Amber does not know this site",
                             r"Check the site id in the settings on the Pi"),
    "invalid_data": Expected("invalid_data", r"No new prices since \d\d:\d\d",
                             r"Amber's reply could not be read; showing the last known"),
    "cache_unreadable": Expected("cache_unreadable", r"The Pi cannot read its saved prices",
                                 r"Restart the Pi; if this stays, reinstall", break_cache=True),
    # The server here has a token (no run has recorded a mode yet), so it waits for Amber's.
    "first_sync_pending": Expected("first_sync_pending", r"Waiting for Amber's first prices",
                                   r"If this lasts 10 minutes, check the Pi's internet"),
}


def _run(command: str, cache: Path, **env: str) -> int:
    result = subprocess.run([str(BIN / "home-energy"), command], env=_env(cache, None, env),
                            capture_output=True, timeout=60)
    return result.returncode


@contextmanager
def serve_state(name: str, workdir: Path) -> Iterator[Server]:
    """A running server whose cache is in state `name` (one of STATES)."""
    cache = workdir / f"{name}.sqlite"
    with FakeAmber() as amber:
        amber_env = {"AMBER_API_URL": amber.url}
        if name == "token_refused":
            assert _run("sync", cache, AMBER_TOKEN=WRONG_TOKEN, **amber_env) == 78
        elif name == "site_missing":
            assert _run("sync", cache, AMBER_TOKEN=TOKEN, AMBER_SITE_ID="01NOSUCHSITE", **amber_env) == 78
        elif name == "first_sync_pending":
            assert _run("init-db", cache, AMBER_TOKEN=TOKEN, **amber_env) == 0
        else:
            assert _run("sync", cache, AMBER_TOKEN=TOKEN, **amber_env) == 0
        if name == "rate_limited":
            amber.state.faults["prices"] = "429"
            assert _run("sync", cache, AMBER_TOKEN=TOKEN, **amber_env) == 75
        if name == "invalid_data":
            amber.state.faults["prices"] = "truncated"
            assert _run("sync", cache, AMBER_TOKEN=TOKEN, **amber_env) == 65
    if name == "upstream_unreachable":  # the fake is gone: its port refuses connections
        assert _run("sync", cache, AMBER_TOKEN=TOKEN, **amber_env) == 75
    server = Server(cache, AMBER_TOKEN=TOKEN, **amber_env).start()
    try:
        yield server
    finally:
        server.stop()


def _aside(cache: Path) -> Path:
    return cache.with_name(cache.name + ".aside")


def _move_cache(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        moved = Path(str(source) + suffix)
        if moved.exists():
            moved.rename(Path(str(target) + suffix))


def open_state(browser, server: Server, expected: Expected, width: int, height: int):
    """The page at `width`x`height` showing the state; returns (context, page)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    if expected.break_cache:  # each load starts with the file in place
        _move_cache(_aside(server.sqlite_path), server.sqlite_path)
    if expected.clock_ahead:
        page.clock.install(time=datetime.now(UTC) + expected.clock_ahead)
    page.goto(server.url + "/")
    page.wait_for_function(READY_JS)
    if expected.stop_server:
        server.stop()
        page.evaluate("() => window.homeEnergy.refresh()")
    if expected.break_cache:
        _move_cache(server.sqlite_path, _aside(server.sqlite_path))
        page.evaluate("() => window.homeEnergy.refresh()")
    page.wait_for_timeout(100)
    return context, page
