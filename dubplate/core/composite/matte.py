"""The soft lower-face matte, in crop pixels, that decides where the generated face shows."""

from __future__ import annotations

import math

import cv2
import numpy as np

from dubplate.core.errors import DubplateError

# Below it the feather reads as exactly 0 and above 1 - it as exactly 1, so the plate outside
# stays bit-identical and the patch inside shows pure.
SNAP = 1.0 / 1024
# Warping the patch reads crop pixels around each sample (2 bicubic, 4 Lanczos) and black beyond
# the crop, so the matte is zero that far in from the edge, then fades in over as many again.
EDGE_PX = 4
SUBPIXEL_BITS = 4  # hull corners at 1/16 px, so the matte moves smoothly with the face


def lower_face_matte(
    points: np.ndarray, size: int, dilate_px: float, feather_px: float
) -> np.ndarray:
    """(size, size) float32 in [0, 1]: the hull of `points` (P, 2 crop pixels), grown by
    `dilate_px` over the jaw line and feathered by a Gaussian of sigma `feather_px`."""
    matte = grown_hull(points, size, dilate_px).astype(np.float32) / 255
    if feather_px > 0:
        matte = _feathered(matte, feather_px)
    matte *= _edge_fade(size)
    matte[matte < SNAP] = 0
    matte[matte > 1 - SNAP] = 1
    return matte


def grown_hull(points: np.ndarray, size: int, dilate_px: float) -> np.ndarray:
    """(size, size) anti-aliased uint8 coverage (255 inside) of the convex hull of `points`
    (P, 2 crop pixels), grown by `dilate_px`."""
    points = np.ascontiguousarray(points, dtype=np.float32)  # OpenCV takes no strided points
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise DubplateError(f"lower-face hull: points must be (P >= 3, 2), got {points.shape}")
    coverage = _filled_hull(points, size)
    if dilate_px > 0:
        coverage = cv2.dilate(coverage, _disc(dilate_px))
    return coverage


def _filled_hull(points: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased uint8 coverage (255 inside) of the points' convex hull."""
    hull = cv2.convexHull(points)
    fixed = np.round(hull * (1 << SUBPIXEL_BITS)).astype(np.int32)
    coverage = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(coverage, fixed, 255, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    return coverage


def _disc(radius: float) -> np.ndarray:
    diameter = 2 * math.ceil(radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))


def _feathered(matte: np.ndarray, sigma: float) -> np.ndarray:
    # A kernel cut at 3 sigma: the feather ends at a finite distance instead of fading forever.
    width = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(matte, (width, width), sigma, borderType=cv2.BORDER_CONSTANT)


def _edge_fade(size: int) -> np.ndarray:
    """0 within EDGE_PX of the crop's edge, rising linearly to 1 over the next EDGE_PX."""
    index = np.arange(size, dtype=np.float32)
    to_edge = np.minimum(index, size - 1 - index)
    ramp = np.clip((to_edge - EDGE_PX + 1) / EDGE_PX, 0, 1)
    return np.minimum.outer(ramp, ramp)
