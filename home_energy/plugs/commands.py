"""Home Assistant's switch commands for the plugs: the plug controller's own small MQTT subscription.

The publisher sends each plug's `switch` entity (it only reads the cache); a command comes back
on `<prefix>/plug/<key>/set`. Carrying it out means switching the plug and recording it, so it
belongs to the plug controller, already the writer of plug state: this listener only receives,
checks and queues; the controller's thread switches and records (`Controller.apply_command`),
as a person's override.

Rules it keeps, the publisher's guarantees:
- Its own thread and connection; every wait is bounded (TCP and TLS 5 s, CONNACK 10 s, a poll of
  at most 1 s); reconnects back off from 1 s to 30 s with jitter; one log line when it starts
  failing and one when it recovers. A broker that is down, silent or refusing never delays a
  decision: the controller only ever takes from a bounded queue without waiting on the broker.
- Only `ON` or `OFF`, for a plug in PLUGS_FILE, sent live (a retained command would switch the
  plug again at every reconnect): anything else is ignored, with one log line per kind of
  mistake and plug (never the payload itself beyond a short quoted start).
- `<prefix>/plugs/status` says `online` (retained) while it listens and `offline` on a clean stop
  or, by the last will, when the process dies; each switch entity is available only then. A dry
  run listens and logs what it would do, but claims no availability (it may run beside the real
  controller).
- The password and URL user-info are `Secret`s, never formatted into a line.
"""
from __future__ import annotations

import logging
import os
import queue
import random
import ssl
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .. import entities
from ..clock import monotonic
from ..config import Config
from ..errors import HomeEnergyError
from ..publisher import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CONNACK_WAIT_S,
    CONNECT_TIMEOUT_S,
    GOODBYE_WAIT_S,
    KEEPALIVE_S,
    LOOP_S,
    QOS,
    _ClosingSSLSocket,
    describe_failure,
)

log = logging.getLogger(__name__)

QUEUE_SIZE = 32  # commands waiting for the controller's thread; a flood beyond this is dropped
COMMAND_MAX_AGE_S = 30.0  # a command that waited longer than this (the controller was busy) is not carried out
LISTENER_STOP_S = LOOP_S + GOODBYE_WAIT_S + 2  # the longest its stop function waits for the thread
PAYLOAD_QUOTED_CHARS = 16  # how much of a bad payload a log line quotes


@dataclass(frozen=True)
class Command:
    plug: str  # the key in PLUGS_FILE
    on: bool
    received: float  # clock.monotonic() when it arrived


class CommandListener:
    """Subscribes to `<prefix>/plug/+/set` and queues valid commands for the controller."""

    def __init__(self, config: Config, plugs: Collection[str], *, dry_run: bool = False) -> None:
        if config.mqtt_url is None:
            raise HomeEnergyError("MQTT_URL is not set: no commands to listen for")
        self.config = config
        self.plugs = frozenset(plugs)
        self.dry_run = dry_run
        scheme, _, hostport = config.mqtt_url.partition("://")
        host, _, port = hostport.rpartition(":")
        self.tls, self.host, self.port = scheme == "mqtts", host.strip("[]"), int(port)
        prefix = config.mqtt_topic_prefix
        self.command_topics = entities.PLUG_COMMAND_TOPICS.format(prefix=prefix)
        self.head, self.tail = f"{prefix}/plug/", "/set"
        self.status_topic = entities.plugs_status_topic(prefix)
        self.queue: queue.Queue[Command] = queue.Queue(maxsize=QUEUE_SIZE)
        self.client: Any = None
        self.connected = False
        self.leaving = False
        self.refused: str | None = None
        self.failing = False
        self.warned: set[tuple[str, str]] = set()  # (kind of mistake, plug): logged once each

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect, listen, reconnect with backoff, until `stop` is set; then say `offline`."""
        backoff = BACKOFF_MIN_S
        while not stop.is_set():
            error = self._session(stop)
            if stop.is_set():
                break
            if error is None:
                backoff = BACKOFF_MIN_S
                error = "connection lost"
            if not self.failing:
                log.warning("MQTT: cannot take plug commands from %s: %s; retrying with backoff",
                            self.config.mqtt_url, error)
                self.failing = True
            stop.wait(backoff * random.uniform(0.8, 1.2))
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def _session(self, stop: threading.Event) -> str | None:
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
                    if not was_up:
                        log.info("MQTT: %s plug commands from %s", "taking" if not self.failing else
                                 "taking again", self.config.mqtt_url)
                        self.failing = False
                    was_up = True
                elif was_up or rc != 0:
                    return None if was_up else "connection lost before the broker answered"
                elif monotonic() > deadline:
                    return f"no answer to CONNECT within {CONNACK_WAIT_S:.0f} s"
            if self.connected and not self.dry_run:
                self.leaving = True
                info = client.publish(self.status_topic, entities.NOT_AVAILABLE, qos=QOS, retain=True)
                until = monotonic() + GOODBYE_WAIT_S
                while not info.is_published() and monotonic() < until and client.loop(timeout=0.2) == 0:
                    pass
            return None
        finally:
            client.disconnect()
            client.loop(timeout=0.1)
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _new_client(self) -> Any:
        import paho.mqtt.client as mqtt

        node = entities.node_id(self.config.mqtt_topic_prefix)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{node}-plugs-{os.getpid()}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_queued_messages_set(8)  # it sends only its status
        if self.config.mqtt_user is not None:
            password = self.config.mqtt_password.reveal() if self.config.mqtt_password else None
            client.username_pw_set(self.config.mqtt_user.reveal(), password)
        if self.tls:
            context = ssl.create_default_context()
            context.sslsocket_class = _ClosingSSLSocket
            client.tls_set_context(context)
        if not self.dry_run:
            client.will_set(self.status_topic, entities.NOT_AVAILABLE, qos=QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # --- paho's callbacks (inside client.loop, in this thread) --------------------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            self.refused = f"the broker refused the connection: {reason}"
            return
        self.connected = True
        topics = [(self.command_topics, QOS)]
        if not self.dry_run:
            topics.append((self.status_topic, QOS))  # another session's late last will must not leave us offline
        client.subscribe(topics)
        if not self.dry_run:  # after SUBSCRIBE: whoever sees `online` may send a command at once
            client.publish(self.status_topic, entities.AVAILABLE, qos=QOS, retain=True)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, _reason: Any, _properties: Any) -> None:
        self.connected = False

    def _on_message(self, client: Any, _userdata: Any, message: Any) -> None:
        if message.topic == self.status_topic:
            if message.payload != entities.AVAILABLE.encode() and self.connected and not self.leaving:
                client.publish(self.status_topic, entities.AVAILABLE, qos=QOS, retain=True)
            return
        command = self.parse(message.topic, message.payload, bool(message.retain))
        if command is None:
            return
        try:
            self.queue.put_nowait(command)
        except queue.Full:
            self._warn_once("full", command.plug, f"MQTT: plug commands are arriving faster than they can be "
                                                  f"carried out; dropped one for {command.plug}")

    def parse(self, topic: str, payload: bytes, retained: bool) -> Command | None:
        """A valid command, or None (logged once per kind of mistake and plug)."""
        plug = topic[len(self.head):-len(self.tail)] if topic.startswith(self.head) and topic.endswith(self.tail) \
            else ""
        if plug not in self.plugs:
            self._warn_once("unknown", plug, f"MQTT: ignored a command for {_quote(plug)}: no such plug in "
                                             "PLUGS_FILE")
            return None
        if retained:
            self._warn_once("retained", plug, f"MQTT: ignored a retained command for {plug}: only live commands "
                                              f"are carried out (clear it: publish an empty retained message to "
                                              f"{topic})")
            return None
        text = payload.decode("utf-8", "replace").strip()
        if text not in (entities.PLUG_ON, entities.PLUG_OFF):
            self._warn_once("payload", plug, f"MQTT: ignored a command for {plug}: {_quote(text)} is neither "
                                             f"{entities.PLUG_ON} nor {entities.PLUG_OFF}")
            return None
        return Command(plug, text == entities.PLUG_ON, monotonic())

    def _warn_once(self, kind: str, plug: str, line: str) -> None:
        if (kind, plug) in self.warned or len(self.warned) > 100:  # a flood of made-up plugs: not a flood of lines
            return
        self.warned.add((kind, plug))
        log.warning("%s", line)


def _quote(text: str) -> str:
    shown = text[:PAYLOAD_QUOTED_CHARS] + ("…" if len(text) > PAYLOAD_QUOTED_CHARS else "")
    return repr(shown)


def start_listener(config: Config, plugs: Collection[str], *, dry_run: bool = False
                   ) -> tuple[queue.Queue[Command], Callable[[], None]] | None:
    """Listen in a daemon thread when MQTT_URL is set; the queue of commands and a stop function."""
    if config.mqtt_url is None:
        return None
    listener = CommandListener(config, plugs, dry_run=dry_run)
    stop = threading.Event()

    def _run() -> None:
        try:
            listener.run(stop)
        except Exception:  # noqa: BLE001 - the controller outlives its listener
            log.exception("MQTT plug command listener stopped unexpectedly")

    thread = threading.Thread(target=_run, name="mqtt-plug-commands", daemon=True)
    thread.start()

    def _stop() -> None:
        stop.set()
        thread.join(timeout=LISTENER_STOP_S)

    return listener.queue, _stop
