"""Tracks cached by what they were made from: the plate's files (path, size, mtime), the frames,
the colour and layer choices and the tracker's version and settings. A changed plate misses."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import dubplate
from dubplate.core.errors import DubplateError
from dubplate.core.files import file_stamps, key_of, staged_dir
from dubplate.core.media.plate import Plate
from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.mediapipe_face import MEDIAPIPE_VERSION
from dubplate.core.track.tracker import DEFAULT_SETTINGS, TrackSettings, track_plate

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: a movie shown turned is read upright (its tracks of before are sideways)


def cached_track(
    plate: Plate,
    numbers: Sequence[int],
    cache_dir: Path,
    settings: TrackSettings = DEFAULT_SETTINGS,
) -> FaceTrack:
    entry = Path(cache_dir) / _key(plate, numbers, settings)
    if (entry / "track.json").is_file():
        try:
            track = FaceTrack.load(entry)
            log.info("track: cached %s", entry)
            return track
        except DubplateError as error:
            log.warning("%s; tracked again", error)
            shutil.rmtree(entry, ignore_errors=True)
    track = track_plate(plate, numbers, settings=settings)
    try:
        with staged_dir(Path(cache_dir)) as staged:
            track.save(staged)
            try:
                os.rename(staged, entry)
            except OSError:  # another run cached the same track meanwhile: keep theirs
                pass
    except (OSError, DubplateError) as error:  # a read-only or full cache: the track is still good
        log.warning("%s: the track is not cached (%s)", cache_dir, error)
    return track


def _key(plate: Plate, numbers: Sequence[int], settings: TrackSettings) -> str:
    what = {
        "files": file_stamps(plate.source_files(numbers)),
        "frames": list(numbers),
        # The sound given to a plate moves no face: a track made without it is the same track.
        "plate": {k: v for k, v in plate.info.manifest().items() if k != "sound"},
        "dubplate": dubplate.__version__,
        "format": CACHE_FORMAT,
        "mediapipe": MEDIAPIPE_VERSION,
        "settings": repr(settings),
    }
    return key_of(what)
