"""Tracks cached by what they were made from: the plate's files (path, size, mtime), the frames,
the colour and layer choices and the tracker's version and settings. A changed plate misses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import dubplate
from dubplate.core.errors import DubplateError
from dubplate.core.files import cached_result, file_stamps, key_of
from dubplate.core.media.plate import Plate
from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.likeness import Looks
from dubplate.core.track.mediapipe_face import MEDIAPIPE_VERSION
from dubplate.core.track.tracker import DEFAULT_SETTINGS, TargetHint, TrackSettings, track_plate

# 2: a movie shown turned is read upright; 3: the target is kept by its look; 4: faces that fill
# the frame are found, the refused face is not the target's on its own frame; 5: picture cuts;
# 6: each frame's look kept; 7: an unpicked target waits for a frame where it meshes, and
# target.faces counts the most faces up to the pick; 8: with looks, the pick waits for a face
# like them, and the frames before a pick are tracked back from it
CACHE_FORMAT = 8

log = logging.getLogger(__name__)


def cached_track(
    plate: Plate,
    numbers: Sequence[int],
    cache_dir: Path,
    settings: TrackSettings = DEFAULT_SETTINGS,
    target: TargetHint | None = None,
    known: Looks | None = None,
) -> FaceTrack:
    """The track of `numbers` of `plate` (of the face `target` picks, else the one like `known`,
    see `track_plate`), from the cache when it holds it."""
    if known is not None and target is None:
        entry = Path(cache_dir) / _key(plate, numbers, settings, None, None)
        alone = _single_face_track(entry, known, settings.unlike)
        if alone is not None:
            return alone
    return cached_result(
        Path(cache_dir) / _key(plate, numbers, settings, target, known),
        "track",
        FaceTrack.load,
        lambda: track_plate(plate, numbers, target, settings, known),
        FaceTrack.save,
    )


def _single_face_track(entry: Path, known: Looks, unlike: float) -> FaceTrack | None:
    """The track cached without looks to compare (an actor's footage, tracked before the actor
    had any), where no frame up to its pick held another face and the face picked looks like
    `known`: looks would pick the same, on the same frame."""
    if not entry.is_dir():
        return None
    try:
        track = FaceTrack.load(entry)
    except DubplateError:
        return None  # damaged: tracked afresh, with the looks
    target = track.settings["target"]
    if target.get("faces") != 1 or track.looks is None:
        return None
    distance = known.distance(track.looks[np.flatnonzero(track.frames == target["frame"])[0]])
    if not distance <= unlike:  # a NaN look is no likeness
        return None
    log.info("track: cached %s (one face where it was picked, like the actor's)", entry)
    # What a track made with the looks says of its pick.
    target["reason"] = (
        f"nearest the actor's look of 1 face(s) meshed, look {distance:.2f} from the actor's"
    )
    return track


def _key(
    plate: Plate,
    numbers: Sequence[int],
    settings: TrackSettings,
    target: TargetHint | None,
    known: Looks | None,
) -> str:
    what = {
        "files": file_stamps(plate.source_files(numbers)),
        "frames": list(numbers),
        # The sound given to a plate moves no face: a track made without it is the same track.
        "plate": {k: v for k, v in plate.info.manifest().items() if k != "sound"},
        "dubplate": dubplate.__version__,
        "format": CACHE_FORMAT,
        "mediapipe": MEDIAPIPE_VERSION,
        "settings": repr(settings),
        "target": repr(target),
        "known_looks": known and known.digest(),
    }
    return key_of(what)
