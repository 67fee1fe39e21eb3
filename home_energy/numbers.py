"""The one reader of whole numbers written as text: settings, query parameters, command-line
options, HTTP headers and the cache's meta values all go through `whole_number`.

Rule it keeps: only ASCII digits (and a leading minus where negatives are allowed) are a number.
`str.isdigit()` alone accepts "²", "٣" and "𝟏", and `int()` also takes "+1", " 1", "1_000" and
full-width digits: none of these is what a person or a peer means by a plain number, and a
number of more than `MAX_DIGITS` digits is never read at all (int() of a huge string costs time).
"""
from __future__ import annotations

MAX_DIGITS = 18  # beyond any value this program takes (Unix seconds, byte counts); int64 holds 18


def whole_number(text: str | None, low: int, high: int, *, clamp: bool = False) -> int | None:
    """`text` as an int in [low, high], else None; with `clamp`, a number outside is pulled to the
    nearer bound instead (a header saying "wait 10^30 s" is read as the longest wait allowed)."""
    if text is None:
        return None
    negative = text.startswith("-") and low < 0
    digits = text[1:] if negative else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) > MAX_DIGITS:
        return (low if negative else high) if clamp else None
    value = -int(digits) if negative else int(digits)
    if low <= value <= high:
        return value
    return max(low, min(value, high)) if clamp else None
