"""HTTP Digest authentication (RFC 7616), the one scheme the home's devices ask for.

Shelly Gen2+ devices with a password set answer 401 with `WWW-Authenticate: Digest` (SHA-256,
user `admin`); firmware 2.x lets a client reuse a nonce while it counts `nc` up, so the nonce is
kept and a 10 s poll is not challenged each time. The door (`fetch`) answers a challenge once per
exchange; this module only computes headers and never touches the network. The password is a
`Secret` and appears only inside the response hash.
"""
from __future__ import annotations

import hashlib
import re
import secrets

from .config import Secret

DIGESTS = {"MD5": "md5", "SHA-256": "sha256"}  # RFC 7616 names -> hashlib names
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


class DigestAuth:
    """Digest (SHA-256 or MD5, qop=auth) that keeps the server's nonce and counts `nc` up."""

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
        if "nonce" not in fields or fields.get("algorithm", "MD5").upper() not in DIGESTS:
            return False
        self.challenge = fields
        self.count = 0
        return True

    def header(self, method: str, uri: str) -> str | None:
        """The Authorization header for `method uri`, or None before any challenge was learnt."""
        if self.challenge is None:
            return None
        c = self.challenge
        algorithm = c.get("algorithm", "MD5").upper()

        def digest(text: str) -> str:
            return hashlib.new(DIGESTS[algorithm], text.encode()).hexdigest()

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
