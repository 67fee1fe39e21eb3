"""Kiosk settings: the one module of the kiosk that reads the command line and the environment.

Each setting comes from a flag, else the environment, else the env file (`--env-file` or
HOME_ENERGY_ENV_FILE, the same KEY=VALUE format the dashboard reads), else a default. The
dashboard's address comes from the same HOST and PORT the dashboard listens on (read by the
dashboard's own config code), unless KIOSK_URL or --url names another: one PORT in the env file
moves both. Night hours and the household's time zone are validated by that code too, so the
screen goes dark exactly when the page turns to its night theme. Only the keys the kiosk uses
are validated: a kiosk must not refuse to start over a setting that only the server reads.
A bad value is a ConfigError naming the variable.
"""
from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from urllib.parse import urlsplit

from home_energy.config import ENV_FILE_VAR, dashboard_url, load_config, parse_env_file
from home_energy.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:5050/"
DEFAULT_BROWSER = "auto"
BROWSERS = ("auto", "chromium", "webview")
# A Pi 5 boots the desktop and the dashboard in well under a minute; two minutes also covers a
# first boot after an OS update. After that the launcher exits and its supervisor starts it again.
DEFAULT_HEALTH_TIMEOUT_S = 120.0
MAX_HEALTH_TIMEOUT_S = 86400.0
SHARED_KEYS = ("NIGHT_START", "NIGHT_END", "TIMEZONE")
ADDRESS_KEYS = ("HOST", "PORT")  # read only when neither --url nor KIOSK_URL names the dashboard


@dataclass(frozen=True)
class Session:
    """The graphical session the kiosk runs in, read from the environment it was started with."""

    kind: str  # "wayland", "x11" or "none"
    display: str | None = None  # X11 DISPLAY, e.g. ":0"
    wayland_display: str | None = None  # WAYLAND_DISPLAY, e.g. "wayland-0"


@dataclass(frozen=True)
class KioskSettings:
    url: str  # the dashboard's base URL, always ending in "/"
    browser: str  # one of BROWSERS
    health_timeout_s: float
    night_start: time
    night_end: time
    timezone: str
    chromium_flags: tuple[str, ...] = ()
    session: Session = Session("none")
    runtime_dir: str | None = None  # XDG_RUNTIME_DIR: fresh profiles and the lock; None: system temp dir


def detect_session(env: Mapping[str, str]) -> Session:
    """Wayland when WAYLAND_DISPLAY is set (labwc, wayfire), else X11 when DISPLAY is set."""
    wayland = env.get("WAYLAND_DISPLAY", "").strip() or None
    display = env.get("DISPLAY", "").strip() or None
    if wayland:
        return Session("wayland", display, wayland)
    if display:
        return Session("x11", display, None)
    return Session("none")


def normalise_url(raw: str, name: str = "KIOSK_URL") -> str:
    """The dashboard's base URL with a trailing slash, so `api/health` and `?kiosk=1` join onto it."""
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be the dashboard's address such as {DEFAULT_URL} (http or https, no ?query)")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _timeout(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_HEALTH_TIMEOUT_S:
        raise ConfigError(f"{name} must be a number of seconds from 1 to {int(MAX_HEALTH_TIMEOUT_S)}, e.g. 120")
    return value


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="home-energy-kiosk",
        description="Show the home-energy dashboard full screen once it answers, and keep it there.",
    )
    parser.add_argument("--env-file", metavar="PATH",
                        help="KEY=VALUE file as the dashboard reads; the environment and flags win")
    parser.add_argument("--url", help="the dashboard's address (KIOSK_URL; default: from HOST and PORT in the "
                                      f"env file, as the dashboard listens, else {DEFAULT_URL})")
    parser.add_argument("--browser", choices=BROWSERS,
                        help="auto: Chromium when installed, else pywebview (KIOSK_BROWSER, default auto)")
    parser.add_argument("--health-timeout", metavar="SECONDS",
                        help="give up when the dashboard is not healthy after this long "
                             f"(KIOSK_HEALTH_TIMEOUT, default {int(DEFAULT_HEALTH_TIMEOUT_S)})")
    parser.add_argument("--chromium-flag", action="append", default=[], metavar="FLAG",
                        help="one more Chromium flag, after the kiosk flags; repeatable "
                             "(KIOSK_CHROMIUM_FLAGS, space-separated). Tests pass --no-sandbox here; "
                             "never on a Pi")
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> KioskSettings:
    """Parse flags over the environment over the env file; raise ConfigError on a bad value."""
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    file_name = args.env_file or env.get(ENV_FILE_VAR)
    merged: dict[str, str] = {}
    if file_name:
        merged.update(parse_env_file(Path(file_name)))
    merged.update(env)

    if args.url is not None:
        url = normalise_url(args.url, "--url")
    elif merged.get("KIOSK_URL", "").strip():
        url = normalise_url(merged["KIOSK_URL"])
    else:
        url = dashboard_url(load_config(env={key: merged[key] for key in ADDRESS_KEYS if key in merged}))

    browser = args.browser or merged.get("KIOSK_BROWSER", "").strip().lower() or DEFAULT_BROWSER
    if browser not in BROWSERS:
        raise ConfigError(f"KIOSK_BROWSER must be one of {', '.join(BROWSERS)}")

    if args.health_timeout is not None:
        timeout_s = _timeout(args.health_timeout, "--health-timeout")
    else:
        raw = merged.get("KIOSK_HEALTH_TIMEOUT", "").strip()
        timeout_s = _timeout(raw, "KIOSK_HEALTH_TIMEOUT") if raw else DEFAULT_HEALTH_TIMEOUT_S

    try:
        flags = tuple(shlex.split(merged.get("KIOSK_CHROMIUM_FLAGS", ""))) + tuple(args.chromium_flag)
    except ValueError as exc:
        raise ConfigError(f"KIOSK_CHROMIUM_FLAGS cannot be split into flags: {exc}") from exc
    for flag in flags:
        if not flag.startswith("--"):
            raise ConfigError(f"Chromium flags must start with --, got {flag!r}")

    shared = load_config(env={key: merged[key] for key in SHARED_KEYS if key in merged})
    return KioskSettings(
        url=url,
        browser=browser,
        health_timeout_s=timeout_s,
        night_start=_hhmm(shared.night_start),
        night_end=_hhmm(shared.night_end),
        timezone=shared.timezone,
        chromium_flags=flags,
        session=detect_session(env),
        # The session's runtime directory is a per-user tmpfs: profiles cost no SD card writes
        # and vanish at power-off even if the launcher is killed before it can remove them.
        runtime_dir=env.get("XDG_RUNTIME_DIR", "").strip() or None,
    )
