"""PLUGS_FILE: the household's plugs and the one rule each follows, read with `tomllib`.

Rules it keeps:
- The file is checked whole at start-up; any mistake is one line naming the file, the line and
  the key (`plugs.toml:7: plugs.dishwasher.cheapest.hours must be ...`) and exit 78. Nothing is
  guessed: an unknown key is a mistake (a misspelt `min_on_minutes` would otherwise be ignored).
- A password is held as a `Secret`, so it never prints itself in a repr, a log or an error.
- Every plug has exactly one rule: `cheapest`, `below` or `avoid`.
- Two plugs may not drive the same switch (the same URL and channel): they would fight.

The file, for a dishwasher on a Shelly plug (the name defaults to the table's key):

    [plugs.dishwasher]
    driver = "shelly"
    url = "http://192.168.1.40"
    cheapest = { hours = 2, from = "20:00", to = "07:00" }
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

from ..config import Secret
from ..errors import ConfigError

DRIVERS = ("shelly", "tasmota")
FALLBACKS = ("leave", "off", "on")
CHANNELS = ("general", "feed_in")
DEFAULT_MAX_SWITCHES_PER_HOUR = 6
DEFAULT_OVERRIDE_HOURS = 2.0
DEFAULT_MIN_ON_MINUTES = 10
DEFAULT_MIN_OFF_MINUTES = 10
MAX_PLUGS = 32  # a household's plugs; more is a mistake, and each is polled every minute
MAX_FILE_BYTES = 64 * 1024
PRICE_LIMIT_C = 100_000.0  # c/kWh: far past Amber's market cap, so a typo like 1e9 is caught
BLOCK_STEP_MIN = 5  # every Amber interval starts on a 5-minute boundary
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
_URL = re.compile(r"^(https?)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

PLUG_KEYS = frozenset({"name", "driver", "url", "password", "channel", "fallback", "override_hours",
                       "max_switches_per_hour", "cheapest", "below", "avoid"})
RULE_KEYS = {
    "cheapest": frozenset({"hours", "from", "to", "split"}),
    "below": frozenset({"price", "channel", "min_on_minutes", "min_off_minutes"}),
    "avoid": frozenset({"price", "spikes", "min_on_minutes", "min_off_minutes"}),
}


@dataclass(frozen=True)
class Cheapest:
    """On for `minutes` inside the daily span `start`→`end` (the household's clock), at the
    cheapest time by the price the chart uses; one block unless `split`."""

    minutes: int
    start: time
    end: time
    split: bool = False

    @property
    def kind(self) -> str:
        return "cheapest"

    def label(self) -> str:
        return f"cheapest {_hours(self.minutes)}" + (" (split)" if self.split else "")


@dataclass(frozen=True)
class Below:
    """On while the price now is at or below `price` c/kWh, with minimum on and off times.

    `channel` "feed_in" compares what export earns (c/kWh paid, positive) instead of the
    general price: a solar diverter runs when exporting is worth little.
    """

    price: float
    channel: str = "general"
    min_on_minutes: int = DEFAULT_MIN_ON_MINUTES
    min_off_minutes: int = DEFAULT_MIN_OFF_MINUTES

    @property
    def kind(self) -> str:
        return "below"

    def label(self) -> str:
        what = "feed-in" if self.channel == "feed_in" else "price"
        return f"{what} ≤ {_cents(self.price)}"


@dataclass(frozen=True)
class Avoid:
    """Off while the price now is above `price` c/kWh (or a spike is on, with `spikes`), on otherwise."""

    price: float
    spikes: bool = True
    min_on_minutes: int = DEFAULT_MIN_ON_MINUTES
    min_off_minutes: int = DEFAULT_MIN_OFF_MINUTES

    @property
    def kind(self) -> str:
        return "avoid"

    def label(self) -> str:
        return f"off above {_cents(self.price)}" + (" or in a spike" if self.spikes else "")


Rule = Cheapest | Below | Avoid


@dataclass(frozen=True)
class PlugConfig:
    key: str  # the table's key: stable across renames of `name`
    name: str  # what the screen shows
    driver: str
    url: str  # scheme://host[:port], no user-info, no path
    rule: Rule
    password: Secret | None = None
    channel: int = 0  # Shelly switch id / Tasmota relay (0: the only or first one)
    fallback: str = "leave"  # what to do while prices are stale: leave | off | on
    override_hours: float = DEFAULT_OVERRIDE_HOURS
    max_switches_per_hour: int = DEFAULT_MAX_SWITCHES_PER_HOUR


def _hours(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes / 60:g} h"


def _cents(value: float) -> str:
    return f"{value:g}c"


class _Where:
    """Finds the line of a key in the file's text, for messages; tomllib itself gives none."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line(self, *keys: str) -> int | None:
        """The line where the dotted key `keys` is set, or its table starts; best effort."""
        table, last = keys[:-1], keys[-1]
        current: tuple[str, ...] = ()
        for number, raw in enumerate(self.lines, start=1):
            line = raw.split("#", 1)[0].strip()
            match = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]", line)
            if match:
                current = tuple(part.strip().strip('"\'') for part in match.group(1).split("."))
                if current[: len(keys)] == keys:
                    return number
                continue
            key = re.match(r"([A-Za-z0-9_\-\"'.]+)\s*=", line)
            if key is None:
                continue
            dotted = current + tuple(p.strip().strip('"\'') for p in key.group(1).split("."))
            if dotted == keys or (dotted == table and re.search(rf"[{{,]\s*{re.escape(last)}\s*=", line)):
                return number
            if dotted[: len(keys)] == keys:
                return number
        return None

    def error(self, message: str, *keys: str) -> ConfigError:
        number = self.line(*keys) if keys else None
        place = f"{self.path}:{number}" if number else f"{self.path}"
        dotted = ".".join(keys)
        return ConfigError(f"{place}: {dotted} {message}" if dotted else f"{place}: {message}")


def load_plugs(path: Path) -> list[PlugConfig]:
    """Read and check PLUGS_FILE; ConfigError (exit 78) with one line on the first mistake."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"PLUGS_FILE {path} cannot be read: {exc.strerror or type(exc).__name__}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"PLUGS_FILE {path} is larger than {MAX_FILE_BYTES // 1024} KB: is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"PLUGS_FILE {path} is not UTF-8 text") from exc
    return parse_plugs(text, path)


def parse_plugs(text: str, path: Path = Path("plugs.toml")) -> list[PlugConfig]:
    where = _Where(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc).splitlines()[0]
        found = re.search(r"\(at line (\d+), column \d+\)", message)
        detail = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        place = f"{path}:{found.group(1)}" if found else f"{path}"
        raise ConfigError(f"{place}: not valid TOML: {detail}") from None
    unknown = sorted(set(data) - {"plugs"})
    if unknown:
        raise where.error("is not a PLUGS_FILE section (every plug goes under [plugs.NAME])", unknown[0])
    tables = data.get("plugs", {})
    if not isinstance(tables, dict) or not tables:
        raise where.error("has no plugs: add one as [plugs.NAME] (see docs/plugs.md)")
    if len(tables) > MAX_PLUGS:
        raise where.error(f"has {len(tables)} plugs; at most {MAX_PLUGS}", "plugs")
    plugs = [_plug(where, key, table) for key, table in tables.items()]
    seen: dict[tuple[str, str, int], str] = {}
    for plug in plugs:
        scheme, _, rest = plug.url.lower().partition("://")
        host = rest if re.search(r":\d+$", rest) else f"{rest}:{443 if scheme == 'https' else 80}"
        ident = (scheme, host, plug.channel)
        if ident in seen:
            raise where.error(f"is the same switch as plugs.{seen[ident]} ({plug.url}, channel {plug.channel}): "
                              "two rules would fight over it", "plugs", plug.key, "url")
        seen[ident] = plug.key
    names: dict[str, str] = {}
    for plug in plugs:
        if plug.name.lower() in names:
            raise where.error(f"is also the name of plugs.{names[plug.name.lower()]}: the screen could not tell "
                              "them apart", "plugs", plug.key, "name")
        names[plug.name.lower()] = plug.key
    return plugs


def _plug(where: _Where, key: str, table: Any) -> PlugConfig:
    at = ("plugs", key)
    if not _NAME.match(key):
        raise where.error("must be a short key of letters, digits, _ or - (e.g. [plugs.dishwasher])", *at)
    if not isinstance(table, dict):
        raise where.error("must be a table: [plugs.NAME] with driver, url and one rule", *at)
    unknown = sorted(set(table) - PLUG_KEYS)
    if unknown:
        raise where.error(f"is not a plug setting; allowed: {', '.join(sorted(PLUG_KEYS))}", *at, unknown[0])

    name = table.get("name", key.replace("_", " ").replace("-", " ").capitalize())
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 40 or any(c < " " for c in name):
        raise where.error("must be the name the screen shows, 1 to 40 characters", *at, "name")

    driver = table.get("driver")
    if driver not in DRIVERS:
        raise where.error(f"must be one of {', '.join(DRIVERS)}", *at, "driver")

    url = table.get("url")
    if not isinstance(url, str):
        raise where.error("must be the plug's address on the home network, e.g. \"http://192.168.1.40\"", *at, "url")
    if "@" in url:
        raise where.error("must not hold a user or password: put the password in `password`", *at, "url")
    match = _URL.match(url.strip())
    if not match:
        raise where.error("must be http://HOST or http://HOST:PORT (no path), e.g. \"http://192.168.1.40\"",
                          *at, "url")
    if match.group(3) is not None and not 1 <= int(match.group(3)) <= 65535:
        raise where.error("has a port outside 1 to 65535", *at, "url")

    password = table.get("password")
    if password is not None:
        if not isinstance(password, str) or not 1 <= len(password) <= 128 or any(c < " " for c in password):
            raise where.error("must be the device's password as a string of 1 to 128 characters", *at, "password")
        password = Secret(password)

    channel = _whole(where, table, "channel", 0, 0, 15, at)
    fallback = table.get("fallback", "leave")
    if fallback not in FALLBACKS:
        raise where.error(f"must be one of {', '.join(FALLBACKS)} (what to do while prices are stale)",
                          *at, "fallback")
    override_hours = _number(where, table, "override_hours", DEFAULT_OVERRIDE_HOURS, 0.25, 48, at)
    max_switches = _whole(where, table, "max_switches_per_hour", DEFAULT_MAX_SWITCHES_PER_HOUR, 1, 60, at)

    rules = [kind for kind in RULE_KEYS if kind in table]
    if len(rules) != 1:
        raise where.error("needs exactly one rule: cheapest, below or avoid" if not rules else
                          f"has {len(rules)} rules ({', '.join(rules)}); a plug follows exactly one", *at)
    rule = _rule(where, rules[0], table[rules[0]], (*at, rules[0]))
    return PlugConfig(key=key, name=name.strip(), driver=driver, url=match.group(0).rstrip("/"), rule=rule,
                      password=password, channel=channel, fallback=fallback, override_hours=override_hours,
                      max_switches_per_hour=max_switches)


def _rule(where: _Where, kind: str, table: Any, at: tuple[str, ...]) -> Rule:
    if not isinstance(table, dict):
        raise where.error("must be a table, e.g. { hours = 2, from = \"20:00\", to = \"07:00\" }", *at)
    unknown = sorted(set(table) - RULE_KEYS[kind])
    if unknown:
        raise where.error(f"is not a {kind} setting; allowed: {', '.join(sorted(RULE_KEYS[kind]))}", *at, unknown[0])
    if kind == "cheapest":
        hours = _number(where, table, "hours", None, BLOCK_STEP_MIN / 60, 24, at)
        minutes = round(hours * 60)
        if abs(hours * 60 - minutes) > 1e-6 or minutes % BLOCK_STEP_MIN:
            raise where.error(f"must be a whole number of {BLOCK_STEP_MIN}-minute steps (e.g. 1.5 or 2)", *at, "hours")
        start, end = _hhmm(where, table, "from", at), _hhmm(where, table, "to", at)
        span = (end.hour * 60 + end.minute - start.hour * 60 - start.minute) % 1440
        if span == 0:
            raise where.error("is the same time as `from`: the span is empty", *at, "to")
        if minutes > span:
            raise where.error(f"is {_hours(minutes)}, longer than the span {start:%H:%M}–{end:%H:%M} "
                              f"({_hours(span)})", *at, "hours")
        split = table.get("split", False)
        if not isinstance(split, bool):
            raise where.error("must be true or false", *at, "split")
        return Cheapest(minutes=minutes, start=start, end=end, split=split)
    price = _number(where, table, "price", None, -PRICE_LIMIT_C, PRICE_LIMIT_C, at)
    min_on = _whole(where, table, "min_on_minutes", DEFAULT_MIN_ON_MINUTES, 0, 24 * 60, at)
    min_off = _whole(where, table, "min_off_minutes", DEFAULT_MIN_OFF_MINUTES, 0, 24 * 60, at)
    if kind == "below":
        channel = table.get("channel", "general")
        if channel not in CHANNELS:
            raise where.error(f"must be one of {', '.join(CHANNELS)}", *at, "channel")
        return Below(price=price, channel=channel, min_on_minutes=min_on, min_off_minutes=min_off)
    spikes = table.get("spikes", True)
    if not isinstance(spikes, bool):
        raise where.error("must be true or false", *at, "spikes")
    return Avoid(price=price, spikes=spikes, min_on_minutes=min_on, min_off_minutes=min_off)


def _number(where: _Where, table: dict[str, Any], key: str, default: float | None, low: float, high: float,
            at: tuple[str, ...]) -> float:
    value = table.get(key, default)
    if value is None:
        raise where.error(f"is missing: a number from {low:g} to {high:g}", *at, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not low <= value <= high:
        raise where.error(f"must be a number from {low:g} to {high:g}", *at, key)
    return float(value)


def _whole(where: _Where, table: dict[str, Any], key: str, default: int, low: int, high: int,
           at: tuple[str, ...]) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise where.error(f"must be a whole number from {low} to {high}", *at, key)
    return value


def _hhmm(where: _Where, table: dict[str, Any], key: str, at: tuple[str, ...]) -> time:
    value = table.get(key)
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise where.error("must be a time of day as \"HH:MM\" (24-hour), e.g. \"20:00\"", *at, key)
    return time(int(match.group(1)), int(match.group(2)))
