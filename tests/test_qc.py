"""Lip-sync figures on constructed mouths whose answer is known."""

import numpy as np

from dubplate.core.audio.features import AudioAnalysis, frame_features
from dubplate.core.audio.phones import PHONE_INDEX
from dubplate.core.qc.lipsync import CLOSED_PX, lip_sync, track_lip_sync, track_mouth_gap
from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.landmarks import FACE_BOX_PX, LOWER_LIP_INNER, UPPER_LIP_INNER
from dubplate.core.track.smoothing import OneEuro, smooth_track

FRAME = 0.0625  # 1/16 s: frame and segment edges exact in binary, so no edge is ambiguous


def alternating(count=12, frames_each=4):
    """/b/ and /aa/ alternating, `frames_each` frames each."""
    rows = []
    for i in range(count):
        phone = "B" if i % 2 == 0 else "AA"
        rows.append((PHONE_INDEX[phone], i * frames_each * FRAME, (i + 1) * frames_each * FRAME))
    duration = count * frames_each * FRAME
    analysis = AudioAnalysis(
        np.array(rows), np.zeros((int(duration * 100), 80), np.float32), duration
    )
    times = (np.arange(count * frames_each) + 0.5) * FRAME
    return analysis, frame_features(analysis, times, FRAME), times


def mouth_following(times, frames_each=4):
    phase = (times // (frames_each * FRAME)).astype(int) % 2
    return np.where(phase == 0, 1.0, 15.0)


def test_a_mouth_that_follows_the_phones():
    analysis, features, times = alternating()
    result = lip_sync(mouth_following(times), analysis, features, FRAME)
    assert result.phone_sync > 0.8 and result.lag_frames == 0
    assert result.bilabial_closure == 1.0 and result.bilabial_segments == 6
    assert result.open_vowel_opening == 1.0 and result.open_vowel_segments == 6


def test_a_mouth_in_antiphase_fails_every_figure():
    analysis, features, times = alternating()
    result = lip_sync(16.0 - mouth_following(times), analysis, features, FRAME)
    assert result.phone_sync < 0.5
    assert result.bilabial_closure == 0.0 and result.open_vowel_opening == 0.0


def test_a_late_mouth_is_found_at_its_lag():
    analysis, features, times = alternating()
    late = np.roll(mouth_following(times), 2)
    result = lip_sync(late, analysis, features, FRAME)
    assert result.lag_frames == 2 and result.phone_sync > 0.8


def test_a_mouth_held_still_has_no_phone_sync_rather_than_the_worst():
    """A lip gap that never varies neither follows nor opposes the phones: the figure is not
    there (null in the JSON), where it was reported as -1."""
    analysis, features, times = alternating()
    result = lip_sync(np.full(len(times), 6.0), analysis, features, FRAME)
    assert result.phone_sync is None and result.as_dict()["phone_sync"] is None


def test_no_bilabials_is_not_a_failure():
    analysis, features, times = alternating()
    analysis.phones[:, 0] = PHONE_INDEX["AA"]
    result = lip_sync(mouth_following(times), analysis, features, FRAME)
    assert result.bilabial_closure is None and result.bilabial_segments == 0


def test_a_one_frame_closure_counts_though_the_smoothed_track_lifts_it():
    # 25 fps; each /b/ lies inside the interval of one frame, with /aa/ for three either side.
    frame, cycle, count = 0.04, 7, 6
    rows = []
    for i in range(count):
        start = i * cycle * frame
        rows.append((PHONE_INDEX["AA"], start, start + 3 * frame))
        rows.append((PHONE_INDEX["B"], start + 3.25 * frame, start + 3.75 * frame))
        rows.append((PHONE_INDEX["AA"], start + 4 * frame, start + 7 * frame))
    duration = count * cycle * frame
    analysis = AudioAnalysis(
        np.array(rows), np.zeros((int(duration * 100), 80), np.float32), duration
    )
    times = (np.arange(count * cycle) + 0.5) * frame
    closed = np.arange(len(times)) % cycle == 3
    rng = np.random.default_rng(0)
    raw = np.repeat(rng.uniform(0, 256, (1, 478, 3)).astype(np.float32), len(times), axis=0)
    raw[:, LOWER_LIP_INNER] = raw[:, UPPER_LIP_INNER]
    raw[:, LOWER_LIP_INNER, 1] += np.where(closed, 0.5, 16.0)
    found = np.ones(len(times), bool)
    smoothed = smooth_track(raw, found, times, OneEuro()).astype(np.float32)
    smoothed_gap = smoothed[:, LOWER_LIP_INNER, 1] - smoothed[:, UPPER_LIP_INNER, 1]
    assert smoothed_gap[closed].min() > CLOSED_PX  # the closure the smoothing hides
    track = FaceTrack(
        frames=np.arange(len(times)),
        landmarks=smoothed,
        raw_landmarks=raw,
        boxes=np.zeros((len(times), 4), np.float32),
        confidence=found.astype(np.float32),
        found=found,
        times=times,
    )
    result = track_lip_sync(track, analysis, times, frame)
    assert result.bilabial_closure == 1.0 and result.bilabial_segments == count


def _track_with_gap(gap_px: float, found: np.ndarray) -> FaceTrack:
    """A 128-px face whose inner lips are `gap_px` apart, NaN where no face was found."""
    rng = np.random.default_rng(1)
    mesh = rng.uniform(0, 128, (478, 3)).astype(np.float32)
    mesh[[0, 1], :2] = [[0, 0], [128, 128]]
    mesh[LOWER_LIP_INNER] = mesh[UPPER_LIP_INNER] + [0, gap_px, 0]
    landmarks = np.repeat(mesh[None], len(found), axis=0)
    landmarks[~found] = np.nan
    return FaceTrack(
        frames=np.arange(len(found)),
        landmarks=landmarks,
        raw_landmarks=landmarks.copy(),
        boxes=np.zeros((len(found), 4), np.float32),
        confidence=found.astype(np.float32),
        found=found,
        times=np.arange(len(found)) * 0.04,
    )


def test_frames_without_a_face_have_no_mouth_gap_and_raise_no_warning(recwarn):
    found = np.array([True, False, True, False])
    gap = track_mouth_gap(_track_with_gap(8.0, found))
    np.testing.assert_allclose(gap[found], 8.0 * FACE_BOX_PX / 128, rtol=1e-5)
    assert np.isnan(gap[~found]).all()
    assert np.isnan(track_mouth_gap(_track_with_gap(8.0, np.zeros(3, bool)))).all()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
