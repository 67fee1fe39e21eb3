"""Configuration: the only module that reads the environment.

Settings come from the process environment, optionally layered over an env file in the
KEY=VALUE format systemd's EnvironmentFile= reads (the environment wins). A bad value raises
ConfigError naming the variable and what is allowed. The token is held in a field that never
prints itself, so it cannot leak through a repr, a log line or an error message.

What is not an error but is probably a mistake (a misspelt setting, which would silently give the
default, or a token file other users can read) is reported by `config_warnings`, by name only.
"""
from __future__ import annotations

import codecs
import difflib
import ipaddress
import os
import re
import stat
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import ConfigError
from .numbers import whole_number

DEFAULT_API_URL = "https://api.amber.com.au/v1"
ENV_FILE_VAR = "HOME_ENERGY_ENV_FILE"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-\.]{8,200}$")
SETTINGS = frozenset({
    "AMBER_TOKEN", "AMBER_SITE_ID", "AMBER_API_URL", "HOST", "PORT", "SQLITE_PATH", "RETENTION_DAYS",
    "STALE_AFTER_SECONDS", "DEBUG", "TIMEZONE", "MONTHLY_BUDGET", "NIGHT_START", "NIGHT_END", ENV_FILE_VAR,
    "FORECAST_PRICE", "METER", "METER_URL", "METER_PASSWORD", "METER_POLL_SECONDS", "PLUGS_FILE",
    "MQTT_URL", "MQTT_PASSWORD", "MQTT_DISCOVERY_PREFIX", "MQTT_TOPIC_PREFIX", "ALLOWED_HOSTS",
})
OUR_PREFIXES = ("AMBER_", "HOME_ENERGY_", "METER_", "MQTT_")
OTHER_PREFIXES = ("KIOSK_", "HOME_ENERGY_UPDATE_")  # the kiosk launcher and pi/update.sh have their own
# How alike a name must be to a setting to count as a misspelling of it: AMBER_TOKN or
# RETENTON_DAYS are caught; unrelated variables in a login shell (HOSTNAME, DEBUGINFOD_URLS) are not.
NEAR_MISS_RATIO = 0.85


class Secret(str):
    """A string whose repr and str never show the value; use .reveal() at the one place it is sent."""

    _value: str

    def __new__(cls, value: str) -> Secret:
        obj = super().__new__(cls, "***")
        obj._value = value
        return obj

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Config:
    amber_token: Secret | None = None
    amber_site_id: str | None = None
    amber_api_url: str = DEFAULT_API_URL
    host: str = "127.0.0.1"
    port: int = 5050
    sqlite_path: Path = Path("data/cache.sqlite")
    retention_days: int = 90
    stale_after_seconds: int = 900
    debug: bool = False
    timezone: str = "Australia/Sydney"
    monthly_budget: float | None = None
    night_start: str = "22:00"
    night_end: str = "06:00"
    forecast_price: str = "amber"  # "amber": advancedPrice.predicted where Amber gives it; "aemo": perKwh
    meter: str | None = None  # fronius | shelly: a meter on the home network (see sources/)
    meter_url: str | None = None
    meter_password: Secret | None = None
    meter_poll_seconds: int = 10
    plugs_file: Path | None = None  # smart plugs and their rules (TOML, read by plugs.rules); None: no plugs
    mqtt_url: str | None = None  # mqtt(s)://host[:port], user-info removed (it is in the two fields below)
    mqtt_user: Secret | None = None
    mqtt_password: Secret | None = None
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_topic_prefix: str = "home-energy"
    allowed_hosts: tuple[str, ...] = ()  # names served besides the dashboard's own (see hosts.py)

    @property
    def mode(self) -> str:
        return "amber" if self.amber_token else "demo"


def dashboard_url(config: Config) -> str:
    """The dashboard's base URL for a client on this machine, from HOST and PORT (ending in "/").

    A wildcard listen address means loopback. `home-energy config --health-url`, pi/update.sh
    and the kiosk launcher all take the address from here, so changing PORT once moves them all.
    """
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(config.host, config.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.port}/"


def parse_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines as systemd does: comments, blank lines, optional quotes, `export`.

    The file is UTF-8 (a leading byte-order mark is accepted); bytes that are not end in one
    line naming the file and the offset of the first bad byte (exit 78)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror}") from exc
    # Windows Notepad starts a UTF-8 file with a byte-order mark; it is not part of line 1's key.
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"env file {path} is not UTF-8 text at byte offset {skip + exc.start}: "
                          "save it as UTF-8") from exc
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    value = whole_number(raw, low, high)
    if value is None:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0, true/false, yes/no, on/off")


def _hhmm(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", raw)
    if not match:
        raise ConfigError(f"{name} must be a time of day as HH:MM (24-hour), e.g. {default}")
    return raw


def load_config(env: Mapping[str, str] | None = None, env_file: str | Path | None = None) -> Config:
    """Build the Config from `env` (default os.environ) over an optional env file."""
    environ = dict(os.environ if env is None else env)
    file_name = env_file or environ.get(ENV_FILE_VAR)
    merged: dict[str, str] = {}
    if file_name:
        merged.update(parse_env_file(Path(file_name)))
    merged.update(environ)

    token_raw = merged.get("AMBER_TOKEN", "").strip()
    token = None
    if token_raw:
        if not _TOKEN_SHAPE.match(token_raw):
            raise ConfigError(
                "AMBER_TOKEN must be an Amber API key (letters, digits, _ - .), as shown in the Amber app")
        token = Secret(token_raw)

    site_id = merged.get("AMBER_SITE_ID", "").strip() or None
    if site_id is not None and not re.fullmatch(r"[A-Za-z0-9]{1,64}", site_id):
        raise ConfigError("AMBER_SITE_ID must be the site id from Amber's /sites (letters and digits)")

    api_url = merged.get("AMBER_API_URL", "").strip() or DEFAULT_API_URL
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", api_url):
        raise ConfigError("AMBER_API_URL must be an http(s) URL such as https://api.amber.com.au/v1")

    host = merged.get("HOST", "").strip() or "127.0.0.1"
    if not re.fullmatch(r"[A-Za-z0-9\.\-:\[\]]+", host):
        raise ConfigError("HOST must be a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0")

    sqlite_raw = merged.get("SQLITE_PATH", "").strip() or "data/cache.sqlite"

    tz_name = merged.get("TIMEZONE", "").strip() or "Australia/Sydney"
    try:
        zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError("TIMEZONE must be an IANA zone name such as Australia/Sydney") from exc

    budget_raw = merged.get("MONTHLY_BUDGET", "").strip()
    budget = None
    if budget_raw:
        try:
            budget = float(budget_raw)
        except ValueError:
            budget = -1.0
        if not 0 < budget < 100000:
            raise ConfigError("MONTHLY_BUDGET must be a positive number of dollars, e.g. 150")

    forecast = merged.get("FORECAST_PRICE", "").strip().lower() or "amber"
    if forecast not in ("amber", "aemo"):
        raise ConfigError("FORECAST_PRICE must be amber (Amber's own forecast) or aemo (the market forecast)")

    return Config(
        amber_token=token,
        amber_site_id=site_id,
        amber_api_url=api_url.rstrip("/"),
        host=host,
        port=_int(merged, "PORT", 5050, 1, 65535),
        sqlite_path=Path(sqlite_raw),
        retention_days=_int(merged, "RETENTION_DAYS", 90, 1, 3650),
        stale_after_seconds=_int(merged, "STALE_AFTER_SECONDS", 900, 60, 86400),
        debug=_bool(merged, "DEBUG"),
        timezone=tz_name,
        monthly_budget=budget,
        night_start=_hhmm(merged, "NIGHT_START", "22:00"),
        night_end=_hhmm(merged, "NIGHT_END", "06:00"),
        forecast_price=forecast,
        plugs_file=Path(merged["PLUGS_FILE"].strip()) if merged.get("PLUGS_FILE", "").strip() else None,
        allowed_hosts=_allowed_hosts(merged.get("ALLOWED_HOSTS", "")),
        **_meter_settings(merged),
        **_mqtt_settings(merged),
    )


def _allowed_hosts(raw: str) -> tuple[str, ...]:
    """ALLOWED_HOSTS: host names or addresses, comma-separated, without ports; `*` for any."""
    names = []
    for entry in raw.split(","):
        name = entry.strip().lower().rstrip(".")
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        if not name:
            continue
        if ":" in name:
            valid = _is_ipv6(name)
        else:
            valid = name == "*" or re.fullmatch(r"[a-z0-9][a-z0-9.\-]{0,252}", name) is not None
        if not valid:
            raise ConfigError("ALLOWED_HOSTS must be host names or addresses without a port, separated by "
                              "commas, e.g. dashboard.home,192.168.1.20")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


METERS = ("fronius", "shelly")


def _meter_settings(env: Mapping[str, str]) -> dict:
    """METER, METER_URL, METER_PASSWORD, METER_POLL_SECONDS: all or nothing, checked together."""
    kind = env.get("METER", "").strip().lower() or None
    if kind is None:
        return {}
    if kind not in METERS:
        raise ConfigError(f"METER must be one of {', '.join(METERS)} (or unset for no meter)")
    url = _meter_url(env.get("METER_URL", ""))
    password = env.get("METER_PASSWORD", "")
    if password and kind != "shelly":
        raise ConfigError("METER_PASSWORD is only used with METER=shelly (Fronius's Solar API has no password)")
    return {
        "meter": kind,
        "meter_url": url,
        "meter_password": Secret(password) if password else None,
        "meter_poll_seconds": _int(env, "METER_POLL_SECONDS", 10, 5, 60),
    }


def _meter_url(raw: str) -> str:
    """METER_URL checked whole, as the door will use it: scheme, host, and a port from 1 to 65535."""
    url = raw.strip().rstrip("/")
    wanted = "METER_URL must be the meter's address on the home network, e.g. http://192.168.1.50"
    if not re.fullmatch(r"https?://[^\s/?#@]+", url):
        raise ConfigError(wanted)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        netloc = url.split("//", 1)[1]
        detail = ("its IPv6 address needs both brackets" if netloc.count("[") != netloc.count("]") else
                  "the part in brackets is not an IPv6 address" if "[" in netloc else "its port must be 1 to 65535")
        raise ConfigError(f"{wanted} ({detail})") from None
    if not host or (parts.netloc.endswith(":") and port is None):
        raise ConfigError(f"{wanted} (its host is missing)" if not host else f"{wanted} (its port is empty)")
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{wanted} (its port must be 1 to 65535)")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{wanted} ({host[:40]} is not an IPv6 address)") from None
    return url


MQTT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_MQTT_URL = re.compile(r"(mqtts?)://(?:([^\s/?#@:]*)(?::([^\s/?#@]*))?@)?([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])"
                       r"(?::(\d{1,5}))?/?")
# A topic level may hold anything but MQTT's wildcards; spaces and control characters are refused
# too, because they are always a mistake in a setting and break subscriptions typed by hand.
_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_\-.]+(/[A-Za-z0-9_\-.]+)*")


def _mqtt_settings(env: Mapping[str, str]) -> dict:
    """MQTT_URL, MQTT_PASSWORD and the two topic prefixes; no error ever shows the URL (it may hold
    a password)."""
    url = env.get("MQTT_URL", "").strip()
    password = env.get("MQTT_PASSWORD", "")
    prefixes = {
        "mqtt_discovery_prefix": _topic_prefix(env, "MQTT_DISCOVERY_PREFIX", "homeassistant"),
        "mqtt_topic_prefix": _topic_prefix(env, "MQTT_TOPIC_PREFIX", "home-energy"),
    }
    if not url:
        if password:
            raise ConfigError("MQTT_PASSWORD is set but MQTT_URL is not: set MQTT_URL=mqtt://broker:1883")
        return prefixes
    match = _MQTT_URL.fullmatch(url)
    if match is None:
        raise ConfigError("MQTT_URL must be mqtt://host[:port] or mqtts://host[:port] "
                          "(user and password may go before the host as user:password@)")
    scheme, user, url_password, host, port = match.groups()
    if port is not None and whole_number(port, 1, 65535) is None:
        raise ConfigError("MQTT_URL's port must be from 1 to 65535")
    if url_password is not None and password:
        raise ConfigError("MQTT_PASSWORD is set and MQTT_URL holds a password too: give it in one place")
    # User-info in a URL is percent-encoded (a password holding @ or : is written %40, %3A).
    user = unquote(user) if user else None
    secret = password or (unquote(url_password) if url_password else "")
    if secret and not user:
        raise ConfigError("MQTT_URL needs a user name before the host (user@host) when a password is set")
    return {
        **prefixes,
        "mqtt_url": f"{scheme}://{host}:{int(port or MQTT_PORTS[scheme])}",
        "mqtt_user": Secret(user) if user else None,
        "mqtt_password": Secret(secret) if secret else None,
    }


def _topic_prefix(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "")
    value = raw.strip() or default
    if raw != raw.strip() or not _TOPIC_PREFIX.fullmatch(value) or len(value) > 100:
        raise ConfigError(f"{name} must be MQTT topic levels of letters, digits, _ - . joined by /, "
                          f"without #, + or spaces (default {default})")
    return value


def config_warnings(env: Mapping[str, str] | None = None, env_file: str | Path | None = None) -> list[str]:
    """One line per probable mistake in the settings: names only, never a value."""
    environ = dict(os.environ if env is None else env)
    file_name = env_file or environ.get(ENV_FILE_VAR)
    from_file: dict[str, str] = {}
    if file_name:
        try:
            from_file = parse_env_file(Path(file_name))
        except ConfigError:
            from_file = {}  # load_config reports the unreadable file itself
    lines = []
    # Every key in our env file is meant for us; the process environment holds everyone's.
    for name in sorted(set(from_file) | set(environ)):
        if name in SETTINGS or name.startswith(OTHER_PREFIXES):
            continue
        near = difflib.get_close_matches(name, sorted(SETTINGS), n=1, cutoff=NEAR_MISS_RATIO)
        if not (near or name in from_file or name.startswith(OUR_PREFIXES)):
            continue
        where = f"in {file_name}" if name in from_file else "in the environment"
        hint = f": did you mean {near[0]}?" if near else ""
        lines.append(f"{name} {where} is not a home-energy setting and is ignored{hint}")
    if file_name and from_file.get("AMBER_TOKEN", "").strip():
        try:
            mode = Path(file_name).stat().st_mode
        except OSError:
            mode = 0
        if mode & stat.S_IROTH:
            lines.append(f"{file_name} holds AMBER_TOKEN and every user of this machine can read it: "
                         f"chmod o-rwx {file_name}")
    return lines
