"""`home-energy publish`: the cache's prices, windows, costs and meter readings, sent to the home's
MQTT broker with Home Assistant discovery, so the display is the household's one Amber client.

Rules it keeps:
- It reads only the cache, read-only, through `queries` (the functions the API answers with), so
  it needs no token, no internet and no meter; its values equal the API's (see `entities`).
- A broker that is down, slow, silent or refusing costs nothing to anyone else: the publisher has
  its own process (its unit) or thread (`home-energy run`), its own reader connection, and one
  loop whose every wait is bounded (TCP and TLS 5 s, CONNACK 10 s, a poll of at most 1 s). paho's
  outgoing queue is bounded (MAX_QUEUED_MESSAGES); while disconnected nothing is queued at all:
  every (re)connect sends the full picture anyway.
- Availability: `<prefix>/status` is `online` (retained) while connected, `offline` by the last
  will when the process dies, and sent as `offline` on a clean stop.
- Discovery configs and states are sent again after every (re)connect and when Home Assistant's
  birth message (`<discovery prefix>/status` = `online`) arrives; states whenever one changes and
  all of them at least every 5 minutes, which keeps `expire_after` from firing.
- Smart plugs (PLUGS_FILE set) are `switch` entities whose discovery, state and attributes come
  from /api/plugs' answer; a plug gone from the cache has its retained config (seen on the broker,
  also one left by an earlier run) removed. Commands are not taken here: this process never
  writes the cache; the plug controller listens for them (`plugs.commands`).
- TLS (`mqtts://`) verifies the broker's certificate and host name against the system's CAs; a
  bad certificate is a failure with one line, never a fallback to plain text.
- Reconnects back off from 1 s, doubling to 30 s, with jitter. The log gets one line when
  publishing starts failing and one when it recovers; the password and URL user-info are
  `Secret`s, never formatted into a line.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sqlite3
import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import entities, queries
from .clock import monotonic, now_utc
from .config import Config
from .db import connect_reader
from .errors import HomeEnergyError
from .plugs import status as plug_status
from .publish_status import STATUS_EVERY_S, PublishState, status_path, write_status
from .version import running_version

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # TCP connect and TLS handshake, each
CONNACK_WAIT_S = 10.0  # a broker that accepts the socket but never answers CONNECT
KEEPALIVE_S = 30  # the broker fires the last will after 1.5x this without a packet (power cut)
LOOP_S = 1.0  # the longest the loop blocks in select before it looks at the cache and `stop`
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STATE_EVERY_S = 300  # every state is sent at least this often (entities.EXPIRE_AFTER_S builds on it)
MAX_QUEUED_MESSAGES = 200  # a full send is ~70 messages; more than this waiting means the broker is stuck
GOODBYE_WAIT_S = 2.0  # on stop: the wait for `offline` to leave before disconnecting
QOS = 1


def configuration_url(config: Config) -> str:
    """Where Home Assistant's device page links to: the dashboard, by this machine's name when
    it listens on every address or only on loopback (a loopback link would point at HA itself)."""
    host = config.host
    if host in ("0.0.0.0", "::", "[::]") or host.startswith("127.") or host in ("localhost", "::1", "[::1]"):
        host = f"{socket.gethostname()}.local"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.port}/"


def read_answers(conn: sqlite3.Connection, config: Config, version: str) -> entities.Answers:
    """The API's answers, computed by the API's own functions with the API's arguments."""
    now = now_utc()
    live = today = None
    if config.meter is not None:
        live = queries.live(conn, now, config.meter, config.meter_poll_seconds)
        today = queries.today(conn, now, config.meter)
    return entities.Answers(
        current=queries.current(conn, now),
        summary=queries.summary(conn, now, config.monthly_budget, config.forecast_price),
        health=queries.health(conn, now, config.stale_after_seconds, config.mode, version),
        live=live, today=today,
    )


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


class Publisher:
    def __init__(self, config: Config, version: str | None = None) -> None:
        if config.mqtt_url is None:
            raise HomeEnergyError("MQTT_URL is not set: nothing to publish to")
        self.config = config
        self.version = version or running_version()
        scheme, _, hostport = config.mqtt_url.partition("://")
        host, _, port = hostport.rpartition(":")
        self.tls, self.host, self.port = scheme == "mqtts", host.strip("[]"), int(port)
        self.device = entities.Device(
            node_id=entities.node_id(config.mqtt_topic_prefix), topic_prefix=config.mqtt_topic_prefix,
            discovery_prefix=config.mqtt_discovery_prefix, version=self.version,
            configuration_url=configuration_url(config))
        self.entities = entities.entities_for(config.meter is not None)
        self.status_topic = entities.status_topic(config.mqtt_topic_prefix)
        self.birth_topic = f"{config.mqtt_discovery_prefix}/status"
        self.status_file = status_path(config.sqlite_path)
        self.client: Any = None
        self.connected = False
        self.leaving = False  # our own `offline` is on its way: do not answer it with `online`
        self.refused: str | None = None
        self.resend = False  # send discovery and every state on the next tick
        self.sent: dict[str, str] = {}  # what the broker holds for each state topic
        self.answer_key: tuple | None = None
        self.next_full = 0.0
        self.reader: sqlite3.Connection | None = None
        self.reader_identity: tuple | None = None
        self.cache_failing = False
        self.plugs_configured = config.plugs_file is not None
        self.plugs_now: dict[str, tuple[str, str, str]] = {}  # key: (name, state, attributes), as last read
        self.plugs_discovered: dict[str, str] = {}  # key: name, whose switch config this session sent
        self.plugs_held: set[str] = set()  # keys of this display's switch configs the broker holds
        self.state = PublishState("connecting", config.mqtt_url, self._now(), self._now())
        self.next_status = 0.0

    # --- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect, publish, reconnect with backoff, until `stop` is set; then say `offline`."""
        self._set_status("connecting")
        backoff = BACKOFF_MIN_S
        try:
            while not stop.is_set():
                error = self._session(stop)
                if stop.is_set():
                    break
                if error is None:  # the session was up: the broker went away, start again quickly
                    backoff = BACKOFF_MIN_S
                    error = "connection lost"
                self._failing(error)
                stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(BACKOFF_MAX_S, backoff * 2)
        finally:
            self._close_reader()
            self._set_status("stopped")

    def _session(self, stop: threading.Event) -> str | None:
        """One connection, from connect to its end: None when it was established, else the failure."""
        client = self.client = self._new_client()
        self.connected, self.refused, self.sent, self.leaving = False, None, {}, False
        self.plugs_discovered, self.plugs_held = {}, set()
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
                    self._tick()
                elif was_up or rc != 0:
                    return None if was_up else "connection lost before the broker answered"
                elif monotonic() > deadline:
                    return f"no answer to CONNECT within {CONNACK_WAIT_S:.0f} s"
            if self.connected:
                self._goodbye(client)
            return None
        finally:
            client.disconnect()
            client.loop(timeout=0.1)  # writes DISCONNECT when it can; paho then closes the socket
            sock = client.socket()
            if sock is not None:  # a broker that would not even take DISCONNECT
                sock.close()

    def _new_client(self) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.device.node_id}-{os.getpid()}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        if self.config.mqtt_user is not None:
            password = self.config.mqtt_password.reveal() if self.config.mqtt_password else None
            client.username_pw_set(self.config.mqtt_user.reveal(), password)
        if self.tls:
            context = ssl.create_default_context()  # CERT_REQUIRED and host name checked: no plain fallback
            context.sslsocket_class = _ClosingSSLSocket
            client.tls_set_context(context)
        client.will_set(self.status_topic, entities.NOT_AVAILABLE, qos=QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # --- paho's callbacks (run inside client.loop, in this thread) -------------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            self.refused = f"the broker refused the connection: {reason}"
            return
        self.connected = True
        self.resend = True
        # Home Assistant's birth message, and our own status: another session's late last will
        # (a power cut's half-open socket) must not leave us `offline` while we are up.
        # And this display's switch configs: one for a plug no longer in the cache is removed.
        client.subscribe([(self.birth_topic, QOS), (self.status_topic, QOS),
                          (entities.plug_discovery_filter(self.device), QOS)])

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, _reason: Any, _properties: Any) -> None:
        self.connected = False

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        payload = message.payload.decode("utf-8", "replace").strip()
        plug = entities.plug_from_discovery_topic(self.device, message.topic)
        if plug is not None:
            if payload:
                self.plugs_held.add(plug)
            else:
                self.plugs_held.discard(plug)
        elif message.topic == self.birth_topic and payload == "online":
            self.resend = True
        elif (message.topic == self.status_topic and payload != entities.AVAILABLE and self.connected
              and not self.leaving):
            self._publish(self.status_topic, entities.AVAILABLE)

    # --- what is sent ---------------------------------------------------------------------

    def _tick(self) -> None:
        if self.state.status != "connected":
            if self.state.status == "failing":
                log.info("MQTT: publishing to %s again", self.config.mqtt_url)
            else:
                log.info("MQTT: connected to %s", self.config.mqtt_url)
            self._set_status("connected")
        full = self.resend or monotonic() >= self.next_full
        if self.resend:
            self.resend = False
            self._publish(self.status_topic, entities.AVAILABLE)
            self._send_discovery()
        states = self._read_states(force=full)
        if states is not None:
            for entity in self.entities:
                topic = entities.state_topic(self.config.mqtt_topic_prefix, entity)
                payload = states[entity.key]
                if full or self.sent.get(topic) != payload:
                    if self._publish(topic, payload):
                        self.sent[topic] = payload
            self._send_plugs(full)
            if full:
                self.next_full = monotonic() + STATE_EVERY_S
            self.state = replace(self.state, published_at=self._now())
        if self.answer_key is not None:  # the plugs have been read: a retained config seen since may go
            self._remove_gone_plugs()
        if monotonic() >= self.next_status:
            self._write_status()

    def _send_discovery(self) -> None:
        for entity in entities.ENTITIES:
            topic = entities.discovery_topic(self.device, entity)
            if entity in self.entities:
                self._publish(topic, _json(entities.discovery_config(self.device, entity)))
            else:
                self._publish(topic, "")  # an empty retained config removes an entity HA has (meter unset)

    def _send_plugs(self, full: bool) -> None:
        """Each plug's switch config (when new, renamed or on a full send), state and attributes
        (when changed)."""
        prefix = self.config.mqtt_topic_prefix
        for key, (name, state, attributes) in self.plugs_now.items():
            if full or self.plugs_discovered.get(key) != name:
                config = entities.switch_config(self.device, key, name)
                if self._publish(entities.plug_discovery_topic(self.device, key), _json(config)):
                    self.plugs_discovered[key] = name
            for leaf, payload in (("state", state), ("attributes", attributes)):
                topic = entities.plug_topic(prefix, key, leaf)
                if (full or self.sent.get(topic) != payload) and self._publish(topic, payload):
                    self.sent[topic] = payload

    def _remove_gone_plugs(self) -> None:
        """The switch configs of plugs gone from the cache (sent this session, or held by the
        broker from an earlier run) are removed, with their state and attributes."""
        prefix = self.config.mqtt_topic_prefix
        for key in (set(self.plugs_discovered) | self.plugs_held) - set(self.plugs_now):
            for topic in (entities.plug_discovery_topic(self.device, key), entities.plug_topic(prefix, key, "state"),
                          entities.plug_topic(prefix, key, "attributes")):
                self._publish(topic, "")
                self.sent.pop(topic, None)
            self.plugs_discovered.pop(key, None)
            self.plugs_held.discard(key)

    def _publish(self, topic: str, payload: str) -> bool:
        """Hand one retained message to paho; False when its bounded queue is full (dropped)."""
        info = self.client.publish(topic, payload, qos=QOS, retain=True)
        return info.rc == 0

    def _read_states(self, force: bool) -> dict[str, str] | None:
        """The states now, computed only when the cache was written or the minute turned (or forced)."""
        try:
            conn = self._reader()
            key = (conn.execute("PRAGMA data_version").fetchone()[0], int(now_utc().timestamp()) // 60)
            if not force and key == self.answer_key:
                return None
            answers = read_answers(conn, self.config, self.version)
            plugs = entities.plug_states(plug_status.plugs(conn, now_utc(), True)) if self.plugs_configured else {}
        except (HomeEnergyError, sqlite3.Error) as exc:
            self._close_reader()
            if not self.cache_failing:
                log.warning("MQTT: cannot read the cache, states not sent: %s", exc)
                self.cache_failing = True
            return None
        if self.cache_failing:
            log.info("MQTT: the cache can be read again")
            self.cache_failing = False
        self.answer_key = key
        self.plugs_now = plugs
        return entities.states(answers, self.config.meter is not None)

    def _reader(self) -> sqlite3.Connection:
        path = self.config.sqlite_path
        try:
            identity = (str(path), os.stat(path).st_ino)
        except OSError:
            identity = None
        if self.reader is None or identity != self.reader_identity:
            self._close_reader()
            self.reader = connect_reader(path)
            self.reader_identity = identity
        return self.reader

    def _close_reader(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.reader = self.reader_identity = None

    def _goodbye(self, client: Any) -> None:
        """Say `offline` ourselves on a clean stop (the last will is only for a death)."""
        self.leaving = True
        info = client.publish(self.status_topic, entities.NOT_AVAILABLE, qos=QOS, retain=True)
        deadline = monotonic() + GOODBYE_WAIT_S
        while not info.is_published() and monotonic() < deadline and client.loop(timeout=0.2) == 0:
            pass

    # --- status: the log on transitions, the file for health --------------------------------

    def _failing(self, error: str) -> None:
        if self.state.status != "failing":
            log.warning("MQTT: cannot publish to %s: %s; retrying with backoff", self.config.mqtt_url, error)
        self._set_status("failing", error)

    def _set_status(self, status: str, error: str | None = None) -> None:
        now = self._now()
        since = self.state.since if status == self.state.status else now
        self.state = PublishState(status, self.state.broker, since, now, error, self.state.published_at)
        self._write_status()

    def _write_status(self) -> None:
        self.next_status = monotonic() + STATUS_EVERY_S
        self.state = replace(self.state, updated_at=self._now())
        try:
            write_status(self.status_file, self.state)
        except OSError as exc:
            log.debug("MQTT: status file not written: %s", exc)

    @staticmethod
    def _now() -> int:
        return int(now_utc().timestamp())


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails (a refused certificate): paho drops such a socket
    without closing it, which would leak one descriptor per attempt."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _json(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document, separators=(",", ":"))


def start_publisher(config: Config) -> Callable[[], None] | None:
    """Publish from a daemon thread (for `home-energy run`); None when MQTT_URL is unset.
    The returned function stops it: `offline` is sent and the thread ends within a few seconds."""
    if config.mqtt_url is None:
        return None
    publisher = Publisher(config)
    stop = threading.Event()

    def _run() -> None:
        try:
            publisher.run(stop)
        except Exception:  # noqa: BLE001 - the dashboard outlives its publisher
            log.exception("MQTT publisher stopped unexpectedly")

    thread = threading.Thread(target=_run, name="mqtt-publisher", daemon=True)
    thread.start()
    log.info("publishing to %s", config.mqtt_url)

    def _stop() -> None:
        stop.set()
        thread.join(timeout=LOOP_S + GOODBYE_WAIT_S + 2)

    return _stop


def publish_until_signalled(config: Config) -> int:
    """`home-energy publish`: publish in the foreground until SIGTERM or SIGINT."""
    if config.mqtt_url is None:
        print("no broker configured (MQTT_URL is unset): nothing to publish")
        return 0
    publisher = Publisher(config)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("publishing to %s", config.mqtt_url)
    publisher.run(stop)
    return 0
