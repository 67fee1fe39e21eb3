"""Which names the dashboard answers to: its defence against DNS rebinding.

With HOST=0.0.0.0 (other screens on the home network) any web page a family member opens could
point a name of its own at the dashboard's address and have the browser read the household's
answers as if they came from that page's origin. Such a request carries the page's name in its
`Host` header, so every request whose Host is not one of the dashboard's own names is refused
with a JSON 400 before any view runs, and each refused name is logged once.

The names: `localhost`, `127.0.0.1` and `::1` always; when HOST is not a loopback address, also
the machine's host name, `<hostname>.local`, HOST itself and the addresses of its network
interfaces (read from the kernel, never from DNS, which may be offline; read again, at most every
ADDRESSES_REFRESH_S, when an address literal is refused, so an address DHCP hands out after the
server started is served); and every name in ALLOWED_HOSTS (`*` there accepts any name: only
behind a proxy that checks Host itself). A request with no Host at all is not from a browser
(every browser sends one) and is served.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from pathlib import Path

from .config import Config

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
ADDRESSES_REFRESH_S = 10.0
# A name is logged the first time it is refused; a flood of made-up names stops being logged
# after this many, so neither the log nor the memory of what was logged grows without bound.
MAX_LOGGED_NAMES = 100
SHOWN_NAME_CHARS = 100
_SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address
_IF_INET6 = Path("/proc/net/if_inet6")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header: no port, no IPv6 brackets, lower case, no trailing dot.

    Anything after the name but a `:port` of digits is kept, so `localhost:80@other` matches no name.
    """
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1:] if end > 0 else "?"
        return value[1:end] if rest == "" or (rest[:1] == ":" and (rest[1:].isdigit() or rest == ":")) else value
    if value.count(":") == 1:  # name:port (a bare IPv6 address has more than one colon)
        name, _colon, port = value.partition(":")
        if port.isdigit() or port == "":
            value = name
    return value.rstrip(".")


def interface_addresses() -> set[str]:
    """The IPv4 and IPv6 addresses of this machine's network interfaces (Linux), as text."""
    found: set[str] = set()
    try:
        import fcntl

        names = [name for _index, name in socket.if_nameindex()]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for name in names:
                try:
                    packed = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.add(socket.inet_ntoa(packed[20:24]))
    except (OSError, ImportError):
        pass
    try:
        for line in _IF_INET6.read_text().splitlines():
            fields = line.split()
            if fields and len(fields[0]) == 32:
                found.add(ipaddress.IPv6Address(int(fields[0], 16)).compressed)
    except (OSError, ValueError):
        pass
    return found


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostGuard:
    """The allow-list of one app, and the memory of which refused names were logged."""

    def __init__(self, config: Config) -> None:
        self.any_name = "*" in config.allowed_hosts
        self.lan = not is_loopback(config.host)
        names = set(LOOPBACK_NAMES) | {n for n in config.allowed_hosts if n != "*"}
        if self.lan:
            hostname = socket.gethostname().lower().rstrip(".")
            names |= {hostname, f"{hostname.split('.')[0]}.local"}
            if config.host.strip("[]") not in WILDCARD_HOSTS:
                names.add(host_name(config.host))
        self.names = frozenset(names)
        self.addresses: frozenset[str] = frozenset(interface_addresses()) if self.lan else frozenset()
        self.read_addresses_at = time.monotonic()
        self.lock = threading.Lock()
        self.logged: set[str] = set()

    def allows(self, header: str | None) -> bool:
        if header is None or self.any_name:
            return True
        name = host_name(header)
        if name in self.names or name in self.addresses:
            return True
        if self.lan and _is_address(name):
            return name in self._fresh_addresses()
        return False

    def _fresh_addresses(self) -> frozenset[str]:
        with self.lock:
            if time.monotonic() - self.read_addresses_at >= ADDRESSES_REFRESH_S:
                self.addresses = frozenset(interface_addresses())
                self.read_addresses_at = time.monotonic()
            return self.addresses

    def refusal(self, header: str) -> str:
        """The one-line error for a refused Host; the name is logged the first time only."""
        shown = repr(host_name(header)[:SHOWN_NAME_CHARS])
        with self.lock:
            first = len(self.logged) < MAX_LOGGED_NAMES and shown not in self.logged
            if first:
                self.logged.add(shown)
            last = first and len(self.logged) == MAX_LOGGED_NAMES
        if first:
            log.warning("refused a request for host %s: not one of this dashboard's names "
                        "(add it to ALLOWED_HOSTS if it is one)", shown)
        if last:
            log.warning("%d host names refused: further ones are not logged", MAX_LOGGED_NAMES)
        return f"host {shown} is not one of this dashboard's names: add it to ALLOWED_HOSTS (see docs/deploy.md)"

