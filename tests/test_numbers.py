"""The one whole-number reader: what a person or a peer writes as a plain number, and nothing else."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from home_energy.numbers import MAX_DIGITS, whole_number


@pytest.mark.parametrize("text", ["", "-", "+1", " 1", "1 ", "1_000", "1.0", "1e3", "²", "٣", "𝟏", "１２", "0x10"])
def test_anything_but_ascii_digits_is_no_number(text):
    assert whole_number(text, -100, 100_000) is None


def test_bounds_are_inclusive_and_outside_is_none():
    assert whole_number("1", 1, 5) == 1
    assert whole_number("5", 1, 5) == 5
    assert whole_number("0", 1, 5) is None
    assert whole_number("6", 1, 5) is None


def test_a_minus_is_read_only_where_negatives_are_allowed():
    assert whole_number("-3", -5, 5) == -3
    assert whole_number("-3", 0, 5) is None


def test_clamp_pulls_to_the_nearer_bound_even_for_absurd_lengths():
    assert whole_number("9" * 400, 0, 3600, clamp=True) == 3600
    assert whole_number("4000", 0, 3600, clamp=True) == 3600
    assert whole_number("-" + "9" * 400, -10, 10, clamp=True) == -10
    assert whole_number("9" * 400, 0, 3600) is None
    assert whole_number("abc", 0, 3600, clamp=True) is None


@given(st.integers(min_value=-(10**MAX_DIGITS) + 1, max_value=10**MAX_DIGITS - 1))
def test_every_int_reads_back_as_itself(value):
    assert whole_number(str(value), -(10**MAX_DIGITS), 10**MAX_DIGITS) == value


def test_a_setting_in_full_width_signed_or_grouped_digits_is_refused(tmp_path):
    from home_energy.config import load_config
    from home_energy.errors import ConfigError

    for bad in ("１２", "+60", "6_0"):
        with pytest.raises(ConfigError, match="STALE_AFTER_SECONDS must be a whole number"):
            load_config({"STALE_AFTER_SECONDS": bad, "SQLITE_PATH": str(tmp_path / "c.sqlite")})
