"""Opening the SQLite cache and naming what went wrong with it; shared by the web and the writer.

Rules it keeps:
- The web opens the file read-only (`mode=ro`, `query_only`): it can never change the cache.
  Every write, migration and file move lives in `store`, which the web never imports.
- What a SQLite failure means is decided by SQLite's own result code (`sqlite_errorcode`), never
  by the text of its message: only SQLITE_CORRUPT and SQLITE_NOTADB say the file is damaged;
  busy, locked, read-only, I/O and permission problems leave the file alone.
- Times are stored as integer Unix seconds (UTC); intervals are keyed on the boundary they start
  at (Amber's startTime is one second after it).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import (
    CacheBusyError,
    CacheCorruptError,
    CachePermissionError,
    CacheUnreadableError,
    HomeEnergyError,
)
from .numbers import whole_number

BUSY_TIMEOUT_MS = 5000  # a reader waits this long for a checkpoint; the sync commits in milliseconds

# Base result codes (the low byte of an extended code) and what each means for the file.
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_ACCESS_CODES = frozenset({sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
                           sqlite3.SQLITE_AUTH})


def configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def result_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code for an exception, or None when SQLite gave none."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and result_code(exc) in _CORRUPT_CODES


def cache_error(exc: sqlite3.Error | OSError, path: Path) -> HomeEnergyError:
    """One line naming the file and what to do, with the error kind that decides the exit code."""
    if isinstance(exc, PermissionError):
        return CachePermissionError(f"cache {path}: permission denied ({exc.strerror}): "
                                    "give the service user write access to the file and its folder")
    if isinstance(exc, OSError):
        return CacheUnreadableError(f"cache {path}: {exc.strerror or type(exc).__name__}")
    code = result_code(exc)
    text = str(exc).replace("\n", " ")
    if code in _CORRUPT_CODES:
        return CacheCorruptError(f"cache {path} is damaged: {text}")
    if code == sqlite3.SQLITE_FULL:
        return CacheUnreadableError(f"cache {path} cannot be written: the disk is full ({text}): free some space")
    if code in _BUSY_CODES:
        return CacheBusyError(f"cache {path} is busy: {text}: try again later")
    if code in _ACCESS_CODES:
        if not _writable(path):
            return CachePermissionError(f"cache {path} cannot be opened or written ({text}): "
                                        "check the owner and mode of the file and its folder")
        return CacheUnreadableError(f"cache {path} cannot be opened or written right now ({text}): "
                                    "try again later")
    return CacheUnreadableError(f"cache {path} cannot be read: {text}")


def _writable(path: Path) -> bool:
    """Whether this user may write the file (or create it) and its folder's journal files."""
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not path.exists() or os.access(path, os.R_OK | os.W_OK)


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open the cache read-only for the web; never creates or changes the file."""
    if not path.exists():
        raise CacheUnreadableError(f"cache {path} does not exist yet: run `home-energy sync`")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        configure(conn)
        conn.execute("PRAGMA query_only = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise cache_error(exc, path) from exc
    if version == 0:
        conn.close()
        raise CacheUnreadableError(f"cache {path} has no schema yet: run `home-energy sync`")
    return conn


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def int_meta(conn: sqlite3.Connection, key: str) -> int | None:
    return whole_number(get_meta(conn, key), -(10**18), 10**18)
