"""How an hour of 1-minute meter aggregates is packed into one row, for the writer and the reader.

A row per minute costs about 14 bytes of SQLite bookkeeping around 12 bytes of figures, which
would make a year of minutes ~14 MB; one row per hour with its 60 minutes packed costs under
1 KB an hour (~7 MB a year) and is still read in a millisecond. The figures are whole numbers
(W means, Wh), so they pack as little-endian int32s: per minute grid, solar, battery, load,
import Wh, export Wh, with NULL_VALUE for "unknown"; then zlib, since most of each int32 is
sign bytes. Packing and unpacking are pure; `packed_minutes` is the one read of the packed rows,
used by the web's queries and by the writer's compaction alike (so the web never imports the writer).
"""
from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Iterable, Iterator

FIELDS = ("grid_w", "solar_w", "battery_w", "load_w", "import_wh", "export_wh")
NULL_VALUE = -(2**31)  # no figure: unknown, never 0
_MINUTES = 60
_FORMAT = struct.Struct(f"<{_MINUTES * len(FIELDS)}i")
ZLIB_LEVEL = 6

MinuteRow = tuple  # (minute, grid_w, solar_w, battery_w, load_w, import_wh, export_wh); None = unknown


def pack_hour(hour: int, rows: Iterable[MinuteRow]) -> bytes:
    """Pack the rows of the hour starting at `hour` (Unix seconds); absent minutes are all NULL."""
    values = [NULL_VALUE] * (_MINUTES * len(FIELDS))
    for row in rows:
        index = (row[0] - hour) // 60
        if not 0 <= index < _MINUTES:
            raise ValueError(f"minute {row[0]} is not in the hour starting {hour}")
        for k, value in enumerate(row[1:1 + len(FIELDS)]):
            values[index * len(FIELDS) + k] = NULL_VALUE if value is None else int(round(value))
    return zlib.compress(_FORMAT.pack(*values), ZLIB_LEVEL)


def unpack_hour(hour: int, blob: bytes) -> list[MinuteRow]:
    """The hour's minutes that hold any figure, in order, as MinuteRow tuples."""
    values = _FORMAT.unpack(zlib.decompress(blob))
    out = []
    width = len(FIELDS)
    for index in range(_MINUTES):
        figures = values[index * width:(index + 1) * width]
        if all(v == NULL_VALUE for v in figures):
            continue
        out.append((hour + index * 60, *(None if v == NULL_VALUE else float(v) for v in figures)))
    return out


def packed_minutes(conn: sqlite3.Connection, low: int, high: int) -> Iterator[MinuteRow]:
    """The packed minutes in [low, high) (Unix seconds), hour by hour, each hour's in order."""
    for hour, blob in conn.execute("SELECT hour, minutes FROM meter_hours WHERE hour > ? AND hour < ? ORDER BY hour",
                                   (low - 3600, high)):
        yield from (m for m in unpack_hour(hour, blob) if low <= m[0] < high)
