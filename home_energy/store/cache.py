"""The cache file itself: the writer lock, opening, migrating, damaged files, transactions.

Rules it keeps:
- Whoever writes holds the writer lock (`cache.sqlite.lock`, an advisory flock) for as long as
  it writes: the sync for its whole run, `init-db` and `seed-demo` too; the meter collector while
  it opens and migrates. The collector also holds a lock of its own (`cache.sqlite.collector.lock`)
  for its whole life, so there is never more than one per cache. Migrations run only under the
  writer lock, inside BEGIN IMMEDIATE, and re-read `user_version` there, so two processes started
  together can never both apply the same migration; every migration is also safe to run twice.
- Each write is one transaction (`with transaction(conn):`), so a crash leaves the old or the new
  state, never half of one.
- A file is moved aside only when SQLite itself says it is damaged (SQLITE_CORRUPT,
  SQLITE_NOTADB) or it fails its integrity check; never for busy, locked, I/O or permission
  errors. At most `ASIDE_KEPT` damaged files are kept. The integrity check runs at most daily,
  and after a run was interrupted.
"""
from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import db
from ..clock import is_recent, now_utc
from ..errors import (
    CacheBusyError,
    CacheCorruptError,
    CacheFolderMissingError,
    CacheSchemaError,
    CacheTooNewError,
    HomeEnergyError,
)
from .migrations import MIGRATIONS, SCHEMA_VERSION, TABLES

log = logging.getLogger(__name__)

LOCK_WAIT_S = 10.0  # a second writer waits this long, then exits 75 and the next timer tick retries
ASIDE_KEPT = 3  # damaged files kept for inspection; older ones are deleted
INTEGRITY_EVERY_S = 24 * 3600  # quick_check costs 70-400 ms at a year of data: daily is enough
INTERRUPTED = "the previous sync stopped before it finished (killed, or the power went)"



@contextmanager
def writer_lock(path: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold the cache's writer lock; after `wait_s` of waiting, CacheBusyError (exit 75)."""
    lock = path.with_name(path.name + ".lock")
    make_folder(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise db.cache_error(exc, path) from exc
    try:
        deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CacheBusyError(f"another writer is still using {path} (lock {lock.name}): "
                                         "try again later") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def collector_lock(path: Path) -> Iterator[None]:
    """Hold the cache's collector lock (`cache.sqlite.collector.lock`) for a collector's lifetime.

    One collector per cache: two would each count the same energy (a 2x double count). A second
    one gets CacheBusyError (exit 75) at once, naming the process that holds the lock.
    """
    lock = path.with_name(path.name + ".collector.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise db.cache_error(exc, path) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise CacheBusyError(f"another collector ({who}) is already polling the meter into {path} "
                                 f"(lock {lock.name}): stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def open_cache(path: Path) -> sqlite3.Connection:
    """Open the cache for writing (the caller holds `writer_lock`), migrated and checked.

    A file SQLite calls damaged is moved aside and a new cache started; every other failure
    raises a one-line error that leaves the file as it was.
    """
    try:
        return _open_checked(path)
    except CacheCorruptError as exc:
        move_aside(path, str(exc))
        return _open_checked(path)


def _open_checked(path: Path) -> sqlite3.Connection:
    conn = _connect(path)
    try:
        interrupted = conn.execute("SELECT COUNT(*) FROM sync_runs WHERE outcome = 'running'").fetchone()[0]
        if interrupted:
            with transaction(conn):
                conn.execute("UPDATE sync_runs SET outcome = 'interrupted', error = ? WHERE outcome = 'running'",
                             (INTERRUPTED,))
        _check_integrity_if_due(conn, path, force=bool(interrupted))
    except sqlite3.Error as exc:
        conn.close()
        raise db.cache_error(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def make_folder(path: Path) -> None:
    """Create the cache's folder, but only inside one that exists: a missing parent is far more
    often a mistyped SQLITE_PATH than a wish for a new tree; so is a file where a folder should
    be (one line, exit 78)."""
    folder = path.parent
    try:
        if folder.is_dir():
            return
        folder.mkdir(exist_ok=True)
    except FileNotFoundError as exc:
        raise CacheFolderMissingError(f"SQLITE_PATH {path}: the folder {folder.parent} does not exist: "
                                      "create it, or correct SQLITE_PATH") from exc
    except (FileExistsError, NotADirectoryError) as exc:
        raise CacheFolderMissingError(f"SQLITE_PATH {path}: a file is in the way of the folder {folder}: "
                                      "correct SQLITE_PATH") from exc
    except OSError as exc:
        raise db.cache_error(exc, path) from exc


def _connect(path: Path) -> sqlite3.Connection:
    make_folder(path)
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=db.BUSY_TIMEOUT_MS / 1000)
        db.configure(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
        migrate(conn, path)
        missing = _missing_tables(conn)
    except (sqlite3.Error, HomeEnergyError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, HomeEnergyError):
            raise
        raise db.cache_error(exc, path) from exc
    if missing:
        conn.close()
        # SQLite sees nothing wrong, so the file is not thrown away: a person decides.
        raise CacheSchemaError(
            f"cache {path} is at schema {SCHEMA_VERSION} but has no {', '.join(missing)} table: "
            "something else changed it; move it aside to start a new cache"
        )
    return conn


def migrate(conn: sqlite3.Connection, path: Path | str = "cache") -> int:
    """Apply the migrations this file has not seen yet, one transaction each.

    `user_version` is read inside BEGIN IMMEDIATE: a version read before it may already be stale
    when another process migrated in between.
    """
    while True:
        with transaction(conn):
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise CacheTooNewError(f"cache {path} has schema {current}, newer than this program's "
                                       f"{SCHEMA_VERSION}: update home-energy")
            if current == SCHEMA_VERSION:
                return current
            for statement in MIGRATIONS[current]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")




def _missing_tables(conn: sqlite3.Connection) -> list[str]:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in TABLES if t not in present]


def _check_integrity_if_due(conn: sqlite3.Connection, path: Path, force: bool) -> None:
    now = int(now_utc().timestamp())
    last = db.int_meta(conn, "integrity_checked_at")
    if not force and is_recent(last, now, INTEGRITY_EVERY_S):
        return
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise CacheCorruptError(f"cache {path} failed its integrity check: {result.splitlines()[0][:200]}")
    with transaction(conn):
        set_meta(conn, "integrity_checked_at", now)


def move_aside(path: Path, problem: str) -> Path:
    """Rename a damaged cache (and its -wal/-shm) to `<name>.corrupt-<UTC stamp>`; keep the newest few."""
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            source.rename(Path(str(aside) + suffix))
    older = sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm")))
    for old in older[:-ASIDE_KEPT]:
        for suffix in ("", "-wal", "-shm"):
            Path(str(old) + suffix).unlink(missing_ok=True)
    log.error("%s: moved it aside as %s and started a new cache", problem, aside.name)
    return aside


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception: all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # SQLite has already rolled back by itself after some errors (SQLITE_FULL among them);
        # a second ROLLBACK would then hide the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def set_meta(conn: sqlite3.Connection, key: str, value: str | int | float | None) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )


def init_cache(path: Path) -> None:
    """`home-energy init-db`: create or migrate the cache under the writer lock."""
    with writer_lock(path):
        open_cache(path).close()


def open_writer(path: Path) -> sqlite3.Connection:
    """A connection for a long-running writer (the meter collector): opened and migrated under
    the writer lock, then each of its writes is a short transaction of its own."""
    with writer_lock(path):
        return open_cache(path)
