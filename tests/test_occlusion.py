"""The occlusion test on made-up differences: the shot's usual misfit is not an occluder, a
covered mouth is, and covered frames among the samples do not hide themselves; a finger across
the lips is found by the lips, unless the model misses the actor's lips too variably to tell."""

import math
from types import SimpleNamespace

import numpy as np
import torch

from dubplate.core.manifest import write_manifest
from dubplate.core.neural.covered import footage_lip_limit
from dubplate.core.neural.occlusion import (
    LIP_MIN_EXCESS,
    MIN_EXCESS,
    UNLIKE_DIFFERENCE,
    ActorDifference,
    OcclusionTest,
    ShotSample,
    covered_rows,
    densest_half,
)

RNG = np.random.default_rng(3)
SIZE = 32
LIPS = (slice(18, 26), slice(8, 24))  # rows, columns


def shot(frames: int) -> ActorDifference:
    """Differences of a shot whose model misfits the lips (a strip 0.2 off in every frame, as
    lipstick the albedo lacks would be), NaN above the lower face."""
    values = np.abs(RNG.normal(0, 0.015, (frames, SIZE, SIZE))).astype(np.float32)
    values[:, 20:24] += 0.2
    values[:, :8] = np.nan
    lips = np.zeros(values.shape, bool)
    lips[(slice(None), *LIPS)] = True
    return ActorDifference(values, lips)


def cover(differences: ActorDifference, share: float) -> ActorDifference:
    """The same frames with the first `share` of the lower face's rows 0.3 off: an occluder."""
    values = differences.values.copy()
    rows = 8 + int(share * (SIZE - 8))
    values[:, 8:rows] += 0.3
    return ActorDifference(values, differences.lips)


def joined(*parts: ActorDifference) -> ActorDifference:
    return ActorDifference(
        np.concatenate([p.values for p in parts]), np.concatenate([p.lips for p in parts])
    )


def test_what_the_model_misses_in_every_frame_is_not_an_occluder():
    differences = shot(16)
    test = OcclusionTest.from_samples(differences)
    # The lipstick strip is over UNLIKE_DIFFERENCE in every frame, yet usual for this shot.
    assert (differences.values[:, 20:24] > UNLIKE_DIFFERENCE).all()
    assert test.shares(differences).max() < 0.01 and test.limit < MIN_EXCESS + 0.01
    assert test.lip_shares(differences).max() < 0.01 and test.lip_limit < LIP_MIN_EXCESS + 0.01
    assert not test.occluded(shot(40)).any()


def test_a_covered_mouth_is_found_with_covered_frames_among_the_samples():
    # 5 of the 16 sampled frames covered
    test = OcclusionTest.from_samples(joined(cover(shot(5), 0.4), shot(11)))
    frames = joined(shot(10), cover(shot(4), 0.3), shot(6))
    np.testing.assert_array_equal(np.flatnonzero(test.occluded(frames)), [10, 11, 12, 13])
    assert test.shares(frames)[10] > 0.25


def test_a_pixel_no_sample_covers_counts_from_zero():
    samples = shot(8)
    samples.values[:, 8:10] = np.nan  # off the face in every sample
    test = OcclusionTest.from_samples(samples)
    assert (test.usual[8:10] == 0).all() and np.isfinite(test.usual).all()
    frame = shot(1)
    frame.values[:, 8:30] += 0.3
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
    # One-pixel lines across the lower face, off the lips: a blurred edge, a fit off. (On the
    # lips every unlike pixel counts: they are a thin ring.)
    edges.values[:, 8:18:4] += 0.3
    edges.values[:, 28::4] += 0.3
    patch = shot(1)
    patch.values[:, 8:18, 8:24] += 0.3  # a solid patch of 10 x 16 pixels
    assert (edges.values[0, 8:] > test.usual[8:] + UNLIKE_DIFFERENCE).mean() > 0.1
    assert test.shares(edges)[0] == 0 and not test.occluded(edges)[0]
    assert test.shares(patch)[0] > 0.2 and test.occluded(patch)[0]


def finger(differences: ActorDifference) -> ActorDifference:
    """The same frames with a strip 3 pixels wide 0.3 off from the nose to the chin, across the
    lips: a finger, too small a share of the lower face for its own test."""
    values = differences.values.copy()
    values[:, 8:, 14:17] += 0.3
    return ActorDifference(values, differences.lips)


def test_a_finger_across_the_lips_is_found_by_the_lips():
    test = OcclusionTest.from_samples(shot(16))
    frames = joined(shot(3), finger(shot(2)), shot(3))
    assert (test.shares(frames) < MIN_EXCESS).all()
    assert (test.lip_shares(frames)[3:5] == 3 / 16).all()
    np.testing.assert_array_equal(np.flatnonzero(test.occluded(frames)), [3, 4])


def test_lips_the_model_misfits_by_varying_amounts_are_not_a_cover():
    """Teeth showing between lips fitted shut, in every frame by its own amount: the shot's
    usual, not a cover; a cover still is."""

    def misfit(frames: int) -> ActorDifference:
        differences = shot(frames)
        for frame in range(frames):
            columns = 8 + int(RNG.integers(0, 8))
            differences.values[frame, 18:26, 8:columns] += 0.3
        return differences

    test = OcclusionTest.from_samples(misfit(16))
    frames = misfit(30)
    assert test.lip_shares(frames).max() > LIP_MIN_EXCESS
    assert test.lip_limit > test.lip_shares(frames).max()
    assert not test.occluded(frames).any()
    assert test.occluded(cover(misfit(4), 0.5)).all()


def test_the_actors_own_lips_limit_is_the_least_a_shot_gets():
    """A one-second shot's samples can all be frames whose lips the model fits well; the actor's
    footage says how far it misses them as a rule."""
    frames = joined(shot(3), finger(shot(2)), shot(3))
    found = OcclusionTest.from_samples(shot(16), least_lip_limit=0.3)
    assert found.lip_limit == 0.3
    assert not found.occluded(frames).any()
    assert OcclusionTest.from_samples(shot(16), least_lip_limit=0.1).lip_limit < 0.2


def test_an_actor_built_before_the_lips_test_leaves_the_lips_untested(tmp_path):
    assert footage_lip_limit(tmp_path) == math.inf  # no occlusion.json at all
    manifest = {
        "kind": "occlusion",
        "format_version": 1,
        "tool": {"name": "dubplate", "version": "0"},
        "created": "2026-12-01T00:00:00+00:00",
        "frames_occluded": {"take.mov": []},
        "limits": {"take.mov": 0.1},
    }
    write_manifest(tmp_path / "occlusion.json", "occlusion", manifest)
    assert footage_lip_limit(tmp_path) == math.inf
    write_manifest(
        tmp_path / "occlusion.json", "occlusion", {**manifest, "lip_limits": {"take.mov": 0.2}}
    )
    assert footage_lip_limit(tmp_path) == 0.2
    finger_only = joined(shot(3), finger(shot(2)), shot(3))
    assert not OcclusionTest.from_samples(shot(16), math.inf).occluded(finger_only).any()


class _ShotOfRows:
    """A stand-in for `FrameMaker` over `frames` rows whose `covered` rows differ from the
    actor as an occluder does; each row's light is its number, and what it compared is kept."""

    def __init__(self, frames: int, covered: set[int]):
        self.fit = SimpleNamespace(frames=np.arange(1001, 1001 + frames))
        self.plate = SimpleNamespace(frames=lambda numbers: ((n, None) for n in numbers))
        self.covered, self.compared = covered, []

    def real_linear(self, rows, pixels):
        return np.zeros((len(rows), 1, 1, 3), np.float32)

    def light(self, rows, real_linear):
        return torch.from_numpy(np.asarray(rows, np.float32)).view(-1, 1, 1).expand(-1, 9, 3)

    def actor_difference(self, rows, real_linear, light):
        self.compared.extend(int(row) for row in rows)
        frames = [cover(shot(1), 0.5) if row in self.covered else shot(1) for row in rows]
        return joined(*frames)


def test_covered_rows_learns_on_its_sample_compares_each_row_once_and_keeps_their_order():
    # 24 rows: 16 sampled, spread over them, and 8 more read 5 at a time.
    shot_of_rows = _ShotOfRows(24, covered={3, 17, 22})
    found = covered_rows(shot_of_rows, np.arange(24), chunk=5)
    assert sorted(shot_of_rows.compared) == list(range(24))
    np.testing.assert_array_equal(np.flatnonzero(found.covered), [3, 17, 22])
    np.testing.assert_array_equal(found.light[:, 0, 0].numpy(), np.arange(24))
    # A sample given: rows in any order, some of them sampled, some not, and none at all.
    sample = ShotSample.of(shot_of_rows, np.array([0, 3, 9]), np.zeros((3, 1, 1, 3)))
    rows = np.array([22, 9, 17, 3, 5])
    found = covered_rows(shot_of_rows, rows, chunk=2, sample=sample)
    np.testing.assert_array_equal(found.covered, [True, False, True, True, False])
    np.testing.assert_array_equal(found.light[:, 0, 0].numpy(), rows)
    unsampled = covered_rows(shot_of_rows, np.array([22, 5]), 2, sample=sample)
    np.testing.assert_array_equal(unsampled.covered, [True, False])
    assert len(covered_rows(shot_of_rows, np.array([], int), 2, sample=sample).covered) == 0
