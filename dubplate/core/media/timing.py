"""Frame rates as exact rationals, timecode arithmetic and frame-range parsing."""

from __future__ import annotations

from fractions import Fraction

from opentimelineio import opentime

from dubplate.core.errors import DubplateError

# Video rates that are really n*1000/1001 are often written as rounded decimals.
_NTSC_BASES = (24, 30, 48, 60, 120)


def as_rate(value: object, where: str = "frame rate") -> Fraction:
    """An exact frame rate from a Fraction, int, (num, den) pair or text such as '24000/1001'."""
    try:
        if isinstance(value, tuple | list):
            rate = Fraction(int(value[0]), int(value[1]))
        elif isinstance(value, float | str) and "/" not in str(value):
            rate = _snap_decimal(float(value))
        else:
            rate = Fraction(value)  # type: ignore[arg-type]
    except (ValueError, ZeroDivisionError, TypeError, IndexError, OverflowError) as error:
        raise DubplateError(f"{where}: {value!r} is not a frame rate") from error
    if rate <= 0:
        raise DubplateError(f"{where}: {value!r} is not a positive frame rate")
    return rate


def _snap_decimal(value: float) -> Fraction:
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(value - float(ntsc)) < 5e-3:
            return ntsc
    return Fraction(value).limit_denominator(1001)


def rate_text(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def timecode_after(timecode: str, frames: int, fps: Fraction, where: str = "timecode") -> str:
    """The SMPTE timecode `frames` frames after `timecode` at `fps`, counted by OpenTimelineIO;
    drop-frame (';') stays drop-frame and non-drop stays non-drop (left to itself, OpenTimelineIO
    writes every 29.97 timecode drop-frame)."""
    rate = float(fps)
    try:
        start = opentime.from_timecode(timecode, rate)
    except ValueError as error:
        raise DubplateError(
            f"{where}: {timecode!r} cannot be counted at {fps} fps ({error})"
        ) from error
    later = start + opentime.RationalTime(frames, rate)
    return opentime.to_timecode(later, rate, ";" in timecode)


def parse_frame_range(text: str) -> tuple[int, int]:
    """'A-B' (inclusive) or a single frame 'A'; negative numbers are allowed ('-5--1')."""
    parts = text.strip()
    try:
        if "-" in parts[1:]:
            split = parts.index("-", 1)
            first, last = int(parts[:split]), int(parts[split + 1 :])
        else:
            first = last = int(parts)
    except ValueError as error:
        raise DubplateError(f"--frames: {text!r} is not a frame range like 1001-1100") from error
    if last < first:
        raise DubplateError(f"--frames: {text!r} ends before it starts")
    return first, last
