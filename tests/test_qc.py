"""Lip-sync figures on constructed mouths whose answer is known."""

import numpy as np

from dubplate.core.audio.features import AudioAnalysis, frame_features
from dubplate.core.audio.phones import PHONE_INDEX
from dubplate.core.qc.lipsync import lip_sync

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


def test_no_bilabials_is_not_a_failure():
    analysis, features, times = alternating()
    analysis.phones[:, 0] = PHONE_INDEX["AA"]
    result = lip_sync(mouth_following(times), analysis, features, FRAME)
    assert result.bilabial_closure is None and result.bilabial_segments == 0
