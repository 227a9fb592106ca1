"""A UV layout from a face's own shape: the face unrolled onto a cylinder around its vertical
axis, which is one-to-one for a face seen from the front half."""

from __future__ import annotations

import numpy as np


def unrolled(shape: np.ndarray) -> np.ndarray:
    """(N, 3) canonical shape (x right, y down, z away) -> (N, 2) arc length and height."""
    depth_axis = shape[:, 2].max() + np.ptp(shape[:, 0])
    angle = np.arctan2(shape[:, 0], depth_axis - shape[:, 2])
    return np.stack([angle * depth_axis, shape[:, 1]], axis=1)


def uv_layout(shape: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """The unrolled shape fitted into [margin, 1 - margin]^2 with its aspect ratio kept."""
    flat = unrolled(shape)
    flat -= flat.min(axis=0)
    flat /= flat.max()
    flat += (1 - flat.max(axis=0)) / 2  # centre the narrower axis
    return (margin + (1 - 2 * margin) * flat).astype(np.float32)
