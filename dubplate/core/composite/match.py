"""Matching a generated patch to the plate: colour at the seam, detail and film grain."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

SEAM_ALPHA = 0.5  # the matte below it is the ring where the patch meets the plate
GRAIN_BLUR_SIGMA = 1.0
# Detail is the band between grain and shading: lip edges, teeth, skin folds. A generated crop
# upsampled to the plate holds too little of it; sharpening it back is capped, since past some
# gain it only draws halos.
DETAIL_BLUR_SIGMA = 3.0
MAX_DETAIL_GAIN = 3.0


def match_colour(generated: np.ndarray, real: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """`generated` shifted per channel by its mean difference from `real` in the matte's seam
    ring, so the patch meets the plate without a visible step."""
    ring = (matte > 0) & (matte < SEAM_ALPHA)
    difference = real[ring] - generated[ring]
    difference = difference[np.isfinite(difference).all(axis=1)]  # NaN plate samples say nothing
    if not len(difference):
        return generated.copy()
    return generated + difference.mean(axis=0).astype(generated.dtype)


def grain_sigma(pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(3,) per-channel std of the high frequencies (pixels minus a ~1 px blur), weighted by
    `weights` (H, W): how grainy a region looks. NaN/inf samples and their neighbours count 0."""
    detail, weights = _band(pixels, weights, _grain_band, _width(GRAIN_BLUR_SIGMA))
    total = weights.sum()
    if total <= 0:
        return np.zeros(3, np.float32)
    mean = np.einsum("hw,hwc->c", weights, detail) / total
    variance = np.einsum("hw,hwc->c", weights, (detail - mean) ** 2) / total
    return np.sqrt(variance).astype(np.float32)


def match_detail(patch: np.ndarray, plate: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`patch` plus k times its detail band, k chosen so that under `weights` (H, W) the result
    holds as much detail as `plate` (k at most MAX_DETAIL_GAIN - 1); a patch already as sharp
    is left alone."""
    width = _width(DETAIL_BLUR_SIGMA)
    target, weights = _band(plate, weights, _detail_band, width)
    own = _detail_band(np.asarray(patch, np.float32))
    total = weights.sum()
    if total <= 0:
        return patch
    energy = lambda a, b: float(np.einsum("hw,hwc,hwc->", weights, a, b) / total)  # noqa: E731
    # The band of the result is own + k * band(own): solve |own + k band(own)|^2 = |target|^2.
    again = _detail_band(own)
    wanted, a, b, c = (
        energy(target, target),
        energy(own, own),
        energy(own, again),
        energy(again, again),
    )
    if a >= wanted or c <= 0:
        return patch
    k = (-b + math.sqrt(max(b * b - c * (a - wanted), 0.0))) / c
    return patch + np.float32(min(k, MAX_DETAIL_GAIN - 1)) * own


def _band(
    pixels: np.ndarray, weights: np.ndarray, band, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """`band(pixels)` and `weights` set to 0 wherever a NaN/inf sample's blur (`width` px
    across) reaches: there the band says nothing."""
    pixels = np.asarray(pixels, dtype=np.float32)
    finite = np.isfinite(pixels).all(axis=2)
    detail = band(np.where(finite[..., None], pixels, np.float32(0)))
    kernel = np.ones((width, width), np.uint8)
    untouched = cv2.erode(finite.astype(np.uint8), kernel, borderValue=1).astype(bool)
    return detail, np.where(untouched, weights, 0).astype(np.float64)


def add_grain(
    patch: np.ndarray,
    target_sigma: np.ndarray,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """`patch` plus zero-mean Gaussian noise that brings its `grain_sigma` up to `target_sigma`,
    so it looks neither cleaner nor softer than the plate. `weights` (H, W) say where the patch's
    own grain is measured (where it shows); everywhere by default."""
    if weights is None:
        weights = np.ones(patch.shape[:2], np.float32)
    own = grain_sigma(patch, weights)
    missing = np.sqrt(np.maximum(0, np.square(target_sigma) - np.square(own)))
    noise = rng.standard_normal(patch.shape, dtype=np.float32)
    return patch + noise * (missing / _white_noise_gain()).astype(np.float32)


def _blurred(pixels: np.ndarray, sigma: float) -> np.ndarray:
    width = _width(sigma)
    return cv2.GaussianBlur(pixels, (width, width), sigma, borderType=cv2.BORDER_REFLECT)


def _width(sigma: float) -> int:
    return 2 * math.ceil(3 * sigma) + 1


def _grain_band(pixels: np.ndarray) -> np.ndarray:
    return pixels - _blurred(pixels, GRAIN_BLUR_SIGMA)


def _detail_band(pixels: np.ndarray) -> np.ndarray:
    return _blurred(pixels, GRAIN_BLUR_SIGMA) - _blurred(pixels, DETAIL_BLUR_SIGMA)


@functools.cache
def _white_noise_gain() -> float:
    """What `grain_sigma` reads for unit white noise: the blur removes part of it."""
    width = _width(GRAIN_BLUR_SIGMA)
    taps = cv2.getGaussianKernel(width, GRAIN_BLUR_SIGMA)[:, 0]
    high_pass = -np.outer(taps, taps)
    high_pass[width // 2, width // 2] += 1
    return float(np.sqrt(np.square(high_pass).sum()))
