"""A movie dub's comped frames, kept a chunk at a time in its work directory while it is made.

A movie is one stream, encoded whole: a run that stops cannot append to it. What it drew is
kept instead, as the pixels the matte changed (a few hundred KB a frame, where the frame is
megabytes), so the same dub again draws only the chunks not kept and encodes the movie anew
from the plate's frames with the kept pixels put back."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from dubplate.core.composite.comp import EMPTY_REGION, Composite
from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.stored import load_arrays

log = logging.getLogger(__name__)

KEPT_DIR = "kept"


class KeptComps:
    """The chunks of a dub kept in `work`/kept, one .npz each: per frame its changed region
    (x0, y0, x1, y1) and the comp's pixels there, in the movie's own sample type (the region's
    pixels times 3 channels times 1 or 2 bytes: about 0.5 MB for a 1080p close-up, 4 MB for a
    16-bit 4K one; not compressed, which would cost a frame a tenth of a second)."""

    def __init__(self, work: Path, frame_size: tuple[int, int]):
        self.folder = Path(work) / KEPT_DIR
        self.height, self.width = frame_size
        self._held: dict[str, np.ndarray] = {}

    def kept_frames(self, chunks: Sequence[Sequence[int]]) -> set[int]:
        """The frames of every chunk kept whole and sound."""
        return {n for chunk in chunks if self._sound(chunk) for n in chunk}

    def hold(self, number: int, composite: Composite | None) -> None:
        """Hold what frame `number`'s comp changed (None: passed through) until its chunk is
        kept; the frame itself is not held (a 4K comp is 50 MB)."""
        region = EMPTY_REGION if composite is None else composite.region
        x0, y0, x1, y1 = region
        region_key, pixels_key = _names(number)
        self._held[region_key] = np.array(region, np.int64)
        self._held[pixels_key] = (
            np.zeros(0) if composite is None else composite.comp[y0:y1, x0:x1].copy()
        )

    def keep(self, chunk: Sequence[int]) -> None:
        """Keep `chunk`, whose every frame is held."""
        held = {key: self._held.pop(key) for n in chunk for key in _names(n)}
        with atomic_path(self._path(chunk)) as temp:
            np.savez(temp, **held)

    def restored(
        self, chunk: Sequence[int], frames: dict[int, np.ndarray]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(number, comp) of each frame of a kept `chunk`: its plate `frames` with the kept
        pixels put back."""
        path = self._path(chunk)
        with np.load(path) as kept:
            for number in chunk:
                region_key, pixels_key = _names(number)
                x0, y0, x1, y1 = (int(v) for v in kept[region_key])
                comp = frames[number]
                if x1 > x0 and y1 > y0:
                    pixels = kept[pixels_key]
                    if pixels.dtype != comp.dtype or pixels.shape[2:] != comp.shape[2:]:
                        raise DubplateError(
                            f"{path}: frame {number}'s kept pixels are {pixels.dtype} in"
                            f" {pixels.shape[2:]} channels where the plate decodes to"
                            f" {comp.dtype} in {comp.shape[2:]}; remove {path.parent} to make"
                            " them again"
                        )
                    comp = comp.copy()
                    comp[y0:y1, x0:x1] = pixels
                yield number, comp

    def discard(self) -> None:
        """Remove what was kept: the movie it was kept for is written."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _path(self, chunk: Sequence[int]) -> Path:
        return self.folder / f"{chunk[0]:08d}-{chunk[-1]:08d}.npz"

    def _sound(self, chunk: Sequence[int]) -> bool:
        """Whether `chunk`'s file is there and every frame's region and pixels in it read back
        whole and fit the frame: a node that lost its power may leave a file renamed but not
        written out, whole or in part (reading every member checks its CRC)."""
        path = self._path(chunk)
        if not path.is_file():
            return False
        try:
            arrays = load_arrays(path, [name for number in chunk for name in _names(number)])
        except DubplateError as error:
            log.warning("dub: %s: its frames are made again", error)
            return False
        for number in chunk:
            region_key, pixels_key = _names(number)
            if not self._fits(arrays[region_key], arrays[pixels_key]):
                log.warning("dub: %s: frame %d's pixels do not fit it: made again", path, number)
                return False
        return True

    def _fits(self, region: np.ndarray, pixels: np.ndarray) -> bool:
        if region.shape != (4,):
            return False
        x0, y0, x1, y1 = (int(v) for v in region)
        if x1 <= x0 or y1 <= y0:
            return True  # nothing changed
        inside = 0 <= x0 and x1 <= self.width and 0 <= y0 and y1 <= self.height
        return inside and pixels.ndim == 3 and pixels.shape[:2] == (y1 - y0, x1 - x0)


def _names(number: int) -> tuple[str, str]:
    return f"region_{number}", f"pixels_{number}"
