"""A raw HTTP server for hostile-peer tests and the bench: it reads each request whole (head and
body), then hands the socket to a behaviour that writes whatever it likes, or nothing."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable

MAX_HEAD_BYTES = 65536


class RawServer:
    """Answers every request on 127.0.0.1 with `behaviour(request, conn)`; keeps what it was sent."""

    def __init__(self, behaviour: Callable[[bytes, socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    @property
    def hits(self) -> int:
        return len(self.requests)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < MAX_HEAD_BYTES:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                head = request.split(b"\r\n\r\n", 1)[0].lower()
                length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]) \
                    if b"content-length:" in head else 0
                while len(request) < len(head) + 4 + length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                self.requests.append(request)
                self.behaviour(request, conn)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def request_path(request: bytes) -> str:
    """The path of a raw request's first line."""
    return request.split(b" ", 2)[1].decode()
