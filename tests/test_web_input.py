"""Property-based fuzz of every endpoint's query string and of paths under /api.

Whatever arrives, the API answers JSON and never a 500. For query strings built from the names
the endpoints know, an independent model of the rules (ASCII digits in range, exact YYYY-MM-DD
dates between 2000 and 2100, no repeats, bounded spans) says whether the answer is 200 or 400.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from unittest import mock
from urllib.parse import quote, urlencode

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from home_energy.config import load_config
from home_energy.sync import run_sync
from home_energy.web import create_app

NOW = datetime(2026, 11, 23, 1, 7, 30, tzinfo=UTC)
YESTERDAY_NEM = date(2026, 11, 22)
ENDPOINTS = {
    "/api/health": (),
    "/api/current": (),
    "/api/prices": ("hours",),
    "/api/usage": ("from", "to", "intervals"),
    "/api/summary": (),
}
DATE_RE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    config = load_config(env={"SQLITE_PATH": str(tmp_path_factory.mktemp("fuzz") / "cache.sqlite")})
    with freeze_time(NOW):
        run_sync(config)
    app = create_app(config)
    app.config["TESTING"] = True  # an exception reaches the test instead of becoming a 500
    with mock.patch("home_energy.web.now_utc", return_value=NOW):
        yield app.test_client()


def _number(raw: str, low: int, high: int) -> int | None:
    if not raw or len(raw) > 4 or any(c not in "0123456789" for c in raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def _date(raw: str) -> date | None:
    if not DATE_RE.match(raw):
        return None
    try:
        value = date(int(raw[:4]), int(raw[5:7]), int(raw[8:]))
    except ValueError:
        return None
    return value if date(2000, 1, 1) <= value <= date(2100, 12, 31) else None


def expected_status(path: str, pairs: list[tuple[str, str]]) -> int:
    """200 or 400 for `pairs` on `path`, by the rules in docs/api.md, written independently."""
    allowed = ENDPOINTS[path]
    names = [name for name, _ in pairs]
    if any(name not in allowed for name in names) or len(set(names)) != len(names):
        return 400
    given_values = dict(pairs)
    if path == "/api/prices" and "hours" in given_values:
        return 200 if _number(given_values["hours"], 1, 48) is not None else 400
    if path != "/api/usage":
        return 200
    parsed = {name: _date(given_values[name]) for name in ("from", "to") if name in given_values}
    if any(value is None for value in parsed.values()):
        return 400
    intervals = 0
    if "intervals" in given_values:
        intervals = _number(given_values["intervals"], 0, 1)
        if intervals is None:
            return 400
    end = parsed.get("to", YESTERDAY_NEM)
    start = parsed.get("from", end - timedelta(days=6))
    span = (end - start).days + 1
    if span < 1 or span > 93 or (intervals == 1 and span > 7):
        return 400
    return 200


def _check(response) -> None:
    assert response.status_code != 500
    assert response.mimetype == "application/json", response.data[:200]
    body = response.get_json()
    assert isinstance(body, dict)
    if response.status_code >= 400:
        assert isinstance(body["error"], str) and "\n" not in body["error"] and "Traceback" not in body["error"]


names = st.sampled_from(["hours", "from", "to", "intervals", "x", "HOURS", "hours[]", ""]) | st.text(max_size=8)
values = st.one_of(
    st.integers(min_value=-5, max_value=100).map(str),
    st.integers(min_value=0, max_value=10**6).map(str),
    st.sampled_from(["", "²", "２", "٣", "𝟏", "1e3", "+3", " 3", "3 ", "0x10", "9" * 5000, "007", "1.0"]),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.dates(min_value=date(2026, 8, 1), max_value=date(2026, 12, 31)).map(date.isoformat),
    st.sampled_from(["2026-W47-1", "20261101", "2026-11-1", "2026-11-01T00:00", "2026-02-30", "+2026-11-01"]),
    st.text(max_size=12),
)
pairs = st.lists(st.tuples(names, values), max_size=4)


@FUZZ
@given(path=st.sampled_from(sorted(ENDPOINTS)), query=pairs)
def test_every_endpoint_answers_its_query_string_by_the_rules(client, path, query):
    response = client.get(path + "?" + urlencode(query))
    _check(response)
    assert response.status_code == expected_status(path, query), (path, query, response.get_json())


@FUZZ
@given(path=st.sampled_from(sorted(ENDPOINTS)), raw=st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
@example(path="/api/prices", raw=b"hours=\x80")  # a raw byte that is not UTF-8
@example(path="/api/usage", raw=b"from=%ff%fe")
def test_any_raw_query_string_is_json_and_never_a_500(client, path, raw):
    # As a server hands it over: WSGI's QUERY_STRING is the raw bytes as latin-1 text.
    response = client.get(path, environ_overrides={"QUERY_STRING": raw.decode("latin-1")})
    _check(response)
    assert response.status_code in (200, 400)


@FUZZ
@given(suffix=st.text(max_size=20), method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
def test_any_path_under_api_is_json_and_never_a_500(client, suffix, method):
    response = client.open("/api/" + quote(suffix, safe="/"), method=method)
    _check(response)
    assert response.status_code in (200, 400, 404, 405)
