"""The actor's neural renderer on disk, beside the actor: renderer.pt (the generator's
state_dict), renderer.npz (reference crops, where the mesh lies in each, and the mouths the hole
is cut around) and renderer.json. Training checkpoints to renderer.ckpt, which a rerun resumes
from."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from dubplate.core.a2e.store import rest_coefficients
from dubplate.core.colour import Highlights
from dubplate.core.composite.crop import CROP_SIDE, CropTrack, crop_track
from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.manifest import manifest_header, read_actor_stage_manifest, write_manifest
from dubplate.core.media import reopen_plate
from dubplate.core.media.plate import Plate
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.appearance import LINEAR_SPACE
from dubplate.core.morph.fit import ActorFit
from dubplate.core.neural.covered import covered_footage_frames, uncovered_fits
from dubplate.core.neural.finish import (
    FILM_SHUTTER_ANGLE,
    SharpenMeasure,
    finish_words,
    measure_finish,
)
from dubplate.core.neural.frames import HOLE_DILATE, FaceFrames, FrameMaker, ReferenceCrops
from dubplate.core.neural.network import FORMAT_VERSION, REFERENCE_COUNT, WIDTHS, Generator
from dubplate.core.neural.occlusion import spread
from dubplate.core.neural.train import RendererSettings, TrainingSet, train_renderer
from dubplate.core.progress import Progress
from dubplate.core.stored import load_arrays, load_weights
from dubplate.core.track.landmarks import mouth_opening

log = logging.getLogger(__name__)

MANIFEST_KIND = "renderer"
READ_CHUNK = 32  # frames cut and rendered at once while building the training set
REFERENCE_ARRAYS = ("references", "reference_screen", "hole_lowers")
# The renderer's view keeps brightness over white up to the brightest channel that all but this
# share of the footage's lower-face pixels stay under: a specular glint past it is drawn at the
# peak rather than spending the view's codes on it.
HIGHLIGHT_SHARE = 0.001
# Beside the actor while its renderer learns: every training frame's inputs.
INPUTS_DIR = ".renderer-inputs"


class _Footage(NamedTuple):
    """One footage's training frames: `rows` of its fit, and their mouth openings."""

    plate: Plate
    fit: ActorFit
    rows: np.ndarray
    crops: CropTrack
    opening: np.ndarray


@dataclass
class NeuralRenderer:
    generator: Generator
    references: ReferenceCrops  # the most open mouth, then the most closed
    hole_lowers: np.ndarray  # (K, lower coefficients)
    size: int
    sharpen: SharpenMeasure  # how much the comp sharpens what the generator draws
    shutter_angle: float  # and the smear, after it
    highlights: Highlights  # the view it learnt and draws in


def extreme_mouths(actor: Actor, covered: dict[str, list[int]] | None = None) -> np.ndarray:
    """(2, K) lower-face coefficients of the actor's closed and most open mouth, from the
    footage frames not `covered` (by footage path)."""
    fits = uncovered_fits(actor, covered or {})
    lower = np.concatenate([f.lower for f in fits])
    upper = np.concatenate([f.upper for f in fits])
    widest = lower[np.argmax(mouth_opening(actor.model.shape(lower, upper)))]
    return np.stack([rest_coefficients(actor.model, fits), widest]).astype(np.float32)


def training_set(
    actor: Actor,
    size: int,
    hole_lowers: np.ndarray,
    last_frame: int | None = None,
    covered: dict[str, list[int]] | None = None,
    work_dir: Path | None = None,
) -> tuple[TrainingSet, ReferenceCrops, Highlights]:
    """Inputs of every fitted frame (up to `last_frame`) of every footage of the actor but the
    `covered` ones (by footage path); the references: the crops of the most open and the most
    closed mouth among them; and the view of highlights they are all made in. The inputs are
    filled in place: in memory, or given a `work_dir`, in files there that the page cache holds
    as far as memory allows (19 bytes a pixel: a minute of footage at 1024 px is 28 GiB)."""
    footage: list[_Footage] = []
    for source, fit in zip(actor.sources, actor.fits, strict=True):
        info = source["plate"]
        plate = reopen_plate(info)
        kept = ~np.isin(fit.frames, (covered or {}).get(info["path"], []))
        if last_frame is not None:
            kept &= fit.frames <= last_frame
        rows = np.flatnonzero(kept)
        crops = crop_track(actor.model, fit, size)
        shapes = actor.model.shape(fit.lower[rows], fit.upper[rows])
        opening = mouth_opening(shapes) * actor.model.face_box_scale
        footage.append(_Footage(plate, fit, rows, crops, opening))
    opening = np.concatenate([part.opening for part in footage])
    if not len(opening):
        raise DubplateError(
            f"actor {actor.name}: no footage frame to train the renderer on (up to frame"
            f" {last_frame}, mouth uncovered)"
        )
    widest, closest = int(np.argmax(opening)), int(np.argmin(opening))
    log.info(
        "renderer: %d training frames; reference crops from training frames %d (open mouth,"
        " lips %.1f px apart in a 256-px face box) and %d (closed, %.1f px)",
        len(opening),
        widest,
        opening[widest],
        closest,
        opening[closest],
    )
    highlights = footage_highlights(actor, footage, hole_lowers)
    references = _reference_crops(actor, footage, [widest, closest], hole_lowers, highlights)
    data = _empty_training_set(len(opening), size, work_dir)
    data.opening[:] = opening
    filled = 0
    for plate, fit, rows, crops, _ in footage:
        maker = FrameMaker(
            plate,
            actor.model,
            fit,
            crops,
            hole_lowers,
            references=references,
            highlights=highlights,
        )
        progress = Progress(f"renderer inputs {Path(plate.info.source).name}", len(rows))
        for start in range(0, len(rows), READ_CHUNK):
            chunk = rows[start : start + READ_CHUNK]
            pixels = [p for _, p in plate.frames(int(n) for n in fit.frames[chunk])]
            _fill(data, filled, maker.make(chunk, pixels))
            filled += len(chunk)
            progress.advance(len(chunk))
    return data, references, highlights


def _empty_training_set(frames: int, size: int, work_dir: Path | None) -> TrainingSet:
    """A training set of `frames` to be filled: in memory, or in .npy files in `work_dir`."""

    def empty(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        if work_dir is None:
            return np.empty(shape, dtype)
        path = work_dir / f"{name}.npy"
        array = np.lib.format.open_memmap(path, "w+", dtype, shape)
        _reserve(path)
        return array

    square = (size, size)
    return TrainingSet(
        real=torch.from_numpy(empty("real", (frames, 3, *square), np.uint8)),
        renders=torch.from_numpy(empty("renders", (frames, 3, 3, *square), np.uint8)),
        hole=torch.from_numpy(empty("hole", (frames, 1, *square), np.bool_)),
        references=torch.from_numpy(
            empty("references", (frames, REFERENCE_COUNT, 3, *square), np.uint8)
        ),
        opening=np.empty(frames, np.float32),
        mouth_motion=np.empty((frames, 2), np.float32),
    )


def _reserve(path: Path) -> None:
    """Give the (sparse) file all its blocks now: a disk that fills while the inputs are
    written would kill the process writing through the map with no word of why."""
    try:
        with open(path, "r+b") as file:
            os.posix_fallocate(file.fileno(), 0, path.stat().st_size)
    except OSError as error:
        need = path.stat().st_size / 2**30
        raise DubplateError(
            f"{path.parent}: no room for the renderer's training inputs ({path.name}:"
            f" {need:.2f} GiB; {error.strerror}): free some, or train at a smaller --size"
        ) from error


def _fill(data: TrainingSet, start: int, frames: FaceFrames) -> None:
    rows = slice(start, start + len(frames.rows))
    data.real[rows] = frames.real
    data.renders[rows] = frames.renders
    data.hole[rows] = frames.hole
    data.references[rows] = frames.references
    data.mouth_motion[rows] = frames.mouth_motion


def footage_highlights(
    actor: Actor, footage: list[_Footage], hole_lowers: np.ndarray
) -> Highlights:
    """The renderer's view of brightness over white (`Highlights`): its peak is what the lower
    face's brightest channel stays under in all but HIGHLIGHT_SHARE of its pixels, over frames
    spread through each footage; none over 1 for footage within the working space's white."""
    brightest = []
    for plate, fit, rows, crops, _ in footage:
        maker = FrameMaker(plate, actor.model, fit, crops, hole_lowers)
        sample = spread(rows)
        pixels = [p for _, p in plate.frames(int(n) for n in fit.frames[sample])]
        linear = maker.real_linear(sample, pixels)
        brightest.append(linear.max(axis=-1)[maker.holes(sample)])
    values = np.concatenate(brightest)
    values = values[np.isfinite(values)]
    peak = float(np.quantile(values, 1 - HIGHLIGHT_SHARE)) if len(values) else 1.0
    highlights = Highlights(max(peak, 1.0))
    if highlights.rolls:
        colour = footage[0].plate.colour
        # The view is uint8: near white, one code spans the widest step of brightness.
        under_white = np.full((1, 3), 254 / 255, np.float32)
        linear = colour.convert(under_white, colour.working_space, colour.resolve(LINEAR_SPACE))
        step = 1 - float(highlights.unroll(linear).max()) / highlights.peak
        log.info(
            "renderer: the footage's lower face is brighter than white, up to %.2f in linear"
            " light: the renderer's view rolls it off from %.2f (near the peak, a code of the"
            " view is %.0f%% of its brightness)",
            highlights.peak,
            highlights.knee,
            100 * step,
        )
    return highlights


def _reference_crops(
    actor: Actor,
    footage: list[_Footage],
    picks: list[int],
    hole_lowers: np.ndarray,
    highlights: Highlights,
) -> ReferenceCrops:
    """The crops of training frames `picks` (counted over all footage) and their meshes."""
    starts = np.cumsum([0] + [len(part.rows) for part in footage])
    pixels, screens = [], []
    for pick in picks:
        source = int(np.searchsorted(starts, pick, side="right")) - 1
        plate, fit, rows, crops, _ = footage[source]
        row = rows[pick - starts[source]]
        frame = next(iter(plate.frames([int(fit.frames[row])])))[1]
        maker = FrameMaker(plate, actor.model, fit, crops, hole_lowers, highlights=highlights)
        pixels.append(maker.make(np.array([row]), [frame]).real[0])
        screens.append(maker.real_screen[row, :, :2])
    return ReferenceCrops(
        pixels=torch.stack(pixels), screen=torch.from_numpy(np.stack(screens).astype(np.float32))
    )


def train_actor_renderer(
    directory: Path,
    settings: RendererSettings,
    device: str = "cpu",
    last_frame: int | None = None,
) -> dict:
    """Train the actor's renderer and save it beside the actor; resumes a stopped run. Returns
    the training report and the finish (sharpening and shutter) measured on the footage."""
    directory = Path(directory)
    if (directory / "renderer.json").exists():
        raise DubplateError(f"{directory}: already has a renderer (renderer.json); not overwritten")
    actor = Actor.load(directory)
    covered = covered_footage_frames(directory)
    hole_lowers = extreme_mouths(actor, covered)
    work_dir = directory / INPUTS_DIR
    shutil.rmtree(work_dir, ignore_errors=True)  # a stopped build's: made again, alike
    work_dir.mkdir(exist_ok=True)
    try:
        data, references, highlights = training_set(
            actor, settings.size, hole_lowers, last_frame, covered, work_dir=work_dir
        )
        log.info(
            "renderer: the %d training frames' inputs (%.2f GiB at %d px) are held in %s while"
            " it learns",
            len(data),
            sum(t.nbytes for t in (data.real, data.renders, data.hole, data.references)) / 2**30,
            settings.size,
            work_dir,
        )
        generator, report = train_renderer(data, settings, device, directory / "renderer.ckpt")
        sharpen, shutter = measure_finish(generator, data, device)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    ratios = sharpen.drawn_to_footage
    log.info(
        "renderer: the drawn still mouths are %s as sharp as the footage's; %s, %s",
        f"{ratios[0.0]:.2f}x" if ratios else "unmeasured",
        finish_words(sharpen.amount),
        f"{ratios[sharpen.amount]:.2f}x" if ratios else "too few frames to measure",
    )
    log.info(
        "renderer: fast mouths are %s as sharp as still ones in the footage; the drawn ones"
        " match that with a %g-degree shutter's smear (%s)",
        "unmeasured" if shutter.footage_ratio is None else f"{shutter.footage_ratio:.2f}x",
        shutter.angle,
        ", ".join(f"{a:g}: {r:.2f}" for a, r in shutter.drawn_ratios.items()) or "too few frames",
    )
    with atomic_path(directory / "renderer.pt") as temp:
        torch.save(generator.state_dict(), temp)
    with atomic_path(directory / "renderer.npz") as temp:
        np.savez_compressed(
            temp,
            references=references.pixels.numpy(),
            reference_screen=references.screen.numpy(),
            hole_lowers=hole_lowers,
        )
    manifest = {
        **manifest_header(MANIFEST_KIND, FORMAT_VERSION),
        "weights": "renderer.pt",
        "arrays": "renderer.npz",
        "network": {
            "size": settings.size,
            "widths": list(WIDTHS),
            "hole_dilate": HOLE_DILATE,
            "crop_side": CROP_SIDE,
        },
        "sharpen": sharpen.manifest(),
        "shutter": shutter.manifest(),
        "highlights": dataclasses.asdict(highlights),
        "training": {
            "footage": [s["plate"]["path"] for s in actor.sources],
            "last_frame": last_frame,
            "settings": dataclasses.asdict(settings),
            **report,
        },
    }
    write_manifest(directory / "renderer.json", MANIFEST_KIND, manifest)
    (directory / "renderer.ckpt").unlink(missing_ok=True)
    return {**report, "sharpen": manifest["sharpen"], "shutter": manifest["shutter"]}


def renderer_manifest(directory: Path) -> dict:
    return read_actor_stage_manifest(directory, MANIFEST_KIND, FORMAT_VERSION)


def load_renderer(directory: Path, device: str = "cpu") -> NeuralRenderer:
    directory = Path(directory)
    manifest = renderer_manifest(directory)
    generator = Generator(tuple(manifest["network"]["widths"]))
    load_weights(generator, directory / manifest["weights"], device)
    arrays = load_arrays(directory / manifest["arrays"], REFERENCE_ARRAYS)
    return NeuralRenderer(
        generator=generator.to(device).eval(),
        references=ReferenceCrops(
            torch.from_numpy(arrays["references"]), torch.from_numpy(arrays["reference_screen"])
        ),
        hole_lowers=arrays["hole_lowers"],
        size=int(manifest["network"]["size"]),
        # Renderers made before the measures are not sharpened and smear as film cameras do.
        sharpen=SharpenMeasure.from_manifest(manifest["sharpen"])
        if "sharpen" in manifest
        else SharpenMeasure(0.0, {}),
        shutter_angle=float(manifest.get("shutter", {}).get("angle", FILM_SHUTTER_ANGLE)),
        # Renderers made before headroom learnt the view that darkens over-white to white.
        highlights=Highlights(**manifest.get("highlights", {})),
    )
