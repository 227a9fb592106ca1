"""The Plate: a shot's frames (read lazily, cached in a memory budget), rate, colour and audio."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import cv2
import fileseq
import numpy as np

from dubplate.core.colour import default_config
from dubplate.core.errors import DubplateError
from dubplate.core.media.audio import Audio, load_audio
from dubplate.core.media.timing import rate_text

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 1 << 30


@dataclass(frozen=True)
class PlateInfo:
    """What a manifest records about the plate a result came from."""

    source: str
    kind: str
    frames: tuple[int, ...]
    fps: Fraction
    width: int
    height: int
    channels: tuple[str, ...]
    colourspace: str
    timecode: str | None = None
    layer: str | None = None
    # Seconds from the first frame, per frame; differs from n/fps only for variable-rate movies.
    frame_times: tuple[Fraction, ...] = field(default=(), repr=False)
    # The audio file heard as the plate's sound (`Plate.hear`); None: its own, if it has one.
    sound: str | None = None

    def manifest(self) -> dict:
        return {
            "path": self.source,
            "kind": self.kind,
            "first_frame": self.frames[0],
            "last_frame": self.frames[-1],
            "frame_count": len(self.frames),
            "fps": rate_text(self.fps),
            "width": self.width,
            "height": self.height,
            "colourspace": self.colourspace,
            "layer": self.layer,
            "timecode": self.timecode,
            "sound": self.sound,
        }


class FrameCache:
    """Least-recently-used frames, bounded by bytes so 4K sequences never sit in memory whole."""

    def __init__(self, budget_bytes: int = DEFAULT_CACHE_BYTES):
        self.budget_bytes = budget_bytes
        self.bytes = 0
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, number: int) -> np.ndarray | None:
        with self._lock:
            pixels = self._frames.get(number)
            if pixels is not None:
                self._frames.move_to_end(number)
            return pixels

    def put(self, number: int, pixels: np.ndarray) -> None:
        with self._lock:
            if number in self._frames:
                return
            self._frames[number] = pixels
            self.bytes += pixels.nbytes
            while self.bytes > self.budget_bytes and len(self._frames) > 1:
                _, evicted = self._frames.popitem(last=False)
                self.bytes -= evicted.nbytes


class Plate(ABC):
    """Frames are HxWxC arrays over the display window, in the plate's own values and colourspace.

    Subclasses decode one frame; the base class caches, prefetches and converts for analysis.
    """

    info: PlateInfo
    # Frames decoded at once while iterating: 1 for a stateful decoder (a movie), more where
    # each frame is its own file and decoding it leaves a core idle (EXR).
    parallel_decodes = 1
    # The extension of per-frame outputs (see write_frame); None where frames are not files.
    frame_suffix: str | None = None

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.cache = FrameCache(cache_bytes)
        self.colour = default_config()
        self.nonfinite: dict[int, int] = {}
        self._sound: Audio | None = None

    @abstractmethod
    def _decode(self, number: int) -> np.ndarray: ...

    def audio(self) -> Audio | None:
        """The plate's sound from its first frame's time on: the file `hear` gave it, else its
        own (a movie's), else None (an image sequence's)."""
        return self._sound if self._sound is not None else self._own_audio()

    def _own_audio(self) -> Audio | None:
        return None

    def hear(self, path: str | Path) -> None:
        """Take `path`'s sound as the plate's, starting at its first frame: an image sequence's
        production sound, or a clean track in place of a movie's own."""
        self._sound = load_audio(path)
        self.info = replace(self.info, sound=str(Path(path).absolute()))
        log.info("%s: its sound is %s", self.info.source, path)

    def audio_from(self, number: int) -> Audio | None:
        """The plate's sound from frame `number`'s time on: what plays with a run of its frames
        that starts there."""
        audio = self.audio()
        return None if audio is None else audio.part(float(self.time_of(number)))

    def write_frame(
        self,
        number: int,
        pixels: np.ndarray,
        path: Path,
        channels: tuple[str, ...],
        layer: bool = False,
        region: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Write `pixels` (display window, as `read` gives) as frame `number`'s own file at
        `path`, keeping its header; only plates of one file per frame can. They are the plate
        comped: stored as the source stores them, with its own pixels wherever the file reaches
        past the display window (overscan); or with `layer`, a premultiplied RGBA layer of its
        own in plate units, with nothing beyond the display window. `region` (x0, y0, x1, y1),
        where given, holds every pixel that differs from the source's own samples (a comp) or
        from zero (a layer): a writer that converts samples need convert no others."""
        raise DubplateError(
            f"{self.info.source}: {self.info.kind} plates cannot be written frame by frame"
        )

    def read(self, number: int) -> np.ndarray:
        """The frame's original pixels (read-only); half-float EXRs stay float16, exact."""
        pixels = self.cache.get(number)
        if pixels is None:
            if number not in self._index_of:
                raise DubplateError(f"{self.info.source}: no frame {number} in this plate")
            pixels = self._decode(number)
            pixels.flags.writeable = False
            self._note_nonfinite(number, pixels)
            self.cache.put(number, pixels)
        return pixels

    def frames(self, numbers: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Frames in order, the next ones decoding in the background while the caller works."""
        order = list(self.info.frames if numbers is None else numbers)
        workers = self.parallel_decodes
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plate-read") as pool:
            pending = deque(pool.submit(self.read, n) for n in order[:workers])
            for index, number in enumerate(order):
                pixels = pending.popleft().result()
                if index + workers < len(order):
                    pending.append(pool.submit(self.read, order[index + workers]))
                yield number, pixels

    def analysis_rgb(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 RGB in the working display space; NaN and inf never reach the analysis."""
        if pixels.dtype != np.uint8 or self.info.colourspace != self.colour.working_space:
            pixels = np.nan_to_num(unit_float32(pixels), nan=0.0, posinf=0.0, neginf=0.0)
        return self.colour.to_working_uint8(pixels, self.info.colourspace)

    def analysis_view(
        self,
        pixels: np.ndarray,
        region: tuple[int, int, int, int] | None = None,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """uint8 working-space RGB of a region (x0, y0, x1, y1; zero beyond the frame) at a size.

        Cropping and resizing come before the colour conversion, so a 4K float frame is never
        converted whole just to find a face in it.
        """
        if region is not None:
            pixels = crop_padded(pixels, region)
        if pixels.dtype not in (np.uint8, np.float32):  # what OpenCV resizes and OCIO converts
            pixels = unit_float32(pixels)
        if size is not None and (pixels.shape[1], pixels.shape[0]) != size:
            shrinking = size[0] < pixels.shape[1]
            pixels = cv2.resize(
                pixels, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            )
        return np.ascontiguousarray(self.analysis_rgb(pixels))

    def select(self, frame_range: tuple[int, int] | None = None) -> Sequence[int]:
        """The frames to work on, all checked before any work starts: none missing, all readable,
        none asked for past the plate's ends."""
        have = self.info.frames
        first, last = frame_range or (have[0], have[-1])
        if first < have[0] or last > have[-1]:
            raise DubplateError(
                f"--frames {first}-{last}: {self.info.source} has frames {have[0]}-{have[-1]} only"
            )
        chosen = [n for n in have if first <= n <= last]
        missing = sorted(set(range(first, last + 1)) - self._index_of.keys())
        if missing:
            raise DubplateError(
                f"{self.info.source}: {len(missing)} frame(s) missing: {fileseq.FrameSet(missing)}"
            )
        self.validate(chosen)
        return chosen

    def validate(self, numbers: Sequence[int]) -> None:  # noqa: B027 (optional hook)
        """Check what can be checked without decoding (headers); readers of files override it."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Let go of what reading holds open (a movie's demuxer and decoder): a host that dubs
        shot after shot in one process must not gather open files. Frame files hold none."""

    def __enter__(self) -> Plate:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def source_files(self, numbers: Sequence[int]) -> list[Path]:
        """The files the given frames come from (what a cache must watch for changes)."""
        return [Path(self.info.source)]

    def time_of(self, number: int) -> Fraction:
        """Seconds from the plate's first frame: exact, right for variable-rate movies, and
        counted by frame number past a gap in a sequence (a frame number is a time)."""
        index = self._index_of[number]
        if self.info.frame_times:
            return self.info.frame_times[index]
        return Fraction(number - self.info.frames[0]) / self.info.fps

    @cached_property
    def _index_of(self) -> dict[int, int]:
        return {number: index for index, number in enumerate(self.info.frames)}

    def _note_nonfinite(self, number: int, pixels: np.ndarray) -> None:
        # Integer samples are always finite.
        if pixels.dtype.kind == "u" or number in self.nonfinite or all_finite(pixels):
            return
        bad = int(np.count_nonzero(~np.isfinite(pixels)))
        if bad:
            self.nonfinite[number] = bad
            log.warning(
                "%s: frame %d has %d NaN/inf sample(s); they read as 0 for analysis and are"
                " left as they are in the source",
                self.info.source,
                number,
                bad,
            )


def crop_padded(pixels: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    height, width = pixels.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return pixels[y0:y1, x0:x1]
    out = np.zeros((y1 - y0, x1 - x0, pixels.shape[2]), dtype=pixels.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
    return out


def as_float32(pixels: np.ndarray) -> np.ndarray:
    """float32 copy of float16 pixels through OpenCV's F16C path (3x numpy's speed on 4K)."""
    if pixels.dtype != np.float16:
        return np.asarray(pixels, dtype=np.float32)
    half = np.ascontiguousarray(pixels)
    flat = cv2.convertFp16(half.view(np.int16).reshape(half.shape[0], -1))
    return flat.reshape(half.shape)


# Plate units per unit of the 0-1 values that colour conversions and the patch work in: integer
# plates span their type's range; float plates hold the values themselves.
_INTEGER_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
PLATE_DTYPES = (*_INTEGER_FULL_SCALE, np.dtype(np.float16), np.dtype(np.float32))


def value_scale(dtype: np.dtype) -> float:
    """What 1.0 of the working values is in a plate of this sample type."""
    return _INTEGER_FULL_SCALE.get(np.dtype(dtype), 1.0)


def unit_float32(pixels: np.ndarray) -> np.ndarray:
    """float32 pixels, integer plates scaled to 0-1; float plates keep their values."""
    scale = _INTEGER_FULL_SCALE.get(pixels.dtype)
    if scale is None:
        return as_float32(pixels)
    return pixels.astype(np.float32) / np.float32(scale)


def to_plate_values(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`values` in plate units (see value_scale) as the plate's sample type: integers rounded
    and clipped to the type's range."""
    scale = _INTEGER_FULL_SCALE.get(np.dtype(dtype))
    if scale is None:
        return values.astype(dtype)
    return np.clip(np.rint(values), 0, scale).astype(dtype)


# (unsigned view, mask dropping the sign, exponent bits): at or above them is inf or NaN.
_FLOAT_BITS = {
    np.dtype(np.float16): (np.uint16, 0x7FFF, 0x7C00),
    np.dtype(np.float32): (np.uint32, 0x7FFFFFFF, 0x7F800000),
}


def all_finite(pixels: np.ndarray) -> bool:
    """A whole-frame NaN/inf test that costs a third of np.isfinite on a 4K frame."""
    if pixels.dtype not in _FLOAT_BITS:
        return bool(np.isfinite(pixels).all())
    unsigned, magnitude, exponent = _FLOAT_BITS[pixels.dtype]
    return int((np.ascontiguousarray(pixels).view(unsigned) & magnitude).max()) < exponent
