"""DPX, TIFF and PNG plates: frame sequences of integer (or float TIFF) images.

Frames are read in the file's own sample type (a 10- or 12-bit DPX as uint16, the way OpenImageIO
widens it), and written back through OpenImageIO with the source frame's header: its bit depth,
packing, compression, timecode and attributes. So the pixels outside the matte come back bit for
bit. JPEG sequences are not read: writing them again would change every pixel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from dubplate.core.errors import DubplateError
from dubplate.core.files import write_image
from dubplate.core.media.plate import DEFAULT_CACHE_BYTES, PlateInfo, to_plate_values, value_scale
from dubplate.hosts.sequence import FrameFiles, header_rate, open_image

log = logging.getLogger(__name__)

# What each file suffix read is, as a manifest names the kind of plate.
KINDS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff", ".png": "png"}
# Sample types as OpenImageIO reads them, as numpy holds them.
_DTYPES = {
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "half": np.dtype(np.float16),
    "float": np.dtype(np.float32),
}
# Attributes that describe the source file's channels: a face plate with alpha has other ones.
_CHANNEL_ATTRIBUTES = ("dpx:ImageDescriptor", "tiff:ExtraSamples")
# OpenImageIO's names for what a file states (PNG: sRGB; float TIFF: linear) as the config's
# interop names; a name the config knows itself is taken as it is.
_STATED_COLOURSPACES = {"srgb": "srgb_tx", "linear": "lin_srgb"}
# Colour and alpha as stored: OpenImageIO would otherwise multiply a PNG's straight alpha in on
# reading and divide it out on writing, which does not give the stored values back.
_AS_STORED = "oiio:UnassociatedAlpha"


@dataclass(frozen=True)
class ImageHeader:
    path: Path
    spec: oiio.ImageSpec
    size: tuple[int, int]  # width, height
    channels: tuple[str, ...]
    sample_type: str  # as OpenImageIO names it: uint8, uint16, half, float

    @property
    def dtype(self) -> np.dtype:
        return _DTYPES[self.sample_type]


class ImageSequence(FrameFiles[ImageHeader]):
    """A DPX, TIFF or PNG sequence (`shot.####.dpx`, `shot.%04d.tif`, ...) or a single file."""

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.suffix.lower() in KINDS

    def __init__(
        self,
        path: str | Path,
        colourspace: str | None = None,
        layer: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        if layer is not None:
            raise DubplateError(f"{path}: --layer applies to EXR plates, not {Path(path).suffix}")
        super().__init__(path, cache_bytes)
        self.frame_suffix = self.first.path.suffix
        self.info = self._describe(colourspace)

    def _describe(self, colourspace: str | None) -> PlateInfo:
        spec = self.first.spec
        fps = header_rate(spec, self.first.path, self.pattern)
        timecode = spec.get_string_attribute("smpte:TimeCode") or None
        width, height = self.first.size
        space = self._colourspace(colourspace, spec)
        turned = spec.get_int_attribute("Orientation", 1)
        if turned != 1:
            log.warning(
                "%s: its header says it is shown turned or mirrored (Orientation %d); read and"
                " written as stored, where a face on its side may not be found",
                self.pattern,
                turned,
            )
        log.info(
            "%s: %d frame(s) %d-%d, %dx%d %s, %s fps, timecode %s",
            self.pattern,
            len(self.files),
            min(self.files),
            max(self.files),
            width,
            height,
            self._depth(spec),
            fps,
            timecode or "none",
        )
        return PlateInfo(
            source=str(Path(self.pattern).absolute()),
            kind=KINDS[self.first.path.suffix.lower()],
            frames=tuple(sorted(self.files)),
            fps=fps,
            width=width,
            height=height,
            channels=self.first.channels,
            colourspace=space,
            timecode=timecode,
        )

    def _depth(self, spec: oiio.ImageSpec) -> str:
        bits = spec.get_int_attribute("oiio:BitsPerSample")
        return f"{bits}-bit" if bits else self.first.sample_type

    def _colourspace(self, requested: str | None, spec: oiio.ImageSpec) -> str:
        if requested:
            return self._requested_colourspace(requested)
        stated = spec.get_string_attribute("oiio:ColorSpace")
        stated = _STATED_COLOURSPACES.get(stated.lower(), stated)
        if stated and self.colour.knows(stated):
            space = self.colour.resolve(stated)
            log.info("%s: colourspace %r (the file's)", self.pattern, space)
            return space
        transfer = spec.get_string_attribute("dpx:Transfer")
        log.warning(
            "%s: colourspace %r assumed (the file states %s); set --colourspace",
            self.pattern,
            self.colour.working_space,
            f"transfer {transfer!r}" if transfer else "none",
        )
        return self.colour.working_space

    def _header(self, number: int) -> ImageHeader:
        path = self.files[number]
        inp = open_image(path, "image", _as_stored())
        try:
            spec = oiio.ImageSpec(inp.spec())
        finally:
            inp.close()
        data = (spec.x, spec.y, spec.width, spec.height)
        display = (spec.full_x, spec.full_y, spec.full_width, spec.full_height)
        if data != display:
            raise DubplateError(
                f"{path}: frame {number} data window {data} is not its display window {display}"
                " (x, y, width, height); only EXR plates are placed in one"
            )
        channels = tuple(name.upper() for name in spec.channelnames)
        if channels[:3] != ("R", "G", "B") or len(channels) > 4:
            raise DubplateError(f"{path}: frame {number} channels {channels} are not RGB or RGBA")
        sample_type = str(spec.format)
        if sample_type not in _DTYPES:
            raise DubplateError(f"{path}: frame {number} samples are {sample_type}")
        return ImageHeader(path, spec, (spec.width, spec.height), channels, sample_type)

    def _check_same(self, header: ImageHeader, number: int) -> None:
        first = self.first
        for what in ("size", "channels", "sample_type"):
            if getattr(header, what) != getattr(first, what):
                raise DubplateError(
                    f"{header.path}: frame {number} {what} {getattr(header, what)} differs from"
                    f" {getattr(first, what)} of frame {min(self.files)}"
                )

    def _decode(self, number: int) -> np.ndarray:
        header = self.header(number)
        inp = open_image(header.path, "image", _as_stored())
        try:
            pixels = inp.read_image(0, 0, 0, len(header.channels), header.sample_type)
            error = inp.geterror()
        finally:
            inp.close()
        if pixels is None or error:
            raise DubplateError(f"{header.path}: frame {number}: cannot read pixels ({error})")
        width, height = header.size
        return np.ascontiguousarray(pixels.reshape(height, width, len(header.channels)))

    def write_frame(
        self,
        number: int,
        pixels: np.ndarray,
        path: Path,
        channels: tuple[str, ...],
        layer: bool = False,
        region: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Write `pixels` (the frame's shape) at `path` with frame `number`'s header, atomically:
        in the source's sample type, as the file stores them; or with `layer`, floats in plate
        units (0-1 for integer files) with premultiplied alpha, as a face plate is, in the
        source's sample type. Samples are converted only within `region` (see `Plate`)."""
        header = self.header(number)
        width, height = header.size
        if pixels.shape != (height, width, len(channels)):
            raise DubplateError(
                f"{path}: frame {number} pixels {pixels.shape} are not"
                f" {(height, width, len(channels))} (height, width, {', '.join(channels)})"
            )
        spec = _output_spec(header, channels)
        if layer:
            spec.erase_attribute(_AS_STORED)  # premultiplied: a PNG gets it divided out
        bits = spec.get_int_attribute("oiio:BitsPerSample")
        on_grid = header.dtype == np.uint16 and 8 < bits < 16
        if pixels.dtype != header.dtype or on_grid:
            pixels = _file_samples(pixels, header.dtype, bits if on_grid else None, region)
        write_image(path, spec, pixels)


def _file_samples(
    pixels: np.ndarray,
    dtype: np.dtype,
    bits: int | None,
    region: tuple[int, int, int, int] | None,
) -> np.ndarray:
    """`pixels` as the file stores them: floats (a layer's, 0-1) in its sample type, and with
    `bits`, on its 10- or 12-bit grid. Only `region` is converted (a 1080p frame's whole
    conversion costs more than the OpenImageIO write): outside it, a layer's floats are zero and
    a comp's samples are the source's own, on the grid already."""
    x0, y0, x1, y1 = region or (0, 0, pixels.shape[1], pixels.shape[0])
    inside = pixels[y0:y1, x0:x1]
    if pixels.dtype != dtype:
        out = np.zeros(pixels.shape, dtype)
        inside = to_plate_values(inside * np.float32(value_scale(dtype)), dtype)
    else:
        out = pixels.copy()
    out[y0:y1, x0:x1] = _on_file_grid(inside, bits) if bits else inside
    return out


def _output_spec(header: ImageHeader, channels: tuple[str, ...]) -> oiio.ImageSpec:
    """The source's header for `channels`; its alpha as the file has it: read as stored, a
    PNG's or unassociated TIFF's spec says so (`_AS_STORED`), and written with it the values go
    back as they came. An associated TIFF's does not, and stays associated."""
    spec = oiio.ImageSpec(header.spec)
    if channels != header.channels:
        for name in _CHANNEL_ATTRIBUTES:
            spec.erase_attribute(name)
        spec.nchannels = len(channels)
        spec.channelnames = channels
        spec.alpha_channel = channels.index("A") if "A" in channels else -1
    return spec


def _on_file_grid(pixels: np.ndarray, bits: int) -> np.ndarray:
    """uint16 `pixels` rounded to the `bits`-bit values the file stores, widened as OpenImageIO
    reads them: its writer truncates, which would darken the patch by half a step. Values on
    the grid already (every one read from the source) come back unchanged."""
    top = (1 << bits) - 1
    stored = np.rint(pixels * np.float32(top / 65535)).astype(np.uint16)
    return (stored << (16 - bits)) | (stored >> (2 * bits - 16))


def _as_stored() -> oiio.ImageSpec:
    config = oiio.ImageSpec()
    config.attribute(_AS_STORED, 1)
    return config
