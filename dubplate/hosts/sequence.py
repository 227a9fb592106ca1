"""Plates of one file per frame: sequence notations and per-frame headers checked before work."""

from __future__ import annotations

import logging
import re
from abc import abstractmethod
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Generic, TypeVar

import fileseq
import OpenImageIO as oiio

from dubplate.core.errors import DubplateError
from dubplate.core.media.plate import DEFAULT_CACHE_BYTES, Plate
from dubplate.core.media.timing import as_rate

log = logging.getLogger(__name__)

DEFAULT_RATE = 24
# Where headers state the rate: OpenImageIO's name (EXR, TIFF), then the DPX film header's.
_RATE_ATTRIBUTES = ("FramesPerSecond", "dpx:FrameRate")

# Padding notations: '####' and '@' (one digit each), '%04d' (printf), '$F4' (Houdini).
_PADDING = re.compile(r"#|@|%0?\d*d|\$F\d*")

Header = TypeVar("Header")


class FrameFiles(Plate, Generic[Header]):
    """A sequence (`shot.####.ext`, `shot.%04d.ext`, `shot.@.ext`) or a single file. Each
    frame's header is read once, checked against the first frame's, and kept."""

    parallel_decodes = 2  # one file per frame: no shared decoder state

    def __init__(self, path: str | Path, cache_bytes: int = DEFAULT_CACHE_BYTES):
        super().__init__(cache_bytes)
        self.pattern = str(path)
        self.files = find_frames(Path(path))
        first_number = min(self.files)
        self.first: Header = self._header(first_number)
        self._headers: dict[int, Header] = {first_number: self.first}

    @abstractmethod
    def _header(self, number: int) -> Header: ...

    @abstractmethod
    def _check_same(self, header: Header, number: int) -> None:
        """Raise, naming the file, where frame `number` cannot be treated as the first is."""

    def source_files(self, numbers: Sequence[int]) -> list[Path]:
        return [self.files[n] for n in numbers]

    def validate(self, numbers: Sequence[int]) -> None:
        for number in numbers:
            if number not in self._headers:
                header = self._header(number)
                self._check_same(header, number)
                self._headers[number] = header

    def _requested_colourspace(self, requested: str) -> str:
        space = self.colour.resolve(requested)
        log.info("%s: colourspace %r (from --colourspace)", self.pattern, space)
        return space

    def header(self, number: int) -> Header:
        """Frame `number`'s header, checked; a frame not in the plate is an error."""
        if number not in self.files:
            raise DubplateError(f"{self.info.source}: no frame {number} in this plate")
        self.validate([number])
        return self._headers[number]


def find_frames(path: Path) -> dict[int, Path]:
    """Frame number -> file, for a sequence pattern or one existing file."""
    text = str(path)
    if _PADDING.search(path.name):
        try:
            found = fileseq.findSequenceOnDisk(text, pad_style=fileseq.PAD_STYLE_HASH1)
        except fileseq.FileSeqException as error:
            if "multiple sequences" in str(error):
                raise DubplateError(
                    f"{path}: frames on disk match it numbered with different padding (a stray"
                    " shot.3.exr beside shot.0001.exr); rename or move the ones not meant"
                ) from error
            raise DubplateError(f"{path}: no frames on disk match this sequence") from error
        return {int(n): Path(found.frame(n)) for n in found.frameSet()}
    if not path.is_file():
        raise DubplateError(f"{path}: file not found")
    frame = fileseq.FileSequence(text, pad_style=fileseq.PAD_STYLE_HASH1).frameSet()
    return {int(frame[0]) if frame else 1: path}


def header_rate(spec: oiio.ImageSpec, path: Path, pattern: str) -> Fraction:
    """The frame rate `path`'s header states, or DEFAULT_RATE (logged for `pattern`)."""
    for name in _RATE_ATTRIBUTES:
        value = spec.getattribute(name)
        if value:
            return as_rate(value, f"{path}: {name}")
    log.info("%s: no frame rate in the header; assuming %s fps", pattern, DEFAULT_RATE)
    return as_rate(DEFAULT_RATE)


def open_image(path: Path, kind: str, config: oiio.ImageSpec | None = None) -> oiio.ImageInput:
    """`path` opened for reading (with reader `config` hints); an error naming it and
    OpenImageIO's reason where it cannot be."""
    inp = oiio.ImageInput.open(str(path), config) if config else oiio.ImageInput.open(str(path))
    if inp is None:
        message = oiio.geterror().strip().splitlines()
        raise DubplateError(
            f"{path}: not a readable {kind} ({message[0] if message else 'unknown'})"
        )
    return inp
