"""What `dub` learns of a plate's frames for one actor before it draws any, whatever the audio
says: which mouths are covered and by which test, each frame's light, and the sharpening that
makes the drawn mouths as sharp as the plate's own. Cached by the actor's files, the plate's
frames and files, its track's landmarks and the settings that change it (`dub._check_key`), so
that the shot dubbed again (another language, another take) or taken up after a stop skips the
work and gets the very same sharpening its first run chose."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.manifest import manifest_header, read_versioned_manifest, write_manifest
from dubplate.core.stored import load_arrays

MANIFEST_KIND = "plate_check"
# 2: crops and mouth motion within each run of the track, not across; 3: the lips' colour;
# 4: the sharpening may soften; 5: a colour shift for each lip; 6: the lips' colour measured on
# every sampled mouth, not the stiller half, each smeared as the comp smears it
FORMAT_VERSION = 6
ARRAYS = ("frames", "covered", "by_colour", "by_cover", "light")


@dataclass(frozen=True)
class PlateCheck:
    frames: np.ndarray  # (F,) the fit's frame numbers: the plate's frames with a face
    covered: np.ndarray  # (F,) bool: the mouth is covered, by either test
    by_colour: np.ndarray  # (F,) bool: by the colour test
    by_cover: np.ndarray  # (F,) bool: by the actor's cover network (none without it)
    light: np.ndarray  # (F, 9, 3) float32 SH light of each frame, solved on its crop
    sharpen: float  # matches the drawn mouths to the plate's (the build's if too few are seen)
    # (2, 3) working display values the plate's upper and lower lip are over the drawn ones
    # beyond the seam's shift (composite/match.py `lip_shift`; zero if too few are seen)
    lip_shift: np.ndarray

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        with atomic_path(directory / "plate_check.npz") as temp:
            np.savez_compressed(temp, **{name: getattr(self, name) for name in ARRAYS})
        body = {
            **manifest_header(MANIFEST_KIND, FORMAT_VERSION),
            "arrays": "plate_check.npz",
            "frames": {"first": int(self.frames[0]), "last": int(self.frames[-1])},
            "frames_covered": [int(n) for n in self.frames[self.covered]],
            "sharpen": self.sharpen,
            # Exact (float32 goes through JSON's float64 and back): a dub made with the check
            # as measured and one with it read back must be the same to the bit.
            "lip_shift": [[float(v) for v in lip] for lip in self.lip_shift],
        }
        return write_manifest(directory / "plate_check.json", MANIFEST_KIND, body)

    @classmethod
    def load(cls, directory: Path, frames: np.ndarray) -> PlateCheck:
        """The check saved in `directory`, which must be of the plate's `frames` with a face."""
        directory = Path(directory)
        manifest = read_versioned_manifest(
            directory / "plate_check.json", MANIFEST_KIND, FORMAT_VERSION, "it is checked again"
        )
        check = cls(
            **load_arrays(directory / manifest["arrays"], ARRAYS),
            sharpen=manifest["sharpen"],
            lip_shift=np.array(manifest["lip_shift"], np.float32),
        )
        if not np.array_equal(check.frames, frames):
            raise DubplateError(
                f"{directory}: checked {len(check.frames)} frames with a face, where the plate's"
                f" track now has {len(frames)}"
            )
        count = len(frames)
        shapes = {"covered": (count,), "by_colour": (count,), "by_cover": (count,)}
        shapes["light"] = (count, 9, 3)
        wrong = [name for name, shape in shapes.items() if getattr(check, name).shape != shape]
        if wrong:
            arrays = directory / manifest["arrays"]
            raise DubplateError(f"{arrays}: damaged ({', '.join(wrong)} of another shape)")
        return check
