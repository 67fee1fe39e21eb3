"""The Amber public API client: one requests.Session, timeouts, bearer auth, rate-limit headers.

It returns decoded JSON only; the sync validates every payload (schema.validate_payload) so the
demo simulator's payloads take the same path. Every failure becomes a project error raised
`from` the original, and no message ever contains the token (it lives only in the session's
Authorization header).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .clock import monotonic, now_utc
from .config import Secret
from .errors import RateLimitedError, UpstreamAuthError, UpstreamDataError, UpstreamError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # a LAN/DNS failure shows within seconds
READ_TIMEOUT_S = 20.0  # Amber answers in well under a second; 20 s only rides out a slow link
RUN_BUDGET_S = 50.0  # all calls of one client (one sync run) together: the run never hangs past ~60 s
RATE_LIMIT_FALLBACK_S = 300  # Amber's 429 has no Retry-After; its window is 5 minutes
MAX_INTERVALS_PER_CALL = 2048  # /prices/current rejects next + previous above this with 422
USER_AGENT = "home-energy kitchen display"


@dataclass(frozen=True)
class RateLimit:
    remaining: int | None
    reset_at: float | None  # Unix seconds when the window resets


def _retry() -> Retry:
    return Retry(
        total=2,
        connect=1,  # one more try on a refused/failed connect: routers drop the first after a blip
        read=0,  # a read timeout already cost READ_TIMEOUT_S; the next sync will try again
        status=1,
        # 502/503/504: gateway hiccups during Amber deploys, usually gone within a second.
        # 429 is deliberately absent: Amber blocks for minutes and every retry extends the block.
        # 500 is absent: it has been a persistent server bug, retrying only spends the quota.
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.5,
        respect_retry_after_header=False,
        raise_on_status=False,
    )


class AmberClient:
    """Calls Amber; counts calls and remembers the last rate-limit headers it saw."""

    def __init__(self, base_url: str, token: Secret, session: requests.Session | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S, budget_s: float = RUN_BUDGET_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.read_timeout_s = read_timeout_s
        self.deadline = monotonic() + budget_s
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token.reveal()}"
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(max_retries=_retry())
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.calls = 0
        self.rate_limit: RateLimit | None = None

    def close(self) -> None:
        self.session.close()

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
        remaining = self.deadline - monotonic()
        if remaining < 1.0:
            raise UpstreamError(f"sync time budget used up before the {what} call: try again later")
        read_timeout = min(self.read_timeout_s, remaining)
        self.calls += 1
        try:
            response = self.session.get(
                self.base_url + path, params=params, timeout=(CONNECT_TIMEOUT_S, read_timeout)
            )
        except requests.Timeout as exc:
            raise UpstreamError(f"Amber did not answer {what} within {read_timeout:.0f} s") from exc
        except requests.ConnectionError as exc:
            if _is_read_timeout(exc):  # urllib3's Retry wraps a read timeout as a connection error
                raise UpstreamError(f"Amber did not answer {what} within {read_timeout:.0f} s") from exc
            raise UpstreamError(f"cannot reach Amber at {self.base_url}: {_reason(exc)}") from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"request to Amber failed: {type(exc).__name__}") from exc
        self._remember_rate_limit(response)
        status = response.status_code
        if status == 429:
            reset_s = _int_header(response, "RateLimit-Reset")
            wait_s = reset_s if reset_s is not None and reset_s > 0 else RATE_LIMIT_FALLBACK_S
            retry_at = now_utc().timestamp() + wait_s
            raise RateLimitedError(f"Amber rate limit reached (429): no calls for {wait_s} s", retry_at)
        if status in (401, 403):
            raise UpstreamAuthError(f"Amber refused the token ({status}): check AMBER_TOKEN")
        if status == 404:
            raise UpstreamAuthError(f"Amber has no such site ({status} on {what}): check AMBER_SITE_ID")
        if status == 422 or status == 400:
            raise UpstreamDataError(f"Amber refused the {what} request ({status}): {_short_body(response)}")
        if status >= 500:
            raise UpstreamError(f"Amber is failing ({status}) on {what}")
        if status != 200:
            raise UpstreamError(f"Amber answered {status} on {what}")
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise UpstreamDataError(f"Amber {what} response is not valid JSON ({len(response.content)} bytes)") from exc

    def _remember_rate_limit(self, response: requests.Response) -> None:
        remaining = _int_header(response, "RateLimit-Remaining")
        reset_s = _int_header(response, "RateLimit-Reset")
        if remaining is None and reset_s is None:
            return
        reset_at = now_utc().timestamp() + reset_s if reset_s is not None else None
        self.rate_limit = RateLimit(remaining, reset_at)


def _int_header(response: requests.Response, name: str) -> int | None:
    raw = response.headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _short_body(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:120] or "no details"


def _is_read_timeout(exc: Exception) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "Network is unreachable", "No route to host", "Connection reset"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
