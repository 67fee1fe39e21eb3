"""The one door to the home's MQTT broker: every session with it (the publisher's, the plug
controller's command listener) is built and kept here, as `fetch` is the door for HTTP.

Why it exists: a guarantee written in the module that happens to need it leaves the next session
soft. A session's user says only what it subscribes to, what it does with a message, and what it
sends while connected; everything below holds for a new session on its first day.

Rules it keeps, for every session:
- Where and who: MQTT_URL's host and port, `mqtts` for TLS; the user and password are config
  `Secret`s, revealed only to paho. The client id is the caller's name and the process id, so two
  processes never take each other's session.
- TLS verifies the broker's certificate and host name against the system's CAs (CERT_REQUIRED,
  `check_hostname`); a refused certificate is a failure, never a fallback to plain text. The TLS
  socket closes itself when its handshake fails (paho drops it unclosed: one descriptor per try).
- Every wait is bounded: the TCP connect and the TLS handshake 5 s each, CONNACK 10 s, each poll
  at most 1 s (so `stop` and the caller's own work are looked at every second), the goodbye 2 s.
- Reconnects back off from 1 s, doubling to 30 s, with jitter; after a session that was up, from
  1 s again. Every session is a new client, so nothing waits in a queue across a disconnection.
- paho's outgoing queue is bounded (`max_queued`, which must be at least 1: paho reads 0 as
  "unbounded"); `Session.publish` says False when a message was dropped because it is full.
- Availability (when `availability` names a topic): `online`, retained, sent once subscribed (so
  whoever sees it can already be heard); `offline` by the last will when the process dies, and
  sent on a clean stop; anything else arriving there while up (another session's late last will,
  after a power cut's half-open socket) is answered with `online`.
- Failures are one line (`describe_failure`), with every configured secret removed by value; the
  log hears once when a session starts failing and once when it is up again, naming MQTT_URL,
  which never holds user-info.
- Only this module imports paho, ssl or socket for MQTT (tests/test_door.py walks the imports).

Public API:
    Lines(up, again, failing)      the log's three lines for one session's transitions
    Message(topic, payload, retained)
    Session(config, *, name, lines, log, max_queued, subscriptions=(), availability=None,
            on_up=..., on_message=..., on_tick=..., on_failure=...)
        .run(stop)                 connect, reconnect with backoff, until `stop` is set
        .publish(topic, payload, *, retain=True) -> bool
        .announce()                `online` on the availability topic again
        .connected, .client
    run_in_thread(run, *, name, log, what) -> stop function (waits at most STOP_WAIT_S)
    describe_failure(exc) -> str
"""
from __future__ import annotations

import logging
import os
import random
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .clock import monotonic
from .config import Config
from .entities import AVAILABLE, NOT_AVAILABLE
from .errors import HomeEnergyError
from .redact import Redactor

CONNECT_TIMEOUT_S = 5.0  # TCP connect and TLS handshake, each
CONNACK_WAIT_S = 10.0  # a broker that accepts the socket but never answers CONNECT
KEEPALIVE_S = 30  # the broker fires the last will after 1.5x this without a packet (power cut)
LOOP_S = 1.0  # the longest a poll blocks in select before the caller's work and `stop` are looked at
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
BACKOFF_JITTER = 0.2  # each wait is the backoff times 1 ± this, so sessions restarted together spread out
GOODBYE_WAIT_S = 2.0  # on stop: the wait for `offline` to leave before disconnecting
DISCONNECT_WAIT_S = 0.1  # on any end: the poll that writes DISCONNECT when the socket can take it
STOP_WAIT_S = LOOP_S + GOODBYE_WAIT_S + 2  # the longest a stop function waits for a session's thread
QOS = 1
ONLINE, OFFLINE = AVAILABLE, NOT_AVAILABLE  # the payloads every discovery document names


@dataclass(frozen=True)
class Lines:
    """The log's lines for one session's transitions: `{url}` is MQTT_URL (no user-info), and
    `failing` also takes `{error}` (one line, secrets removed)."""
    up: str  # the first connection
    again: str  # up after failing
    failing: str  # the first failure after being up (or of the first attempt)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retained: bool


def _nothing() -> None:
    return None


def _ignore(_item: Any) -> None:
    return None


class Session:
    """One client identity with the broker, kept up until `stop`: see the module's rules.

    The callbacks run in the session's thread: `on_up` when the broker accepted the connection
    (after the subscriptions and `online` were sent), `on_message` for each message on a
    subscription other than the availability topic, `on_tick` after each poll while connected
    (at most LOOP_S apart), `on_failure` with the one-line reason each time a session failed or
    was lost, before the backoff wait.
    """

    def __init__(self, config: Config, *, name: str, lines: Lines, log: logging.Logger, max_queued: int,
                 subscriptions: Sequence[str] = (), availability: str | None = None,
                 on_up: Callable[[], None] = _nothing, on_message: Callable[[Message], None] = _ignore,
                 on_tick: Callable[[], None] = _nothing, on_failure: Callable[[str], None] = _ignore) -> None:
        if config.mqtt_url is None:
            raise HomeEnergyError("MQTT_URL is not set: no broker to connect to")
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1 (paho reads {max_queued} as unbounded)")
        scheme, _, hostport = config.mqtt_url.partition("://")
        host, _, port = hostport.rpartition(":")
        self.tls, self.host, self.port = scheme == "mqtts", host.strip("[]"), int(port)
        self.url = config.mqtt_url
        self.user = config.mqtt_user
        self.password = config.mqtt_password
        self.redact = Redactor.from_config(config)
        self.name, self.lines, self.log, self.max_queued = name, lines, log, max_queued
        self.subscriptions = tuple(subscriptions)
        self.availability = availability
        self.on_up, self.on_message, self.on_tick, self.on_failure = on_up, on_message, on_tick, on_failure
        self.client: Any = None  # paho's client of the current (or last) attempt
        self.connected = False
        self.leaving = False  # our own `offline` is on its way: do not answer it with `online`
        self.refused: str | None = None
        self.failing = False

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect, serve the callbacks, reconnect with backoff, until `stop` is set; then say
        `offline` (with an availability topic) and disconnect."""
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            error = self._session(stop)
            if stop.is_set():
                break
            if error is None:  # the session was up: the broker went away, start again quickly
                backoff = BACKOFF_MIN_S
                error = "connection lost"
            error = self.redact(" ".join(error.split()))
            if not self.failing:
                self.log.warning("%s", self.lines.failing.format(url=self.url, error=error))
                self.failing = True
            self.on_failure(error)
            stop.wait(backoff * random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER))
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def _session(self, stop: threading.Event) -> str | None:
        """One connection, from connect to its end: None when it was established, else the failure."""
        client = self.client = self._new_client()
        self.connected, self.refused, self.leaving = False, None, False
        try:
            client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except (OSError, ssl.CertificateError, ValueError) as exc:
            return describe_failure(exc)
        deadline = monotonic() + CONNACK_WAIT_S
        was_up = False
        try:
            while not stop.is_set():
                rc = client.loop(timeout=LOOP_S)
                if self.refused is not None:
                    return self.refused
                if self.connected:
                    was_up = True
                    self.on_tick()
                elif was_up or rc != 0:
                    return None if was_up else "connection lost before the broker answered"
                elif monotonic() > deadline:
                    return f"no answer to CONNECT within {CONNACK_WAIT_S:.0f} s"
            if self.connected and self.availability is not None:
                self._goodbye(client, self.availability)
            return None
        finally:
            client.disconnect()
            client.loop(timeout=DISCONNECT_WAIT_S)  # writes DISCONNECT when it can; paho then closes the socket
            sock = client.socket()
            if sock is not None:  # a broker that would not even take DISCONNECT
                sock.close()

    def _new_client(self) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.name}-{os.getpid()}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_queued_messages_set(self.max_queued)
        if self.user is not None:
            client.username_pw_set(self.user.reveal(), self.password.reveal() if self.password else None)
        if self.tls:
            context = ssl.create_default_context()  # CERT_REQUIRED and host name checked: no plain fallback
            context.sslsocket_class = _ClosingSSLSocket
            client.tls_set_context(context)
        if self.availability is not None:
            client.will_set(self.availability, OFFLINE, qos=QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _goodbye(self, client: Any, topic: str) -> None:
        """Say `offline` ourselves on a clean stop (the last will is only for a death)."""
        self.leaving = True
        info = client.publish(topic, OFFLINE, qos=QOS, retain=True)
        deadline = monotonic() + GOODBYE_WAIT_S
        while not info.is_published() and monotonic() < deadline and client.loop(timeout=0.2) == 0:
            pass

    # --- what the caller sends ----------------------------------------------------------------

    def publish(self, topic: str, payload: str, *, retain: bool = True) -> bool:
        """Hand one message to paho; False when its bounded queue is full (dropped)."""
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        return bool(info.rc == 0)

    def announce(self) -> None:
        """`online` on the availability topic again (Home Assistant came back and asks for it)."""
        if self.availability is not None and self.connected and not self.leaving:
            self.publish(self.availability, ONLINE)

    # --- paho's callbacks (run inside client.loop, in the session's thread) -------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            self.refused = f"the broker refused the connection: {reason}"
            return
        self.connected = True
        topics = [(topic, QOS) for topic in self.subscriptions]
        if self.availability is not None:
            topics.append((self.availability, QOS))  # another session's late last will must not leave us offline
        if topics:
            client.subscribe(topics)
        if self.availability is not None:  # after SUBSCRIBE: whoever sees `online` may send at once
            self.publish(self.availability, ONLINE)
        self.log.info("%s", (self.lines.again if self.failing else self.lines.up).format(url=self.url))
        self.failing = False
        self.on_up()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, _reason: Any, _properties: Any) -> None:
        self.connected = False

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic == self.availability:
            if message.payload != ONLINE.encode():
                self.announce()
            return
        self.on_message(Message(message.topic, message.payload, bool(message.retain)))


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails (a refused certificate): paho drops such a socket
    without closing it, which would leak one descriptor per attempt."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def describe_failure(exc: BaseException) -> str:
    """One line for a failed connection attempt; never the URL (it is logged without user-info)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate refused: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.CertificateError):
        return f"TLS certificate refused: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def run_in_thread(run: Callable[[threading.Event], None], *, name: str, log: logging.Logger,
                  what: str) -> Callable[[], None]:
    """`run(stop)` in a daemon thread; the returned function sets `stop` and waits for the thread
    at most STOP_WAIT_S (its session says `offline` and disconnects within that)."""
    stop = threading.Event()

    def _run() -> None:
        try:
            run(stop)
        except Exception:  # noqa: BLE001 - the process outlives its MQTT session
            log.exception("%s stopped unexpectedly", what)

    thread = threading.Thread(target=_run, name=name, daemon=True)
    thread.start()

    def _stop() -> None:
        stop.set()
        thread.join(timeout=STOP_WAIT_S)

    return _stop
