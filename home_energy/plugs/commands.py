"""Home Assistant's switch commands for the plugs: the plug controller's own small MQTT subscription.

The publisher sends each plug's `switch` entity (it only reads the cache); a command comes back
on `<prefix>/plug/<key>/set`. Carrying it out means switching the plug and recording it, so it
belongs to the plug controller, already the writer of plug state: this listener only receives,
checks and queues; the controller's thread switches and records (`Controller.apply_command`),
as a person's override.

Rules it keeps:
- Its own thread and its own `mqtt.Session` (the door to the broker, the publisher's too): every
  wait is bounded (TCP and TLS 5 s, CONNACK 10 s, a poll of at most 1 s); reconnects back off from
  1 s to 30 s with jitter; TLS never falls back to plain text; one log line when it starts failing
  and one when it recovers. A broker that is down, silent or refusing never delays a decision:
  the controller only ever takes from a bounded queue without waiting on the broker.
- Only `ON` or `OFF`, for a plug in PLUGS_FILE, sent live (a retained command would switch the
  plug again at every reconnect): anything else is ignored, with one log line per kind of
  mistake and plug (never the payload itself beyond a short quoted start).
- `<prefix>/plugs/status` says `online` (retained) while it listens and `offline` on a clean stop
  or, by the last will, when the process dies; each switch entity is available only then. A dry
  run listens and logs what it would do, but claims no availability (it may run beside the real
  controller).
- It imports no network client; the password and URL user-info never reach a line (the door's).
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from .. import entities, mqtt
from ..clock import monotonic
from ..config import Config
from ..errors import HomeEnergyError

log = logging.getLogger(__name__)

QUEUE_SIZE = 32  # commands waiting for the controller's thread; a flood beyond this is dropped
COMMAND_MAX_AGE_S = 30.0  # a command that waited longer than this (the controller was busy) is not carried out
LISTENER_STOP_S = mqtt.STOP_WAIT_S  # the longest its stop function waits for the thread
PAYLOAD_QUOTED_CHARS = 16  # how much of a bad payload a log line quotes
MAX_QUEUED_MESSAGES = 8  # outgoing: it sends only its status
LINES = mqtt.Lines(up="MQTT: taking plug commands from {url}", again="MQTT: taking plug commands from {url} again",
                   failing="MQTT: cannot take plug commands from {url}: {error}; retrying with backoff")


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
        prefix = config.mqtt_topic_prefix
        self.head, self.tail = f"{prefix}/plug/", "/set"
        self.queue: queue.Queue[Command] = queue.Queue(maxsize=QUEUE_SIZE)
        self.warned: set[tuple[str, str]] = set()  # (kind of mistake, plug): logged once each
        # A dry run may listen beside the real controller: it claims no availability.
        self.session = mqtt.Session(
            config, name=f"{entities.node_id(prefix)}-plugs", lines=LINES, log=log, max_queued=MAX_QUEUED_MESSAGES,
            subscriptions=(entities.PLUG_COMMAND_TOPICS.format(prefix=prefix),),
            availability=None if dry_run else entities.plugs_status_topic(prefix), on_message=self._on_message)

    def run(self, stop: threading.Event) -> None:
        """Connect, listen, reconnect with backoff, until `stop` is set; then say `offline`."""
        self.session.run(stop)

    def _on_message(self, message: mqtt.Message) -> None:
        command = self.parse(message.topic, message.payload, message.retained)
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
    stop = mqtt.run_in_thread(listener.run, name="mqtt-plug-commands", log=log, what="MQTT plug command listener")
    return listener.queue, stop
