"""FaceTrack: the stage result of tracking, saved as npz arrays plus a validated JSON manifest."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import dubplate
from dubplate.core.files import atomic_path
from dubplate.core.manifest import read_versioned_manifest, write_manifest
from dubplate.core.runs import split_runs
from dubplate.core.stored import load_arrays
from dubplate.core.track.likeness import Looks

MANIFEST_KIND = "face_track"
FORMAT_VERSION = 1
ARRAYS = ("frames", "landmarks", "raw_landmarks", "boxes", "confidence", "found", "times")


@dataclass
class FaceTrack:
    """Per frame of the plate: landmarks (478 x [x, y, z] in display-window pixels; NaN where the
    target face was not found), the detector's box and score, and the frame's time in seconds."""

    frames: np.ndarray  # (N,) int64 frame numbers
    landmarks: np.ndarray  # (N, 478, 3) float32, smoothed
    raw_landmarks: np.ndarray  # (N, 478, 3) float32, as the mesh gave them
    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1
    confidence: np.ndarray  # (N,) float32, 0 where not found
    found: np.ndarray  # (N,) bool
    times: np.ndarray  # (N,) float64 seconds from the plate's first frame
    plate: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    # (N, 468) float32 the face's look (track/likeness), NaN where not found; None in tracks
    # saved before looks were kept.
    looks: np.ndarray | None = None

    def head(self, count: int) -> FaceTrack:
        """The track of its first `count` frames only (a shot's training part)."""
        arrays = {name: getattr(self, name)[:count] for name in ARRAYS}
        looks = None if self.looks is None else self.looks[:count]
        return FaceTrack(**arrays, plate=self.plate, settings=self.settings, looks=looks)

    def target_looks(self) -> Looks | None:
        """The target's looks over the found frames, to tell it from other faces elsewhere."""
        if self.looks is None or not self.found.any():
            return None
        return Looks.of_frames(self.raw_landmarks[self.found], self.looks[self.found])

    @property
    def frames_without_face(self) -> list[int]:
        return [int(n) for n in self.frames[~self.found]]

    @property
    def cuts(self) -> list[int]:
        """Frames after a frame with the target where the shot cuts (the picture changes as a
        cut does, or the target was found again elsewhere)."""
        return self.settings.get("cuts", [])

    def found_spans(self) -> list[tuple[int, int]]:
        """(start, stop) over the found frames' rows (as a fit holds them) of each run the
        target was followed through: a frame without it or a cut ends one."""
        rows = np.flatnonzero(np.isin(self.frames, self.cuts))
        order = np.cumsum(self.found) - 1
        return [(int(order[a]), int(order[b - 1]) + 1) for a, b in split_runs(self.found, rows)]

    def found_runs(self) -> np.ndarray:
        """(found frames,) the index of the run (`found_spans`) each found frame is in."""
        runs = np.zeros(int(self.found.sum()), np.int32)
        for index, (start, stop) in enumerate(self.found_spans()):
            runs[start:stop] = index
        return runs

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        with atomic_path(directory / "track.npz") as temp:
            arrays = {name: getattr(self, name) for name in ARRAYS}
            if self.looks is not None:
                arrays["looks"] = self.looks
            np.savez_compressed(temp, **arrays)
        return write_manifest(directory / "track.json", MANIFEST_KIND, self.manifest())

    def manifest(self) -> dict:
        return {
            "kind": MANIFEST_KIND,
            "format_version": FORMAT_VERSION,
            "tool": {"name": "dubplate", "version": dubplate.__version__, **self.settings["tool"]},
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "plate": self.plate,
            "frames": {
                "first": int(self.frames[0]),
                "last": int(self.frames[-1]),
                "count": int(len(self.frames)),
                "with_face": int(self.found.sum()),
            },
            "frames_without_face": self.frames_without_face,
            "confidence": [round(float(c), 4) for c in self.confidence],
            "target": self.settings["target"],
            "cuts": self.cuts,
            "smoothing": self.settings["smoothing"],
            "detection": self.settings["detection"],
            "nonfinite_pixels": self.settings.get("nonfinite_pixels", {}),
            "arrays": "track.npz",
        }

    @classmethod
    def load(cls, directory: Path) -> FaceTrack:
        directory = Path(directory)
        manifest = read_versioned_manifest(
            directory / "track.json", MANIFEST_KIND, FORMAT_VERSION, "track the plate again"
        )
        loaded = load_arrays(directory / manifest["arrays"], ARRAYS, optional=("looks",))
        settings = {key: manifest[key] for key in ("target", "smoothing", "detection")}
        settings["cuts"] = manifest.get("cuts", [])  # none recorded before there were
        settings["tool"] = {
            k: v for k, v in manifest["tool"].items() if k not in ("name", "version")
        }
        return cls(**loaded, plate=manifest["plate"], settings=settings)
