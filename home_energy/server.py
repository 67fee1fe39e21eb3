"""The Waitress server the dashboard runs on, and the settings that keep it answering.

The rule it keeps: no client, however slow, can stop /api/health (what update.sh, the kiosk and
a monitor wait on) from answering within a second. Waitress stops accepting once it holds
`connection_limit` connections, and its `channel_timeout` counts only silence, so a client that
sends one byte every few seconds would hold its connection for ever; 70 of them filled the old
limit of 64 and the server went deaf. Here the limit is far above what a household uses, the
event loop uses poll() (select() cannot watch descriptors numbered over 1024), and a request
whose head has not fully arrived within REQUEST_HEAD_DEADLINE_S of its first byte is closed.
"""
from __future__ import annotations

import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

# Four threads: every answer is a few hundred microseconds of Python, so more threads only add
# GIL hand-offs; four cover a page's four parallel fetches.
THREADS = 4
# A household has one to five screens (a few connections each) and perhaps a monitor; the
# rest of this headroom is for slow or stuck clients, each costing one descriptor and a buffer.
CONNECTION_LIMIT = 500
# An idle kept-alive connection is closed after this; the page's next poll reconnects.
CHANNEL_TIMEOUT_S = 30
# A request line and headers are a few hundred bytes: any client sends them in well under a
# second. One still arriving after this is a trickle, and its connection is closed.
REQUEST_HEAD_DEADLINE_S = 10
# The event loop wakes at least this often, and runs its clean-up (idle connections, overdue
# request heads) this often.
LOOP_TIMEOUT_S = 1
MAX_REQUEST_HEADER_BYTES = 16 * 1024
MAX_REQUEST_BODY_BYTES = 64 * 1024  # the API takes no bodies; keep an upload from filling memory

SETTINGS: dict[str, Any] = {
    "threads": THREADS,
    "connection_limit": CONNECTION_LIMIT,
    "channel_timeout": CHANNEL_TIMEOUT_S,
    "cleanup_interval": LOOP_TIMEOUT_S,
    "asyncore_use_poll": True,
    "asyncore_loop_timeout": LOOP_TIMEOUT_S,
    "max_request_header_size": MAX_REQUEST_HEADER_BYTES,
    "max_request_body_size": MAX_REQUEST_BODY_BYTES,
    "ident": "home-energy",
}


class DeadlineChannel(HTTPChannel):
    """An HTTP connection that is closed when a request's head trickles in too slowly."""

    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        before = self.request
        result = super().received(data)
        if self.request is None:
            self.request_started = None
        elif self.request is not before or self.request_started is None:
            self.request_started = time.monotonic()
        return result


def _close_overdue_heads(listener: BaseWSGIServer) -> None:
    """Extend the listener's periodic clean-up (every `cleanup_interval`, from its event loop) to
    close connections whose request head is overdue, as it already closes idle ones."""
    idle_cleanup = listener.maintenance

    def maintenance(now: float) -> None:
        idle_cleanup(now)
        cutoff = time.monotonic() - REQUEST_HEAD_DEADLINE_S
        for channel in list(listener.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if started is not None and started < cutoff and not channel.requests:
                channel.will_close = True  # the event loop then closes it

    listener.maintenance = maintenance


def build_server(app: Any, host: str, port: int, **overrides: Any) -> Any:
    """A Waitress server for `app` on host:port with SETTINGS (and `overrides`), not yet running.

    Raises OSError when the address cannot be bound (EADDRINUSE when the port is taken).
    """
    server = create_server(app, host=host, port=port, **{**SETTINGS, **overrides})
    for listener in [server, *getattr(server, "map", {}).values()]:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = DeadlineChannel
            _close_overdue_heads(listener)
    return server
