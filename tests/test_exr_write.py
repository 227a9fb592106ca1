"""Writing EXR frames back: windows, header attributes, exact half values, atomic failure."""

from fractions import Fraction

import numpy as np
import OpenEXR
import OpenImageIO as oiio
import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.media import open_plate
from tests.fixtures import numbered_frames, write_exr, write_movie

RNG = np.random.default_rng(11)
ATTRIBUTES = {
    "FramesPerSecond": ("rational", (24000, 1001)),
    "smpte:TimeCode": (oiio.TypeTimeCode, (0x01020304, 0)),
    "chromaticities": ("float[8]", (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)),
    "studio:show": ("string", "dubplate"),
}
DISPLAY = (0, 0, 16, 12)


def half_plate(tmp_path, channels=("R", "G", "B")):
    """A half plate whose 10x7 data window sits inside a 16x12 display window at (3, 2)."""
    block = RNG.uniform(0, 4, (7, 10, len(channels))).astype(np.float32)
    path = tmp_path / "src" / "shot.1001.exr"
    path.parent.mkdir()
    write_exr(path, block, "half", (3, 2), DISPLAY, channels, ATTRIBUTES)
    return open_plate(path)


def read_header(path):
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    inp.close()
    return spec


def test_written_frame_keeps_windows_header_and_exact_values(tmp_path):
    plate = half_plate(tmp_path)
    pixels = plate.read(1001).copy()
    pixels[2:9, 3:13] = RNG.uniform(-2, 60000, (7, 10, 3)).astype(np.float16)
    out = tmp_path / "out" / "shot.1001.exr"
    plate.write_frame(1001, pixels, out, ("R", "G", "B"))

    spec = read_header(out)
    assert (spec.x, spec.y, spec.width, spec.height) == (3, 2, 10, 7)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == DISPLAY
    assert spec.get_string_attribute("studio:show") == "dubplate"
    assert spec.get_string_attribute("compression") == "zip"
    written = open_plate(out)
    assert written.info.fps == Fraction(24000, 1001)
    assert written.info.timecode == "01:02:03:04"
    assert written.info.colourspace == "ACEScg"
    assert written.info.channels == ("R", "G", "B")
    assert written.read(1001).dtype == np.float16
    np.testing.assert_array_equal(written.read(1001).view(np.uint16), pixels.view(np.uint16))
    assert [p.name for p in out.parent.iterdir()] == ["shot.1001.exr"]  # no temporary left


def test_lossy_source_compression_is_written_lossless(tmp_path):
    block = RNG.uniform(0, 4, (16, 16, 3)).astype(np.float32)
    path = tmp_path / "shot.1001.exr"
    write_exr(path, block, "half", attributes={"compression": ("string", "dwaa")})
    plate = open_plate(path)
    pixels = plate.read(1001)
    out = tmp_path / "out" / "shot.1001.exr"
    plate.write_frame(1001, pixels, out, ("R", "G", "B"))
    assert read_header(out).get_string_attribute("compression") == "zip"
    np.testing.assert_array_equal(
        open_plate(out).read(1001).view(np.uint16), pixels.view(np.uint16)
    )


@pytest.mark.parametrize("order", ["INCREASING_Y", "RANDOM_Y"])
def test_a_tiled_source_in_any_line_order_is_written_as_scanlines(tmp_path, order):
    tiles = OpenEXR.TileDescription()
    tiles.xSize = tiles.ySize = 4
    header = {
        "type": OpenEXR.tiledimage,
        "tiles": tiles,
        "compression": OpenEXR.ZIP_COMPRESSION,
        "lineOrder": getattr(OpenEXR, order),
    }
    path = tmp_path / "shot.1001.exr"
    with OpenEXR.File(header, {"RGB": RNG.uniform(0, 4, (8, 8, 3)).astype(np.float16)}) as exr:
        exr.write(str(path))
    plate = open_plate(path)
    out = tmp_path / "out" / "shot.1001.exr"
    plate.write_frame(1001, plate.read(1001), out, ("R", "G", "B"))
    (part,) = OpenEXR.File(str(out), header_only=True).parts
    assert part.header["type"] == OpenEXR.scanlineimage
    np.testing.assert_array_equal(
        open_plate(out).read(1001).view(np.uint16), plate.read(1001).view(np.uint16)
    )


def test_pixels_outside_the_data_window_are_not_written(tmp_path):
    plate = half_plate(tmp_path)
    pixels = np.full((12, 16, 3), 0.5, np.float16)
    out = tmp_path / "shot.1001.exr"
    plate.write_frame(1001, pixels, out, ("R", "G", "B"))
    expected = np.zeros_like(pixels)
    expected[2:9, 3:13] = 0.5
    np.testing.assert_array_equal(open_plate(out).read(1001), expected)


def test_a_comp_keeps_the_overscan_and_a_layer_of_its_own_leaves_it_empty(tmp_path):
    """A 20x16 data window around a 16x12 display window: the pixels beyond it are read by no
    stage, and a comp written back holds the source's own there, exactly."""
    block = RNG.uniform(0, 4, (16, 20, 3)).astype(np.float32)
    path = tmp_path / "src" / "over.1001.exr"
    path.parent.mkdir()
    write_exr(path, block, "half", (-2, -2), DISPLAY)
    plate = open_plate(path)
    pixels = plate.read(1001).copy()
    pixels[4:8, 5:9] = 7.0  # the comp's change, inside the display window
    expected = block.astype(np.float16)
    expected[6:10, 7:11] = 7.0
    comp, layer = tmp_path / "comp.1001.exr", tmp_path / "layer.1001.exr"
    plate.write_frame(1001, pixels, comp, ("R", "G", "B"))
    plate.write_frame(1001, pixels, layer, ("R", "G", "B"), layer=True)
    spec = read_header(comp)
    assert (spec.x, spec.y, spec.width, spec.height) == (-2, -2, 20, 16)
    np.testing.assert_array_equal(data_window(comp).view(np.uint16), expected.view(np.uint16))
    cleared = expected.copy()
    cleared[:2] = cleared[-2:] = cleared[:, :2] = cleared[:, -2:] = 0
    np.testing.assert_array_equal(data_window(layer), cleared)


def test_a_comp_with_no_overscan_does_not_read_its_source_again(tmp_path, monkeypatch):
    """At 4K a frame's read costs as much as its comp: only overscan is worth one."""
    plate = half_plate(tmp_path)  # its data window inside the display window
    pixels = plate.read(1001)
    monkeypatch.setattr(plate, "_data_window", lambda number: pytest.fail("read again"))
    plate.write_frame(1001, pixels, tmp_path / "out.1001.exr", ("R", "G", "B"))


def data_window(path):
    inp = oiio.ImageInput.open(str(path))
    pixels = inp.read_image("half")
    inp.close()
    return pixels


def test_rgba_frame_is_written_with_its_alpha(tmp_path):
    plate = half_plate(tmp_path)
    pixels = RNG.uniform(0, 1, (12, 16, 4)).astype(np.float16)
    pixels[:2] = pixels[9:] = pixels[:, :3] = pixels[:, 13:] = 0
    out = tmp_path / "rgba.1001.exr"
    plate.write_frame(1001, pixels, out, ("R", "G", "B", "A"))
    written = open_plate(out)
    assert written.info.channels == ("R", "G", "B", "A")
    np.testing.assert_array_equal(written.read(1001).view(np.uint16), pixels.view(np.uint16))


def test_pixels_of_the_wrong_shape_name_the_frame(tmp_path):
    plate = half_plate(tmp_path)
    with pytest.raises(DubplateError, match=r"out\.exr: frame 1001 pixels \(12, 16, 3\)"):
        plate.write_frame(1001, np.zeros((12, 16, 3), np.float16), tmp_path / "out.exr", ("R",))


def test_channel_names_longer_than_a_letter_are_refused(tmp_path):
    plate = half_plate(tmp_path)
    pixels = np.zeros((12, 16, 2), np.float16)
    with pytest.raises(DubplateError, match=r"out\.exr: channels \('Z', 'depth'\) must be one"):
        plate.write_frame(1001, pixels, tmp_path / "out.exr", ("Z", "depth"))


REAL_EXR_FILE = OpenEXR.File


class HalfWayFailure:
    """An OpenEXR file that leaves a partial file behind and then fails, as on a full disk;
    files opened by name (to read a header) are the real thing."""

    def __new__(cls, *args, **kwargs):
        if isinstance(args[0], str):
            return REAL_EXR_FILE(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, header, planes):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, path):
        with open(path, "wb") as file:
            file.write(b"\x76\x2f\x31\x01 partial")
        raise RuntimeError("Error writing pixel data: No space left on device")


def test_failed_write_names_the_path_and_leaves_no_file(tmp_path, monkeypatch):
    plate = half_plate(tmp_path)
    pixels = plate.read(1001)
    out = tmp_path / "out" / "shot.1001.exr"
    monkeypatch.setattr(OpenEXR, "File", HalfWayFailure)
    with pytest.raises(DubplateError, match=r"shot\.1001\.exr: cannot write EXR \(.*No space left"):
        plate.write_frame(1001, pixels, out, ("R", "G", "B"))
    assert list(out.parent.iterdir()) == []


def test_unwritable_destination_names_the_path(tmp_path):
    plate = half_plate(tmp_path)
    (tmp_path / "taken").write_text("a file, not a directory")
    out = tmp_path / "taken" / "shot.1001.exr"
    with pytest.raises(DubplateError, match=r"taken/shot\.1001\.exr: cannot write EXR"):
        plate.write_frame(1001, plate.read(1001), out, ("R", "G", "B"))


def test_movie_plates_cannot_write_frames(tmp_path):
    movie = open_plate(write_movie(tmp_path / "clip.mp4", numbered_frames(2)))
    assert movie.frame_suffix is None
    assert half_plate(tmp_path).frame_suffix == ".exr"
    with pytest.raises(DubplateError, match=r"clip\.mp4: movie plates cannot be written frame by"):
        movie.write_frame(0, movie.read(0), tmp_path / "f.exr", ("R", "G", "B"))


def test_a_part_of_a_multipart_source_is_written_as_one_part_with_its_own_header(
    shared_data, tmp_path
):
    plate = open_plate(shared_data / "exr" / "Beachball" / "multipart.0001.exr", layer="rgba_left")
    pixels = plate.read(1)
    out = tmp_path / "out" / "left.0001.exr"
    plate.write_frame(1, pixels, out, ("R", "G", "B", "A"))
    written = REAL_EXR_FILE(str(out), header_only=True)
    assert len(written.parts) == 1
    header = written.parts[0].header
    assert not {"name", "view", "chunkCount"} & header.keys()
    assert [tuple(corner) for corner in header["dataWindow"]] == [(688, 245), (1564, 1120)]
    assert header["compression"] == OpenEXR.ZIPS_COMPRESSION
    np.testing.assert_array_equal(open_plate(out).read(1), pixels)


def test_a_part_of_half_colour_and_float_alpha_keeps_each_channels_type(tmp_path):
    rgb = RNG.uniform(0, 4, (6, 8, 3)).astype(np.float16)
    alpha = RNG.uniform(0, 1, (6, 8)).astype(np.float32)  # not a half value
    path = tmp_path / "shot.1001.exr"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": rgb, "A": alpha}) as exr:
        exr.write(str(path))
    plate = open_plate(path)
    out = tmp_path / "out" / "shot.1001.exr"
    plate.write_frame(1001, plate.read(1001), out, ("R", "G", "B", "A"))
    planes = OpenEXR.File(str(out), separate_channels=True).parts[0].channels
    assert {name: plane.pixels.dtype for name, plane in planes.items()} == {
        "R": np.float16,
        "G": np.float16,
        "B": np.float16,
        "A": np.float32,
    }
    np.testing.assert_array_equal(planes["G"].pixels.view(np.uint16), rgb[..., 1].view(np.uint16))
    np.testing.assert_array_equal(planes["A"].pixels, alpha)
