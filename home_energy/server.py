"""The Waitress server the dashboard runs on, and the settings that keep it answering.

The rule it keeps: no client, however slow or however many its connections, can stop /api/health
(what update.sh, the kiosk and a monitor wait on) from answering within a second.
- Waitress stops accepting once it holds `connection_limit` connections, and its
  `channel_timeout` counts only silence. So a new connection is never left waiting for room:
  when its address already holds PER_ADDRESS_CONNECTIONS, or the server CONNECTION_LIMIT, the
  least recently active connection that has no complete request in hand (idle, or still sending
  its head) is closed first. 1,000 idle or reconnecting connections from one address hold at most
  64 of the server's places and none of another address's (tests/reliability/test_connection_flood.py).
- A connection sending its request head a byte at a time is not silent; one whose head has not
  fully arrived within REQUEST_HEAD_DEADLINE_S of its first byte is closed.
- The event loop uses poll() (select() cannot watch descriptors numbered over 1024) and accepts
  up to ACCEPTS_PER_WAKE connections each time it wakes, so a queue of a thousand waiting
  connections is taken in (and the idle ones closed) in milliseconds, not one per loop.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

# Four threads: every answer is a few hundred microseconds of Python, so more threads only add
# GIL hand-offs; four cover a page's four parallel fetches.
THREADS = 4
# A household has one to five screens (a few connections each) and perhaps a monitor; the
# rest of this headroom is for slow or stuck clients, each costing one descriptor and a buffer.
CONNECTION_LIMIT = 500
# One device: a browser opens at most 6 connections to a server, the kiosk, update.sh and a
# monitor a few more. Beyond this, a new connection from the address closes the address's least
# recently active one without a request in hand (a browser simply reconnects).
PER_ADDRESS_CONNECTIONS = 64
ACCEPTS_PER_WAKE = 64
# Each crowded address is logged the first time it is; a flood of addresses stops being logged
# after this many.
MAX_LOGGED_ADDRESSES = 100
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

WAITRESS_OPTIONS: dict[str, Any] = {
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


def _client(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


def _unread(channel: Any) -> bool:
    """Whether the client has sent bytes the event loop has not read yet (a request arriving)."""
    try:
        return bool(channel.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False  # nothing waiting (EAGAIN) or a broken connection: either may be closed


def _close_least_recent(channels: list[Any]) -> bool:
    """Close the least recently active of `channels` that has no request in hand: none complete
    (waiting for or in a worker thread) and none arriving unread, so closing it loses no answer.
    False when every one has one."""
    spare = sorted((c for c in channels if not c.requests and c.connected), key=lambda c: c.last_activity)
    for channel in spare:
        if not _unread(channel):
            channel.handle_close()
            return True
    return False


class _Crowding:
    """Which addresses were logged as crowded, so each is logged once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logged: set[str] = set()

    def first_time(self, address: str) -> bool:
        with self.lock:
            if address in self.logged or len(self.logged) >= MAX_LOGGED_ADDRESSES:
                return False
            self.logged.add(address)
            return True


def _admit_with_room(listener: BaseWSGIServer) -> None:
    """Replace the listener's accept: take in up to ACCEPTS_PER_WAKE waiting connections at a
    time, each after making room for it (per address, then overall)."""
    crowding = _Crowding()

    def make_room(address: str) -> None:
        channels = list(listener.active_channels.values())
        same = [c for c in channels if _client(c.addr) == address]
        if len(same) >= PER_ADDRESS_CONNECTIONS and _close_least_recent(same) and crowding.first_time(address):
            log.warning("%s holds %d connections: closing its least recently used ones as it opens more",
                        address, PER_ADDRESS_CONNECTIONS)
        # Waitress stops accepting at connection_limit entries in its map (the listener included).
        if len(listener._map) + 1 >= listener.adj.connection_limit and _close_least_recent(channels) \
                and crowding.first_time("*"):
            log.warning("%d connections open: closing the least recently used ones as new ones arrive",
                        CONNECTION_LIMIT)

    def handle_accept() -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                pair = listener.accept()
            except OSError:
                return  # the client gave up before it was accepted; the loop carries on
            if pair is None:
                return  # nothing more waiting
            conn, addr = pair
            try:
                listener.set_socket_options(conn)
            except OSError:
                conn.close()
                continue
            addr = listener.fix_addr(addr)
            make_room(_client(addr))
            listener.channel_class(listener, conn, addr, listener.adj, map=listener._map)

    listener.handle_accept = handle_accept


def build_server(app: Any, host: str, port: int, **overrides: Any) -> Any:
    """A Waitress server for `app` on host:port with WAITRESS_OPTIONS (and `overrides`), not yet running.

    Raises OSError when the address cannot be bound (EADDRINUSE when the port is taken).
    """
    server = create_server(app, host=host, port=port, **{**WAITRESS_OPTIONS, **overrides})
    for listener in [server, *getattr(server, "map", {}).values()]:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = DeadlineChannel
            _close_overdue_heads(listener)
            _admit_with_room(listener)
    return server
