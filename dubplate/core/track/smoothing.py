"""Zero-lag One-Euro smoothing of landmark tracks.

The One-Euro filter (Casiez et al., CHI 2012) lowers its cut-off when a point is slow (killing
jitter) and raises it when it is fast (keeping motion). Run causally it still lags fast motion a
little; a plate is offline, so it runs forwards and backwards and the two are averaged, which
cancels that lag while keeping the jitter reduction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from dubplate.core.runs import split_runs
from dubplate.core.track.landmarks import face_box_scale


@dataclass(frozen=True)
class OneEuro:
    """Parameters in face-box units: positions in px of a 256-px box, speeds in those px/s."""

    # Tuned on tests/test_smoothing.py's synthetic face and checked on real footage by
    # bench/track_bench.py: jitter falls by more than half, syllable-rate lip motion is kept.
    min_cutoff_hz: float = 1.0
    beta: float = 0.1
    derivative_cutoff_hz: float = 3.0

    def manifest(self) -> dict:
        return {"method": "one-euro forward-backward", **asdict(self)}

    def smooth(self, points: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Smooth (T, ...) samples taken at `times` (seconds); NaN-free input, one segment."""
        if len(points) < 3:
            return points.copy()
        forward = self._run(points, times)
        backward = self._run(points[::-1], times[-1] - times[::-1])[::-1]
        return 0.5 * (forward + backward)

    def _run(self, points: np.ndarray, times: np.ndarray) -> np.ndarray:
        out = np.empty_like(points)
        out[0] = points[0]
        speed = np.zeros_like(points[0])
        for i in range(1, len(points)):
            dt = max(float(times[i] - times[i - 1]), 1e-6)
            raw_speed = (points[i] - out[i - 1]) / dt
            speed = speed + _alpha(self.derivative_cutoff_hz, dt) * (raw_speed - speed)
            cutoff = self.min_cutoff_hz + self.beta * np.abs(speed)
            out[i] = out[i - 1] + _alpha(cutoff, dt) * (points[i] - out[i - 1])
        return out


def _alpha(cutoff_hz: float | np.ndarray, dt: float) -> float | np.ndarray:
    tau = 1.0 / (2.0 * np.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


def smooth_track(
    landmarks: np.ndarray,
    found: np.ndarray,
    times: np.ndarray,
    filter: OneEuro,
    breaks: Iterable[int] = (),
) -> np.ndarray:
    """Smooth each run of consecutive found frames on its own, a run also ending before each row
    in `breaks` (where the face jumped: a cut); frames without a face stay NaN."""
    smoothed = np.full_like(landmarks, np.nan)
    for start, stop in split_runs(found, breaks):
        segment = landmarks[start:stop]
        # Work in face-box units so one set of parameters fits a close-up and a wide shot alike.
        scale = float(np.median(face_box_scale(segment)))
        smoothed[start:stop] = filter.smooth(segment * scale, times[start:stop]) / scale
    return smoothed
