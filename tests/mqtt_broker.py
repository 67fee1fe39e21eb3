"""A real Mosquitto broker (Debian's `mosquitto`) on a free port for the publisher's tests, and a
watcher that subscribes to everything the way Home Assistant would.

The broker runs without persistence, so a restart loses every retained message: whatever is back
afterwards was sent again by the publisher.
"""
from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.ports import free_port

MOSQUITTO = "/usr/sbin/mosquitto"
USER = "display"
PASSWORD = "s3cret-broker-pw"  # noqa: S105 - a test broker's password, looked for in logs


class Broker:
    def __init__(self, folder: Path, password: bool = False, tls: bool = False) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "user root",
                 f"allow_anonymous {'false' if password else 'true'}"]
        if password:
            passwd = folder / "passwd"
            passwd.write_text("")
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), USER, PASSWORD], check=True,
                           capture_output=True, timeout=30)
            lines.append(f"password_file {passwd}")
        if tls:
            cert, key = folder / "cert.pem", folder / "key.pem"
            # Self-signed for "localhost": no system CA vouches for it, as for a bad certificate.
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                           check=True, capture_output=True, timeout=60)
            lines += [f"certfile {cert}", f"keyfile {key}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


class Watcher:
    """Subscribed to `#`: the last payload per topic (retained ones included) and every arrival."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None) -> None:
        self.lock = threading.Lock()
        self.last: dict[str, str] = {}
        self.arrivals: list[tuple[float, str, str]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_a: c.subscribe("#", qos=1)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        payload = message.payload.decode()
        with self.lock:
            if payload == "":
                self.last.pop(message.topic, None)
            else:
                self.last[message.topic] = payload
            self.arrivals.append((time.monotonic(), message.topic, payload))

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.last)

    def since(self, t: float) -> list[tuple[str, str]]:
        with self.lock:
            return [(topic, payload) for at, topic, payload in self.arrivals if at >= t]

    def wait_for(self, check: Callable[[dict[str, str]], bool], timeout: float = 10.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            seen = self.snapshot()
            if check(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {timeout} s; last: {sorted(seen.items())[:60]}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)


class SilentBroker:
    """Accepts TCP connections and never says a word: the broker that never acknowledges."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()
