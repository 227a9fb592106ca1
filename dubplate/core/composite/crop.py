"""The stabilised face crop: a square around the lower face, from the rigid pose alone, so the
crop neither zooms when the jaw opens nor jumps with landmark noise.

The crop frames the lower face because that is all the generator's pixels are used for: framed on
the whole head, half of its resolution went to the forehead and the neck, and the mouth it drew
was upscaled twice over into an HD plate.

Coordinates: plate and crop positions are in pixel-edge units (pixel j spans j..j+1), as the
landmarks and the rasteriser use them; `matrices` are for OpenCV, whose pixel centres are
integers, and map plate pixels to crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from dubplate.core.media.plate import crop_padded, unit_float32
from dubplate.core.morph.fit import ActorFit
from dubplate.core.morph.model import ActorModel

# Crop side, of the neutral face's size: the lower face's widest hull spans about half of it, and
# the matte's dilation and feather about 0.15 either side.
CROP_SIDE = 1.0
SMOOTH_FRAMES = 1.5  # sigma of the temporal smoothing of crop centre and side


@dataclass
class CropTrack:
    """Per frame: the crop's top-left corner and side in plate pixels; one crop size."""

    corner: np.ndarray  # (F, 2)
    side: np.ndarray  # (F,)
    size: int

    @property
    def scale(self) -> np.ndarray:
        return self.size / self.side

    @property
    def face_px(self) -> float:
        """Crop pixels across the neutral face's size: the unit of sizes that follow the face."""
        return self.size / CROP_SIDE

    def matrix(self, row: int) -> np.ndarray:
        """2x3 OpenCV affine: plate pixel centres to crop pixel centres."""
        k = self.scale[row]
        x0, y0 = self.corner[row]
        return np.array([[k, 0, k * (0.5 - x0) - 0.5], [0, k, k * (0.5 - y0) - 0.5]])

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """(F, P, 3) plate-pixel points to crop pixels (edge units); z scales like x and y."""
        k = self.scale[:, None, None]
        out = points * k
        out[..., :2] = (points[..., :2] - self.corner[:, None]) * k
        return out

    def inside_frame(self, row: int, width: int, height: int) -> np.ndarray:
        """(size, size) bool: the crop pixels of a `width` x `height` frame that `cut_crop` made
        from the frame alone, not the black beyond it: as far in as its antialiasing blur
        (three sigmas) and bicubic taps (two plate pixels) reach."""
        margin = 2 + 3 * antialias_sigma(self.scale[row])
        along = (np.arange(self.size) + 0.5) / self.scale[row]
        x, y = along + self.corner[row, 0], along + self.corner[row, 1]
        rows = (y >= margin) & (y <= height - margin)
        columns = (x >= margin) & (x <= width - margin)
        return rows[:, None] & columns[None, :]

    def region(self, row: int, pad: int = 2) -> tuple[int, int, int, int]:
        """Integer plate-pixel box (x0, y0, x1, y1) that covers the crop."""
        x0, y0 = np.floor(self.corner[row]).astype(int) - pad
        x1, y1 = np.ceil(self.corner[row] + self.side[row]).astype(int) + pad
        return int(x0), int(y0), int(x1), int(y1)


def crop_track(model: ActorModel, fit: ActorFit, size: int) -> CropTrack:
    """Crops centred on the posed box of the neutral lower face, sized by the pose's scale,
    smoothed over time within each run of the fit (`ActorFit.spans`: not across a cut)."""
    lower = model.neutral[model.lower_vertices]
    centre_3d = (lower.min(axis=0) + lower.max(axis=0)) / 2
    centres = (fit.scale[:, None] * (fit.rotation @ centre_3d) + fit.translation)[:, :2]
    side = CROP_SIDE * model.face_size * fit.scale
    for start, stop in fit.spans():
        if stop - start > 1:
            span = slice(start, stop)
            centres[span] = gaussian_filter1d(centres[span], SMOOTH_FRAMES, axis=0, mode="nearest")
            side[span] = gaussian_filter1d(side[span], SMOOTH_FRAMES, mode="nearest")
    return CropTrack(corner=centres - side[:, None] / 2, side=side, size=size)


def cut_crop(pixels: np.ndarray, crops: CropTrack, row: int) -> np.ndarray:
    """(size, size, C) float32 crop of a frame in its own values; zero beyond the frame. Only the
    crop's box is converted to float, and it is blurred first when shrinking, so fine detail
    (grain) does not alias. Bicubic: bilinear sampling between pixels is a blur of its own,
    which the renderer learnt from its targets (a 5-px grating at a 0.73 shrink kept 0.78 of
    its contrast, 0.89 bicubic)."""
    x0, y0, x1, y1 = crops.region(row)
    box = crop_padded(pixels, (x0, y0, x1, y1))
    box = unit_float32(box)
    sigma = antialias_sigma(crops.scale[row])
    if sigma > 0:
        box = cv2.GaussianBlur(box, (0, 0), sigmaX=sigma)
    matrix = crops.matrix(row)
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], float)  # box origin, not the frame's
    size = crops.size
    return cv2.warpAffine(
        box, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT
    )


def antialias_sigma(scale: float) -> float:
    """Plate-pixel Gaussian blur before shrinking by `scale`. A plate pixel already holds about
    half a pixel of blur, so only what the coarser grid needs on top is added: the 0.5 / scale
    that ignores it left the mouth at 0.68 of the plate's sharpness through the crop round trip
    on man_map (0.78 with this; both with the bilinear resampling of the time)."""
    return 0.5 * float(np.sqrt(1 / scale**2 - 1)) if scale < 1 else 0.0
