"""A review movie of a FaceTrack: the plate with the landmarks drawn, and its audio."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dubplate.core.media.movie_writer import write_movie
from dubplate.core.media.plate import Plate
from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.landmarks import LIPS, MESH_VERTEX_COUNT

PREVIEW_LONG_SIDE = 1280
MESH_RGB = (80, 220, 120)
LIPS_RGB = (255, 70, 70)
IRIS_RGB = (90, 160, 255)
MISSING_RGB = (255, 40, 40)


def write_track_preview(plate: Plate, track: FaceTrack, path: Path) -> int:
    """Plate frames (downscaled to at most 1280 px) with the smoothed landmarks drawn."""
    width, height = plate.info.width, plate.info.height
    scale = min(1.0, PREVIEW_LONG_SIDE / max(width, height))
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    rows = {int(n): i for i, n in enumerate(track.frames)}

    def frames():
        for number, pixels in plate.frames(track.frames):
            image = plate.analysis_view(pixels, size=size).copy()
            row = rows[number]
            if track.found[row]:
                _draw_landmarks(image, track.landmarks[row, :, :2] * scale)
                label = f"frame {number}  score {track.confidence[row]:.2f}"
                colour = (255, 255, 255)
            else:
                label, colour = f"frame {number}  NO FACE", MISSING_RGB
            cv2.putText(
                image, label, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA
            )
            yield image

    return write_movie(path, frames(), plate.info.fps, audio=plate.audio_from(track.frames[0]))


def _draw_landmarks(image: np.ndarray, points: np.ndarray) -> None:
    radius = max(1, round(image.shape[1] / 640))
    lips = set(LIPS)
    for index, (x, y) in enumerate(points):
        if index in lips:
            colour = LIPS_RGB
        elif index >= MESH_VERTEX_COUNT:
            colour = IRIS_RGB
        else:
            colour = MESH_RGB
        cv2.circle(image, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
