"""How the drawn mouth is finished before the comp, measured on the actor's footage and the plate.

The generator learns from real frames, which the camera blurred already, and sees the mesh of
t-1, t and t+1: it may draw a moving mouth's blur itself, wholly, partly or not at all. Trained
on L1 and SSIM, it also draws edges softer than the footage holds them, softer still in frames
it did not learn from, and as sharp in every shot, where a plate may be softer or sharper than
the footage was. So the comp sharpens what it drew, by the amount that makes the drawn still
mouths as sharp as the plate's own: the plate's sampled frames drawn from their own fitted
faces, so that drawn and real are the same mouth (how sharp a mouth looks depends first on
whether it is open). Then it smears the mouth along its motion over the shutter angle that
leaves the drawn fast-moving mouths as much sharper or softer than the still ones as the
footage's real mouths are. Too little sharpening leaves a soft patch; too long a smear makes
every fast syllable one. A mouth drawn sharper than the plate holds it (a renderer learnt on
crisper footage than the shot) is softened the same way, its fine detail taken away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from dubplate.core.composite.match import finished
from dubplate.core.neural.network import Generator
from dubplate.core.neural.train import TrainingSet, draw

ANGLES = (0.0, 45.0, 90.0, 135.0, 180.0, 270.0, 360.0)
FILM_SHUTTER_ANGLE = 180.0  # film's usual: for footage too short to measure, older renderers
# Times the detail finer than the sharpening's scale added back; under 0 taken away (-1: all).
AMOUNTS = tuple(i / 10 for i in range(-10, 21))
FRAMES_PER_GROUP = 32  # the fastest and the slowest mouths drawn, each
_BATCH = 8
# Crop pixels: the real mouths' grain, which the generator does not draw, is blurred away before
# their sharpness is compared.
_STRUCTURE_SIGMA = 1.0


@dataclass(frozen=True)
class SharpenMeasure:
    amount: float  # for the footage; a dub's where too few of its plate's mouths are seen
    drawn_to_footage: dict[float, float]  # still mouths' sharpness, drawn and sharpened by each
    footage_sharpness: float | None = None  # the real still mouths' (a record in renderer.json)

    def manifest(self) -> dict:
        return {
            "amount": self.amount,
            "drawn_to_footage": {f"{a:g}": round(r, 4) for a, r in self.drawn_to_footage.items()},
            "footage_sharpness": self.footage_sharpness,
        }

    @classmethod
    def from_manifest(cls, entry: dict) -> SharpenMeasure:
        ratios = {float(a): float(r) for a, r in entry["drawn_to_footage"].items()}
        return cls(float(entry["amount"]), ratios, entry.get("footage_sharpness"))


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


def measure_finish(
    generator: Generator, data: TrainingSet, device: str
) -> tuple[SharpenMeasure, ShutterMeasure]:
    """The sharpening, of AMOUNTS, that brings the drawn still mouths' sharpness closest to the
    footage's, then the shutter angle, of ANGLES, whose smear of the sharpened mouths brings
    their fast-to-slow sharpness ratio closest to the footage's (on a tie, the amount nearest 0
    and the least angle):
    measured on the quarters of the training frames whose mouths move least and most."""
    count = min(FRAMES_PER_GROUP, len(data) // 4)
    if count == 0:
        return SharpenMeasure(0.0, {}), ShutterMeasure(FILM_SHUTTER_ANGLE, None, {})
    order = np.argsort(np.hypot(*data.mouth_motion.T), kind="stable")
    picked = np.concatenate([order[:count], order[-count:]])
    holes = data.hole[picked, 0].numpy()
    real = data.real[picked].permute(0, 2, 3, 1).numpy().astype(np.float32) / 255
    drawn = _drawn(generator, data, picked, device)

    def smeared(amount: float, angle: float) -> np.ndarray:
        streaks = data.mouth_motion[picked] * (angle / 360)
        frames = zip(drawn, streaks, holes, strict=True)
        return np.stack([finished(d, amount, s, h) for d, s, h in frames])

    footage = _sharpness(real, holes)
    still = slice(count)
    footage_still = max(float(footage[still].mean()), 1e-12)
    amount, to_footage = matched_amount(drawn[still], real[still], holes[still], whole_curve=True)
    ratios = {a: _fast_to_slow(_sharpness(smeared(amount, a), holes), count) for a in ANGLES}
    footage_ratio = _fast_to_slow(footage, count)
    return (
        SharpenMeasure(amount, to_footage, footage_still),
        ShutterMeasure(_closest(ratios, footage_ratio), footage_ratio, ratios),
    )


def finish_words(amount: float) -> str:
    """How the finish's `amount` reads in a log line."""
    return f"sharpened by {amount:g}" if amount >= 0 else f"softened by {-amount:g}"


def stiller_half(mouth_motion: np.ndarray) -> np.ndarray:
    """Indices of the stiller half of frames by their (F, 2) `mouth_motion` (at least one)."""
    order = np.argsort(np.hypot(*mouth_motion.T), kind="stable")
    return order[: max(1, len(order) // 2)]


def matched_amount(
    drawn: np.ndarray, real: np.ndarray, holes: np.ndarray, whole_curve: bool = False
) -> tuple[float, dict[float, float]]:
    """The sharpening, of AMOUNTS, that makes the `drawn` still mouths (F, N, N, 3, 0-1) as sharp
    inside their `holes` as the `real` ones of the same frames (the nearest 0 on a tie), and the
    drawn-to-real ratio at each amount tried, in order: 0, then away from it on the side that
    brings the ratio towards 1 up to the first amount past it (further only moves it away), or
    at every amount with `whole_curve` (the build's record)."""
    real_sharpness = max(float(_sharpness(real, holes).mean()), 1e-12)
    no_streak = np.zeros(2, np.float32)

    def ratio(amount: float) -> float:
        finish = [finished(d, amount, no_streak, h) for d, h in zip(drawn, holes, strict=True)]
        return float(_sharpness(np.stack(finish), holes).mean() / real_sharpness)

    ratios = {0.0: ratio(0.0)}
    soften = ratios[0.0] > 1
    if whole_curve:
        onward = [a for a in AMOUNTS if a != 0]
    else:
        onward = sorted((a for a in AMOUNTS if (a < 0 if soften else a > 0)), key=abs)
    for amount in onward:
        ratios[amount] = ratio(amount)
        if not whole_curve and (ratios[amount] <= 1 if soften else ratios[amount] >= 1):
            break
    ratios = dict(sorted(ratios.items()))
    return _closest(ratios, 1.0, prefer=abs), ratios


def _drawn(generator: Generator, data: TrainingSet, rows: np.ndarray, device: str) -> np.ndarray:
    """(len(rows), N, N, 3) float32 generated crops of training frames `rows`."""
    out = []
    for start in range(0, len(rows), _BATCH):
        batch = torch.from_numpy(rows[start : start + _BATCH])
        tensors = (data.real, data.renders, data.hole, data.references)
        out.append(draw(generator, *(t[batch] for t in tensors), device))
    return np.concatenate(out)


def _closest(ratios: dict[float, float], wanted: float, prefer=lambda key: key) -> float:
    """The key whose ratio is closest to `wanted` in log (on a tie, the least by `prefer`)."""
    return min(ratios, key=lambda key: (abs(_log(ratios[key]) - _log(wanted)), prefer(key)))


def _fast_to_slow(sharpness: np.ndarray, count: int) -> float:
    """Mean sharpness of the last `count` images over that of the first `count`."""
    return float(sharpness[-count:].mean() / max(sharpness[:count].mean(), 1e-12))


def _log(ratio: float) -> float:
    return math.log(max(ratio, 1e-12))


def _sharpness(images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Per image: the variance of the Laplacian of the grain-free grey image, inside the hole."""
    out = []
    for image, hole in zip(images, holes, strict=True):
        grey = cv2.GaussianBlur(image.mean(axis=2), (0, 0), _STRUCTURE_SIGMA)
        laplacian = cv2.Laplacian(grey, cv2.CV_32F)
        out.append(float(laplacian[hole].var()) if hole.any() else 0.0)
    return np.array(out)
