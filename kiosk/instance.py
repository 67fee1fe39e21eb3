"""One kiosk per display: a second launcher waits until the first is gone, then takes over.

Both autostart files may end up active in one session (a labwc autostart line and an XDG
.desktop entry that the session also runs), and two supervisors would fight over the screen
with two browsers. The first launcher holds an flock on a file in the user's runtime directory;
another one started for the same display waits for that lock instead of opening a browser, so
whichever supervisor restarts first after the holder exits becomes the kiosk.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import IO

from .settings import Session

log = logging.getLogger("kiosk")

LOCK_RETRY_S = 1.0  # how often a waiting launcher tries the lock; it also answers stop requests


def lock_path(session: Session, runtime_dir: str | None) -> Path:
    """The lock file for this session's display, e.g. $XDG_RUNTIME_DIR/home-energy-kiosk-wayland-0.lock."""
    display = session.wayland_display or session.display or "none"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", display).strip("._") or "none"
    directory = Path(runtime_dir) if runtime_dir else Path(tempfile.gettempdir())
    return directory / f"home-energy-kiosk-{safe}.lock"


class InstanceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self, stop: threading.Event) -> bool:
        """Take the lock, waiting for another launcher to go; False when a stop comes first."""
        if self.try_acquire():
            return True
        log.info("another home-energy-kiosk (pid %s) shows this display; waiting to take over", self.holder())
        while not stop.wait(LOCK_RETRY_S):
            if self.try_acquire():
                log.info("the other kiosk has gone; taking over the display")
                return True
        return False

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
