"""Similarity alignment of landmark shapes (Umeyama 1991), fitted on points that move rigidly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """x_image = scale * rotation @ x_model + translation, for (..., 3) points."""

    scale: float
    rotation: np.ndarray  # (3, 3), proper rotation
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def invert(self, points: np.ndarray) -> np.ndarray:
        return (points - self.translation) @ self.rotation / self.scale


def fit_similarity(model: np.ndarray, observed: np.ndarray) -> Similarity:
    """The least-squares similarity taking `model` (N, 3) points onto `observed` (N, 3)."""
    model_mean, observed_mean = model.mean(axis=0), observed.mean(axis=0)
    a, b = model - model_mean, observed - observed_mean
    u, singular, vt = np.linalg.svd(b.T @ a / len(a))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (a**2).sum(axis=1).mean())
    return Similarity(scale, rotation, observed_mean - scale * rotation @ model_mean)


def generalised_procrustes(
    shapes: np.ndarray, rigid: list[int], iterations: int = 4
) -> tuple[np.ndarray, list[Similarity]]:
    """The robust mean shape (per-vertex median) of (F, N, 3) shapes in a canonical frame, and
    each frame's pose onto it, aligning on the rigid points only so a moving jaw does not tilt
    the head."""
    reference = shapes[0]
    for _ in range(iterations):
        poses = [fit_similarity(reference[rigid], shape[rigid]) for shape in shapes]
        aligned = np.stack([pose.invert(shape) for pose, shape in zip(poses, shapes, strict=True)])
        reference = np.median(aligned, axis=0)
        reference = _normalised(reference, rigid)
    poses = [fit_similarity(reference[rigid], shape[rigid]) for shape in shapes]
    return reference, poses


# Outer eye corners (subject's right, left), forehead top and chin bottom of the MediaPipe mesh.
EYE_CORNERS = (33, 263)
FOREHEAD, CHIN = 10, 152


def _normalised(shape: np.ndarray, rigid: list[int]) -> np.ndarray:
    """A canonical frame: rigid points centred on the origin with unit RMS radius; x from the
    right to the left eye corner, y from forehead to chin, z away from the camera."""
    centred = shape - shape[rigid].mean(axis=0)
    centred /= np.sqrt((centred[rigid] ** 2).sum(axis=1).mean())
    x = centred[EYE_CORNERS[1]] - centred[EYE_CORNERS[0]]
    x /= np.linalg.norm(x)
    y = centred[CHIN] - centred[FOREHEAD]
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    axes = np.stack([x, y, np.cross(x, y)])
    return centred @ axes.T
