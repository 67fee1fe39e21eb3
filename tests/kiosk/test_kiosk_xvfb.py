"""The launcher end to end under Xvfb and matchbox-window-manager, with Debian's Chromium.

The launcher starts before the dashboard; the dashboard (`home-energy serve` on a demo cache)
comes up five seconds later; then a Chromium window must cover the whole virtual screen and
show the dashboard, and come back after it is killed. Runs as root on CI, so Chromium gets
`--no-sandbox` through the launcher's --chromium-flag, as only tests do. Every process started
here is ended in `finally`, also when an assertion fails.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.kiosk.kiosk_helpers import (
    capture_root,
    decode_png,
    end_group,
    free_port,
    kill_pids,
    matching_fraction,
    pids_mentioning,
    pids_with_argument,
    viewable_windows,
    x_env,
)

pytestmark = [pytest.mark.xvfb, pytest.mark.browser]

SCREEN_W, SCREEN_H = 800, 480  # the official Raspberry Pi 7" display
SERVER_DELAY_S = 5.0
APPEAR_TIMEOUT_S = 25.0
MIN_MATCHING_PIXELS = 0.97  # share of screen pixels equal (±16 per channel) to the page's screenshot
T = TypeVar("T")


def _wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}\n{tail}")


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[str]:
    """An 800x480 Xvfb screen with matchbox-window-manager (no title bars); yields its DISPLAY."""
    read_fd, write_fd = os.pipe()
    server = wm = None
    log = open(tmp_path / "xvfb.log", "wb")
    try:
        server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{SCREEN_W}x{SCREEN_H}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=log, stderr=log, start_new_session=True)
        os.close(write_fd)
        write_fd = -1
        ready, _, _ = select.select([read_fd], [], [], 15)
        assert ready, "Xvfb did not report a display number within 15 s: " + (tmp_path / "xvfb.log").read_text(
            errors="replace")
        display = ":" + os.read(read_fd, 32).decode().strip()
        wm = subprocess.Popen(["matchbox-window-manager", "-use_titlebar", "no"], env=x_env(display),
                              stdout=log, stderr=log, start_new_session=True)
        _wait_for("the window manager", lambda: "matchbox" in subprocess.run(
            ["xwininfo", "-root", "-tree"], env=x_env(display), capture_output=True, text=True, check=False).stdout, 20,
                  tmp_path / "xvfb.log")
        yield display
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        end_group(wm)
        end_group(server)
        log.close()


def _devtools_page(port: int, url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
            targets = json.load(response)
    except OSError:
        return None
    pages = [t for t in targets if t.get("type") == "page" and t.get("url") == url]
    return pages[0] if pages and pages[0].get("title") == "home-energy" else None


def _browser_pids(marker: str) -> list[int]:
    """The Chromium browser process (not its zygote, renderers or GPU helper) carrying our flag."""
    pids = []
    for pid in pids_with_argument(marker):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not any(a.startswith(b"--type=") for a in args):
            pids.append(pid)
    return pids


def _page_renderers(profile_parent: str) -> list[int]:
    """Renderer processes of our profiles, not the browser's own UI (Chromium rewrites these
    command lines into one space-separated string, so match on text)."""
    found = []
    for pid in pids_mentioning(profile_parent):
        try:
            text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"--type=renderer" in text and b"--top-chrome-webui" not in text:
            found.append(pid)
    return found


def _full_screen_window(display: str) -> list:
    return [w for w in viewable_windows(display, "Chromium")
            if (w.width, w.height, w.x, w.y) == (SCREEN_W, SCREEN_H, 0, 0) and "home-energy" in w.title]


def _page_state_and_best_match(playwright, devtools_port: int, url: str, display: str,
                               tries: int = 5) -> tuple[dict, float]:
    """The page's title, query and viewport, and how much of the X screen matches the page's own
    screenshot: the best of a few tries, so a page still settling (fonts, a first fetch) or a
    ticking clock between the two captures does not decide the result."""
    best = 0.0
    browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{devtools_port}")
    try:  # close() on a connected browser only disconnects: the kiosk's Chromium stays up
        page = next(p for c in browser.contexts for p in c.pages if p.url == url)
        state = page.evaluate("""() => ({title: document.title, search: location.search,
                                         width: window.innerWidth, height: window.innerHeight})""")
        for _ in range(tries):
            page_pixels = decode_png(page.screenshot())
            screen_pixels = capture_root(display)
            assert page_pixels[:2] == (SCREEN_W, SCREEN_H)
            best = max(best, matching_fraction(screen_pixels, page_pixels))
            if best >= MIN_MATCHING_PIXELS:
                break
            time.sleep(1)
    finally:
        browser.close()
    return state, best


def test_kiosk_waits_for_the_server_fills_the_screen_and_brings_a_killed_browser_back(xvfb, tmp_path, playwright):
    display = xvfb
    port, devtools_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}/"
    page_url = base + "?kiosk=1"
    marker = f"--remote-debugging-port={devtools_port}"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    (tmp_path / "home").mkdir()
    cache_env = {**os.environ, "SQLITE_PATH": str(tmp_path / "c.sqlite"), "HOST": "127.0.0.1", "PORT": str(port)}
    for key in ("AMBER_TOKEN", "HOME_ENERGY_ENV_FILE"):
        cache_env.pop(key, None)
    synced = subprocess.run([sys.executable, "-m", "home_energy.cli", "sync"], env=cache_env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert synced.returncode == 0, synced.stderr

    kiosk_env = {k: v for k, v in x_env(display).items() if not k.startswith("KIOSK_")}
    kiosk_env.pop("HOME_ENERGY_ENV_FILE", None)
    kiosk_env.update(HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(runtime), NIGHT_START="00:00",
                     NIGHT_END="00:00")  # no night hours: the test must not depend on the clock
    launcher_log = tmp_path / "launcher.log"
    launcher = server = None
    with open(launcher_log, "wb") as launcher_out, open(tmp_path / "server.log", "wb") as server_out:
        try:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "kiosk.launcher", "--url", base, "--browser", "chromium",
                 "--health-timeout", "60", "--chromium-flag=--no-sandbox",
                 "--chromium-flag=--disable-dev-shm-usage", f"--chromium-flag={marker}"],
                env=kiosk_env, stdout=launcher_out, stderr=launcher_out, start_new_session=True)

            # Before the server exists: the launcher waits, and no browser is open.
            time.sleep(SERVER_DELAY_S)
            assert launcher.poll() is None, launcher_log.read_text(errors="replace")
            assert _browser_pids(marker) == []
            assert viewable_windows(display, "Chromium") == []

            server = subprocess.Popen([sys.executable, "-m", "home_energy.cli", "serve"], env=cache_env,
                                      stdout=server_out, stderr=server_out, start_new_session=True)

            _wait_for("the dashboard in Chromium's DevTools", lambda: _devtools_page(devtools_port, page_url),
                      APPEAR_TIMEOUT_S, launcher_log)
            windows = _wait_for("a Chromium window covering the screen", lambda: _full_screen_window(display),
                                APPEAR_TIMEOUT_S, launcher_log)
            assert len(windows) == 1
            first_pids = _browser_pids(marker)
            assert len(first_pids) == 1

            state, fraction = _page_state_and_best_match(playwright, devtools_port, page_url, display)
            assert state == {"title": "home-energy", "search": "?kiosk=1", "width": SCREEN_W, "height": SCREEN_H}
            # What the X screen shows is what the page renders: the dashboard, edge to edge.
            assert fraction >= MIN_MATCHING_PIXELS, f"only {fraction:.1%} of the screen matches the page"

            # Kill the browser the hard way: the launcher must notice and bring it back.
            kill_pids(first_pids)
            _wait_for("a new Chromium browser process", lambda: [p for p in _browser_pids(marker)
                                                                 if p not in first_pids], 20, launcher_log)
            _wait_for("the dashboard back in DevTools", lambda: _devtools_page(devtools_port, page_url), 20,
                      launcher_log)
            _wait_for("the relaunched window covering the screen", lambda: _full_screen_window(display), 20,
                      launcher_log)
            assert launcher.poll() is None

            # Kill the page's renderer, as the OOM killer would: Chromium lives on showing "Aw, Snap!",
            # and the launcher must see it through the DevTools pipe and restart the browser.
            second_pids = _browser_pids(marker)
            renderers = _page_renderers(str(runtime))
            assert renderers
            kill_pids(renderers)
            _wait_for("a browser restarted after the page crashed",
                      lambda: [p for p in _browser_pids(marker) if p not in first_pids + second_pids], 20, launcher_log)
            _wait_for("the dashboard back after the crash", lambda: _devtools_page(devtools_port, page_url), 20,
                      launcher_log)
            _wait_for("the window back after the crash", lambda: _full_screen_window(display), 20, launcher_log)

            # SIGTERM: the browser goes, the launcher exits 0, the fresh profiles are removed.
            launcher.send_signal(signal.SIGTERM)
            assert launcher.wait(15) == 0
            # Including helpers that left the process group, such as Chromium's crash handler (its
            # database is under the test's HOME).
            _wait_for("every Chromium process to end",
                      lambda: (pids_with_argument(marker) == [] and pids_mentioning(str(tmp_path)) == []) or None, 10)
            assert [p for p in runtime.glob("home-energy-kiosk-*") if p.is_dir()] == []
            log_text = launcher_log.read_text(errors="replace")
            assert "Traceback" not in log_text
            assert log_text.count("started chromium") == 3
            assert "the dashboard page crashed" in log_text
        finally:
            end_group(launcher)
            kill_pids(pids_with_argument(marker) + pids_mentioning(str(tmp_path)))
            end_group(server)
