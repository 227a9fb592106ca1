"""A movie dub's comped frames, kept a chunk at a time in its work directory while it is made.

A movie is one stream, encoded whole: a run that stops cannot append to it. What it drew is
kept instead, as the pixels the matte changed (a few hundred KB a frame, where the frame is
megabytes), so the same dub again draws only the chunks not kept and encodes the movie anew
from the plate's frames with the kept pixels put back."""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from dubplate.core.composite.comp import EMPTY_REGION, Composite
from dubplate.core.files import atomic_path

log = logging.getLogger(__name__)

KEPT_DIR = "kept"


class KeptComps:
    """The chunks of a dub kept in `work`/kept, one .npz each: per frame its changed region
    (x0, y0, x1, y1) and the comp's pixels there."""

    def __init__(self, work: Path):
        self.folder = Path(work) / KEPT_DIR
        self._held: dict[str, np.ndarray] = {}

    def kept_frames(self, chunks: Sequence[Sequence[int]]) -> set[int]:
        """The frames of every chunk kept whole and readable (a node that lost its power may
        leave a file renamed but never written out)."""
        return {n for chunk in chunks if self._readable(chunk) for n in chunk}

    def hold(self, number: int, composite: Composite | None) -> None:
        """Hold what frame `number`'s comp changed (None: passed through) until its chunk is
        kept; the frame itself is not held (a 4K comp is 50 MB)."""
        region = EMPTY_REGION if composite is None else composite.region
        x0, y0, x1, y1 = region
        self._held[f"region_{number}"] = np.array(region, np.int64)
        self._held[f"pixels_{number}"] = (
            np.zeros(0) if composite is None else composite.comp[y0:y1, x0:x1].copy()
        )

    def keep(self, chunk: Sequence[int]) -> None:
        """Keep `chunk`, whose every frame is held."""
        held = {name: self._held.pop(name) for n in chunk for name in _names(n)}
        with atomic_path(self._path(chunk)) as temp:
            np.savez(temp, **held)

    def restored(
        self, chunk: Sequence[int], frames: dict[int, np.ndarray]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(number, comp) of each frame of a kept `chunk`: its plate `frames` with the kept
        pixels put back."""
        with np.load(self._path(chunk)) as kept:
            for number in chunk:
                region, pixels = _names(number)
                x0, y0, x1, y1 = (int(v) for v in kept[region])
                comp = frames[number]
                if x1 > x0 and y1 > y0:
                    comp = comp.copy()
                    comp[y0:y1, x0:x1] = kept[pixels]
                yield number, comp

    def discard(self) -> None:
        """Remove what was kept: the movie it was kept for is written."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _path(self, chunk: Sequence[int]) -> Path:
        return self.folder / f"{chunk[0]:08d}-{chunk[-1]:08d}.npz"

    def _readable(self, chunk: Sequence[int]) -> bool:
        path = self._path(chunk)
        if not path.is_file():
            return False
        try:
            with np.load(path) as kept:
                return all(name in kept.files for n in chunk for name in _names(n))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            log.warning("dub: %s cannot be read (%s): its frames are made again", path, error)
            return False


def _names(number: int) -> tuple[str, str]:
    return f"region_{number}", f"pixels_{number}"
