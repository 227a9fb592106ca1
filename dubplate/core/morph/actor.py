"""An actor on disk: `actors/NAME/` with actor.json (validated), model.npz, texture.exr, one
fit_N.npz per source footage and looks.npz (how the face looks, to find it among others)."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import torch

from dubplate.core.errors import DubplateError
from dubplate.core.files import staged_dir, write_image
from dubplate.core.manifest import manifest_header, read_versioned_manifest, write_manifest
from dubplate.core.media.plate import Plate
from dubplate.core.morph.appearance import (
    FaceCrops,
    fit_appearance,
    light_for_frames,
    load_crops,
)
from dubplate.core.morph.fit import (
    ActorFit,
    build_geometry,
    fit_frames,
    lip_error_px,
    reprojection_px,
)
from dubplate.core.morph.model import ActorModel
from dubplate.core.morph.triangles import TRIANGLES
from dubplate.core.stored import load_arrays
from dubplate.core.track import FaceTrack
from dubplate.core.track.likeness import Looks

log = logging.getLogger(__name__)

MANIFEST_KIND = "actor"
FORMAT_VERSION = 1
MODEL_ARRAYS = ("neutral", "lower_basis", "upper_basis", "lower_vertices", "uv")
FIT_ARRAYS = ("frames", "scale", "rotation", "translation", "lower", "upper", "light")
LOOKS_FILE = "looks.npz"
TEXTURE_SAMPLES = 32  # frames per footage the albedo atlas is unwrapped from


@dataclass
class Actor:
    name: str
    model: ActorModel
    fits: list[ActorFit]
    sources: list[dict]
    figures: dict = field(default_factory=dict)
    looks: Looks | None = None  # None for actors built before looks were kept

    def save(self, directory: Path) -> Path:
        """Write to `directory`, which must not exist yet: an actor is never overwritten."""
        directory = Path(directory)
        if directory.exists():
            raise DubplateError(f"{directory}: already exists; choose another --out")
        with staged_dir(directory.parent) as staged:
            np.savez_compressed(
                staged / "model.npz", **{k: getattr(self.model, k) for k in MODEL_ARRAYS}
            )
            _write_texture(staged / "texture.exr", self.model.texture)
            if self.looks is not None:
                np.savez_compressed(
                    staged / LOOKS_FILE, vertices=self.looks.vertices, samples=self.looks.samples
                )
            for index, fit in enumerate(self.fits):
                arrays = {k: getattr(fit, k) for k in FIT_ARRAYS}
                if fit.runs is not None:
                    arrays["runs"] = fit.runs
                np.savez_compressed(staged / f"fit_{index}.npz", **arrays)
            write_manifest(staged / "actor.json", MANIFEST_KIND, self.manifest())
            os.rename(staged, directory)
        return directory

    def manifest(self) -> dict:
        return {
            **manifest_header(MANIFEST_KIND, FORMAT_VERSION),
            "name": self.name,
            "sources": [{**s, "fit": f"fit_{i}.npz"} for i, s in enumerate(self.sources)],
            "model": {
                "vertices": int(self.model.neutral.shape[0]),
                "triangles": len(TRIANGLES),
                "lower_basis": int(len(self.model.lower_basis)),
                "upper_basis": int(len(self.model.upper_basis)),
                "lower_vertices": int(len(self.model.lower_vertices)),
                "texture_px": int(self.model.texture.shape[0]),
            },
            "figures": self.figures,
            "arrays": {
                "model": "model.npz",
                "texture": "texture.exr",
                **({"looks": LOOKS_FILE} if self.looks is not None else {}),
            },
        }

    @classmethod
    def load(cls, directory: Path) -> Actor:
        directory = Path(directory)
        manifest = read_versioned_manifest(
            directory / "actor.json", MANIFEST_KIND, FORMAT_VERSION, "build the actor again"
        )
        arrays = load_arrays(directory / manifest["arrays"]["model"], MODEL_ARRAYS)
        model = ActorModel(
            **arrays, texture=_read_texture(directory / manifest["arrays"]["texture"])
        )
        fits = []
        for source in manifest["sources"]:
            # Actors built before runs were kept hold none: all of a footage is one run.
            values = load_arrays(directory / source["fit"], FIT_ARRAYS, optional=("runs",))
            fits.append(ActorFit(**values, plate=source["plate"]))
        sources = [{k: v for k, v in s.items() if k != "fit"} for s in manifest["sources"]]
        looks = manifest["arrays"].get("looks")
        if looks is not None:
            looks = Looks(**load_arrays(directory / looks, ("vertices", "samples")))
        return cls(manifest["name"], model, fits, sources, manifest["figures"], looks)


def build_actor(
    name: str,
    footage: list[tuple[Plate, FaceTrack]],
    lower_k: int = 24,
    upper_k: int = 16,
    texture_px: int = 256,
) -> Actor:
    """Model, per-frame fits, albedo atlas and per-frame light from tracked footage."""
    for plate, track in footage:
        log.info(
            "actor %s: %s: %d frame(s) with the face, %d without (excluded)",
            name,
            plate.info.source,
            int(track.found.sum()),
            len(track.frames_without_face),
        )
    shapes = [track.landmarks[track.found] for _, track in footage]
    model = build_geometry(shapes, lower_k, upper_k)
    fits = [
        fit_frames(model, track.landmarks[track.found], track.frames[track.found])
        for _, track in footage
    ]
    samples = [
        load_crops(plate, model, fit, _evenly(len(fit.frames), TEXTURE_SAMPLES))
        for (plate, _), fit in zip(footage, fits, strict=True)
    ]
    appearance = fit_appearance(model, _joined(samples), texture_px)
    model.texture = appearance.texture
    for (plate, track), fit in zip(footage, fits, strict=True):
        fit.light = light_for_frames(plate, model, fit)
        fit.plate = plate.info.manifest()
        fit.runs = track.found_runs()
    errors = np.concatenate(
        [reprojection_px(model, fit, s) for fit, s in zip(fits, shapes, strict=True)]
    )
    figures = {
        "frames": int(len(errors)),
        "reprojection_px": round(float(errors.mean()), 4),
        "mouth_reprojection_px": round(lip_error_px(errors), 4),
        "photometric_error": round(appearance.error_sh, 5),
        "photometric_error_flat": round(appearance.error_flat, 5),
    }
    log.info(
        "actor %s: reprojection %.3f px (lips %.3f), photometric %.4f (flat light %.4f)",
        name,
        figures["reprojection_px"],
        figures["mouth_reprojection_px"],
        figures["photometric_error"],
        figures["photometric_error_flat"],
    )
    sources = [
        {
            "plate": plate.info.manifest(),
            "frames": [int(track.frames[0]), int(track.frames[-1])],
            "frames_with_face": int(track.found.sum()),
            "frames_without_face": track.frames_without_face,
        }
        for plate, track in footage
    ]
    return Actor(name, model, fits, sources, figures, _looks(name, [t for _, t in footage]))


def _looks(name: str, tracks: list[FaceTrack]) -> Looks | None:
    """The face's looks over every footage, so `dub` can pick it among others in a plate."""
    looks = [track.target_looks() for track in tracks]
    if any(look is None for look in looks):
        log.warning("actor %s: a footage's track keeps no looks; dub picks the largest face", name)
        return None
    return functools.reduce(Looks.joined, looks)


def _evenly(count: int, samples: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, min(count, samples)).round().astype(int))


def _joined(crops: list[FaceCrops]) -> FaceCrops:
    return FaceCrops(
        pixels=torch.cat([c.pixels for c in crops]),
        screen=torch.cat([c.screen for c in crops]),
        regions=np.concatenate([c.regions for c in crops]),
    )


def _write_texture(path: Path, texture: np.ndarray) -> None:
    """Linear Rec.709 albedo as half-float EXR."""
    spec = oiio.ImageSpec(texture.shape[1], texture.shape[0], 3, "half")
    spec.attribute("compression", "zip")
    spec.attribute("oiio:ColorSpace", "lin_rec709")
    write_image(path, spec, texture.astype(np.float32))


def _read_texture(path: Path) -> np.ndarray:
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise DubplateError(f"{path}: missing or unreadable texture ({oiio.geterror()})")
    try:
        pixels = inp.read_image(0, 0, 0, 3, "float")
    finally:
        inp.close()
    if pixels is None:
        raise DubplateError(f"{path}: unreadable texture")
    return pixels
