"""EXR plates: sequences in studio notations, parts, layers and windows.

Frames are placed in the display window (pixels outside the data window read as 0, the EXR
convention), in the file's own sample type: half stays float16, so values are kept exactly.
OpenImageIO reads them. OpenEXR's own module writes them: it carries the source part's header
over attribute for attribute, and zips a mostly empty 4K face plate in a third of OIIO's time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR
import OpenImageIO as oiio

from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.media.plate import DEFAULT_CACHE_BYTES, PlateInfo
from dubplate.hosts.sequence import FrameFiles, header_rate, open_image

log = logging.getLogger(__name__)

# OpenEXR's module zips scanline blocks on its own thread pool, which is off until sized: a 4K
# comp and face plate then write on one core (4K dub: 0.70 frames/s, 0.87 with every core).
OpenEXR.set_global_thread_count(os.cpu_count() or 1)

EXR_MAGIC = b"\x76\x2f\x31\x01"
DEFAULT_COLOURSPACE = "ACEScg"
# CIE xy of red, green, blue and white: the header's `chromaticities` names the primaries.
_PRIMARIES = {
    "ACEScg": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
    "ACES2065-1": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
    "Linear Rec.709 (sRGB)": (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    "Linear Rec.2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290),
}
# Header attributes, as OpenEXR names them, that describe the source's part rather than the shot:
# a written frame is a single scanline part with its own channels, so these would be wrong there.
_PART_ATTRIBUTES = {
    "name",
    "type",
    "view",
    "multiView",
    "version",
    "chunkCount",
    "tiles",
    "channels",
}


@dataclass(frozen=True)
class Layer:
    """An RGB(A) set of channels in one part of the file."""

    part: int
    part_name: str
    prefix: str
    channel_indices: tuple[int, ...]

    @property
    def name(self) -> str:
        joined = ".".join(p for p in (self.part_name, self.prefix) if p)
        return joined or "RGBA"

    def matches(self, wanted: str) -> bool:
        return wanted in {self.name, self.part_name, self.prefix}


@dataclass(frozen=True)
class FrameHeader:
    path: Path
    layer: Layer
    data_window: tuple[int, int, int, int]  # x, y, width, height
    display_window: tuple[int, int, int, int]
    sample_type: str  # "half" or "float": what the layer is read as, float where any is
    channel_types: tuple[str, ...]  # each channel's own, in the layer's order


class ExrSequence(FrameFiles[FrameHeader]):
    """An EXR frame sequence (`shot.####.exr`, `shot.%04d.exr`, `shot.@.exr`) or a single file."""

    frame_suffix = ".exr"

    @classmethod
    def claims(cls, path: Path) -> bool:
        if path.suffix.lower() == ".exr":
            return True
        try:
            with open(path, "rb") as file:
                return file.read(4) == EXR_MAGIC
        except OSError:
            return False

    def __init__(
        self,
        path: str | Path,
        colourspace: str | None = None,
        layer: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self.wanted_layer = layer
        super().__init__(path, cache_bytes)
        self.info = self._describe(colourspace)

    def _describe(self, colourspace: str | None) -> PlateInfo:
        spec = self._spec(self.first.path, self.first.layer.part)
        space = self._colourspace(colourspace, spec)
        fps = header_rate(spec, self.first.path, self.pattern)
        timecode = spec.get_string_attribute("smpte:TimeCode") or None
        _, _, width, height = self.first.display_window
        channels = tuple(spec.channelnames[i] for i in self.first.layer.channel_indices)
        log.info(
            "%s: %d frame(s) %d-%d, %dx%d, layer %r, %s fps, timecode %s",
            self.pattern,
            len(self.files),
            min(self.files),
            max(self.files),
            width,
            height,
            self.first.layer.name,
            fps,
            timecode or "none",
        )
        return PlateInfo(
            source=str(Path(self.pattern).absolute()),  # manifests resolve from anywhere
            kind="exr",
            frames=tuple(sorted(self.files)),
            fps=fps,
            width=width,
            height=height,
            channels=channels,
            colourspace=space,
            timecode=timecode,
            layer=self.first.layer.name,
        )

    def _colourspace(self, requested: str | None, spec: oiio.ImageSpec) -> str:
        if requested:
            return self._requested_colourspace(requested)
        chromaticities = spec.getattribute("chromaticities")
        if chromaticities:
            for name, primaries in _PRIMARIES.items():
                if np.allclose(chromaticities, primaries, atol=2e-3):
                    space = self.colour.resolve(name)
                    log.info("%s: colourspace %r (header chromaticities)", self.pattern, space)
                    return space
        space = self.colour.resolve(DEFAULT_COLOURSPACE)
        log.info("%s: colourspace %r (EXR default; set --colourspace)", self.pattern, space)
        return space

    def _check_same(self, header: FrameHeader, number: int) -> None:
        first = self.first
        if header.display_window != first.display_window:
            raise DubplateError(
                f"{header.path}: frame {number} display window {_window(header.display_window)}"
                f" differs from {_window(first.display_window)} of frame {min(self.files)}"
            )
        if header.layer.name != first.layer.name:
            raise DubplateError(
                f"{header.path}: frame {number} layer {header.layer.name!r} differs from"
                f" {first.layer.name!r} of frame {min(self.files)}"
            )
        # Checked here, before any work: a frame of other channels would fail at its writing.
        own = (len(header.layer.channel_indices), header.sample_type)
        firsts = (len(first.layer.channel_indices), first.sample_type)
        if own != firsts:
            raise DubplateError(
                f"{header.path}: frame {number} has {own[0]} {own[1]} channels where frame"
                f" {min(self.files)} has {firsts[0]} {firsts[1]}"
            )

    def _header(self, number: int) -> FrameHeader:
        path = self.files[number]
        inp = open_image(path, "EXR")
        try:
            layers = []
            part = 0
            while inp.seek_subimage(part, 0):
                layers += _layers(part, inp.spec())
                part += 1
            if not layers:
                raise DubplateError(f"{path}: no RGB channels in any part")
            layer = _choose_layer(layers, self.wanted_layer, path)
            if not inp.seek_subimage(layer.part, 0):
                raise DubplateError(f"{path}: cannot read part {layer.part}: {inp.geterror()}")
            spec = inp.spec()
        finally:
            inp.close()
        channel_types = tuple(
            "half" if str(spec.channelformat(i)) == "half" else "float"
            for i in layer.channel_indices
        )
        return FrameHeader(
            path=path,
            layer=layer,
            data_window=(spec.x, spec.y, spec.width, spec.height),
            display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
            sample_type="half" if set(channel_types) == {"half"} else "float",
            channel_types=channel_types,
        )

    def _spec(self, path: Path, part: int) -> oiio.ImageSpec:
        inp = open_image(path, "EXR")
        try:
            inp.seek_subimage(part, 0)
            return inp.spec()
        finally:
            inp.close()

    def _decode(self, number: int) -> np.ndarray:
        return _place(self._data_window(number), self.header(number))

    def _data_window(self, number: int) -> np.ndarray:
        """The frame's stored pixels, data window only, in the layer's channel order."""
        header = self.header(number)
        channels = header.layer.channel_indices
        begin, end = min(channels), max(channels) + 1
        inp = open_image(header.path, "EXR")
        try:
            if not inp.seek_subimage(header.layer.part, 0):
                raise DubplateError(f"{header.path}: frame {number}: {inp.geterror()}")
            block = inp.read_image(header.layer.part, 0, begin, end, header.sample_type)
            error = inp.geterror()
        finally:
            inp.close()
        if block is None or error:
            raise DubplateError(f"{header.path}: frame {number}: cannot read pixels ({error})")
        block = block.reshape(header.data_window[3], header.data_window[2], end - begin)
        order = [c - begin for c in channels]
        if order != list(range(end - begin)):  # fancy indexing copies: only when reordering
            block = block[..., order]
        return block

    def write_frame(
        self,
        number: int,
        pixels: np.ndarray,
        path: Path,
        channels: tuple[str, ...],
        layer: bool = False,
        region: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Write `pixels` (display window, one plane per channel) as a single-part EXR at `path`
        with frame `number`'s windows, header attributes and sample type, atomically. Data-window
        pixels beyond the display window are the source frame's own (the plate comped, in its
        channels), or zero for a `layer` of its own. `region` goes unused: floats are written
        as they are."""
        if any(len(name) != 1 for name in channels):
            raise DubplateError(f"{path}: channels {channels} must be one letter each, as RGBA")
        header = self.header(number)
        _, _, width, height = header.display_window
        expected = (height, width, len(channels))
        if pixels.shape != expected:
            raise DubplateError(
                f"{path}: frame {number} pixels {pixels.shape} are not {expected}"
                f" (display window by channels {', '.join(channels)})"
            )
        # A float16 array is written as half without conversion, so values stay exact.
        dtype = np.float16 if header.sample_type == "half" else np.float32
        # Only a frame of the source's own channels has the source's pixels to keep beyond; read
        # again only where there are some (a 4K frame's read costs as much as its comp).
        own_channels = len(channels) == len(header.layer.channel_indices)
        keeps = not layer and own_channels and _has_overscan(header)
        beyond = self._data_window(number) if keeps else None
        block = _data_block(pixels.astype(dtype, copy=False), header, beyond)
        _write_exr(path, _output_header(header), _planes(block, channels, header, own_channels))


def _planes(
    block: np.ndarray, channels: tuple[str, ...], header: FrameHeader, own_channels: bool
) -> dict[str, np.ndarray]:
    """What OpenEXR writes: each channel in its source's sample type, so a part of half RGB and
    float alpha stays one. Of one type, the (H, W, C) array keyed "RGBA", which OpenEXR splits
    into its channels without copying it."""
    types = header.channel_types if own_channels else (header.sample_type,)
    if len(set(types)) == 1:
        return {"".join(channels): block}
    dtypes = {"half": np.float16, "float": np.float32}
    return {
        name: np.ascontiguousarray(block[..., i].astype(dtypes[kind]))
        for i, (name, kind) in enumerate(zip(channels, types, strict=True))
    }


def _layers(part: int, spec: oiio.ImageSpec) -> list[Layer]:
    """Every channel prefix of a part that has R, G and B (plus A when present)."""
    by_prefix: dict[str, dict[str, int]] = {}
    for index, name in enumerate(spec.channelnames):
        prefix, _, channel = name.rpartition(".")
        by_prefix.setdefault(prefix, {})[channel.upper()] = index
    part_name = spec.get_string_attribute("name")
    layers = []
    for prefix, channels in by_prefix.items():
        if {"R", "G", "B"} <= channels.keys():
            order = [channels[c] for c in ("R", "G", "B", "A") if c in channels]
            layers.append(Layer(part, part_name, prefix, tuple(order)))
    return layers


def _choose_layer(layers: list[Layer], wanted: str | None, path: Path) -> Layer:
    if wanted is None:
        for layer in layers:
            if not layer.prefix:
                return layer
        choice = "no unnamed RGB layer: choose one with --layer"
    else:
        for layer in layers:
            if layer.matches(wanted):
                return layer
        choice = f"no layer {wanted!r}"
    available = ", ".join(layer.name for layer in layers)
    raise DubplateError(f"{path}: {choice} (layers: {available})")


def _place(block: np.ndarray, header: FrameHeader) -> np.ndarray:
    """Put the data window's pixels where they belong in the display window."""
    if header.data_window == header.display_window:
        return np.ascontiguousarray(block)
    _, _, fw, fh = header.display_window
    frame = np.zeros((fh, fw, block.shape[2]), dtype=block.dtype)
    in_data, in_display = _overlap(header)
    frame[in_display] = block[in_data]
    return frame


def _data_block(
    frame: np.ndarray, header: FrameHeader, beyond: np.ndarray | None = None
) -> np.ndarray:
    """The data window's pixels of a display-window frame: where it reaches beyond the display
    window, those of `beyond` (a data window's), or zero."""
    if header.data_window == header.display_window:
        return np.ascontiguousarray(frame)
    _, _, dw, dh = header.data_window
    if beyond is None:
        block = np.zeros((dh, dw, frame.shape[2]), dtype=frame.dtype)
    else:
        block = beyond.astype(frame.dtype, copy=True)
    in_data, in_display = _overlap(header)
    block[in_data] = frame[in_display]
    return block


def _has_overscan(header: FrameHeader) -> bool:
    """Whether the data window reaches past the display window anywhere."""
    dx, dy, dw, dh = header.data_window
    fx, fy, fw, fh = header.display_window
    return dx < fx or dy < fy or dx + dw > fx + fw or dy + dh > fy + fh


def _overlap(header: FrameHeader) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Where the data and display windows overlap, as (rows, columns) of each; may be empty."""
    dx, dy, dw, dh = header.data_window
    fx, fy, fw, fh = header.display_window
    x0, y0 = max(dx, fx), max(dy, fy)
    x1, y1 = max(min(dx + dw, fx + fw), x0), max(min(dy + dh, fy + fh), y0)
    in_data = (slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx))
    in_display = (slice(y0 - fy, y1 - fy), slice(x0 - fx, x1 - fx))
    return in_data, in_display


_LOSSY_COMPRESSION = {"DWAA", "DWAB", "B44", "B44A", "PXR24"}


def _output_header(header: FrameHeader) -> dict:
    """The source part's header for a single-part scanline file: its windows and shot
    attributes, without what describes the source part or its channels."""
    try:
        source = OpenEXR.File(str(header.path), header_only=True).parts[header.layer.part].header
    except (RuntimeError, IndexError) as error:
        raise DubplateError(f"{header.path}: cannot read the header to copy ({error})") from error
    out = {k: v for k, v in source.items() if k not in _PART_ATTRIBUTES}
    out["type"] = OpenEXR.scanlineimage
    if out.get("lineOrder") == OpenEXR.RANDOM_Y:  # a tiled part's order; scanlines have none
        out["lineOrder"] = OpenEXR.INCREASING_Y
    kind = out["compression"].name.removesuffix("_COMPRESSION")
    if kind in _LOSSY_COMPRESSION:
        # Re-compressing lossily would change the pixels outside the matte, which must stay exact.
        log.warning("%s: compression %s is lossy; writing zip instead", header.path, kind)
        out["compression"] = OpenEXR.ZIP_COMPRESSION
    return out


def _write_exr(path: Path, header: dict, planes: dict[str, np.ndarray]) -> None:
    """Write through a temporary file: a write that fails half way leaves nothing at `path`."""
    try:
        with atomic_path(path) as temp, OpenEXR.File(header, planes) as exr:
            exr.write(str(temp))
    except (OSError, RuntimeError, TypeError, ValueError) as error:
        # TypeError, ValueError: a header attribute copied from the source that OpenEXR refuses.
        reason = error.strerror if isinstance(error, OSError) else None
        raise DubplateError(f"{path}: cannot write EXR ({reason or error})") from error


def _window(window: tuple[int, int, int, int]) -> str:
    x, y, width, height = window
    return f"{width}x{height}+{x}+{y}"
