"""Frames where something passes before the mouth (a hand, a microphone, a glass): there the
plate's lower face is unlike the actor's, and a drawn mouth would be pasted over the occluder.

The test compares each frame's real crop with the actor's albedo under the frame's own light on
the frame's own fitted lower face (skin and lips; not the inside of the mouth, which the model
does not hold). A pixel is unlike the actor where that difference exceeds what it usually is at
that crop pixel over the shot by UNLIKE_DIFFERENCE: what the model gets wrong every frame
(lipstick, a beard, texture blur) is the shot's usual, not an occluder. A frame is occluded when
its share of unlike pixels is an outlier among the shot's frames, over the lower face or over
the lips alone: a finger, a microphone or a pale hand hides a small part of the lower face, or
one the colour of the skin it covers, but never leaves the lips as they were (a dark microphone
head is even fitted as an open mouth, the lips' ring around it all that is left to see).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from dubplate.core.neural.cover import CoverNet
    from dubplate.core.neural.frames import FrameMaker
    from dubplate.core.progress import Progress

# Frames a shot's usual difference is learnt from, spread over it (a 4K read each).
SAMPLES = 16

# Working display values, any channel, beyond the pixel's usual difference. On the shared clips
# (each pixel's usual taken over all their frames; every such pixel counted, solid or not) the
# share of unlike pixels is 0.5-6% on a typical real frame and at most 2-25% (woman_seated's
# head turns), against 18-37% or more with the mouth covered by the actor's own forehead skin
# and 50-80% by a dark object.
UNLIKE_DIFFERENCE = 0.06
# A frame is occluded when its share of unlike pixels is this many standard deviations over the
# shot's typical share (both from the densest half of the sampled shares)...
OUTLIER_SIGMAS = 7.0
# ...and at least this much over it: a short shot's samples can vary so little that 7 standard
# deviations are a few per cent, under the frames where a head turns (without a floor, and
# counting every unlike pixel, four of woman_seated's 48 held-out frames were passed through).
MIN_EXCESS = 0.1
# Unlike pixels count only in solid patches at least this wide, as a share of the crop's side (9
# px of a 256-px crop): an occluder is one; a turning head's blur and a fit a little off leave
# thin lines along edges. In 48-frame to whole-clip windows of the shared clips, with the mouth
# covered by the actor's own forehead skin in a quarter of the frames, it took the covered
# frames caught from 1029 to 1050 of 1101 and the uncovered ones passed through from 17 to 2 of
# about 11,700 (scratch emulation of this test; without it a floor of 0.2 was needed, which
# caught 849).
SOLID_SHARE = 9 / 256
# The lips' test: the share of the fitted lips' pixels unlike the actor (each one, solid or not:
# the lips are a thin ring) over this many standard deviations of the shot's typical share, and
# at least LIP_MIN_EXCESS over it. On the shared clips a real frame's lips are 0-12% unlike on
# the men and up to 49% on woman_flag_a, where the teeth show between lips fitted shut; covered
# by a finger, a dark microphone head or a pale hand, 20-100% (scratch emulation of this test on
# the occlusion bench's plates; 7 and 9 deviations passed 3 and 2 of woman_flag_a's frames).
LIP_OUTLIER_SIGMAS = 12.0
LIP_MIN_EXCESS = 0.15
# A normal distribution's densest half spans this many standard deviations.
_HALF_WIDTH_SIGMAS = 1.349


@dataclass(frozen=True)
class ActorDifference:
    """How far real crops are from the actor, per pixel, and where their fitted lips are."""

    values: np.ndarray  # (F, N, N) NaN off the lower face's skin and lips
    lips: np.ndarray  # (F, N, N) bool, within the values' lower face


@dataclass(frozen=True)
class OcclusionTest:
    """What a shot's lower face usually looks like against the actor's, from sampled frames."""

    usual: np.ndarray  # (N, N) median difference per crop pixel
    limit: float  # share of unlike lower-face pixels over which a frame is occluded
    lip_limit: float  # share of unlike lip pixels over which a frame is occluded

    @classmethod
    def from_samples(
        cls, differences: ActorDifference, least_lip_limit: float = 0.0
    ) -> OcclusionTest:
        """From the differences of frames spread over the shot. The usual difference is each
        pixel's median; the shares' typical value and spread are those of their densest half,
        which covered frames among the samples (fewer than half) do not move. A median absolute
        deviation over all the shares did: with a quarter of the samples covered it raised the
        limit past most covered frames' shares.

        `least_lip_limit` is the actor's own, found on their footage: how far the model misses
        their lips as a rule. The 16 samples of a one-second shot can happen to be frames it
        fits well (on woman_flag_b and woman_seated, 25-frame windows of the clips as shot had
        1-4 frames over the samples' lip limit each; woman_flag_b's footage sets its limit past
        any share)."""
        usual = _pixel_medians(differences.values)
        centre, sigma = densest_half(unlike_shares(differences.values, usual))
        lip_centre, lip_sigma = densest_half(unlike_lip_shares(differences, usual))
        lip_limit = lip_centre + max(LIP_OUTLIER_SIGMAS * lip_sigma, LIP_MIN_EXCESS)
        return cls(
            usual,
            centre + max(OUTLIER_SIGMAS * sigma, MIN_EXCESS),
            max(lip_limit, least_lip_limit),
        )

    def shares(self, differences: ActorDifference) -> np.ndarray:
        """(F,) share of unlike lower-face pixels."""
        return unlike_shares(differences.values, self.usual)

    def lip_shares(self, differences: ActorDifference) -> np.ndarray:
        """(F,) share of unlike lip pixels."""
        return unlike_lip_shares(differences, self.usual)

    def occluded(self, differences: ActorDifference) -> np.ndarray:
        """(F,) bool."""
        return (self.shares(differences) > self.limit) | (
            self.lip_shares(differences) > self.lip_limit
        )


def spread(rows: np.ndarray, count: int = SAMPLES) -> np.ndarray:
    """Up to `count` of `rows`, evenly spread from the first to the last."""
    return rows[np.unique(np.linspace(0, len(rows) - 1, count).round().astype(int))]


@dataclass(frozen=True)
class CoveredRows:
    covered: np.ndarray  # (F,) bool: the mouth is covered, by either test
    by_colour: np.ndarray  # (F,) bool: by the colour test
    by_cover: np.ndarray  # (F,) bool: by the actor's cover network
    test: OcclusionTest
    light: torch.Tensor  # (F, 9, 3) each row's SH light, solved on its crop for the test


@dataclass(frozen=True)
class ShotSample:
    """Rows spread over a shot (`spread`), their linear crops, how unlike the actor each is and
    the light it was taken under: the colour test is learnt on them, and `covered_rows` tests
    them without reading or comparing them again."""

    rows: np.ndarray
    real_linear: np.ndarray
    differences: ActorDifference
    light: torch.Tensor

    @classmethod
    def of(cls, maker: FrameMaker, rows: np.ndarray, real_linear: np.ndarray) -> ShotSample:
        return cls(rows, real_linear, *crop_differences(maker, rows, real_linear))


def covered_rows(
    maker: FrameMaker,
    rows: np.ndarray,
    chunk: int,
    progress: Progress | None = None,
    sample: ShotSample | None = None,
    least_lip_limit: float = 0.0,
    cover: CoverNet | None = None,
) -> CoveredRows:
    """Which of the fit's `rows` (distinct) have their mouth covered, by the colour test learnt
    on `sample` (on a spread of `rows` read here if None; its lips' limit no lower than
    `least_lip_limit`), or by the actor's `cover` network; the frames not sampled are read
    `chunk` at a time."""
    if sample is None:
        spread_rows = spread(rows)
        sample = ShotSample.of(maker, spread_rows, read_crops(maker, spread_rows))
    test = OcclusionTest.from_samples(sample.differences, least_lip_limit)
    if len(rows) == 0:
        nothing = np.zeros(0, bool)
        return CoveredRows(nothing, nothing, nothing, test, torch.zeros(0, 9, 3))
    tested_rows, by_colour, by_cover, light = [], [], [], []
    for part, real_linear, differences, lit in _compared(maker, rows, sample, chunk):
        tested_rows.append(part)
        by_colour.append(test.occluded(differences))
        by_cover.append(
            np.zeros(len(part), bool)
            if cover is None
            else cover.covered(maker.real_display(real_linear))
        )
        light.append(lit)
        if progress is not None:
            progress.advance(len(part))
    # Back into the order of `rows`: the sample came first.
    position = {int(row): index for index, row in enumerate(np.concatenate(tested_rows))}
    order = np.array([position[int(row)] for row in rows], int)
    colour, network = np.concatenate(by_colour)[order], np.concatenate(by_cover)[order]
    return CoveredRows(colour | network, colour, network, test, torch.cat(light)[order])


def _compared(maker: FrameMaker, rows: np.ndarray, sample: ShotSample, chunk: int):
    """(rows, linear crops, differences, light) of the sample's rows among `rows`, as it holds
    them, then of the others, read and compared `chunk` at a time."""
    sampled = np.isin(sample.rows, rows)
    if sampled.all():
        yield sample.rows, sample.real_linear, sample.differences, sample.light
    elif sampled.any():
        differences = sample.differences
        yield (
            sample.rows[sampled],
            sample.real_linear[sampled],
            ActorDifference(differences.values[sampled], differences.lips[sampled]),
            sample.light[torch.from_numpy(sampled)],
        )
    fresh = rows[~np.isin(rows, sample.rows)]
    for start in range(0, len(fresh), chunk):
        part = fresh[start : start + chunk]
        real_linear = read_crops(maker, part)
        yield (part, real_linear, *crop_differences(maker, part, real_linear))


def read_crops(maker: FrameMaker, rows: np.ndarray) -> np.ndarray:
    """(F, N, N, 3) linear crops of `rows`, their frames read from the maker's plate."""
    frames = maker.plate.frames(int(maker.fit.frames[row]) for row in rows)
    return maker.real_linear(rows, [pixels for _, pixels in frames])


def crop_differences(
    maker: FrameMaker, rows: np.ndarray, real_linear: np.ndarray
) -> tuple[ActorDifference, torch.Tensor]:
    """`maker.actor_difference` of `rows` cut as `real_linear`, and the light it was taken
    under."""
    light = maker.light(rows, real_linear)
    return maker.actor_difference(rows, real_linear, light), light


def unlike_shares(differences: np.ndarray, usual: np.ndarray) -> np.ndarray:
    """(F,) share of each frame's lower-face pixels (where `differences` is not NaN) that differ
    from the actor by UNLIKE_DIFFERENCE more than `usual`, in solid patches (SOLID_SHARE)."""
    region = np.isfinite(differences)
    with np.errstate(invalid="ignore"):
        unlike = ((differences > usual + UNLIKE_DIFFERENCE) & region).astype(np.uint8)
    width = max(3, round(SOLID_SHARE * differences.shape[-1]) | 1)
    kernel = np.ones((width, width), np.uint8)
    solid = np.stack([cv2.morphologyEx(frame, cv2.MORPH_OPEN, kernel) for frame in unlike])
    return solid.sum(axis=(1, 2)) / np.maximum(region.sum(axis=(1, 2)), 1)


def unlike_lip_shares(differences: ActorDifference, usual: np.ndarray) -> np.ndarray:
    """(F,) share of each frame's lip pixels that differ from the actor by UNLIKE_DIFFERENCE more
    than `usual`; 0 where no lip pixel is seen."""
    with np.errstate(invalid="ignore"):
        unlike = (differences.values > usual + UNLIKE_DIFFERENCE) & differences.lips
    return unlike.sum(axis=(1, 2)) / np.maximum(differences.lips.sum(axis=(1, 2)), 1)


def lips_said(lip_limit: float) -> str:
    """The lips' limit as the logs tell it: one of 1 or more is never reached."""
    if lip_limit >= 1:
        return " (the lips not tested: the model misses them too variably)"
    return f", or whose lips are more than {100 * lip_limit:.0f}%"


def densest_half(values: np.ndarray) -> tuple[float, float]:
    """The median and the standard deviation (from its width) of the shortest run holding half
    of `values`: the bulk of them, wherever the rest lie."""
    ordered = np.sort(values)
    half = len(ordered) // 2 + 1
    widths = ordered[half - 1 :] - ordered[: len(ordered) - half + 1]
    first = int(np.argmin(widths))
    centre = float(np.median(ordered[first : first + half]))
    return centre, float(widths[first]) / _HALF_WIDTH_SIGMAS


def _pixel_medians(differences: np.ndarray) -> np.ndarray:
    """(N, N) median of each pixel over the frames; 0 where no frame covers it."""
    with warnings.catch_warnings():  # an all-NaN pixel warns, and is taken as 0
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(np.nanmedian(differences, axis=0), nan=0.0).astype(np.float32)
