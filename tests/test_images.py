"""DPX, TIFF and PNG plates: native sample types in, the source's header and bits out."""

import logging
import subprocess
import sys
from fractions import Fraction

import numpy as np
import OpenImageIO as oiio
import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.media import open_plate
from tests.fixtures import write_exr

RNG = np.random.default_rng(11)


def write_image(path, pixels, bits=None, attributes=None):
    """Write `pixels` (uint8, uint16 or float32, H x W x C) as OpenImageIO would; a 10-bit DPX
    is given its 10-bit values widened to 16 bits, as OpenImageIO reads them back."""
    height, width, count = pixels.shape
    sample_type = "float" if pixels.dtype == np.float32 else str(pixels.dtype)
    spec = oiio.ImageSpec(width, height, count, sample_type)
    spec.attribute("oiio:UnassociatedAlpha", 1)  # the values as given, alpha or not
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    for name, value in (attributes or {}).items():
        spec.attribute(name, value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(pixels), out.geterror()
    out.close()
    return path


def ten_bit(height=6, width=8, channels=3):
    """uint16 samples of 10-bit values, widened by bit replication as OpenImageIO reads them."""
    values = RNG.integers(0, 1024, (height, width, channels)).astype(np.uint16)
    return (values << 6) | (values >> 4)


def header(path):
    """The file's spec and its values as stored."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), config)
    spec = oiio.ImageSpec(inp.spec())
    pixels = inp.read_image(0, 0, 0, spec.nchannels, spec.format)
    inp.close()
    return spec, pixels


def dpx_sequence(tmp_path, numbers=range(1001, 1004)):
    frames = {}
    for number in numbers:
        frames[number] = ten_bit()
        write_image(
            tmp_path / f"shot.{number}.dpx",
            frames[number],
            bits=10,
            attributes={"dpx:FrameRate": 25.0, "dpx:Transfer": "Printing density"},
        )
    return frames


def test_a_10_bit_dpx_sequence_reads_in_its_own_values_rate_and_depth(tmp_path, caplog):
    frames = dpx_sequence(tmp_path)
    with caplog.at_level(logging.INFO):
        plate = open_plate(tmp_path / "shot.####.dpx")
    assert plate.info.kind == "dpx" and plate.select() == [1001, 1002, 1003]
    assert plate.info.fps == Fraction(25) and plate.info.channels == ("R", "G", "B")
    for number, pixels in frames.items():
        read = plate.read(number)
        assert read.dtype == np.uint16
        np.testing.assert_array_equal(read, pixels)
    # No colourspace in a DPX header: the one assumed is said, with the transfer it states.
    assert "10-bit" in caplog.text
    assert "transfer 'Printing density'" in caplog.text and "set --colourspace" in caplog.text


def test_a_png_sequence_takes_the_colourspace_it_states(tmp_path, caplog):
    write_image(tmp_path / "shot.0001.png", RNG.integers(0, 256, (6, 8, 3)).astype(np.uint8))
    with caplog.at_level(logging.INFO):
        plate = open_plate(tmp_path / "shot.####.png")
    assert plate.info.colourspace == "sRGB Encoded Rec.709 (sRGB)"
    assert "(the file's)" in caplog.text
    assert plate.read(1).dtype == np.uint8
    assert plate.analysis_rgb(plate.read(1)).dtype == np.uint8


def test_frames_shown_turned_are_said_to_be_read_as_stored(tmp_path, caplog):
    pixels = RNG.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    write_image(tmp_path / "shot.0001.tif", pixels, attributes={"Orientation": 6})
    with caplog.at_level(logging.WARNING):
        plate = open_plate(tmp_path / "shot.####.tif")
    assert "shot.####.tif: its header says it is shown turned or mirrored (Orientation 6)" in (
        caplog.text
    )
    np.testing.assert_array_equal(plate.read(1), pixels)  # as stored


@pytest.mark.parametrize(
    ("name", "pixels", "bits", "attribute"),
    [
        ("shot.1001.dpx", ten_bit(), 10, ("dpx:Transfer", "Printing density")),
        ("shot.1001.tif", RNG.integers(0, 65536, (6, 8, 3)).astype(np.uint16), 16, None),
        ("shot.1001.png", RNG.integers(0, 256, (6, 8, 4)).astype(np.uint8), None, None),
    ],
)
def test_a_written_frame_keeps_the_sources_bits_header_and_values(
    tmp_path, name, pixels, bits, attribute
):
    attributes = dict([attribute]) if attribute else {}
    source = write_image(tmp_path / name, pixels, bits, attributes)
    plate = open_plate(source)
    out = tmp_path / "out" / name
    channels = plate.info.channels
    plate.write_frame(1001, plate.read(1001), out, channels)
    spec, written = header(out)
    np.testing.assert_array_equal(written, pixels)
    assert spec.get_int_attribute("oiio:BitsPerSample") == (bits or 0)
    for key, value in attributes.items():
        assert spec.get_string_attribute(key) == value
    assert [p.name for p in out.parent.iterdir()] == [name]  # no temporary left beside it


@pytest.mark.parametrize("associated", [True, False])
def test_a_tiffs_alpha_is_written_back_as_the_source_holds_it(tmp_path, associated):
    """Premultiplied (associated) alpha written back as straight would be premultiplied a
    second time by every reader: the comp keeps the source's kind, and its values."""
    pixels = RNG.integers(0, 256, (6, 8, 4)).astype(np.uint8)
    pixels[..., :3] = np.minimum(pixels[..., :3], pixels[..., 3:])
    kind = {"oiio:UnassociatedAlpha": int(not associated)}
    plate = open_plate(write_image(tmp_path / "shot.1001.tif", pixels, attributes=kind))
    out = tmp_path / "out" / "shot.1001.tif"
    plate.write_frame(1001, plate.read(1001), out, plate.info.channels)
    spec, written = header(out)
    assert spec.get_int_attribute("oiio:UnassociatedAlpha") == int(not associated)
    np.testing.assert_array_equal(written, pixels)


def test_a_face_plate_on_a_10_bit_dpx_gets_its_alpha_and_the_sources_depth(tmp_path):
    source = write_image(tmp_path / "shot.1001.dpx", ten_bit(), bits=10)
    plate = open_plate(source)
    face = np.zeros((6, 8, 4), np.float32)
    face[2:4, 3:6] = (0.2, 0.6, 0.15, 0.6)  # premultiplied, plate units 0-1
    out = tmp_path / "face" / "shot_face.1001.dpx"
    plate.write_frame(1001, face, out, ("R", "G", "B", "A"), layer=True)
    spec, written = header(out)
    assert spec.nchannels == 4 and spec.alpha_channel == 3
    assert spec.get_int_attribute("oiio:BitsPerSample") == 10
    # Rounded to the nearest 10-bit value: 0.2 is 204.6 steps, so 205, widened to 16 bits as
    # OpenImageIO reads it (its writer alone would truncate to 204).
    np.testing.assert_allclose(written / 65535, face, atol=0.5 / 1023)
    assert written[3, 4, 0] == (205 << 6 | 205 >> 4)
    assert not written[face[..., 3] == 0].any()
    # The header names the file itself, not the temporary file it was written as.
    assert out.read_bytes()[36:136].rstrip(b"\0") == b"shot_face.1001.dpx"


def test_samples_converted_within_a_region_are_those_converted_everywhere(tmp_path):
    """A 10-bit DPX's comp and face plate, written with the region the dub changed: every
    sample as a whole-frame conversion puts it, the patch rounded onto the file's grid."""
    plate = open_plate(write_image(tmp_path / "shot.1001.dpx", ten_bit(), bits=10))
    comp = plate.read(1001).copy()
    comp[2:4, 3:6] = 13107  # 0.2 of 16 bits: between two 10-bit steps
    face = np.zeros((6, 8, 4), np.float32)
    face[2:4, 3:6] = (0.2, 0.6, 0.15, 0.6)
    region = (3, 2, 6, 4)
    for pixels, layer in ((comp, False), (face, True)):
        channels = ("R", "G", "B", "A")[: pixels.shape[2]]
        whole, within = tmp_path / "whole" / "f.1001.dpx", tmp_path / "within" / "f.1001.dpx"
        plate.write_frame(1001, pixels, whole, channels, layer=layer)
        plate.write_frame(1001, pixels, within, channels, layer=layer, region=region)
        np.testing.assert_array_equal(header(within)[1], header(whole)[1])
        assert header(within)[1][3, 4, 0] == (205 << 6 | 205 >> 4)


def test_a_face_plate_on_a_float_tiff_is_marked_premultiplied(tmp_path):
    """In the source's own sample type, as a float TIFF's face plate is, it was marked as
    straight alpha (a reader would multiply it in again)."""
    plate = open_plate(write_image(tmp_path / "shot.1001.tif", np.full((6, 8, 3), 0.5, np.float32)))
    face = np.zeros((6, 8, 4), np.float32)
    face[2:4, 3:6] = (0.2, 0.3, 0.1, 0.5)
    out = tmp_path / "face" / "shot_face.1001.tif"
    plate.write_frame(1001, face, out, ("R", "G", "B", "A"), layer=True)
    inp = oiio.ImageInput.open(str(out))
    associated = inp.spec().get_int_attribute("oiio:UnassociatedAlpha", 0) == 0
    written = inp.read_image("float")
    inp.close()
    assert associated
    np.testing.assert_array_equal(written, face)


def test_frames_of_another_size_or_channels_name_the_file_and_frame(tmp_path):
    write_image(tmp_path / "shot.0001.tif", RNG.integers(0, 65536, (6, 8, 3)).astype(np.uint16))
    write_image(tmp_path / "shot.0002.tif", RNG.integers(0, 65536, (6, 9, 3)).astype(np.uint16))
    plate = open_plate(tmp_path / "shot.####.tif")
    with pytest.raises(DubplateError, match=r"shot\.0002\.tif: frame 2 size \(9, 6\) differs"):
        plate.select()
    write_image(tmp_path / "grey.0001.tif", np.zeros((6, 8, 1), np.uint16))
    with pytest.raises(DubplateError, match=r"grey\.0001\.tif: frame 1 channels \('Y',\)"):
        open_plate(tmp_path / "grey.####.tif")


def test_what_an_image_sequence_cannot_be_is_refused_by_name(tmp_path):
    source = write_image(tmp_path / "shot.1001.dpx", ten_bit(), bits=10)
    with pytest.raises(DubplateError, match=r"shot\.1001\.dpx: --layer applies to EXR"):
        open_plate(source, layer="beauty")
    # A JPEG written again would change every pixel outside the matte: no reader takes it.
    write_image(tmp_path / "shot.1001.jpg", np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(DubplateError, match=r"shot\.1001\.jpg: no plate reader recognises"):
        open_plate(tmp_path / "shot.1001.jpg")
    spec = oiio.ImageSpec(8, 6, 3, "uint16")
    spec.x, spec.full_width = 2, 12  # a TIFF may carry an offset; nothing here would place it
    out = oiio.ImageOutput.create(str(tmp_path / "offset.1001.tif"))
    assert out.open(str(tmp_path / "offset.1001.tif"), spec)
    assert out.write_image(np.zeros((6, 8, 3), np.uint16))
    out.close()
    with pytest.raises(DubplateError, match=r"offset\.1001\.tif: frame 1001 data window"):
        open_plate(tmp_path / "offset.1001.tif")
    (tmp_path / "broken.1001.dpx").write_bytes(b"SDPX" + bytes(40))
    with pytest.raises(DubplateError, match=r"broken\.1001\.dpx: not a readable image"):
        open_plate(tmp_path / "broken.1001.dpx")


# Writes a frame under a file size limit, which fails a write as a disk filling up would.
_FULL_DISK_WRITE = """
import resource, signal, sys
from pathlib import Path
from dubplate.core.errors import DubplateError
from dubplate.core.media import open_plate

plate = open_plate(sys.argv[1])
pixels = plate.read(1001)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails, not the process
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.RLIM_INFINITY))
try:
    plate.write_frame(1001, pixels, Path(sys.argv[2]), plate.info.channels)
except DubplateError as error:
    print(error)
"""


@pytest.mark.parametrize(
    "name", ["shot.1001.dpx", "shot.1001.tif", "shot.1001.png", "shot.1001.exr"]
)
def test_a_frame_that_fills_the_disk_half_way_is_refused_and_leaves_nothing(tmp_path, name):
    """DPX's writer reports a full disk only when the file is closed: a write that looked fine
    until then would be renamed into place as a finished frame."""
    noise = RNG.integers(0, 65536, (256, 256, 3)).astype(np.uint16)  # compresses poorly
    if name.endswith(".exr"):
        source = write_exr(tmp_path / name, noise.astype(np.float32) / 65535)
    else:
        source = write_image(tmp_path / name, noise, bits=10 if name.endswith(".dpx") else None)
    out = tmp_path / "out" / name
    out.parent.mkdir()
    limit = source.stat().st_size // 2
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_WRITE, str(source), str(out), str(limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith(f"{out}: cannot write"), done.stdout + done.stderr
    assert not list(out.parent.iterdir())  # neither the frame nor its temporary
