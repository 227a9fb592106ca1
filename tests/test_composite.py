"""Compositing a generated face crop into a plate: matte, colour and grain matching, and a
frame that is bit-identical to the source wherever the matte does not reach."""

import cv2
import numpy as np
import pytest

from dubplate.core.composite.comp import EMPTY_REGION, Composite, composite_frame
from dubplate.core.composite.crop import CropTrack, cut_crop
from dubplate.core.composite.kept import KeptComps
from dubplate.core.composite.match import (
    GrainNoise,
    add_grain,
    detail_agreement,
    fresh_grain_share,
    grain_sigma,
    lip_shift,
    match_colour,
    motion_blurred,
    sharpened,
    transfer_detail,
)
from dubplate.core.composite.matte import grown_hull, lower_face_matte
from dubplate.core.errors import DubplateError
from dubplate.core.plate_check import PlateCheck

RNG = np.random.default_rng(5)
CROP = 64
# Plate to crop: a slight rotation and 1.6x scale taking plate (32, 26) to crop (32, 40).
MATRIX = np.array([[1.6, 0.2, -24.4], [-0.2, 1.6, 4.8]])


def ellipse(centre=(32, 40), radii=(12, 8), count=24):
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack(
        [centre[0] + radii[0] * np.cos(angles), centre[1] + radii[1] * np.sin(angles)], 1
    )


def face_matte():
    return lower_face_matte(ellipse(), CROP, dilate_px=2, feather_px=2)


def plate_frame(dtype=np.float16, channels=3):
    if dtype == np.uint8:
        frame = RNG.integers(0, 256, (48, 64, channels), dtype=np.uint8)
    else:
        frame = RNG.uniform(0, 2, (48, 64, channels)).astype(dtype)
    frame.flags.writeable = False  # as Plate.read gives it
    return frame


def bits(pixels):
    return pixels.view(np.uint16 if pixels.dtype == np.float16 else np.uint8)


def test_matte_is_solid_inside_and_exactly_zero_beyond_the_feather():
    matte = lower_face_matte(ellipse(centre=(48, 48)), 96, dilate_px=2, feather_px=2)
    assert matte.dtype == np.float32 and matte.shape == (96, 96)
    assert matte.min() == 0 and matte.max() == 1
    assert matte[48, 48] == 1
    undilated = lower_face_matte(ellipse(centre=(48, 48)), 96, dilate_px=0, feather_px=2)
    assert matte[48, 48 + 14] > 0.4 > undilated[48, 48 + 14]  # reaching past the hull's edge
    reach = 12 + 2 + 3 * 2 + 1  # radius, dilation, 3 sigma of feather, a pixel of rasterising
    assert not matte[:, : 48 - reach].any() and not matte[:, 48 + reach + 1 :].any()
    row = matte[48]
    assert np.all(np.diff(row[:49]) >= 0) and np.all(np.diff(row[48:]) <= 0)
    assert 0 < row[48 - 16] < 1  # the feather is soft, not a step


def test_grown_hull_reaches_the_dilation_past_the_hull_and_no_further():
    hull = grown_hull(ellipse(centre=(48, 48)), 96, dilate_px=0)
    grown = grown_hull(ellipse(centre=(48, 48)), 96, dilate_px=5)
    assert hull[48, 48] == grown[48, 48] == 255
    row_width = (hull[48] >= 128).sum(), (grown[48] >= 128).sum()
    assert row_width[1] - row_width[0] == 2 * 5
    assert (grown >= hull).all()


def test_matte_is_zero_along_the_crop_edge_even_when_the_hull_covers_it():
    corners = np.array([[-10, -10], [80, -10], [80, 80], [-10, 80]], np.float32)
    matte = lower_face_matte(corners, CROP, dilate_px=0, feather_px=1)
    edge = np.ones_like(matte, bool)
    edge[4:-4, 4:-4] = False
    assert not matte[edge].any()
    assert matte[CROP // 2, CROP // 2] == 1


def test_matte_needs_a_polygon():
    with pytest.raises(DubplateError, match=r"points must be \(P >= 3, 2\), got \(2, 2\)"):
        lower_face_matte(np.zeros((2, 2)), CROP, 2, 2)


def test_composite_leaves_every_pixel_outside_the_matte_bit_identical():
    patch = np.full((CROP, CROP, 3), 3.0, np.float32)  # the plate holds 0-2: every blend shows
    source = plate_frame(np.float16).copy()
    x0, y0, _, _ = composite_frame(source, patch, face_matte(), MATRIX).region
    # Damaged samples stay as they are: one in the patch's box where the matte does not reach.
    source[y0, x0] = np.nan
    source[45, 60, 1] = np.inf
    source.flags.writeable = False
    before = source.copy()
    result = composite_frame(source, patch, face_matte(), MATRIX)

    alpha = result.face_layer()[..., 3]
    outside = alpha == 0
    assert result.comp.dtype == np.float16 and result.comp.shape == source.shape
    np.testing.assert_array_equal(bits(result.comp)[outside], bits(source)[outside])
    assert alpha[y0, x0] == 0 and np.isnan(result.comp[y0, x0]).all()
    assert result.comp[45, 60, 1] == np.inf
    assert np.all(result.comp[alpha == 1] == 3.0)
    showing = alpha > 0.01
    assert showing.sum() > 100 and np.all(result.comp[showing] > source[showing])
    np.testing.assert_array_equal(bits(source), bits(before))


def test_region_bounds_every_changed_pixel_and_nothing_more():
    source = plate_frame(np.float16)
    result = composite_frame(source, np.zeros((CROP, CROP, 3), np.float32), face_matte(), MATRIX)
    x0, y0, x1, y1 = result.region
    rows, cols = np.nonzero((bits(result.comp) != bits(source)).any(axis=2))
    assert len(rows) and x0 <= cols.min() and cols.max() < x1 and y0 <= rows.min()
    assert rows.max() < y1
    alpha = result.face_layer()[..., 3]
    assert alpha[y0:y1, x0:x1].any(axis=0).all() and alpha[y0:y1, x0:x1].any(axis=1).all()
    alpha[y0:y1, x0:x1] = 0
    assert not alpha.any()


def test_face_layer_is_premultiplied_and_zero_outside_the_matte():
    ramp = np.linspace(0.2, 0.8, CROP, dtype=np.float32)
    rows, cols = np.meshgrid(ramp, ramp, indexing="ij")
    patch = np.stack([rows, cols, (rows + cols) / 2], axis=2)  # smooth: no bicubic overshoot
    result = composite_frame(plate_frame(np.float32), patch, face_matte(), MATRIX)
    face = result.face_layer()
    assert face.dtype == np.float32 and face.shape == (48, 64, 4)
    alpha = face[..., 3:]
    assert alpha.max() == 1 and np.all(face[..., :3] <= alpha * patch.max() + 1e-3)
    assert np.all(face[..., :3] >= alpha * patch.min() - 1e-3)
    assert not face[alpha[..., 0] == 0].any()


def test_uint8_plate_with_alpha_keeps_its_alpha_channel():
    source = plate_frame(np.uint8, channels=4)
    patch = np.full((CROP, CROP, 3), 0.5, np.float32)  # 0-1 patch values: 128 in the plate
    result = composite_frame(source, patch, face_matte(), MATRIX)
    alpha = result.face_layer()[..., 3]
    assert result.comp.dtype == np.uint8
    np.testing.assert_array_equal(result.comp[alpha == 0], source[alpha == 0])
    np.testing.assert_array_equal(result.comp[..., 3], source[..., 3])
    assert np.all(result.comp[alpha == 1][:, :3] == 128)


def test_matte_off_the_frame_changes_nothing():
    source = plate_frame(np.float16)
    off_frame = MATRIX + np.array([[0, 0, 500], [0, 0, 0]])
    result = composite_frame(source, np.zeros((CROP, CROP, 3), np.float32), face_matte(), off_frame)
    assert result.region == (0, 0, 0, 0)
    np.testing.assert_array_equal(bits(result.comp), bits(source))


def test_grain_is_added_only_under_the_matte_and_repeats_with_the_seed():
    source = plate_frame(np.float16)
    patch = np.full((CROP, CROP, 3), 1.0, np.float32)
    plain = composite_frame(source, patch, face_matte(), MATRIX)
    grainy = composite_frame(source, patch, face_matte(), MATRIX, GrainNoise(seed=1))
    again = composite_frame(source, patch, face_matte(), MATRIX, GrainNoise(seed=1))
    outside = grainy.face_layer()[..., 3] == 0
    np.testing.assert_array_equal(bits(grainy.comp)[outside], bits(source)[outside])
    np.testing.assert_array_equal(bits(grainy.comp), bits(again.comp))
    solid = grainy.face_layer()[..., 3] == 1
    assert np.all(plain.comp[solid] == 1) and grainy.comp[solid].std() > 0.2


def test_colour_match_removes_the_offset_measured_at_the_seam():
    matte = face_matte()
    real = RNG.uniform(0, 1, (CROP, CROP, 3)).astype(np.float32)
    offset = np.array([0.1, -0.2, 0.3], np.float32)
    generated = real + offset
    generated[matte >= 0.5] += 5  # the new mouth differs inside: it must not sway the shift
    matched = match_colour(generated, real, matte)
    ring = (matte > 0) & (matte < 0.5)
    np.testing.assert_allclose(matched[ring], real[ring], atol=1e-5)
    np.testing.assert_allclose(matched - generated, np.broadcast_to(-offset, real.shape), atol=1e-5)
    empty = match_colour(generated, real, np.zeros_like(matte))
    np.testing.assert_array_equal(empty, generated)


def test_grain_is_drawn_for_frames_numbered_below_zero():
    grain = GrainNoise()
    below, above = (grain.for_frame(n).sample((0, 0, 8, 8)) for n in (-2, 2))
    assert below.shape == (8, 8, 3) and not np.allclose(below, above)
    np.testing.assert_array_equal(below, grain.for_frame(-2).sample((0, 0, 8, 8)))


def test_fresh_grain_cut_from_the_field_is_new_each_frame_and_the_same_on_a_rerender():
    field = np.random.default_rng(8).standard_normal((120, 160, 3), dtype=np.float32)
    grain = GrainNoise(1.0, field)
    box = (30, 20, 130, 100)
    frames = [grain.for_frame(n).sample(box) for n in range(6)]
    np.testing.assert_array_equal(frames[3], grain.for_frame(3).sample(box))
    assert np.isin(frames[0], field).all()  # cut from the field, not drawn: no draw per frame
    still = field[20:100, 30:130]
    for first, second in zip(frames, [*frames[1:], still], strict=True):
        assert first.shape == (80, 100, 3)
        assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.05
        assert first.std() == pytest.approx(1.0, abs=0.05)


def test_colour_match_ignores_the_black_beyond_a_frame_that_cuts_the_chin():
    """The crop of a face at the frame's bottom edge is black below it; matched only where the
    crop is the frame's, the patch meets the plate at its level, not darkened."""
    plate = np.full((48, 64, 3), 0.5, np.float32)
    crops = CropTrack(corner=np.array([[10.0, 20.0]]), side=np.array([40.0]), size=CROP)
    real = cut_crop(plate, crops, 0)
    inside = crops.inside_frame(0, 64, 48)
    assert 0.2 < 1 - inside.mean() < 0.4  # plate rows 48-60 of the crop's 20-60
    np.testing.assert_allclose(real[inside], 0.5, atol=1e-5)
    assert real[~inside].min() < 0.1
    matte = face_matte()
    ring = (matte > 0) & (matte < 0.5)
    assert (ring & ~inside).any() and (ring & inside).any()
    generated = np.full_like(real, 0.6)
    np.testing.assert_allclose(match_colour(generated, real, matte, inside), 0.5, atol=1e-5)
    assert match_colour(generated, real, matte).mean() < 0.45
    # Shrunk (a 4K close-up), the crop is blurred before it is cut: the black reaches further in.
    plate = np.full((480, 640, 3), 0.5, np.float32)
    shrunk = CropTrack(corner=np.array([[100.0, 200.0]]), side=np.array([400.0]), size=CROP)
    real = cut_crop(plate, shrunk, 0)
    inside = shrunk.inside_frame(0, 640, 480)
    assert 0.1 < 1 - inside.mean() < 0.4
    np.testing.assert_allclose(real[inside], 0.5, atol=1e-4)


def test_add_grain_brings_a_clean_patch_to_the_plate_grain():
    ramp = np.linspace(0, 1, 128, dtype=np.float32)
    clean = np.repeat(np.add.outer(ramp, ramp)[..., None], 3, axis=2)
    target = np.array([0.02, 0.05, 0.1], np.float32)
    grainy = add_grain(clean, target, np.random.default_rng(3).standard_normal(clean.shape))
    np.testing.assert_allclose(grain_sigma(grainy, np.ones((128, 128))), target, rtol=0.1)
    assert np.abs((grainy - clean).mean(axis=(0, 1))).max() < 0.01
    already = add_grain(grainy, target / 4, np.random.default_rng(3).standard_normal(clean.shape))
    np.testing.assert_array_equal(already, grainy)  # never cleaner, never grainier than needed


def test_fresh_grain_share_tells_grain_drawn_each_frame_from_grain_that_stays():
    rng = np.random.default_rng(6)
    still = rng.normal(0, 0.05, (64, 64, 3))
    fresh = rng.normal(0, 0.05, (4, 64, 64, 3))
    weights = np.ones((4, 64, 64))
    assert fresh_grain_share(0.5 + fresh, weights) > 0.95
    assert fresh_grain_share(np.broadcast_to(0.5 + still, fresh.shape), weights) == 0
    mixed = 0.5 + np.sqrt(0.3) * fresh + np.sqrt(0.7) * still
    assert fresh_grain_share(mixed, weights) == pytest.approx(0.3, abs=0.05)


def test_patch_grain_changes_between_frames_only_as_much_as_the_plates():
    source = plate_frame(np.float16)
    patch = np.full((CROP, CROP, 3), 0.5, np.float32)
    field = np.random.default_rng(7).standard_normal((*source.shape[:2], 3), dtype=np.float32)

    def change(share: float) -> float:
        grain = GrainNoise(share, field)
        first, second = (
            composite_frame(source, patch, face_matte(), MATRIX, grain.for_frame(n)) for n in (1, 2)
        )
        solid = first.face_layer()[..., 3] == 1
        return float(np.abs(second.comp[solid] - first.comp[solid]).std())

    # Changes scale with sqrt(share): a compressed movie's 7% fresh grain flickers 0.26 as much.
    assert change(0.07) == pytest.approx(np.sqrt(0.07) * change(1.0), rel=0.15)
    assert change(0.0) == 0


def test_grain_sigma_ignores_nan_samples():
    noise = np.random.default_rng(4).normal(0, 0.1, (64, 64, 3)).astype(np.float32)
    weights = np.ones((64, 64))
    reference = grain_sigma(noise, weights)
    noise[30, 30] = np.nan
    np.testing.assert_allclose(grain_sigma(noise, weights), reference, rtol=0.05)


def _grating_kept_by_crop(period_px: float) -> float:
    """Share of a vertical grating's contrast that a crop shrinking the plate to 0.73 keeps, as
    the crop of an HD face at 256 px does."""
    x = np.arange(600)
    row = 0.5 + 0.4 * np.sin(2 * np.pi * x / period_px)
    plate = np.repeat(np.tile(row, (600, 1))[..., None], 3, axis=2).astype(np.float32)
    crops = CropTrack(corner=np.array([[100.3, 100.7]]), side=np.array([350.0]), size=256)
    inner = cut_crop(plate, crops, 0)[32:-32, 32:-32, 0]
    return float(inner.std() / plate[..., 0].std())


def test_crop_keeps_detail_its_grid_holds_and_damps_what_would_alias():
    # A 5-px grating is 3.7 crop px: the crop holds it. The old 0.5/scale blur kept 0.61 of it,
    # bilinear sampling 0.78.
    assert _grating_kept_by_crop(5.0) > 0.85
    # A 2.2-px grating is 1.6 crop px, past the crop's Nyquist: unblurred it would alias at 0.59.
    assert _grating_kept_by_crop(2.2) < 0.5


# Plate to crop at half size: a face crop coarser than the plate, as an HD face at 256 px.
HALF = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25]])


def detailed_plate():
    """(96, 96, 3) float32: smooth shading plus fine texture the half-size crop cannot hold."""
    ramp = np.linspace(0.3, 0.7, 96, dtype=np.float32)
    texture = np.random.default_rng(11).uniform(-0.08, 0.08, (96, 96, 3)).astype(np.float32)
    return (ramp[None, :, None] + texture).astype(np.float32)


def half_crop(plate):
    return cv2.resize(plate, (48, 48), interpolation=cv2.INTER_AREA)


def disc_matte():
    return lower_face_matte(ellipse((24, 24), (16, 16)), 48, dilate_px=0, feather_px=1)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_plate_detail_puts_back_the_fine_texture_a_coarser_crop_lost(dtype):
    plate = detailed_plate()
    real = half_crop(plate)  # a perfect generator: the real crop itself, 0-1 for either dtype
    if dtype == np.uint8:
        plate = np.rint(plate * 255).astype(np.uint8)
    soft = composite_frame(plate, real, disc_matte(), HALF)
    sharp = composite_frame(plate, real, disc_matte(), HALF, None, detail_agreement(real, real))
    inside = np.zeros((96, 96), bool)
    inside[36:60, 36:60] = True
    weights = inside.astype(np.float32)
    plate_f, soft_f, sharp_f = (a.astype(np.float32) for a in (plate, soft.comp, sharp.comp))
    texture = grain_sigma(plate_f, weights)
    assert (grain_sigma(soft_f, weights) < 0.6 * texture).all()
    np.testing.assert_allclose(grain_sigma(sharp_f, weights), texture, rtol=0.1)
    assert np.abs(sharp_f - plate_f)[inside].mean() < 0.3 * np.abs(soft_f - plate_f)[inside].mean()
    outside = sharp.face_layer()[..., 3] == 0
    np.testing.assert_array_equal(sharp.comp[outside], plate[outside])


def test_plate_detail_stays_out_where_the_patch_differs_from_the_plate():
    plate = detailed_plate()
    real = half_crop(plate)
    patch = real.copy()
    patch[16:32, 16:32] -= 0.3  # the dub opened the mouth here
    agreement = detail_agreement(patch, real)
    assert agreement[16:32, 16:32].max() == 0
    assert agreement[14, 24] < 0.1  # two pixels away: an edge that moved has two sides
    assert agreement[4:8, 4:8].min() > 0.99
    plain = composite_frame(plate, patch, disc_matte(), HALF)
    detailed = composite_frame(plate, patch, disc_matte(), HALF, None, agreement)
    mouth = (slice(38, 58), slice(38, 58))  # plate pixels well inside the changed square
    np.testing.assert_array_equal(detailed.comp[mouth], plain.comp[mouth])


def clip01(values):
    return np.clip(values, 0, 1)


def test_plate_values_beyond_the_working_space_come_back_where_the_patch_matches():
    plate = detailed_plate()
    plate[44:52, 44:52] = 3.0  # a specular highlight on the chin, over the working white
    real = half_crop(np.clip(plate, 0, 1))  # what the networks saw: clipped
    plate[48, 60] = np.nan
    patch = real.copy()
    patch[4:14, 18:30] -= 0.3  # the dub moved the mouth above the highlight
    agreement = detail_agreement(patch, real)
    clipped = composite_frame(plate, patch, disc_matte(), HALF, None, agreement)
    # The plate is in the working space: it holds 0-1.
    kept = composite_frame(plate, patch, disc_matte(), HALF, None, agreement, working_view=clip01)
    highlight = (slice(45, 51), slice(45, 51))
    assert clipped.comp[highlight].max() < 2  # the detail alone brings back some of it
    np.testing.assert_allclose(kept.comp[highlight], 3.0, rtol=0.02)
    assert kept.face_layer()[highlight][..., :3].min() > 2.9  # premultiplied, alpha 1 there
    moved = (slice(16, 22), slice(42, 54))  # plate pixels of the moved mouth: the patch's
    np.testing.assert_array_equal(kept.comp[moved], clipped.comp[moved])
    assert np.isfinite(kept.comp[kept.face_layer()[..., 3] > 0]).all()
    in_range = (slice(60, 70), slice(40, 56))  # below the highlight: nothing beyond the view
    np.testing.assert_array_equal(kept.comp[in_range], clipped.comp[in_range])
    outside = kept.face_layer()[..., 3] == 0
    np.testing.assert_array_equal(kept.comp[outside], plate[outside])


def test_plate_detail_ignores_nan_plate_samples():
    plate = detailed_plate()
    real = half_crop(plate)
    plate[48, 48] = np.nan
    comp = composite_frame(plate, real, disc_matte(), HALF, None, np.ones((48, 48), np.float32))
    shows = comp.face_layer()[..., 3] == 1
    assert np.isfinite(comp.comp[shows]).all()


def test_motion_blur_smears_the_drawn_region_along_the_mouths_motion_only():
    image = np.zeros((64, 64, 3), np.float32)
    image[32, 32] = 1.0  # a highlight on a generated lip
    image[8, 32] = 1.0  # one on the real skin above the hole, blurred by the camera already
    drawn = np.zeros((64, 64), bool)
    drawn[16:48, 16:48] = True
    smeared = motion_blurred(image, np.array([6.0, 0.0]), drawn)
    row = smeared[32, :, 0]
    assert row.sum() == pytest.approx(1.0, abs=1e-5)  # light is spread, not lost
    assert smeared[31, :, 0].max() < 1e-6 and smeared[33, :, 0].max() < 1e-6  # along x only
    spread = np.sqrt((row * (np.arange(64) - 32) ** 2).sum())
    assert spread == pytest.approx(6 / np.sqrt(12), rel=0.1)  # a 6-px box's deviation
    np.testing.assert_array_equal(smeared[:10], image[:10])  # the hole's edge fades in below
    assert motion_blurred(image, np.array([0.3, 0.2]), drawn) is image  # under half a pixel


def test_sharpening_lifts_the_drawn_regions_edges_and_leaves_the_rest():
    image = np.full((64, 64, 3), 0.3, np.float32)
    image[:, 32:] = 0.6
    image = cv2.GaussianBlur(image, (0, 0), 2.0)  # a soft lip edge across the whole crop
    drawn = np.zeros((64, 64), bool)
    drawn[16:48, 16:48] = True
    sharp = sharpened(image, 1.0, drawn)
    slope = lambda picture, row: np.abs(np.diff(picture[row, :, 0])).max()  # noqa: E731
    assert slope(sharp, 32) > 1.15 * slope(image, 32)  # the edge is steeper where drawn
    assert sharp[32, 24:30, 0].min() < image[32, 24:30, 0].min()  # an unsharp mask's undershoot
    np.testing.assert_array_equal(sharp[:6], image[:6])  # the hole's edge fades in below
    assert sharp.min() >= 0 and sharp.max() <= 1
    assert sharpened(image, 0.0, drawn) is image
    # A negative amount softens the drawn region the same way: at -1, to the sharpening's blur.
    soft = sharpened(image, -1.0, drawn)
    assert slope(soft, 32) < 0.9 * slope(image, 32)
    np.testing.assert_array_equal(soft[:6], image[:6])


def test_plate_detail_crossfades_the_two_grains_at_equal_power():
    # The patch's matched grain and the plate's are independent: a linear half-and-half mix of
    # the two would leave 0.71 of the grain in the ring where the patch starts to differ.
    rng = np.random.default_rng(4)
    patch = (0.5 + rng.normal(0, 0.05, (96, 96, 3))).astype(np.float32)
    plate = (0.5 + rng.normal(0, 0.05, (96, 96, 3))).astype(np.float32)
    halfway = transfer_detail(patch, plate, np.full((96, 96), 0.5, np.float32), 1.0)
    weights = np.ones((96, 96), np.float32)
    np.testing.assert_allclose(
        grain_sigma(halfway, weights), grain_sigma(plate, weights), rtol=0.05
    )
    untouched = transfer_detail(patch, plate, np.zeros((96, 96), np.float32), 1.0)
    np.testing.assert_array_equal(untouched, patch)


def _kept_chunk(work, frames):
    """Frame 7 comped inside (5, 4)-(15, 12), frame 8 passed through, kept as one chunk."""
    comp = frames[7].copy()
    comp[4:12, 5:15] = 60000
    kept = KeptComps(work, frames[7].shape[:2])
    kept.hold(7, Composite(comp, np.zeros((0, 0, 4), np.float32), EMPTY_REGION, (5, 4, 15, 12)))
    kept.hold(8, None)
    kept.keep([7, 8])
    return kept, comp


def test_a_kept_chunk_gives_back_its_comps_from_the_plates_frames(tmp_path):
    rng = np.random.default_rng(0)
    frames = {n: rng.integers(0, 1024, (20, 30, 3), dtype=np.uint16) for n in (7, 8)}
    kept, comp = _kept_chunk(tmp_path, frames)
    assert kept.kept_frames([[7, 8], [9, 10]]) == {7, 8}
    restored = dict(kept.restored([7, 8], frames))
    assert np.array_equal(restored[7], comp) and np.array_equal(restored[8], frames[8])
    kept.discard()
    assert kept.kept_frames([[7, 8]]) == set() and list(tmp_path.iterdir()) == []


def test_a_kept_chunk_a_lost_node_left_damaged_is_made_again(tmp_path):
    """Renamed but not written out (empty, or its data zeroed), or kept for frames of another
    size: not taken as kept."""
    frames = {n: np.zeros((20, 30, 3), np.uint16) for n in (7, 8)}
    kept, _ = _kept_chunk(tmp_path, frames)
    (path,) = kept.folder.iterdir()
    whole = path.read_bytes()
    assert KeptComps(tmp_path, (10, 30)).kept_frames([[7, 8]]) == set()  # region off the frame
    middle = len(whole) // 2
    path.write_bytes(whole[:middle] + bytes(64) + whole[middle + 64 :])
    assert kept.kept_frames([[7, 8]]) == set()
    path.write_bytes(b"")
    assert kept.kept_frames([[7, 8]]) == set()


def test_kept_pixels_of_another_sample_type_than_the_plate_decodes_to_are_refused(tmp_path):
    frames = {n: np.zeros((20, 30, 3), np.uint16) for n in (7, 8)}
    kept, _ = _kept_chunk(tmp_path, frames)
    eight_bit = {n: np.zeros((20, 30, 3), np.uint8) for n in (7, 8)}
    with pytest.raises(DubplateError, match=r"00000007-00000008\.npz: frame 7's kept pixels"):
        list(kept.restored([7, 8], eight_bit))


def test_the_lips_shift_is_what_the_plates_lips_differ_by_beyond_the_seam():
    """Another shot's lips (darker lipstick, the footage's) under a plate graded 0.05 brighter:
    the seam takes the grade, the lips' shift the rest; too few lip pixels say nothing."""
    size = 64
    matte = np.zeros((size, size), np.float32)
    matte[12:52, 12:52] = 0.25  # the seam ring
    matte[16:48, 16:48] = 1.0
    lips = np.zeros((size, size), bool)
    lips[28:36, 24:40] = True
    drawn = np.full((size, size, 3), (0.6, 0.45, 0.4), np.float32)
    drawn[lips] = (0.45, 0.15, 0.18)
    real = drawn + np.float32(0.05)
    real[lips] = np.array((0.62, 0.38, 0.36), np.float32) + np.float32(0.05)
    shift = lip_shift(drawn, real, lips, matte)
    np.testing.assert_allclose(shift, (0.17, 0.23, 0.18), atol=1e-5)
    seamed = match_colour(drawn, real, matte)
    np.testing.assert_allclose((seamed + lips[..., None] * shift)[lips], real[lips], atol=1e-5)
    few = np.zeros_like(lips)
    few[30, 30:40] = True
    assert lip_shift(drawn, real, few, matte) is None
    # A crop cut by the frame's edge is black beyond it: only what is inside counts.
    cut, inside = real.copy(), np.ones_like(lips)
    cut[48:], inside[48:] = 0, False
    np.testing.assert_allclose(lip_shift(drawn, cut, lips, matte, inside), shift, atol=1e-5)
    assert not np.allclose(lip_shift(drawn, cut, lips, matte), shift, atol=0.01)


def test_a_plate_check_reads_back_its_lips_shift_exactly(tmp_path):
    """The shift read back from the cache is the one measured, to the bit: a dub made with
    either must be the same."""
    frames = np.arange(1001, 1004)
    flags = np.zeros(3, bool)
    light = np.zeros((3, 9, 3), np.float32)
    shift = np.array([[0.0123456789, -0.2, 1 / 3], [0.1, 2 / 3, -1e-7]], np.float32)
    PlateCheck(frames, flags, flags, flags, light, 0.4, shift).save(tmp_path)
    np.testing.assert_array_equal(PlateCheck.load(tmp_path, frames).lip_shift, shift)
