"""A generated face patch composited into a plate frame, only where its matte reaches: every
other pixel of the frame stays bit-identical to the source, NaN and inf included."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from dubplate.core.composite.match import (
    AGREEMENT_BLUR_SIGMA,
    GRAIN_BLUR_SIGMA,
    GrainNoise,
    add_grain,
    grain_sigma,
    transfer_detail,
)
from dubplate.core.errors import DubplateError
from dubplate.core.media.plate import PLATE_DTYPES, as_float32, to_plate_values, value_scale

EMPTY_REGION = (0, 0, 0, 0)
REGION_PAD_PX = 2


@dataclass
class Composite:
    """The frame with the patch in, the patch alone as a layer, and where it went."""

    comp: np.ndarray  # (H, W, C) the frame with the patch in: the source's dtype and channels
    # (y1 - y0, x1 - x0, 4) float32 premultiplied RGBA in patch values over `box`: kept to the
    # box because a whole 4K float layer costs more to make than the patch itself.
    face: np.ndarray
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of `face` in the frame
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 of the pixels the matte touches

    def face_layer(self, dtype: type = np.float32) -> np.ndarray:
        """(H, W, 4) the face layer over the whole frame: zero outside the box."""
        layer = np.zeros((*self.comp.shape[:2], 4), dtype)
        x0, y0, x1, y1 = self.box
        layer[y0:y1, x0:x1] = self.face
        return layer


def composite_frame(
    source: np.ndarray,
    patch: np.ndarray,
    matte: np.ndarray,
    matrix: np.ndarray,
    grain: GrainNoise | None = None,
    plate_detail: np.ndarray | None = None,
    working_view: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Composite:
    """Blend `patch` (N, N, 3 float32 in the plate's values, 0-1 for integer plates) into
    `source` (H, W, 3 or 4) by `matte` (N, N); `matrix` (2x3) maps plate pixels to crop pixels.
    With `grain`, the patch gets the plate's grain under the matte first; with `plate_detail`
    (N, N, weights in [0, 1]), the plate's own fine detail replaces the patch's by its weight.
    With both and `working_view` (plate values, 0-1 for integer plates, as the patch's working
    space holds them: `ColourConfig.through_working`), what the plate holds beyond that space
    (a highlight over its white, a colour outside its gamut) is put back by the same weight:
    the patch, drawn in that space, cannot hold it, and where the patch matches the plate the
    plate's own value is the truth."""
    _check_inputs(source, patch, matte, matrix)
    comp = source.copy()
    box = _plate_box(matte, matrix, source.shape[:2])
    if box is None:
        return _untouched(comp)
    x0, y0, x1, y1 = box
    local = _from_region(matrix, x0, y0)
    size = (x1 - x0, y1 - y0)
    alpha = _warped(matte, local, size, cv2.INTER_LINEAR)
    shows = alpha > 0
    if not shows.any():
        return _untouched(comp)
    scale = value_scale(source.dtype)
    pixels = _warped(patch, local, size, cv2.INTER_CUBIC) * np.float32(scale)
    plate = as_float32(source[y0:y1, x0:x1, :3])
    if grain is not None:
        pixels = add_grain(pixels, grain_sigma(plate, alpha), grain.sample(box), alpha)
    if plate_detail is not None:
        weights = _warped(plate_detail, local, size, cv2.INTER_LINEAR)
        shown = plate if working_view is None else _in_view(plate, working_view, scale)
        pixels = transfer_detail(pixels, shown, weights, detail_sigma(matrix))
        if shown is not plate:
            beyond = plate - shown
            beyond[~np.isfinite(beyond)] = 0  # NaN/inf plate samples give none, as in detail
            pixels += beyond * weights[..., None]
    blended = _blend(plate, pixels, alpha)
    # Only pixels the matte reaches are assigned: the rest never round-trip through float.
    in_plate_values = to_plate_values(blended, source.dtype)
    np.copyto(comp[y0:y1, x0:x1, :3], in_plate_values, where=shows[..., None])
    face = np.empty((*alpha.shape, 4), np.float32)
    np.multiply(pixels, (alpha / np.float32(scale))[..., None], out=face[..., :3])
    face[~shows, :3] = 0  # premultiplied: nothing where the matte is 0, whatever the patch holds
    face[..., 3] = alpha
    return Composite(comp, face, box, _bounds(shows, x0, y0))


def detail_sigma(matrix: np.ndarray) -> float:
    """Plate pixels: the scale at which the patch was found to match the real crop (a blur of
    AGREEMENT_BLUR_SIGMA crop pixels, through the crop `matrix`, plate to crop), and at least the
    grain's. Finer than that, where they match, the plate's detail is the truth; the crop's
    Nyquist alone would leave out what the generator draws softer than its crop could hold."""
    crop_px_per_plate_px = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    return max(GRAIN_BLUR_SIGMA, AGREEMENT_BLUR_SIGMA / crop_px_per_plate_px)


def _in_view(
    plate: np.ndarray, working_view: Callable[[np.ndarray], np.ndarray], scale: float
) -> np.ndarray:
    """`plate` (plate units, float32) as `working_view` holds it, in plate units; `plate` itself
    when the view holds all of it."""
    values = plate / np.float32(scale) if scale != 1 else plate
    shown = working_view(values)
    if shown is values:
        return plate
    return shown * np.float32(scale) if scale != 1 else shown


def _untouched(comp: np.ndarray) -> Composite:
    return Composite(comp, np.zeros((0, 0, 4), np.float32), EMPTY_REGION, EMPTY_REGION)


def _check_inputs(
    source: np.ndarray, patch: np.ndarray, matte: np.ndarray, matrix: np.ndarray
) -> None:
    if source.dtype not in PLATE_DTYPES:
        raise DubplateError(f"composite: source dtype {source.dtype} is not uint8, uint16 or float")
    if source.ndim != 3 or source.shape[2] not in (3, 4):
        raise DubplateError(f"composite: source shape {source.shape} is not (H, W, 3 or 4)")
    if matte.ndim != 2 or patch.shape != (*matte.shape, 3):
        raise DubplateError(f"composite: patch {patch.shape} does not match matte {matte.shape}")
    if matrix.shape != (2, 3) or not np.isfinite(matrix).all():
        raise DubplateError(f"composite: matrix {matrix.tolist()} is not a finite 2x3 affine")
    if abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        raise DubplateError(f"composite: matrix {matrix.tolist()} is singular")


def _plate_box(
    matte: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """The frame pixels (x0, y0, x1, y1) the matte can reach, or None when it reaches none."""
    rows = np.flatnonzero(matte.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(matte.any(axis=0))
    # Linear interpolation reads one crop pixel around each sample: the matte reaches that far.
    xs = (cols[0] - 1, cols[-1] + 1)
    ys = (rows[0] - 1, rows[-1] + 1)
    corners = np.array([(x, y) for x in xs for y in ys], np.float64)
    inverse = cv2.invertAffineTransform(matrix.astype(np.float64))
    plate = corners @ inverse[:, :2].T + inverse[:, 2]
    height, width = frame_shape[:2]
    x0 = max(math.floor(plate[:, 0].min()) - REGION_PAD_PX, 0)
    y0 = max(math.floor(plate[:, 1].min()) - REGION_PAD_PX, 0)
    x1 = min(math.ceil(plate[:, 0].max()) + 1 + REGION_PAD_PX, width)
    y1 = min(math.ceil(plate[:, 1].max()) + 1 + REGION_PAD_PX, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _from_region(matrix: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The plate-to-crop affine for pixel coordinates counted from the region's corner."""
    local = matrix.astype(np.float64)
    local[:, 2] += matrix[:, :2] @ (x0, y0)
    return local


def _warped(
    image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interpolation: int
) -> np.ndarray:
    return cv2.warpAffine(
        np.ascontiguousarray(image, np.float32),
        matrix,
        size,
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _blend(plate: np.ndarray, pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # A NaN/inf plate sample under the matte would poison the blend: it reads as 0, as in analysis.
    plate = np.where(np.isfinite(plate), plate, np.float32(0))
    weight = alpha[..., None]
    return plate * (1 - weight) + pixels * weight


def _bounds(shows: np.ndarray, x0: int, y0: int) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(shows.any(axis=1))
    cols = np.flatnonzero(shows.any(axis=0))
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
