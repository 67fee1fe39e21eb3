"""What every source shares: the Reading record, the three failures, and a JSON-over-HTTP client.

Rules it keeps:
- One request in flight at a time, each with a short timeout: meters are small devices that
  crash or throttle under floods, and a poll that overruns its slot is worth less than the next.
- An answer is JSON or it is a failure: an HTML error page (a Datamanager's 404, a captive
  portal) is never parsed as data.
- Numbers are checked at the boundary: null stays None, booleans and strings are rejected,
  values outside what a household connection can carry are rejected.
- Errors are one line and never contain a password.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import math
import re
import secrets
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..config import Secret
from ..errors import UpstreamAuthError, UpstreamDataError, UpstreamError
from ..models import Reading

READ_TIMEOUT_S = 4.0  # Fronius asks for 4 s between realtime calls; a slower answer is a fault
MAX_POWER_W = 200_000.0  # far above any household connection: beyond this the value is garbage
MAX_BODY_BYTES = 256 * 1024  # the largest documented status is a few KB


class MeterUnavailableError(UpstreamError):
    """The meter did not answer usefully this time (timeout, refused, 5xx, 429, HTML)."""


class MeterDataError(UpstreamDataError):
    """The meter answered JSON that fails validation; nothing from it is used."""


class MeterConfigError(UpstreamAuthError):
    """The address or password is wrong, or the device is not a supported meter."""


class Source(Protocol):
    name: str
    poll_seconds: int
    has_counters: bool  # True once the source has read energy counters (else energy is integrated)

    def fetch(self) -> Reading: ...
    def close(self) -> None: ...


def number(value: Any, where: str, *, low: float = -MAX_POWER_W, high: float = MAX_POWER_W) -> float | None:
    """A JSON number as float, None for null; anything else is a data error naming the field."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MeterDataError(f"{where} is not a number: {str(value)[:40]!r}")
    if not low <= value <= high:
        raise MeterDataError(f"{where} is out of range: {value}")
    return float(value)


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MeterDataError(f"{where} is missing or not an object")
    return value


class DigestAuth:
    """HTTP Digest (RFC 7616: SHA-256 or MD5, qop=auth) that keeps the server's nonce and counts
    `nc` up, so a device that lets a nonce be reused (Shelly fw 2.x) is not challenged per poll."""

    def __init__(self, user: str, password: Secret) -> None:
        self.user = user
        self.password = password
        self.challenge: dict[str, str] | None = None
        self.count = 0

    def learn(self, header: str) -> bool:
        """Take a `WWW-Authenticate: Digest …` challenge; False if it is not one we can answer."""
        if not header.lower().startswith("digest "):
            return False
        fields = {m[0].lower(): m[1] or m[2] for m in _PARAM.findall(header[len("digest "):])}
        if "nonce" not in fields or fields.get("algorithm", "MD5").upper() not in _DIGESTS:
            return False
        self.challenge = fields
        self.count = 0
        return True

    def header(self, method: str, uri: str) -> str | None:
        if self.challenge is None:
            return None
        c = self.challenge
        algorithm = c.get("algorithm", "MD5").upper()

        def digest(text: str) -> str:
            return hashlib.new(_DIGESTS[algorithm], text.encode()).hexdigest()

        self.count += 1
        nc, cnonce = f"{self.count:08x}", secrets.token_hex(8)
        ha1 = digest(f"{self.user}:{c.get('realm', '')}:{self.password.reveal()}")
        ha2 = digest(f"{method}:{uri}")
        if "auth" in c.get("qop", "").split(","):
            response = digest(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}")
            tail = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response, tail = digest(f"{ha1}:{c['nonce']}:{ha2}"), ""
        opaque = f', opaque="{c["opaque"]}"' if "opaque" in c else ""
        return (f'Digest username="{self.user}", realm="{c.get("realm", "")}", nonce="{c["nonce"]}", uri="{uri}", '
                f'algorithm={algorithm}, response="{response}"{tail}{opaque}')


_DIGESTS = {"MD5": "md5", "SHA-256": "sha256"}
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


class JsonHttp:
    """GET JSON from one device over one kept-alive connection, with a timeout and no retries.

    No retry policy on purpose: the next poll is the retry, and a device that is failing should
    see fewer requests, not more. (The one exception: a kept-alive connection the device closed
    while idle is reopened once.) The standard library's http.client, not requests: the
    collector runs all day on a Pi, and requests with its dependencies doubles its memory.
    """

    def __init__(self, base_url: str, label: str, auth: DigestAuth | None = None) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.auth = auth
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.prefix = parts.path
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.conn = kind(self.host, self.port, timeout=READ_TIMEOUT_S)
        return self.conn

    def _send(self, uri: str) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            reused = self.conn is not None and self.conn.sock is not None
            conn = self._connection()
            conn.timeout = READ_TIMEOUT_S
            headers = {"Accept": "application/json"}
            authorization = self.auth.header("GET", uri) if self.auth else None
            if authorization:
                headers["Authorization"] = authorization
            try:
                conn.request("GET", uri, headers=headers)
                response = conn.getresponse()
                body = response.read(MAX_BODY_BYTES + 1)
                if len(body) > MAX_BODY_BYTES:
                    self.close()
                else:
                    response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue  # the device closed an idle kept-alive connection: open a new one once
                raise MeterUnavailableError(f"{self.label} at {self.base_url} closed the connection") from exc
            except TimeoutError as exc:
                self.close()
                raise MeterUnavailableError(f"{self.label} at {self.base_url} did not answer within "
                                            f"{READ_TIMEOUT_S:.0f} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise MeterUnavailableError(f"{self.label} at {self.base_url} cannot be reached "
                                            "(is it on and is METER_URL right?)") from exc
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[int, Any]:
        """(status, parsed JSON body) for any status; raises on network faults and non-JSON."""
        uri = self.prefix + path
        status, headers, body = self._send(uri)
        if status == 401 and self.auth is not None and self.auth.learn(headers.get("www-authenticate", "")):
            status, headers, body = self._send(uri)  # answer the (new) challenge once
        if status == 401:
            raise MeterConfigError(f"{self.label} asks for a password or refused it: check METER_PASSWORD")
        if status == 429:
            raise MeterUnavailableError(f"{self.label} answered 429 Too Many Requests: backing off")
        if status >= 500:
            raise MeterUnavailableError(f"{self.label} answered HTTP {status}")
        if len(body) > MAX_BODY_BYTES:
            raise MeterDataError(f"{self.label} answered more than {MAX_BODY_BYTES // 1024} KB at {path}")
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            kind = "HTML" if body.lstrip()[:1] == b"<" else "something that is not JSON"
            raise _not_json(self.label, status, path, kind, body) from exc
        return status, parsed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _not_json(label: str, status: int, path: str, kind: str, body: bytes) -> Exception:
    text = body.decode("utf-8", "replace").lower()
    if "disabled by customer config" in text.replace("solarapi", "solar api"):
        return MeterConfigError(f"{label}'s Solar API is switched off: enable it in the inverter's web page "
                                "under Communication → Solar API")
    if status == 404:
        return MeterConfigError(f"{label} answered 404 ({kind}) at {path}: is METER_URL the device's address?")
    if status >= 400:
        return MeterUnavailableError(f"{label} answered HTTP {status} ({kind}) at {path}")
    return MeterDataError(f"{label} answered {kind} at {path}, not JSON")
