"""The project's error types, the process exit codes and the problem codes they map to.

Every failure a person sees is one of these, raised `from` the original at the boundary where it
happened, and its message is one line that never contains the Amber token.

Each class names, by its `problem` attribute, the machine-readable reason a sync run that ends in
it is recorded with (`sync_runs.problem`), which health serves as `problem` and the page puts in
a household's words. The code is a property of the class, never read from the message.
"""
from __future__ import annotations

# sysexits.h codes, so systemd and scripts can tell a passing outage from a broken setup.
EX_DATAERR = 65  # upstream sent data that fails the schema: nothing from it was written
EX_UNAVAILABLE = 69  # a needed resource is missing or taken: the port, a browser
EX_TEMPFAIL = 75  # network, timeout, 5xx, 429, rate-limit wait, busy cache: try again later
EX_CONFIG = 78  # bad configuration, bad token, unknown site: a person must act


class HomeEnergyError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1
    outcome = "tempfail"  # how a sync run that ends in this error is recorded (sync_runs.outcome)
    problem = "upstream_unreachable"  # the reason recorded with it (sync_runs.problem; calc.RUN_PROBLEMS)


class ConfigError(HomeEnergyError):
    exit_code = EX_CONFIG
    outcome = "configerror"
    problem = "settings_invalid"


class SiteMissingError(ConfigError):
    """AMBER_SITE_ID is not one of the account's sites, or is needed and unset."""

    problem = "site_missing"


class UpstreamError(HomeEnergyError):
    """Amber could not be used right now; the cache is left as it was."""

    exit_code = EX_TEMPFAIL


class RateLimitedError(UpstreamError):
    """Amber answered 429, or a remembered block has not ended: no call before `retry_at_epoch`."""

    problem = "rate_limited"

    def __init__(self, message: str, retry_at_epoch: float) -> None:
        super().__init__(message)
        self.retry_at_epoch = retry_at_epoch


class ClockDisagreesError(UpstreamError):
    """Amber's current interval lies days from this machine's now: one of the two clocks is wrong
    (a Pi without a clock battery before NTP answers, or a stale answer). Nothing is written; the
    next run, with the clock set, goes on as usual."""

    problem = "clock_wrong"


class UpstreamAuthError(HomeEnergyError):
    """401/403 from Amber: the token is wrong or revoked."""

    exit_code = EX_CONFIG
    outcome = "configerror"
    problem = "token_refused"


class UpstreamSiteMissingError(UpstreamAuthError):
    """404 from Amber for the site: AMBER_SITE_ID names no site of this account."""

    problem = "site_missing"


class UpstreamDataError(HomeEnergyError):
    """A payload failed validation; it was rejected whole."""

    exit_code = EX_DATAERR
    outcome = "dataerror"
    problem = "invalid_data"


class CacheBusyError(HomeEnergyError):
    """Another writer holds the cache, or SQLite answered busy/locked: try again later."""

    exit_code = EX_TEMPFAIL
    problem = "writer_busy"  # the other writer is at work: nothing for a household to do


class CacheUnreadableError(HomeEnergyError):
    """The SQLite file is missing, has no schema yet, or cannot be read right now (I/O)."""

    exit_code = EX_TEMPFAIL
    problem = "cache_unreadable"


class CacheCorruptError(CacheUnreadableError):
    """SQLite itself says the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB) or it failed its
    integrity check: the only case in which the writer moves the file aside."""


class CacheTooNewError(CacheUnreadableError):
    """The file was migrated by a newer program: a person must update home-energy."""

    exit_code = EX_CONFIG


class CacheSchemaError(CacheUnreadableError):
    """The file says it is at this program's schema but lacks tables: something else changed it.
    SQLite sees nothing wrong, so it is not moved aside; a person decides."""

    exit_code = EX_CONFIG


class CacheFolderMissingError(CacheUnreadableError):
    """SQLITE_PATH names a folder inside one that does not exist: the program creates only the
    last folder of the path, so a typo cannot grow a tree somewhere unexpected."""

    exit_code = EX_CONFIG


class CachePermissionError(CacheUnreadableError):
    """The cache file or its folder cannot be opened or written by this user."""

    exit_code = EX_CONFIG
