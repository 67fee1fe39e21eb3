"""The kiosk's error types and exit codes.

Every failure a person sees is one of these, turned into one line on stderr by the launcher.
The exit codes are sysexits values, so an autostart supervisor (lwrespawn, a .desktop session)
and a person reading `echo $?` can tell a slow server from a broken setup.
"""
from __future__ import annotations

from home_energy.errors import EX_CONFIG, EX_TEMPFAIL, EX_UNAVAILABLE, HomeEnergyError

EX_SOFTWARE = 70  # the browser keeps dying faster than the restart budget allows
EX_OSERR = 71  # the system refused something the kiosk needs (a pipe, a profile directory, a lock file)

__all__ = [
    "EX_CONFIG", "EX_OSERR", "EX_SOFTWARE", "EX_TEMPFAIL", "EX_UNAVAILABLE",
    "BrowserMissingError", "CrashLoopError", "HealthTimeoutError", "KioskError",
]


class KioskError(HomeEnergyError):
    """Base of every error the kiosk raises on purpose."""


class HealthTimeoutError(KioskError):
    """The dashboard did not answer healthy in time; the autostart supervisor will try again."""

    exit_code = EX_TEMPFAIL


class BrowserMissingError(KioskError):
    """Neither Chromium nor pywebview can be used."""

    exit_code = EX_UNAVAILABLE


class CrashLoopError(KioskError):
    """The browser exited too often in a short time: relaunching again would only flicker."""

    exit_code = EX_SOFTWARE
