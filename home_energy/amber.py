"""The Amber public API client: bearer auth, rate-limit headers, retries, over the door (`fetch`).

It returns decoded JSON only; the sync validates every payload (schema.validate_payload) so the
demo simulator's payloads take the same path. Every failure becomes a project error raised
`from` the original, and no message ever contains the token (it lives only in the client's
Authorization header).

A hostile or broken upstream costs one sync, never more. The door bounds every exchange (one
deadline for all of a run's calls, CALLS_DEADLINE_S; MAX_ANSWER_BYTES after decompression; JSON depth
and values; no redirects; abort on SIGTERM); this module adds what is Amber's own:
- rate-limit headers are clamped to sane ranges;
- one retry of a failed connect, and of a 502/503/504, never of a 429 or a 500;
- error bodies are never echoed whole: a short reason with token-like text removed, and URL
  user-info is redacted from every message.
"""
from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from . import fetch
from .clock import NEM_TZ, nem_day_start, now_utc
from .config import Secret
from .errors import RateLimitedError, UpstreamAuthError, UpstreamDataError, UpstreamError, UpstreamSiteMissingError
from .fetch import Answer, redact_url
from .numbers import whole_number

__all__ = ["AmberClient", "RateLimit", "Upstream", "price_window", "redact_url"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # a LAN/DNS failure shows within seconds
READ_TIMEOUT_S = 20.0  # Amber answers in well under a second; 20 s only rides out a slow link
# All calls of one client (one sync run) together: with start-up and writing, a run ends within 60 s.
CALLS_DEADLINE_S = 40.0
RATE_LIMIT_FALLBACK_S = 300  # Amber's 429 has no Retry-After; its window is 5 minutes
FORECAST_HORIZON_H = 24
MAX_INTERVALS_PER_CALL = 2048  # /prices/current rejects next + previous above this with 422
USER_AGENT = "home-energy kitchen display"
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # after decompression; the largest real answer (2,048 intervals) is ~1.5 MB
MAX_JSON_DEPTH = 32  # Amber's deepest payload nests 4 levels; Python's parser recurses once per level
# The largest real answer (2,048 intervals on two channels) holds ~135,000 values, keys included;
# 400,000 of the costliest kind stay within ~40 MB of parsed objects (bench.sync_cost measures it).
MAX_JSON_VALUES = 400_000
ERROR_BODY_BYTES = 4096  # what is read of an error answer, for its message
RETRY_BACKOFF_S = 0.5
# 502/503/504: gateway hiccups during Amber deploys, usually gone within a second. 429 is
# deliberately absent (Amber blocks for minutes and every retry extends the block), and so is 500
# (it has been a persistent server bug: retrying only spends the quota).
RETRY_STATUSES = frozenset({502, 503, 504})
# Amber's window is 5 minutes; a far larger value is nonsense. The one ceiling of a rate-limit
# block: the client clamps RateLimit-Reset to it and the sync honours a remembered block up to it.
MAX_RATE_LIMIT_RESET_S = 3600
MAX_REASON_CHARS = 80
_TOKENISH = re.compile(r"(?i)(bearer\s+\S+|psk_[A-Za-z0-9_\-]+|authorization)")


@dataclass(frozen=True)
class RateLimit:
    remaining: int | None
    reset_at: float | None  # Unix seconds when the window resets


class Upstream(Protocol):
    """What the sync needs from Amber, or from anything that answers like it (the demo)."""

    calls: int
    rate_limit: RateLimit | None

    def sites(self) -> Any: ...
    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any: ...
    def usage(self, site_id: str, start: date, end: date) -> Any: ...
    def close(self) -> None: ...


def price_window(now: datetime, resolution: int) -> tuple[int, int]:
    """(previous, next) so one /prices/current call holds today's actuals and >= 24 h ahead.

    On a 5-minute site the far forecasts are 30-minute ones, so counting every forecast as 5
    minutes over-covers the horizon rather than falling short of it.
    """
    day_start = nem_day_start(now.astimezone(NEM_TZ).date())
    elapsed_min = (now - day_start).total_seconds() / 60
    previous = math.ceil(elapsed_min / resolution) + 1
    next_ = FORECAST_HORIZON_H * 60 // resolution
    return previous, next_


class AmberClient:
    """Calls Amber; counts calls and remembers the last rate-limit headers it saw."""

    def __init__(self, base_url: str, token: Secret, read_timeout_s: float = READ_TIMEOUT_S,
                 budget_s: float = CALLS_DEADLINE_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.budget_s = budget_s
        self.deadline = fetch.now() + budget_s  # every call of this client (one sync run) together
        self.limits = fetch.Limits(deadline_s=budget_s, connect_s=CONNECT_TIMEOUT_S, read_s=read_timeout_s,
                                   max_bytes=MAX_ANSWER_BYTES, max_depth=MAX_JSON_DEPTH, max_values=MAX_JSON_VALUES,
                                   error_bytes=ERROR_BODY_BYTES)
        self.http = fetch.Client(self.base_url, label="Amber", limits=self.limits,
                                 faults=fetch.Faults(unavailable=UpstreamError, data=UpstreamDataError),
                                 headers={"Authorization": f"Bearer {token.reveal()}", "User-Agent": USER_AGENT})
        self.calls = 0
        self.rate_limit: RateLimit | None = None

    def close(self) -> None:
        self.http.close()

    def sites(self) -> Any:
        return self._get("/sites")

    def current_prices(self, site_id: str, *, next_: int, previous: int, resolution: int) -> Any:
        if next_ + previous > MAX_INTERVALS_PER_CALL:
            raise ValueError(f"next + previous must not exceed {MAX_INTERVALS_PER_CALL}")
        params = {"next": next_, "previous": previous, "resolution": resolution}
        return self._get(f"/sites/{site_id}/prices/current", params)

    def usage(self, site_id: str, start: date, end: date) -> Any:
        if (end - start).days > 7 or end < start:
            raise ValueError("usage ranges must be 0 to 7 days")
        params = {"startDate": start.isoformat(), "endDate": end.isoformat()}
        return self._get(f"/sites/{site_id}/usage", params)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        what = path.split("/")[-1] or path
        for attempt in (1, 2):
            if fetch.aborted():
                raise UpstreamError(f"stopped before the {what} call: the program is stopping")
            if self.deadline - fetch.now() < 1.0:
                raise UpstreamError(f"sync time budget used up before the {what} call: try again later")
            self.calls += 1
            try:
                answer = self.http.request("GET", path, params=params, deadline=self.deadline)
            except UpstreamDataError:
                raise
            except UpstreamError:
                if attempt == 1 and self.http.last_failure == "connect":
                    time.sleep(RETRY_BACKOFF_S)  # one more connect: routers drop the first after a blip
                    continue
                raise
            self._remember_rate_limit(answer.headers)
            if attempt == 1 and answer.status in RETRY_STATUSES:
                time.sleep(RETRY_BACKOFF_S)
                continue
            self._check_status(answer, what)
            return answer.json()
        raise AssertionError("unreachable")

    def _check_status(self, answer: Answer, what: str) -> None:
        status = answer.status
        if status == 200:
            return
        if status == 429:
            reset_s = _int_header(answer.headers, "ratelimit-reset", MAX_RATE_LIMIT_RESET_S)
            wait_s = reset_s if reset_s else RATE_LIMIT_FALLBACK_S
            retry_at = now_utc().timestamp() + wait_s
            raise RateLimitedError(f"Amber rate limit reached (429): no calls for {wait_s} s", retry_at)
        if status in (401, 403):
            raise UpstreamAuthError(f"Amber refused the token ({status}): check AMBER_TOKEN")
        if status == 404:
            raise UpstreamSiteMissingError(f"Amber has no such site ({status} on {what}): check AMBER_SITE_ID")
        if status in (400, 422):
            raise UpstreamDataError(f"Amber refused the {what} request ({status}): {_reason_from(answer)}")
        if status >= 500:
            raise UpstreamError(f"Amber is failing ({status}) on {what}")
        raise UpstreamError(f"Amber answered {status} on {what}")

    def _remember_rate_limit(self, headers: Mapping[str, str]) -> None:
        remaining = _int_header(headers, "ratelimit-remaining", 1_000_000)
        reset_s = _int_header(headers, "ratelimit-reset", MAX_RATE_LIMIT_RESET_S)
        if remaining is None and reset_s is None:
            return
        reset_at = now_utc().timestamp() + reset_s if reset_s is not None else None
        self.rate_limit = RateLimit(remaining, reset_at)


def _int_header(headers: Mapping[str, str], name: str, ceiling: int) -> int | None:
    """A non-negative whole number clamped to `ceiling`; anything else is ignored."""
    return whole_number((headers.get(name) or "").strip(), 0, ceiling, clamp=True)


def _reason_from(answer: Answer) -> str:
    """A short reason from an error body, never anything that looks like a credential or header."""
    text = answer.reason(10_000)
    if _TOKENISH.search(text):
        return "details withheld (they echoed the request's credentials)"
    return text[:MAX_REASON_CHARS] or "no details"
