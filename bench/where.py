"""Where a request's time goes: each SQL statement the web runs, timed, with SQLite's plan.

The app is built in-process on a bench cache and driven through Flask's test client with the
read-only connection wrapped, so every statement's execute-and-fetch time is summed per request
and set beside `EXPLAIN QUERY PLAN`. What is left of the request is Python: routing, building
the JSON, serialising it.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .datasets import server_env

REQUESTS_PER_PATH = 20
SHOWN_STATEMENTS = 4
SHOWN_FUNCTIONS = 4


@dataclass(frozen=True)
class Statement:
    sql: str
    ms_per_request: float
    plan: str


@dataclass(frozen=True)
class Breakdown:
    path: str
    request_ms: float
    sql_ms: float
    statements: tuple[Statement, ...]
    functions: tuple[tuple[str, float], ...]  # (where, own ms per request) under cProfile, slowest first


class _TimedCursor:
    def __init__(self, cursor: Any, record: Callable[[float], None]) -> None:
        self.cursor = cursor
        self.record = record

    def _timed(self, method: str) -> Any:
        started = time.perf_counter()
        result = getattr(self.cursor, method)()
        self.record(time.perf_counter() - started)
        return result

    def fetchone(self) -> Any:
        return self._timed("fetchone")

    def fetchall(self) -> Any:
        return self._timed("fetchall")

    def __iter__(self) -> Iterator[Any]:
        return iter(self._timed("fetchall"))


class _TimedConnection:
    def __init__(self, conn: Any, times: dict[str, list[Any]]) -> None:
        self.conn = conn
        self.times = times

    def execute(self, sql: str, params: Any = ()) -> _TimedCursor:
        entry = self.times.setdefault(sql, [0.0, params])

        def record(seconds: float) -> None:
            entry[0] += seconds

        started = time.perf_counter()
        cursor = self.conn.execute(sql, params)
        record(time.perf_counter() - started)
        return _TimedCursor(cursor, record)

    def close(self) -> None:
        self.conn.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _profile(client: Any, path: str) -> tuple[tuple[str, float], ...]:
    """The functions that spend the most time themselves (cProfile's tottime), per request.

    cProfile slows Python code more than C code, so these are shares to compare, not timings.
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(REQUESTS_PER_PATH):
        client.get(path)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # {(file, line, name): (calls, ncalls, tottime, cumtime, callers)}
    ranked = sorted(stats.items(), key=lambda item: -item[1][2])[:SHOWN_FUNCTIONS]
    return tuple((f"{Path(file).name}:{name}" if file != "~" else name, own * 1000 / REQUESTS_PER_PATH)
                 for (file, _line, name), (_calls, _n, own, _cum, _callers) in ranked)


def break_down(sqlite_path: Path, days: int, paths: list[str]) -> list[Breakdown]:
    from home_energy import answers, db, web
    from home_energy.config import load_config

    app = web.create_app(load_config(env=server_env(sqlite_path, days)))
    client = app.test_client()
    times: dict[str, list[Any]] = {}
    real_connect = answers.connect_reader
    answers.connect_reader = lambda path: cast(sqlite3.Connection, _TimedConnection(real_connect(path), times))
    try:
        results = []
        for path in paths:
            client.get(path)  # first request pays for imports and templates
            times.clear()
            started = time.perf_counter()
            for _ in range(REQUESTS_PER_PATH):
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code} on the bench cache")
            request_ms = (time.perf_counter() - started) * 1000 / REQUESTS_PER_PATH
            functions = _profile(client, path)
            plans = db.connect_reader(sqlite_path)
            try:
                statements = sorted(
                    (Statement(" ".join(sql.split()), seconds * 1000 / REQUESTS_PER_PATH,
                               "; ".join(row[3] for row in plans.execute("EXPLAIN QUERY PLAN " + sql, params)))
                     for sql, (seconds, params) in times.items()),
                    key=lambda s: -s.ms_per_request,
                )
            finally:
                plans.close()
            results.append(Breakdown(path, request_ms, sum(s.ms_per_request for s in statements),
                                     tuple(statements[:SHOWN_STATEMENTS]), functions))
        return results
    finally:
        answers.connect_reader = real_connect
