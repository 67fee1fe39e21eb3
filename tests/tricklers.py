"""Clients that trickle a request a byte at a time: the harness the slow-clients test and the
bench share (tests/reliability/test_slow_clients.py, bench/slow_clients.py).

Waitress counts only silence towards its idle timeout, so a client that sends one byte of its
request head every few seconds and never finishes it holds a connection until the server's own
head deadline (home_energy.server) closes it.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TRICKLERS = 70
TRICKLE_EVERY_S = 10.0
CONNECT_TIMEOUT_S = 5.0
REQUEST = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextmanager
def trickling(port: int) -> Iterator[list[socket.socket]]:
    """TRICKLERS connections, each sending REQUEST one byte every TRICKLE_EVERY_S, never finishing.

    Every connection has sent its first byte when the block starts."""
    tricklers = [socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S) for _ in range(TRICKLERS)]
    for sock in tricklers:
        sock.send(REQUEST[:1])
    stop = threading.Event()

    def trickle() -> None:
        sent = 1
        while not stop.wait(TRICKLE_EVERY_S) and sent < len(REQUEST):
            for sock in tricklers:
                try:
                    sock.send(REQUEST[sent:sent + 1])
                except OSError:
                    pass  # closed by the server: what its head deadline is for
            sent += 1

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        yield tricklers
    finally:
        stop.set()
        sender.join(timeout=CONNECT_TIMEOUT_S)
        for sock in tricklers:
            sock.close()
