"""EXR plates: sequence notations, windows, layers, parts, sample types, headers, damage."""

import logging
import os
from fractions import Fraction

import numpy as np
import OpenImageIO as oiio
import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.media import open_plate
from dubplate.hosts import exr
from tests.fixtures import write_exr

RNG = np.random.default_rng(7)


def sequence(tmp_path, numbers, size=(8, 6), sample_type="half"):
    frames = {}
    for n in numbers:
        pixels = RNG.uniform(0, 4, (size[1], size[0], 3)).astype(np.float32)
        write_exr(tmp_path / f"shot.{n:04d}.exr", pixels, sample_type)
        frames[n] = pixels
    return frames


@pytest.mark.parametrize("notation", ["shot.####.exr", "shot.%04d.exr", "shot.@.exr", "shot.#.exr"])
def test_sequence_notations_find_every_frame_on_disk(tmp_path, notation):
    written = sequence(tmp_path, range(1001, 1004))
    plate = open_plate(tmp_path / notation)
    assert plate.select() == [1001, 1002, 1003]
    for number, pixels in written.items():
        np.testing.assert_array_equal(plate.read(number), pixels.astype(np.float16))


def test_missing_frames_are_listed(tmp_path):
    sequence(tmp_path, [1001, 1003, 1004, 1007])
    plate = open_plate(tmp_path / "shot.####.exr")
    with pytest.raises(DubplateError, match=r"3 frame\(s\) missing: 1002,1005-1006") as error:
        plate.select()
    assert "shot.####.exr" in str(error.value)
    assert plate.select((1003, 1004)) == [1003, 1004]
    with pytest.raises(DubplateError, match=r"--frames 1007-1009: .* has frames 1001-1007 only"):
        plate.select((1007, 1009))
    # A frame's time is its number's, gaps or not: the dub's sound of frame 1007 is 6 frames in.
    assert plate.time_of(1007) == 6 / plate.info.fps


def test_no_frames_matching_pattern(tmp_path):
    with pytest.raises(DubplateError, match="no frames on disk match"):
        open_plate(tmp_path / "shot.####.exr")
    for name in ("shot.0001.exr", "shot.0002.exr", "shot.3.exr"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DubplateError, match="shot.####.exr: frames on disk match it numbered with"):
        open_plate(tmp_path / "shot.####.exr")  # numbered with two paddings


def test_data_window_is_placed_in_display_window(tmp_path):
    block = RNG.uniform(0, 1, (5, 6, 3)).astype(np.float32)
    # Display window 16x12 at (2, 1); data window 6x5 at (-1, 4): partly outside on the left.
    path = write_exr(
        tmp_path / "w.exr", block, "float", data_origin=(-1, 4), display=(2, 1, 16, 12)
    )
    pixels = open_plate(path).read(1)
    assert pixels.shape == (12, 16, 3) and pixels.dtype == np.float32
    expected = np.zeros((12, 16, 3), np.float32)
    # Data columns -1..4 land on display columns 0..2 (display x 2..4); rows 4..8 on rows 3..7.
    expected[3:8, 0:3] = block[:, 3:6]
    np.testing.assert_array_equal(pixels, expected)


def test_display_window_samples_match_openimageio_crop(shared_data):
    paths = sorted((shared_data / "exr" / "DisplayWindow").glob("t*.exr"))
    assert len(paths) == 16, "the shared t01-t16"
    for path in paths:
        buf = oiio.ImageBuf(str(path))
        reference = oiio.ImageBufAlgo.crop(buf, buf.roi_full).get_pixels(oiio.HALF)
        pixels = open_plate(path).read(open_plate(path).select()[0])
        np.testing.assert_array_equal(pixels, reference[..., :3], err_msg=path.name)


def test_half_and_float_keep_their_exact_values(tmp_path):
    values = np.array([[[0.1, 1e-5, 65504.0]]], np.float32)
    half = open_plate(write_exr(tmp_path / "h.exr", values, "half")).read(1)
    full = open_plate(write_exr(tmp_path / "f.exr", values, "float")).read(1)
    assert half.dtype == np.float16 and full.dtype == np.float32
    np.testing.assert_array_equal(half, values.astype(np.float16))
    np.testing.assert_array_equal(full, values)


def test_layers_default_named_and_unknown(tmp_path):
    pixels = np.concatenate([np.full((4, 4, 4), 0.25), np.full((4, 4, 3), 0.75)], axis=2)
    names = ("R", "G", "B", "A", "diffuse.R", "diffuse.G", "diffuse.B")
    path = write_exr(tmp_path / "layers.exr", pixels.astype(np.float32), channels=names)
    default = open_plate(path)
    assert default.info.channels == ("R", "G", "B", "A")
    assert np.all(default.read(1) == 0.25)
    diffuse = open_plate(path, layer="diffuse")
    assert diffuse.info.channels == ("diffuse.R", "diffuse.G", "diffuse.B")
    assert np.all(diffuse.read(1) == 0.75)
    with pytest.raises(DubplateError, match=r"no layer 'specular' \(layers: RGBA, diffuse\)"):
        open_plate(path, layer="specular")


def test_multipart_file_parts_by_name(shared_data):
    path = shared_data / "exr" / "Beachball" / "multipart.0001.exr"
    right, left = open_plate(path), open_plate(path, layer="rgba_left")
    assert right.info.layer == "rgba_right" and left.info.layer == "rgba_left"
    assert right.read(1).shape == left.read(1).shape == (1556, 2048, 4)
    assert not np.array_equal(right.read(1), left.read(1))


def test_rate_timecode_and_chromaticities_from_header(tmp_path):
    attributes = {
        "FramesPerSecond": ("rational", (24000, 1001)),
        "smpte:TimeCode": (oiio.TypeTimeCode, (0x01020304, 0)),
        "chromaticities": (
            "float[8]",
            (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
        ),
    }
    path = write_exr(
        tmp_path / "s.1001.exr", np.zeros((4, 4, 3), np.float32), attributes=attributes
    )
    plate = open_plate(path)
    assert plate.info.fps == Fraction(24000, 1001)
    assert plate.info.timecode == "01:02:03:04"
    assert plate.info.colourspace == "ACEScg"
    assert plate.info.frames == (1001,)
    assert open_plate(path, colourspace="lin_rec709").info.colourspace == "Linear Rec.709 (sRGB)"


def test_unknown_colourspace_suggests_names(tmp_path):
    path = write_exr(tmp_path / "s.exr", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DubplateError, match="unknown colourspace 'ACEScgg'.*'ACEScg'"):
        open_plate(path, colourspace="ACEScgg")


def test_nan_and_inf_are_reported_and_kept_out_of_analysis(tmp_path, caplog):
    pixels = np.full((4, 4, 3), 0.18, np.float32)
    pixels[0, 0] = np.nan
    pixels[1, 1, 2] = np.inf
    plate = open_plate(write_exr(tmp_path / "bad.0007.exr", pixels, "float"))
    with caplog.at_level(logging.WARNING):
        raw = plate.read(7)
    assert plate.nonfinite == {7: 4}
    assert "frame 7 has 4 NaN/inf" in caplog.text
    assert np.isnan(raw[0, 0]).all()  # the source values stay what they are
    analysis = plate.analysis_rgb(raw)
    assert analysis[0, 0].tolist() == [0, 0, 0]
    assert analysis[2, 2].tolist() == [118, 118, 118]  # ACEScg 0.18 grey, sRGB-encoded


def test_frames_of_different_size_name_the_frame(tmp_path):
    sequence(tmp_path, [1, 2])
    write_exr(tmp_path / "shot.0003.exr", np.zeros((7, 9, 3), np.float32))
    plate = open_plate(tmp_path / "shot.####.exr")
    with pytest.raises(DubplateError, match=r"shot\.0003\.exr: frame 3 display window 9x7"):
        plate.select()


@pytest.mark.parametrize(
    ("pixels", "sample_type", "said"),
    [
        (np.zeros((6, 8, 4), np.float32), "half", "has 4 half channels where frame 1 has 3 half"),
        (np.zeros((6, 8, 3), np.float32), "float", "has 3 float channels where frame 1 has 3 half"),
    ],
)
def test_frames_of_other_channels_are_refused_before_any_work(tmp_path, pixels, sample_type, said):
    """The comp of such a frame could not be written as its source is: found when the frames
    are chosen, not at the end of a run."""
    sequence(tmp_path, [1, 2])
    write_exr(tmp_path / "shot.0003.exr", pixels, sample_type)
    plate = open_plate(tmp_path / "shot.####.exr")
    with pytest.raises(DubplateError, match=rf"shot\.0003\.exr: frame 3 {said}"):
        plate.select()


def test_cache_stays_within_its_budget(tmp_path):
    sequence(tmp_path, range(1, 11), size=(64, 64), sample_type="float")
    frame_bytes = 64 * 64 * 3 * 4
    plate = open_plate(tmp_path / "shot.####.exr", cache_bytes=3 * frame_bytes)
    first = plate.read(1).copy()
    for _ in plate.frames():
        assert plate.cache.bytes <= 3 * frame_bytes
    # Full, holding the last frames read, the first ones let go.
    assert plate.cache.bytes == 3 * frame_bytes
    assert plate.cache.get(10) is not None and plate.cache.get(1) is None
    np.testing.assert_array_equal(plate.read(1), first)


def damaged_files():
    from tests.fixtures import SHARED_DATA

    return sorted((SHARED_DATA / "exr" / "Damaged").glob("*"))


@pytest.mark.parametrize("path", damaged_files(), ids=lambda p: p.name[:40])
def test_damaged_files_give_an_error_naming_the_file(path):
    """Every fuzzed file either fails to read with an error naming it, or reads with its
    NaN/inf reported; the CLI test checks the second kind still ends in a clear error."""
    try:
        plate = open_plate(path)
        for number in plate.select():
            plate.read(number)
    except DubplateError as error:
        assert path.name in str(error)
        assert "\n" not in str(error)
    else:
        assert plate.nonfinite, f"{path.name} read without error and without NaN/inf"


def test_exr_frames_are_zipped_on_every_core():
    assert exr.OpenEXR.global_thread_count() == os.cpu_count()
