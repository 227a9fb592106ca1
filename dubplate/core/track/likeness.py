"""Whether a face is the tracked person, by its look, so the track keeps one person through cuts,
crossings and someone else stepping into the target's place.

The look of a face is its brightness sampled at the mesh's own vertices: a shape-free texture,
aligned by the mesh whatever the pose. Only the upper face counts (eyes, brows, nose, cheeks,
forehead): speech moves the mouth and jaw. The samples are blurred to the face's scale and
normalised to zero mean and unit variance, so exposure and grade changes cancel. Likeness to the
target is one minus the correlation with the nearest of the target's looks seen so far.

Measured by bench/track_bench.py on the shared footage, against the looks the tracker keeps from
a clip's first half: the clip's second half at most 0.06 away, the same woman in another shot and
crop (woman_flag_a, woman_flag_b) at most 0.06, any two different people at least 0.26.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from dubplate.core.track.landmarks import LIPS, MESH_VERTEX_COUNT

# Distance over which a face is another person: halfway between the same person's 0.06 and two
# different people's 0.26 (above).
UNLIKE = 0.16
BLUR_OF_FACE = 1 / 80  # blur sigma over the face's size: skin texture and grain out, features in
GALLERY_SIZE = 48  # looks kept; thinned by half when full, so a long plate keeps its whole span
GALLERY_EVERY = 5  # frames between looks added while the target is followed
RECENT = 8  # last looks kept beside the gallery

FOREHEAD, CHIN, SUBNASALE = 10, 152, 2


def look_of(gray: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(468,) brightness at each mesh vertex of a uint8 grey image the points are in."""
    mesh = points[:MESH_VERTEX_COUNT, :2]
    sigma = max(float(np.ptp(mesh, axis=0).max()) * BLUR_OF_FACE, 0.5)
    blurred = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma)
    height, width = gray.shape
    x = np.clip(np.rint(mesh[:, 0]).astype(int), 0, width - 1)
    y = np.clip(np.rint(mesh[:, 1]).astype(int), 0, height - 1)
    return blurred[y, x]


def upper_face(points: np.ndarray) -> np.ndarray:
    """Vertices above the subnasale along the face's own forehead-to-chin axis, lips excluded,
    so the choice holds for a tilted or rolled face."""
    mesh = points[:MESH_VERTEX_COUNT, :2].astype(np.float64)
    axis = mesh[CHIN] - mesh[FOREHEAD]
    height = (mesh - mesh[FOREHEAD]) @ axis / (axis @ axis)
    above = np.flatnonzero(height < height[SUBNASALE])
    return np.setdiff1d(above, LIPS)


def _normalised(look: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    values = look[vertices].astype(np.float64)
    return (values - values.mean()) / (values.std() + 1e-6)


def _nearest(candidate: np.ndarray, known: list[np.ndarray]) -> float:
    """One minus the best correlation of a normalised look with normalised `known` ones."""
    return float(1.0 - max(candidate @ k for k in known) / len(candidate))


@dataclass(frozen=True, eq=False)  # arrays: compared by `digest`
class Looks:
    """A person's looks kept from their footage's track, so a plate's faces can be told apart by
    who they are: raw looks (see `look_of`) and the upper-face vertices they are compared over."""

    vertices: np.ndarray  # (V,) int
    samples: np.ndarray  # (G, 468) float32

    @classmethod
    def of_frames(cls, points: np.ndarray, looks: np.ndarray) -> Looks:
        """Up to GALLERY_SIZE of a track's looks, evenly over its found frames (`points`
        (N, 478, 3) and `looks` (N, 468)), compared over the first frame's upper face."""
        picks = np.linspace(0, len(looks) - 1, min(len(looks), GALLERY_SIZE))
        return cls(upper_face(points[0]), looks[np.unique(picks.round().astype(int))])

    def joined(self, other: Looks) -> Looks:
        return Looks(self.vertices, np.concatenate([self.samples, other.samples]))

    def distance(self, look: np.ndarray) -> float:
        known = [_normalised(sample, self.vertices) for sample in self.samples]
        return _nearest(_normalised(look, self.vertices), known)

    def digest(self) -> str:
        """What a cache key holds of them."""
        hashed = hashlib.sha256(self.vertices.astype(np.int64).tobytes())
        hashed.update(self.samples.astype(np.float32).tobytes())
        return hashed.hexdigest()[:16]


class Likeness:
    """The target's looks so far, and how far a new look is from the nearest of them: a gallery
    sampled over the whole track (a cut back to the target in a pose seen before) and the last
    few looks (a head turning away from every pose in the gallery)."""

    def __init__(self, points: np.ndarray, look: np.ndarray):
        self.vertices = upper_face(points)
        self.gallery = [_normalised(look, self.vertices)]
        self.recent: deque[np.ndarray] = deque(maxlen=RECENT)
        self._seen = 0

    def distance(self, look: np.ndarray) -> float:
        return _nearest(_normalised(look, self.vertices), [*self.gallery, *self.recent])

    def remember(self, look: np.ndarray) -> None:
        normalised = _normalised(look, self.vertices)
        self.recent.append(normalised)
        self._seen += 1
        if self._seen % GALLERY_EVERY:
            return
        self.gallery.append(normalised)
        if len(self.gallery) > GALLERY_SIZE:
            self.gallery = self.gallery[:1] + self.gallery[2::2]  # the first look always stays

    def restart(self) -> None:
        """Forget the last looks: the track goes on from the first look (the other way)."""
        self.recent.clear()
