"""The occlusion test on made-up differences: the shot's usual misfit is not an occluder, a
covered mouth is, and covered frames among the samples do not hide themselves."""

import numpy as np

from dubplate.core.neural.occlusion import (
    MIN_EXCESS,
    UNLIKE_DIFFERENCE,
    OcclusionTest,
    densest_half,
)

RNG = np.random.default_rng(3)
SIZE = 32


def shot(frames: int) -> np.ndarray:
    """(F, N, N) differences of a shot whose model misfits the lips (a strip 0.2 off in every
    frame, as lipstick the albedo lacks would be), NaN above the lower face."""
    differences = np.abs(RNG.normal(0, 0.015, (frames, SIZE, SIZE))).astype(np.float32)
    differences[:, 20:24] += 0.2
    differences[:, :8] = np.nan
    return differences


def cover(differences: np.ndarray, share: float) -> np.ndarray:
    """The same frames with the first `share` of the lower face's rows 0.3 off: an occluder."""
    out = differences.copy()
    rows = 8 + int(share * (SIZE - 8))
    out[:, 8:rows] += 0.3
    return out


def test_what_the_model_misses_in_every_frame_is_not_an_occluder():
    differences = shot(16)
    test = OcclusionTest.from_samples(differences)
    # The lipstick strip is over UNLIKE_DIFFERENCE in every frame, yet usual for this shot.
    assert (differences[:, 20:24] > UNLIKE_DIFFERENCE).all()
    assert test.shares(differences).max() < 0.01 and test.limit < MIN_EXCESS + 0.01
    assert not test.occluded(shot(40)).any()


def test_a_covered_mouth_is_found_with_covered_frames_among_the_samples():
    samples = shot(16)
    samples[:5] = cover(samples[:5], 0.4)  # 5 of the 16 sampled frames covered
    test = OcclusionTest.from_samples(samples)
    frames = shot(20)
    frames[10:14] = cover(frames[10:14], 0.3)
    np.testing.assert_array_equal(np.flatnonzero(test.occluded(frames)), [10, 11, 12, 13])
    assert test.shares(frames)[10] > 0.25


def test_a_pixel_no_sample_covers_counts_from_zero():
    samples = shot(8)
    samples[:, 8:10] = np.nan  # off the face in every sample
    test = OcclusionTest.from_samples(samples)
    assert (test.usual[8:10] == 0).all() and np.isfinite(test.usual).all()
    frame = shot(1)
    frame[:, 8:30] += 0.3
    assert test.occluded(frame).all()


def test_the_densest_half_is_the_bulk_of_the_shares_wherever_the_rest_lie():
    # 11 real frames and 5 covered: the median and median deviation of all 16 would set the
    # limit at 0.33, past the first covered share.
    bulk = np.array([0.03, 0.04, 0.045, 0.05, 0.05, 0.055, 0.06, 0.065, 0.07, 0.09, 0.12])
    covered = np.array([0.30, 0.35, 0.40, 0.45, 0.50])
    centre, sigma = densest_half(np.concatenate([covered, bulk]))
    assert centre == 0.05
    assert bulk.max() < centre + 7 * sigma < covered.min()


def test_thin_lines_of_misfit_are_not_a_cover_and_a_solid_patch_is():
    samples = shot(16)
    test = OcclusionTest.from_samples(samples)
    edges = shot(1)
    edges[:, 8::4] += 0.3  # one-pixel lines across the lower face: a blurred edge, a fit off
    patch = shot(1)
    patch[:, 10:20, 8:24] += 0.3  # a solid patch of 10 x 16 pixels
    assert (edges[0, 8:] > test.usual[8:] + UNLIKE_DIFFERENCE).mean() > 0.2
    assert test.shares(edges)[0] == 0 and not test.occluded(edges)[0]
    assert test.shares(patch)[0] > 0.2 and test.occluded(patch)[0]
