"""Frames where something passes before the mouth (a hand, a microphone, a glass): there the
plate's lower face is unlike the actor's, and a drawn mouth would be pasted over the occluder.

The test compares each frame's real crop with the actor's albedo under the frame's own light on
the frame's own fitted lower face (skin and lips; not the inside of the mouth, which the model
does not hold). A pixel is unlike the actor where that difference exceeds what it usually is at
that crop pixel over the shot by UNLIKE_DIFFERENCE: what the model gets wrong every frame
(lipstick, a beard, texture blur) is the shot's usual, not an occluder. A frame is occluded when
its share of unlike pixels is an outlier among the shot's frames.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# Working display values, any channel, beyond the pixel's usual difference. On the shared clips
# (bench/occlusion_bench.py) the share of unlike pixels is 0.5-6% on real frames and 18-84%
# with the mouth covered by a patch of the actor's own forehead or a dark object.
UNLIKE_DIFFERENCE = 0.06
# A frame is occluded when its share of unlike pixels is this many robust standard deviations
# (1.4826 median absolute deviations) over the shot's median share, and at least MIN_SHARE.
OUTLIER_SIGMAS = 7.0
MIN_SHARE = 0.06
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class OcclusionTest:
    """What a shot's lower face usually looks like against the actor's, from sampled frames."""

    usual: np.ndarray  # (N, N) median difference per crop pixel
    limit: float  # share of unlike pixels over which a frame is occluded

    @classmethod
    def from_samples(cls, differences: np.ndarray) -> OcclusionTest:
        """From (F, N, N) differences of frames spread over the shot (NaN off the lower face).
        Medians: occluded frames among the samples, fewer than half, do not move them."""
        with warnings.catch_warnings():  # a pixel no sample covers: NaN median, taken as 0
            warnings.simplefilter("ignore", RuntimeWarning)
            usual = np.nan_to_num(np.nanmedian(differences, axis=0), nan=0.0)
        shares = unlike_shares(differences, usual)
        median = float(np.median(shares))
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(shares - median)))
        return cls(usual.astype(np.float32), max(median + OUTLIER_SIGMAS * spread, MIN_SHARE))

    def shares(self, differences: np.ndarray) -> np.ndarray:
        return unlike_shares(differences, self.usual)

    def occluded(self, differences: np.ndarray) -> np.ndarray:
        """(F,) bool for (F, N, N) differences."""
        return self.shares(differences) > self.limit


def unlike_shares(differences: np.ndarray, usual: np.ndarray) -> np.ndarray:
    """(F,) share of each frame's lower-face pixels (where `differences` is not NaN) that differ
    from the actor by UNLIKE_DIFFERENCE more than `usual`."""
    region = np.isfinite(differences)
    with np.errstate(invalid="ignore"):
        unlike = (differences > usual + UNLIKE_DIFFERENCE) & region
    return unlike.sum(axis=(1, 2)) / np.maximum(region.sum(axis=(1, 2)), 1)
