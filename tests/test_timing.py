from fractions import Fraction

import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.media.timing import as_rate, parse_frame_range, rate_text


@pytest.mark.parametrize(
    "given,expected",
    [
        ("24000/1001", Fraction(24000, 1001)),
        (23.976, Fraction(24000, 1001)),
        ("29.97", Fraction(30000, 1001)),
        ((60000, 1001), Fraction(60000, 1001)),
        (25, Fraction(25)),
        ("23.5", Fraction(47, 2)),
    ],
)
def test_rates_are_exact(given, expected):
    assert as_rate(given) == expected


def test_rate_text_round_trips():
    assert rate_text(as_rate("24000/1001")) == "24000/1001"


@pytest.mark.parametrize("bad", ["0", "-24", "fast", "24/0", "inf", "nan"])
def test_bad_rates(bad):
    with pytest.raises(DubplateError, match="frame rate"):
        as_rate(bad)


def test_frame_ranges():
    assert parse_frame_range("1001-1100") == (1001, 1100)
    assert parse_frame_range("7") == (7, 7)
    assert parse_frame_range("-5--1") == (-5, -1)
    with pytest.raises(DubplateError, match="ends before it starts"):
        parse_frame_range("20-10")
    with pytest.raises(DubplateError, match="not a frame range"):
        parse_frame_range("a-b")
