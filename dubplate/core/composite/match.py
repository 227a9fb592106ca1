"""Matching a generated patch to the plate: colour at the seam and film grain."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from dubplate.core.composite.matte import SNAP

SEAM_ALPHA = 0.5  # the matte below it is the ring where the patch meets the plate
LEAST_LIP_PIXELS = 50  # of a crop, for the lips' colour to be measured on it
GRAIN_BLUR_SIGMA = 1.0
_GRAIN_BLUR_WIDTH = 2 * math.ceil(3 * GRAIN_BLUR_SIGMA) + 1


def match_colour(
    generated: np.ndarray, real: np.ndarray, matte: np.ndarray, inside: np.ndarray | None = None
) -> np.ndarray:
    """`generated` shifted per channel by its mean difference from `real` in the matte's seam
    ring, so the patch meets the plate without a visible step; only where `inside` (the real
    crop's pixels that are the frame's: a chin cut by the frame's edge has black beyond it)."""
    difference = _mean_difference(generated, real, _seam_ring(matte, inside))
    if difference is None:
        return generated.copy()
    return generated + difference.astype(generated.dtype)


def lip_shift(
    generated: np.ndarray,
    real: np.ndarray,
    lips: np.ndarray,
    matte: np.ndarray,
    inside: np.ndarray | None = None,
) -> np.ndarray | None:
    """(3,) how far the real lips' mean colour is from the drawn ones' beyond the seam's shift
    (`match_colour`, with the same `inside`), where drawn and real are one mouth (the plate's
    own face redrawn): what the plate's lips differ by from those of the footage the renderer
    learnt (another shot's light, make-up, grade), which the seam cannot say. None where too
    few lip pixels show."""
    if inside is not None:
        lips = lips & inside
    if lips.sum() < LEAST_LIP_PIXELS:
        return None
    lip = _mean_difference(generated, real, lips)
    seam = _mean_difference(generated, real, _seam_ring(matte, inside))
    if lip is None or seam is None:
        return None
    return (lip - seam).astype(np.float32)


def _seam_ring(matte: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """Where the patch meets the plate, within the frame (`inside`: beyond it the crop is black)."""
    ring = (matte > 0) & (matte < SEAM_ALPHA)
    return ring if inside is None else ring & inside


def _mean_difference(generated: np.ndarray, real: np.ndarray, where: np.ndarray):
    """(3,) mean of real less generated over `where`; None where no finite sample is there."""
    difference = real[where] - generated[where]
    difference = difference[np.isfinite(difference).all(axis=1)]  # NaN plate samples say nothing
    return difference.mean(axis=0) if len(difference) else None


def grain_sigma(pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(3,) per-channel std of the high frequencies (pixels minus a ~1 px blur), weighted by
    `weights` (H, W): how grainy a region looks. NaN/inf samples and their neighbours count 0."""
    pixels = np.asarray(pixels, dtype=np.float32)
    samples_finite = np.isfinite(pixels)
    if samples_finite.all():  # every integer plate, most float ones: nothing to leave out
        detail = _high_pass(pixels)
    else:
        finite = samples_finite.all(axis=2)
        detail = _high_pass(np.where(finite[..., None], pixels, np.float32(0)))
        # The blur spreads a bad sample over its kernel: every pixel it reaches is left out too.
        kernel = np.ones((_GRAIN_BLUR_WIDTH, _GRAIN_BLUR_WIDTH), np.uint8)
        untouched = cv2.erode(finite.astype(np.uint8), kernel, borderValue=1).astype(bool)
        weights = np.where(untouched, weights, 0)
    # Weighted sums as float32 matrix products: einsum with float64 weights cost 20 ms a
    # 500-px box, twice a frame.
    flat_weights = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)
    total = float(flat_weights.sum(dtype=np.float64))
    if total <= 0:
        return np.zeros(3, np.float32)
    flat = detail.reshape(-1, 3)
    mean = flat_weights @ flat / np.float32(total)
    # The second moment less the squared mean (the detail's mean is near 0, so nothing cancels):
    # subtracting the mean made a copy of the box that cost more than the rest.
    second_moment = flat_weights @ np.square(flat, out=flat) / np.float32(total)
    return np.sqrt(np.maximum(second_moment - np.square(mean), 0)).astype(np.float32)


def _high_pass(pixels: np.ndarray) -> np.ndarray:
    """`pixels` less their ~1 px blur, in a new array."""
    detail = _blurred(pixels)
    return np.subtract(pixels, detail, out=detail)


@dataclass(frozen=True, eq=False)  # eq would compare the field element-wise
class GrainNoise:
    """Unit Gaussian noise for the patches of one shot: `fresh_share` of its variance is new each
    frame and the rest stays where it lies in the plate, so the patch's grain changes from frame
    to frame as much as the plate's does. Film grain is all fresh; the grain of a compressed
    movie is mostly still, and fresh noise there reads as flicker.

    Both are cut from `field`, unit noise over the whole frame: the still grain where it lies,
    each frame's fresh grain at a shift of its own (seeded by `seed`, so a re-render is
    identical). A shifted window of white noise is as unlike the last frame's as a new draw,
    which cost a 1080p patch more than the rest of its grain. Without a field, the fresh grain
    is drawn anew and none stays."""

    fresh_share: float = 1.0
    field: np.ndarray | None = None  # (H, W, 3) float32 unit noise over the whole frame
    seed: int = 0

    def for_frame(self, number: int) -> GrainNoise:
        # A sequence may number its frames from below zero; the generator takes no negative seed.
        return dataclasses.replace(self, seed=number % 2**64)

    def sample(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """(y1 - y0, x1 - x0, 3) float32 unit noise over the plate box (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = box
        rng = np.random.default_rng(self.seed)
        if self.field is None:
            return rng.standard_normal((y1 - y0, x1 - x0, 3), dtype=np.float32)
        height, width = self.field.shape[:2]
        shift_y, shift_x = rng.integers(1, (height, width))  # never 0: that is the still grain
        rows = (np.arange(y0, y1) + shift_y) % height
        cols = (np.arange(x0, x1) + shift_x) % width
        fresh = self.field.take(rows, axis=0).take(cols, axis=1)
        if self.fresh_share >= 1:
            return fresh
        fresh *= np.float32(np.sqrt(self.fresh_share))
        return fresh + np.float32(np.sqrt(1 - self.fresh_share)) * self.field[y0:y1, x0:x1]


def fresh_grain_share(crops: np.ndarray, weights: np.ndarray) -> float:
    """Share of the grain's variance that is new from one frame to the next, in (F, N, N, 3)
    stabilised crops of consecutive frames weighted by (F, N, N) `weights` (where the face holds
    still relative to the crop): 1 for grain drawn anew each frame, 0 for grain that stays."""
    detail = np.stack([_high_pass(crop) for crop in crops.astype(np.float32)])
    pair_weights = (weights[1:] * weights[:-1])[..., None]
    change = (pair_weights * np.square(detail[1:] - detail[:-1])).sum()
    total = (pair_weights * (np.square(detail[1:]) + np.square(detail[:-1]))).sum()
    if total <= 0:
        return 1.0
    return float(np.clip(change / total, 0, 1))


def add_grain(
    patch: np.ndarray,
    target_sigma: np.ndarray,
    unit_noise: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """`patch` plus `unit_noise` (zero-mean, unit variance, the patch's shape) scaled to bring
    its `grain_sigma` up to `target_sigma`, so it looks neither cleaner nor softer than the
    plate. `weights` (H, W) say where the patch's own grain is measured (where it shows);
    everywhere by default."""
    if weights is None:
        weights = np.ones(patch.shape[:2], np.float32)
    own = grain_sigma(patch, weights)
    missing = np.sqrt(np.maximum(0, np.square(target_sigma) - np.square(own)))
    return patch + unit_noise * (missing / _white_noise_gain()).astype(np.float32)


def _blurred(pixels: np.ndarray) -> np.ndarray:
    return _gaussian(pixels, GRAIN_BLUR_SIGMA)


@functools.cache
def _white_noise_gain() -> float:
    """What `grain_sigma` reads for unit white noise: the blur removes part of it."""
    taps = cv2.getGaussianKernel(_GRAIN_BLUR_WIDTH, GRAIN_BLUR_SIGMA)[:, 0]
    blur = np.outer(taps, taps)
    high_pass = -blur
    high_pass[_GRAIN_BLUR_WIDTH // 2, _GRAIN_BLUR_WIDTH // 2] += 1
    return float(np.sqrt(np.square(high_pass).sum()))


# Luma difference (working display values) of the patch's and the real crop's coarse content at
# or below which the plate's own detail may stand in for the patch's, and at or above which it
# may not: a lip the dub moved differs by far more, skin the generator redrew by less.
DETAIL_AGREE = 0.015
DETAIL_DISAGREE = 0.04
AGREEMENT_BLUR_SIGMA = 1.0  # crop pixels: the coarse content compared
_DISAGREEMENT_REACH_PX = 2  # crop pixels: detail stays away this far from where they differ
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def detail_agreement(patch: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(N, N) float32 in [0, 1]: where the patch's coarse content matches the real crop's (both
    (N, N, 3) working values), so the plate's own fine detail can be put back there."""
    difference = np.abs(
        _coarse(np.nan_to_num(patch) @ _LUMA) - _coarse(np.nan_to_num(real) @ _LUMA)
    )
    reach = 2 * _DISAGREEMENT_REACH_PX + 1
    # Where they differ, the neighbourhood differs too: a moved edge has two sides.
    difference = cv2.dilate(difference, np.ones((reach, reach), np.uint8))
    ramp = (DETAIL_DISAGREE - difference) / (DETAIL_DISAGREE - DETAIL_AGREE)
    agreement = _coarse(np.clip(ramp, 0, 1).astype(np.float32))
    # The blur's far tail would put a trace of the old lip back where the dub moved it.
    agreement[agreement < SNAP] = 0
    agreement[agreement > 1 - SNAP] = 1
    return agreement


def transfer_detail(
    patch: np.ndarray, plate: np.ndarray, weights: np.ndarray, sigma: float
) -> np.ndarray:
    """`patch` (H, W, 3) with its detail finer than a Gaussian of `sigma` plate pixels swapped for
    the `plate`'s (H, W, 3, same values) by `weights` (H, W): a crop coarser than the plate
    cannot hold the plate's finest detail, and where the patch matches the plate, the plate's own
    detail and grain are the truth. The two are crossfaded at equal power: the patch's matched
    grain and the plate's are independent, and a linear mix would leave the ring between them
    cleaner (0.71 of the grain halfway). NaN/inf plate samples and the pixels their blur reaches
    give none."""
    if np.isfinite(plate).all():  # checked whole first: the per-pixel test costs 20x more
        clean = plate
    else:
        finite = np.isfinite(plate).all(axis=2)
        clean = np.where(finite[..., None], plate, np.float32(0))
        width = 2 * math.ceil(3 * sigma) + 1
        weights = weights * cv2.erode(finite.astype(np.uint8), np.ones((width, width), np.uint8))
    weights = weights.astype(np.float32)[..., None]
    # Shares whose squares sum to 1; in place, as the arithmetic costs as much as the blurs at 4K.
    plate_detail = clean - _gaussian(clean, sigma)
    plate_detail *= np.sqrt(weights)
    patch_detail = patch - _gaussian(patch, sigma)
    patch_detail *= 1 - np.sqrt(1 - weights)
    plate_detail -= patch_detail
    plate_detail += patch
    return plate_detail


def _coarse(image: np.ndarray) -> np.ndarray:
    return _gaussian(image, AGREEMENT_BLUR_SIGMA)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    width = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(image, (width, width), sigma, borderType=cv2.BORDER_REFLECT)


# Crop pixels: the scale of the detail the sharpening lifts, lip edges and teeth, coarser than
# grain (which `add_grain` matches) so the two do not compete.
SHARPEN_SIGMA = 1.5
_HOLE_EDGE_SIGMA = 2.0  # crop pixels: sharpening and smear fade in over the hole's edge


def sharpened(image: np.ndarray, amount: float, region: np.ndarray) -> np.ndarray:
    """`image` (N, N, 3, display values 0-1) with `amount` times its detail finer than
    SHARPEN_SIGMA added back inside `region` (N, N bool, what the generator drew): a generator
    trained on L1 and SSIM draws edges softer than the footage's, and the plate's own detail
    cannot stand in where the dub moved the mouth. A negative `amount` takes that detail away
    (-1: all of it), for a plate softer than what the generator learnt to draw."""
    if amount == 0:
        return image
    detail = image - _gaussian(image, SHARPEN_SIGMA)
    weights = _gaussian(region.astype(np.float32), _HOLE_EDGE_SIGMA)[..., None]
    return np.clip(image + np.float32(amount) * weights * detail, 0, 1)


def finished(
    image: np.ndarray, amount: float, streak: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """The drawn `image` as the footage would show it: `sharpened` by `amount`, then
    `motion_blurred` along `streak`."""
    return motion_blurred(sharpened(image, amount, region), streak, region)


SHORTEST_STREAK_PX = 0.5  # a shorter smear is lost in the crop's own resampling


def motion_blurred(image: np.ndarray, streak: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`image` (N, N, 3) smeared along `streak` (2,: x, y crop pixels, the distance the mouth
    moved while the shutter was open) inside `region` (N, N bool, what the generator drew): the
    plate's real pixels around it are blurred already, a generated mouth is not."""
    length = float(np.hypot(*streak))
    if not math.isfinite(length) or length < SHORTEST_STREAK_PX:
        return image
    smeared = cv2.filter2D(image, -1, _line_kernel(streak), borderType=cv2.BORDER_REFLECT)
    weights = _gaussian(region.astype(np.float32), _HOLE_EDGE_SIGMA)[..., None]
    return image + weights * (smeared - image)


def _line_kernel(streak: np.ndarray) -> np.ndarray:
    """A box filter along the segment `streak` centred on the pixel, anti-aliased: points at the
    middles of equal steps along it (end points would widen a short box), each splatted
    bilinearly, so a fractional length smears by just that much."""
    reach = math.ceil(float(np.abs(streak).max()) / 2) + 1
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1), np.float32)
    samples = max(4, math.ceil(8 * float(np.hypot(*streak))))
    for t in (np.arange(samples) + 0.5) / samples - 0.5:
        x, y = reach + t * streak[0], reach + t * streak[1]
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return kernel / kernel.sum()
