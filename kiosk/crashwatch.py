"""Notices an "Aw, Snap!" page, which watching the browser process alone cannot.

When the kernel's OOM killer or a bug ends Chromium's renderer, the browser process lives on
and shows "Aw, Snap!" until someone reloads, so the wall shows an error all day. With
`--remote-debugging-pipe` Chromium speaks its DevTools protocol on file descriptors 3 (commands
in) and 4 (messages out), a private pipe to the launcher and no network port. The watch asks
for target events and reports when a page target crashes; the supervisor then restarts the
browser as if it had exited. Messages are JSON, each ended by a NUL byte.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger("kiosk")

PIPE_FLAG = "--remote-debugging-pipe"
READ_CHUNK_BYTES = 65536
DISCOVER_TARGETS = {"id": 1, "method": "Target.setDiscoverTargets", "params": {"discover": True}}


class CrashWatch:
    """One pipe pair for one Chromium run: wrap() the command, start() after spawning, close() after."""

    def __init__(self) -> None:
        self._commands_read, self._commands_write = os.pipe()  # Chromium reads its fd 3
        self._events_read, self._events_write = os.pipe()  # Chromium writes its fd 4
        self.page_crashed = threading.Event()
        self._target_types: dict[str, str] = {}
        self._thread: threading.Thread | None = None

    def wrap(self, command: list[str], python: str = sys.executable) -> tuple[list[str], tuple[int, int]]:
        """The command run through kiosk.fdexec, which puts the pipe ends on fds 3 and 4 and
        execs Chromium (same pid); and the fds the child must inherit."""
        read_fd, write_fd = self._commands_read, self._events_write
        return [python, "-m", "kiosk.fdexec", str(read_fd), str(write_fd), *command], (read_fd, write_fd)

    def start(self) -> None:
        """Call once the child runs: drop the child's ends here, ask for target events, read."""
        os.close(self._commands_read)
        os.close(self._events_write)
        self._commands_read = self._events_write = -1
        self._send(DISCOVER_TARGETS)
        self._thread = threading.Thread(target=self._read, name="kiosk-crashwatch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        for fd in (self._commands_read, self._events_write, self._commands_write):
            if fd >= 0:
                os.close(fd)
        self._commands_read = self._events_write = self._commands_write = -1
        if self._thread is not None:
            self._thread.join(5)  # ends at EOF, once the browser and its helpers are gone
        if self._events_read >= 0:
            os.close(self._events_read)
            self._events_read = -1

    def _send(self, message: dict[str, Any]) -> None:
        try:
            os.write(self._commands_write, json.dumps(message).encode() + b"\0")
        except OSError as exc:  # the browser is already gone; the supervisor sees that itself
            log.debug("DevTools pipe closed: %s", exc)

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._events_read, READ_CHUNK_BYTES)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                self.handle(raw)

    def handle(self, raw: bytes) -> None:
        """Track target types and flag a crashed page; anything unreadable is ignored."""
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("params"), dict):
            return
        method, params = message.get("method"), message["params"]
        if method in ("Target.targetCreated", "Target.targetInfoChanged"):
            info = params.get("targetInfo")
            if isinstance(info, dict) and "targetId" in info:
                self._target_types[info["targetId"]] = info.get("type", "")
        elif method == "Target.targetDestroyed":
            self._target_types.pop(params.get("targetId"), None)
        elif method == "Target.targetCrashed":
            if self._target_types.get(params.get("targetId")) == "page":
                log.warning("the dashboard page crashed (%s, code %s)", params.get("status"), params.get("errorCode"))
                self.page_crashed.set()
