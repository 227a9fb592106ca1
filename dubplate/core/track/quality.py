"""Figures of a track's quality: jitter on still heads, and the lag smoothing adds to the mouth."""

from __future__ import annotations

import numpy as np

from dubplate.core.track.landmarks import RIGID, face_box_scale, mouth_opening


def head_speed(landmarks: np.ndarray) -> np.ndarray:
    """Per-frame motion of the rigid points in px of a 256-px face box (first frame: 0)."""
    rigid = landmarks[:, list(RIGID), :2] * _box_scale(landmarks)
    step = np.linalg.norm(np.diff(rigid, axis=0), axis=-1).mean(axis=1)
    return np.concatenate([[0.0], step])


def still_head_frames(
    landmarks: np.ndarray, max_speed: float = 1.0, min_run: int = 8
) -> np.ndarray:
    """Frames inside runs of at least `min_run` frames whose head moves less than `max_speed`
    face-box px per frame (judged on a smoothed track, so tracker noise does not count)."""
    slow = head_speed(landmarks) < max_speed
    mask = np.zeros(len(slow), bool)
    start = None
    for i, value in enumerate([*slow, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start >= min_run:
                mask[start:i] = True
            start = None
    return mask


def mouth_only_steps(landmarks: np.ndarray, still: float = 0.5, moving: float = 0.5) -> np.ndarray:
    """(F - 1,) mask of frame-to-frame steps where the head (rigid points) moves less than
    `still` face-box px while the inner-lip gap changes by more than `moving` px."""
    scale = _box_scale(landmarks)
    lips = np.abs(np.diff(mouth_opening(landmarks))) * scale
    return (head_speed(landmarks)[1:] < still) & (lips > moving)


def jitter_px(landmarks: np.ndarray, frames: np.ndarray) -> float:
    """RMS second difference of all landmarks (x, y) in face-box px, over runs of `frames`."""
    scaled = landmarks[..., :2] * _box_scale(landmarks)
    second = scaled[2:] - 2 * scaled[1:-1] + scaled[:-2]
    inside = frames[2:] & frames[1:-1] & frames[:-2]
    return float(np.sqrt(np.nanmean(second[inside] ** 2)))


def _box_scale(landmarks: np.ndarray) -> float:
    """One factor for the whole track: a per-frame factor would turn the tracker's noise in
    face size into motion of every point."""
    return float(np.nanmedian(face_box_scale(landmarks)))


def best_lag(reference: np.ndarray, signal: np.ndarray, max_lag: int = 5) -> int:
    """Frames by which `signal` trails `reference` (negative: leads), by cross-correlation."""
    a = (reference - reference.mean()) / reference.std()
    b = (signal - signal.mean()) / signal.std()
    core = slice(max_lag, len(a) - max_lag)
    scores = {
        lag: float(np.mean(a[core] * np.roll(b, -lag)[core]))
        for lag in range(-max_lag, max_lag + 1)
    }
    return max(scores, key=scores.get)


def mouth_lag(raw: np.ndarray, smoothed: np.ndarray) -> int:
    """Lag of the smoothed mouth opening behind the raw one, in frames."""
    return best_lag(mouth_opening(raw), mouth_opening(smoothed))
