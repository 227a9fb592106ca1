"""Lip-sync figures for a mouth track and its audio, measured without any downloaded model.

- phone-sync: Spearman correlation of the inner-lip gap with a phone-derived openness curve,
  at the best lag within +-2 frames;
- bilabial closure: share of /p b m/ segments during which the lips close;
- open-vowel opening: share of open-vowel segments during which the mouth opens.
The same figures on the real footage with its own audio are what a result is compared with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr

from dubplate.core.audio.features import AudioAnalysis, FrameFeatures, frame_features
from dubplate.core.audio.phones import PHONE_INDEX, PHONES, VISEMES
from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.landmarks import FACE_BOX_PX, face_size, mouth_opening

# Inner-lip gap, px of a 256-px face box: at most CLOSED_PX the lips touch (MediaPipe's inner
# lip points rarely meet exactly), at least OPEN_PX the mouth is visibly open.
CLOSED_PX = 3.0
OPEN_PX = 8.0
MAX_LAG = 2
OPENNESS = {
    **dict.fromkeys(VISEMES["open_vowel"], 1.0),
    **dict.fromkeys(VISEMES["mid_vowel"], 0.75),
    **dict.fromkeys(("UW", "UH", "OW", "OY", "IH", "IY"), 0.55),
    **dict.fromkeys(("W", "R", "Y"), 0.3),
    **dict.fromkeys(VISEMES["alveolar"] + VISEMES["velar"] + VISEMES["postalveolar"], 0.35),
    **dict.fromkeys(VISEMES["dental"], 0.3),
    **dict.fromkeys(VISEMES["labiodental"], 0.15),
    **dict.fromkeys(VISEMES["bilabial"], 0.0),
    "SIL": 0.05,
}
OPENNESS_VECTOR = np.array([OPENNESS[p] for p in PHONES], np.float32)


@dataclass
class LipSync:
    phone_sync: float | None  # None: the lip gap or the phones never vary (a mouth held still)
    lag_frames: int
    bilabial_closure: float | None  # None: no /p b m/ in the audio
    bilabial_segments: int
    open_vowel_opening: float | None
    open_vowel_segments: int
    speech: bool

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def openness(features: FrameFeatures) -> np.ndarray:
    return features.phones @ OPENNESS_VECTOR


def lip_sync(
    gap_px: np.ndarray, analysis: AudioAnalysis, features: FrameFeatures, frame_seconds: float
) -> LipSync:
    """Figures for a per-frame inner-lip gap (px of a 256-px face box) against its audio."""
    sync, lag = phone_sync(gap_px, openness(features))
    closed, bilabials = _segment_share(
        gap_px,
        analysis,
        features.times,
        frame_seconds,
        VISEMES["bilabial"],
        lambda g: g.min() <= CLOSED_PX,
    )
    opened, vowels = _segment_share(
        gap_px,
        analysis,
        features.times,
        frame_seconds,
        VISEMES["open_vowel"],
        lambda g: g.max() >= OPEN_PX,
    )
    return LipSync(sync, lag, closed, bilabials, opened, vowels, analysis.has_speech)


def phone_sync(
    gap: np.ndarray, curve: np.ndarray, max_lag: int = MAX_LAG
) -> tuple[float | None, int]:
    """The best Spearman correlation of the (F,) gap (NaN: not seen) with the (F,) openness
    `curve` moved by up to `max_lag` frames, and that lag: the gap at frame t goes with the
    curve at frame t - lag. None where no lag has 5 frames over which both vary: a correlation
    there is not low, it is not there."""
    valid = np.isfinite(gap)
    best: tuple[float | None, int] = (None, 0)
    for lag in range(-max_lag, max_lag + 1):
        shifted = np.roll(curve, lag)
        window = valid.copy()
        if lag > 0:
            window[:lag] = False
        elif lag < 0:
            window[lag:] = False
        if window.sum() < 5 or np.ptp(gap[window]) == 0 or np.ptp(shifted[window]) == 0:
            continue
        rho = float(spearmanr(gap[window], shifted[window]).statistic)
        if best[0] is None or (rho, lag) > best:
            best = (rho, lag)
    return best


def _segment_share(gap, analysis, times, frame_seconds, phones, criterion):
    """Share of the segments of `phones` for which `criterion` holds on the gap over the
    frames whose interval overlaps the segment; None when there are none."""
    wanted = {PHONE_INDEX[p] for p in phones}
    hits = total = 0
    for index, start, end in analysis.phones:
        if int(index) not in wanted:
            continue
        half = frame_seconds / 2
        frames = (times > start - half) & (times < end + half) & np.isfinite(gap)
        if not frames.any():
            continue
        total += 1
        hits += bool(criterion(gap[frames]))
    return (hits / total if total else None), total


def track_lip_sync(
    track: FaceTrack, analysis: AudioAnalysis, times: np.ndarray, frame_seconds: float
) -> LipSync:
    """Figures for a tracked video against audio; `times` are its frames' seconds in the audio.
    The gap is the mesh's own per frame, before the track's smoothing: a /p b m/ closure lasts
    one or two frames, and the smoothing, tuned on still heads, lifts it, often over CLOSED_PX (on
    man_map, real closures measured 0.2-1.0 px raw against 1.8-2.3 smoothed, and dubbed ones
    0.7-2.4 against 2.9-6.9)."""
    gap = track_mouth_gap(track)
    features = frame_features(analysis, times, frame_seconds, pad=True)
    return lip_sync(gap, analysis, features, frame_seconds)


def track_mouth_gap(track: FaceTrack) -> np.ndarray:
    """Per-frame inner-lip gap of the unsmoothed track, px of a 256-px face box (NaN where the
    face was not found)."""
    gap = np.full(len(track.found), np.nan)
    if track.found.any():
        scale = FACE_BOX_PX / np.median(face_size(track.landmarks[track.found]))
        gap[track.found] = mouth_opening(track.raw_landmarks[track.found]) * scale
    return gap
