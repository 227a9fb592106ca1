"""MediaPipe face detection and 478-point FaceMesh, run where each is precise.

The detector sees a downscaled copy of the whole frame (cheap, and its full-range model finds
small faces); the mesh sees a full-resolution crop around the chosen face, so a small face in a
4K or portrait frame gets as many mesh pixels as a close-up.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import mediapipe as mp
import numpy as np

MEDIAPIPE_VERSION = mp.__version__
# mediapipe 0.10.14 calls a protobuf API that warns on every graph run.
warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """MediaPipe's C++ side prints start-up notices straight to fd 2, past Python's logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _warmed_up(model):
    """Build the model and run it once on a blank image, so its notices are printed (and hidden)
    now rather than in the middle of the progress lines."""
    with _native_stderr_silenced():
        model.process(np.zeros((64, 64, 3), np.uint8))
    return model


@dataclass(frozen=True)
class Detection:
    """A face box (x0, y0, x1, y1) in frame pixels, the detector's score and its keypoints
    (x, y): the eyes (the person's right, then left), nose tip, mouth, right and left ear."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    def shifted(self, dx: float, dy: float) -> Detection:
        x0, y0, x1, y1 = self.box
        keypoints = tuple((x + dx, y + dy) for x, y in self.keypoints)
        return Detection((x0 + dx, y0 + dy, x1 + dx, y1 + dy), self.score, keypoints)

    @property
    def roll(self) -> float:
        """Degrees the eye line turns clockwise on screen (0 upright, or without keypoints)."""
        if not self.keypoints:
            return 0.0
        (rx, ry), (lx, ly) = self.keypoints[:2]
        return float(np.degrees(np.arctan2(ly - ry, lx - rx)))

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return 0.5 * (x0 + x1), 0.5 * (y0 + y1)

    @property
    def size(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)


class FaceDetector:
    """All faces in an RGB image, boxes scaled back by `scale` to frame pixels."""

    def __init__(self, min_score: float = 0.5):
        # model_selection=1: the full-range model, for faces up to about 5 m from the camera.
        with _native_stderr_silenced():
            self._model = _warmed_up(
                mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=min_score
                )
            )

    def __call__(self, rgb: np.ndarray, scale: float) -> list[Detection]:
        height, width = rgb.shape[:2]
        result = self._model.process(rgb)
        detections = []
        for found in result.detections or ():
            box = found.location_data.relative_bounding_box
            x0, y0 = box.xmin * width / scale, box.ymin * height / scale
            x1, y1 = x0 + box.width * width / scale, y0 + box.height * height / scale
            keypoints = tuple(
                (k.x * width / scale, k.y * height / scale)
                for k in found.location_data.relative_keypoints
            )
            detections.append(Detection((x0, y0, x1, y1), float(found.score[0]), keypoints))
        return detections

    def close(self) -> None:
        self._model.close()


class FaceMesh:
    """478 landmarks (x, y in crop pixels, z in the same units) of the main face in a crop."""

    def __init__(self, min_score: float = 0.5):
        with _native_stderr_silenced():
            self._model = _warmed_up(
                mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True,
                    max_num_faces=1,
                    refine_landmarks=True,  # adds the iris points and refines lips and eyes
                    min_detection_confidence=min_score,
                )
            )

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        height, width = rgb.shape[:2]
        result = self._model.process(rgb)
        if not result.multi_face_landmarks:
            return None
        points = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * width, p.y * height, p.z * width) for p in points], np.float32)

    def close(self) -> None:
        self._model.close()
