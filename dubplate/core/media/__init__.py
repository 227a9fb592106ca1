"""Plates and audio. Readers are plugins found through the `dubplate.plates` entry points, so the
core opens EXR sequences without importing the host adapter that reads them."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from dubplate.core.errors import DubplateError
from dubplate.core.media.audio import Audio, AudioFile, Sound, load_audio, open_audio
from dubplate.core.media.plate import Plate, PlateInfo

__all__ = [
    "Audio",
    "AudioFile",
    "Plate",
    "PlateInfo",
    "Sound",
    "load_audio",
    "open_audio",
    "open_plate",
    "plate_readers",
    "reopen_plate",
]


@cache
def plate_readers() -> tuple[type[Plate], ...]:
    """Installed reader classes; each answers `claims(path)` for the files it reads."""
    return tuple(ep.load() for ep in entry_points(group="dubplate.plates"))


def open_plate(path: str | Path, sound: str | Path | None = None, **options: object) -> Plate:
    """Open a movie file or image sequence with the first reader that claims it; with `sound`,
    that audio file is its sound (`Plate.hear`).

    Options every reader takes: colourspace, layer, cache_bytes.
    """
    path = Path(path)
    readers = plate_readers()
    for reader in readers:
        if reader.claims(path):
            plate = reader(path, **options)
            if sound is not None:
                plate.hear(sound)
            return plate
    names = ", ".join(sorted(r.__name__ for r in readers)) or "none installed"
    raise DubplateError(f"{path}: no plate reader recognises this file (readers: {names})")


def reopen_plate(info: dict) -> Plate:
    """The plate a manifest's `plate` entry (`PlateInfo.manifest`) describes, as it was read."""
    return open_plate(
        info["path"],
        info.get("sound"),  # manifests written before plates could be given a sound lack it
        colourspace=info["colourspace"],
        layer=info["layer"],
    )
