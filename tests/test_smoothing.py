"""Zero-lag One-Euro smoothing: less jitter, no lag on the mouth, gaps left alone."""

import numpy as np

from dubplate.core.track.quality import best_lag
from dubplate.core.track.smoothing import OneEuro, smooth_track

FPS = 25.0


def second_difference_rms(x):
    return float(np.sqrt(np.mean(np.diff(x, n=2, axis=0) ** 2)))


def synthetic_face(frames=200, noise_px=0.6, seed=3):
    """A 256-px face: still points with tracker noise, and a lip point that opens and closes."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    base = rng.uniform(0, 256, (478, 3))
    base[:, :2] -= base[:, :2].min(0)
    base[:, :2] *= 256 / np.ptp(base[:, :2], axis=0).max()
    clean = np.repeat(base[None], frames, axis=0)
    mouth = 12 * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)  # syllables at 2.5 Hz
    clean[:, 14, 1] += mouth
    noisy = clean + rng.normal(0, noise_px, clean.shape)
    return clean, noisy, t, mouth


def test_jitter_drops_and_mouth_does_not_lag():
    clean, noisy, t, mouth = synthetic_face()
    found = np.ones(len(t), bool)
    smoothed = smooth_track(noisy, found, t, OneEuro())
    still = np.setdiff1d(np.arange(478), [14])
    before = second_difference_rms(noisy[:, still, :2])
    after = second_difference_rms(smoothed[:, still, :2])
    assert after < 0.6 * before, (before, after)
    lip = smoothed[:, 14, 1] - smoothed[:, 13, 1]
    raw_lip = noisy[:, 14, 1] - noisy[:, 13, 1]
    assert abs(best_lag(raw_lip, lip)) <= 1

    # The smoothed lip gap is no further from the true one than the raw track is: the
    # syllables keep their height instead of being flattened.
    def error(gap):
        return np.sqrt(np.mean((gap - gap.mean() - (mouth - mouth.mean())) ** 2))

    assert error(lip) <= 1.1 * error(raw_lip), (error(lip), error(raw_lip))


def test_gaps_stay_empty_and_segments_are_smoothed_apart():
    _, noisy, t, _ = synthetic_face(frames=60)
    found = np.ones(60, bool)
    found[20:25] = False
    noisy[20:25] = np.nan
    noisy[25:] += 40.0  # the head moved during the gap: no smear across it
    smoothed = smooth_track(noisy, found, t, OneEuro())
    assert np.isnan(smoothed[20:25]).all()
    assert not np.isnan(smoothed[found]).any()
    assert abs(float(np.mean(smoothed[25] - noisy[25]))) < 1.0
    still = np.setdiff1d(np.arange(478), [14])
    for segment in (slice(0, 20), slice(25, 60)):  # each smoothed on its own
        before = second_difference_rms(noisy[segment][:, still, :2])
        after = second_difference_rms(smoothed[segment][:, still, :2])
        assert after < 0.6 * before, (segment, before, after)
