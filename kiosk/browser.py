"""Which browser shows the dashboard, and the exact command line that starts it.

Raspberry Pi OS ships Chromium, so `auto` prefers it; pywebview (an optional extra) is the
fallback for systems without it. Every flag below removes one thing a wall display must never
show: a bar, a bubble, a dialog, a prompt, a zoom or a swipe. `--no-sandbox` is never added
here: the Pi runs the kiosk as the desktop user, and only tests running as root pass it in.
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .crashwatch import PIPE_FLAG
from .errors import BrowserMissingError
from .settings import KioskSettings, Session

CHROMIUM_NAMES = ("chromium", "chromium-browser")  # Debian and newer Pi OS; older Pi OS
KIOSK_QUERY = "kiosk=1"  # the page hides the cursor and anything meant for a mouse

# Why each flag is there is written out in docs/kiosk.md ("Chromium flags").
CHROMIUM_KIOSK_FLAGS = (
    "--kiosk",  # full screen with no tabs, address bar or exit from F11
    "--noerrdialogs",  # no modal error dialogs nobody can click away
    "--disable-session-crashed-bubble",  # no "Chromium didn't shut down correctly" after a power cut
    "--check-for-update-interval=31536000",  # no "update Chromium" nag (a year, in seconds)
    "--password-store=basic",  # no keyring unlock prompt on an auto-login desktop
    "--disable-pinch",  # a touch screen pinch must not zoom the dashboard
    "--overscroll-history-navigation=0",  # a swipe must not navigate back
    "--no-first-run",  # every launch has a fresh profile: no welcome page
    "--no-default-browser-check",  # no "make Chromium your default browser" bar
    "--disable-background-networking",  # offline-first: no fetches the page did not ask for
    "--disable-component-update",  # no component downloads into each fresh profile
    "--disable-features=Translate",  # no "translate this page?" bubble
    "--autoplay-policy=no-user-gesture-required",  # the spike chime still sounds after a reload
    PIPE_FLAG,  # DevTools on a private pipe, so the launcher notices an "Aw, Snap!" page
)
WAYLAND_FLAGS = ("--ozone-platform=wayland",)


@dataclass(frozen=True)
class Backend:
    name: str  # "chromium" or "webview"
    executable: str  # the Chromium binary, or the Python that runs kiosk.webview_window
    uses_profile_dir: bool


def page_url(base_url: str) -> str:
    """The dashboard page as the kiosk opens it (base_url always ends in "/")."""
    return f"{base_url}?{KIOSK_QUERY}"


def find_chromium(which: Callable[[str], str | None] = shutil.which) -> str | None:
    for name in CHROMIUM_NAMES:
        path = which(name)
        if path:
            return path
    return None


def webview_installed(find_spec: Callable[[str], object] = importlib.util.find_spec) -> bool:
    """Whether pywebview is importable, without importing it (it pulls in a GUI toolkit)."""
    try:
        return find_spec("webview") is not None
    except (ImportError, ValueError):
        return False


def choose_backend(
    choice: str,
    *,
    which: Callable[[str], str | None] = shutil.which,
    find_spec: Callable[[str], object] = importlib.util.find_spec,
    python: str = sys.executable,
) -> Backend:
    """Resolve auto|chromium|webview to an installed backend, or raise BrowserMissingError."""
    if choice in ("auto", "chromium"):
        chromium = find_chromium(which)
        if chromium:
            return Backend("chromium", chromium, True)
        if choice == "chromium":
            raise BrowserMissingError("Chromium is not installed: sudo apt install chromium (or use --browser webview)")
    if webview_installed(find_spec):
        return Backend("webview", python, False)
    if choice == "webview":
        raise BrowserMissingError("pywebview is not installed: pip install -e '.[webview]' in the kiosk's venv")
    raise BrowserMissingError("no browser found: sudo apt install chromium, or pip install -e '.[webview]'")


def chromium_command(executable: str, url: str, profile_dir: str, session: Session,
                     extra_flags: tuple[str, ...] = ()) -> list[str]:
    """Chromium in kiosk mode on a fresh profile, opening the dashboard with ?kiosk=1."""
    command = [executable, *CHROMIUM_KIOSK_FLAGS, f"--user-data-dir={profile_dir}"]
    if session.kind == "wayland":
        command += WAYLAND_FLAGS
    command += extra_flags
    command.append(page_url(url))
    return command


def webview_command(python: str, url: str) -> list[str]:
    """pywebview runs in a child process, so a crash of its GUI toolkit is a relaunch, not our exit."""
    return [python, "-m", "kiosk.webview_window", page_url(url)]


def build_command(backend: Backend, settings: KioskSettings, profile_dir: str | None) -> list[str]:
    if backend.name == "chromium":
        if profile_dir is None:
            raise ValueError("Chromium needs a profile directory")
        return chromium_command(backend.executable, settings.url, profile_dir, settings.session,
                                settings.chromium_flags)
    return webview_command(backend.executable, settings.url)
