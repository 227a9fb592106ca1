"""The motion blur a renderer leaves undrawn, measured on the actor's footage.

The generator learns from real frames, which the camera blurred already, and sees the mesh of
t-1, t and t+1: it may draw a moving mouth's blur itself, wholly, partly or not at all. The comp
smears what it drew along the mouth's motion over a shutter angle; the right angle is the one
that leaves the drawn fast-moving mouths as much sharper or softer than the still ones as the
footage's real mouths are. Too long a smear makes every fast syllable a soft patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from dubplate.core.composite.match import motion_blurred
from dubplate.core.neural.network import Generator
from dubplate.core.neural.train import TrainingSet, draw

ANGLES = (0.0, 45.0, 90.0, 135.0, 180.0, 270.0, 360.0)
FILM_SHUTTER_ANGLE = 180.0  # film's usual: for footage too short to measure, older renderers
FRAMES_PER_GROUP = 32  # the fastest and the slowest mouths drawn, each
_BATCH = 8
# Crop pixels: the real mouths' grain, which the generator does not draw, is blurred away before
# their sharpness is compared.
_STRUCTURE_SIGMA = 1.0


@dataclass(frozen=True)
class ShutterMeasure:
    angle: float
    footage_ratio: float | None  # sharpness of the fastest mouths over the slowest, real
    drawn_ratios: dict[float, float]  # the same, drawn and smeared over each angle

    def manifest(self) -> dict:
        return {
            "angle": self.angle,
            "footage_fast_to_slow": None
            if self.footage_ratio is None
            else round(self.footage_ratio, 4),
            "drawn_fast_to_slow": {f"{a:g}": round(r, 4) for a, r in self.drawn_ratios.items()},
        }


def measure_shutter(generator: Generator, data: TrainingSet, device: str) -> ShutterMeasure:
    """The angle, of ANGLES, whose smear brings the drawn mouths' fast-to-slow sharpness ratio
    closest to the footage's (the shortest on a tie): measured on the quarters of the training
    frames whose mouths move most and least."""
    count = min(FRAMES_PER_GROUP, len(data) // 4)
    if count == 0:
        return ShutterMeasure(FILM_SHUTTER_ANGLE, None, {})
    order = np.argsort(np.hypot(*data.mouth_motion.T), kind="stable")
    picked = np.concatenate([order[:count], order[-count:]])
    holes = data.hole[picked, 0].numpy()
    real = data.real[picked].permute(0, 2, 3, 1).numpy().astype(np.float32) / 255
    drawn = _drawn(generator, data, picked, device)
    footage = _fast_to_slow(real, holes, count)
    ratios = {}
    for angle in ANGLES:
        streaks = data.mouth_motion[picked] * (angle / 360)
        smeared = [motion_blurred(d, s, h) for d, s, h in zip(drawn, streaks, holes, strict=True)]
        ratios[angle] = _fast_to_slow(np.stack(smeared), holes, count)
    best = min(ANGLES, key=lambda angle: abs(_log(ratios[angle]) - _log(footage)))
    return ShutterMeasure(best, footage, ratios)


def _drawn(generator: Generator, data: TrainingSet, rows: np.ndarray, device: str) -> np.ndarray:
    """(len(rows), N, N, 3) float32 generated crops of training frames `rows`."""
    out = []
    for start in range(0, len(rows), _BATCH):
        batch = torch.from_numpy(rows[start : start + _BATCH])
        tensors = (data.real, data.renders, data.hole, data.references)
        out.append(draw(generator, *(t[batch] for t in tensors), device))
    return np.concatenate(out)


def _fast_to_slow(images: np.ndarray, holes: np.ndarray, count: int) -> float:
    """Mean sharpness in the hole of the last `count` images over that of the first `count`."""
    pairs = zip(images, holes, strict=True)
    sharpness = np.array([_sharpness(image, hole) for image, hole in pairs])
    return float(sharpness[-count:].mean() / max(sharpness[:count].mean(), 1e-12))


def _log(ratio: float) -> float:
    return math.log(max(ratio, 1e-12))


def _sharpness(image: np.ndarray, hole: np.ndarray) -> float:
    """Variance of the Laplacian of the grain-free grey image, inside the hole."""
    grey = cv2.GaussianBlur(image.mean(axis=2), (0, 0), _STRUCTURE_SIGMA)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    return float(laplacian[hole].var()) if hole.any() else 0.0
