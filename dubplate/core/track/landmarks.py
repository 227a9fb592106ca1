"""Named landmark groups of the MediaPipe 478-point face mesh, and measures taken from them."""

from __future__ import annotations

import numpy as np

LANDMARK_COUNT = 478
MESH_VERTEX_COUNT = 468  # the last 10 are iris points added by the attention model

UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
MOUTH_CORNERS = (61, 291)
# The inner-lip contour, in order around the mouth opening (MediaPipe indices).
INNER_LIP_LOOP = (
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
)  # fmt: skip
# The outer-lip contour, in order from the left corner over the upper lip.
OUTER_LIP_LOOP = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146,
)  # fmt: skip
LIPS = tuple(sorted({*INNER_LIP_LOOP, *OUTER_LIP_LOOP}))
# Each lip alone: its outer contour from corner to corner, back along its inner contour.
UPPER_LIP_LOOP = OUTER_LIP_LOOP[:11] + INNER_LIP_LOOP[:11][::-1]
LOWER_LIP_LOOP = (
    OUTER_LIP_LOOP[10:] + OUTER_LIP_LOOP[:1] + (INNER_LIP_LOOP[10:] + INNER_LIP_LOOP[:1])[::-1]
)
# Points that move with the skull, not the jaw: forehead, nose bridge and tip, eye corners.
RIGID = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263, 127, 356)

# Every measure in face-box pixels uses a box scaled to this side, so figures compare across shots.
FACE_BOX_PX = 256.0


def face_size(landmarks: np.ndarray) -> np.ndarray:
    """Side of the square box around the mesh, per frame: (..., 478, 2+) -> (...)."""
    mesh = landmarks[..., :MESH_VERTEX_COUNT, :2]
    extent = np.nanmax(mesh, axis=-2) - np.nanmin(mesh, axis=-2)
    return extent.max(axis=-1)


def face_box_scale(landmarks: np.ndarray) -> np.ndarray:
    """Factor from plate pixels to pixels of a 256-px face box, per frame."""
    return FACE_BOX_PX / face_size(landmarks)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap in plate pixels, per frame."""
    gap = landmarks[..., LOWER_LIP_INNER, :2] - landmarks[..., UPPER_LIP_INNER, :2]
    return np.linalg.norm(gap, axis=-1)


def mouth_width(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the mouth's corners in plate pixels, per frame."""
    left, right = MOUTH_CORNERS
    return np.linalg.norm(landmarks[..., right, :2] - landmarks[..., left, :2], axis=-1)
