"""The actor's footage frames whose mouth is covered (a hand, a microphone): found once by the
colour test `dub` runs on plates, kept beside the actor in occlusion.json, and learnt from by
neither the A2E network nor the renderer (a hand would be learnt as a mouth). Then the actor's
cover network (`cover.py`), learnt from the frames left, which `dub` runs beside that test."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from dubplate.core.composite.crop import crop_track
from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.manifest import manifest_header, read_actor_stage_manifest, write_manifest
from dubplate.core.media import reopen_plate
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.fit import ActorFit
from dubplate.core.neural.cover import WIDTH, CoverNet, CoverSettings, train_cover_net
from dubplate.core.neural.frames import FrameMaker
from dubplate.core.neural.occlusion import covered_rows, lips_said, read_crops, spread
from dubplate.core.progress import Progress
from dubplate.core.stored import load_weights

log = logging.getLogger(__name__)

MANIFEST_KIND = "occlusion"
FORMAT_VERSION = 1
CROP_PX = 256  # the crop the test's constants were measured on
READ_CHUNK = 32
COVER_KIND = "cover"
COVER_VERSION = 1
# Footage crops the cover network learns from at most, spread over the takes: what minutes of
# footage add to a few hundred frames is little, and 400 256-px crops are 79 MB.
MAX_COVER_CROPS = 400
DEFAULT_COVER = CoverSettings()


def covered_footage_frames(directory: Path) -> dict[str, list[int]]:
    """By footage path, its fitted frames whose mouth is covered; found and saved on first use."""
    directory = Path(directory)
    if (directory / f"{MANIFEST_KIND}.json").exists():
        manifest = read_actor_stage_manifest(directory, MANIFEST_KIND, FORMAT_VERSION)
        return manifest["frames_occluded"]
    actor = Actor.load(directory)
    found, limits, lip_limits = {}, {}, {}
    for source, fit in zip(actor.sources, actor.fits, strict=True):
        info = source["plate"]
        plate = reopen_plate(source["plate"])
        crops = crop_track(actor.model, fit, CROP_PX)
        maker = FrameMaker(plate, actor.model, fit, crops, fit.lower[:1])
        progress = Progress(f"covered mouths {Path(info['path']).name}", len(fit.frames))
        result = covered_rows(maker, np.arange(len(fit.frames)), READ_CHUNK, progress)
        covered, test = result.covered, result.test
        found[info["path"]] = [int(n) for n in fit.frames[covered]]
        limits[info["path"]] = round(test.limit, 4)
        lip_limits[info["path"]] = round(test.lip_limit, 4)
        log.info(
            "actor: %s: %d frame(s) more than %.0f%% unlike the actor's lower face%s (mouth"
            " covered), not learnt from%s",
            info["path"],
            int(covered.sum()),
            100 * test.limit,
            lips_said(test.lip_limit),
            f": {found[info['path']]}" if covered.any() else "",
        )
    manifest = {
        **manifest_header(MANIFEST_KIND, FORMAT_VERSION),
        "frames_occluded": found,
        "limits": limits,
        "lip_limits": lip_limits,
    }
    write_manifest(directory / f"{MANIFEST_KIND}.json", MANIFEST_KIND, manifest)
    return found


def footage_lip_limit(directory: Path) -> float:
    """The largest lips' limit the actor's takes set (how far the model misses their lips as a
    rule: the take it misses most speaks for the actor), the floor of a plate's. Infinite, so
    the lips go untested as before, for an actor whose occlusion.json predates the lips' test:
    only their footage tells a shot's lips that fit well by chance from lips that always do."""
    if not (Path(directory) / f"{MANIFEST_KIND}.json").exists():
        return math.inf
    manifest = read_actor_stage_manifest(Path(directory), MANIFEST_KIND, FORMAT_VERSION)
    return max(manifest.get("lip_limits", {}).values(), default=math.inf)


def uncovered_fits(actor: Actor, covered: dict[str, list[int]]) -> list[ActorFit]:
    """The actor's fits without their `covered` frames (by footage path), what the mouth models
    are learnt from; an error when no frame is left."""
    fits = [
        fit.select(~np.isin(fit.frames, covered.get(source["plate"]["path"], [])))
        for source, fit in zip(actor.sources, actor.fits, strict=True)
    ]
    if not any(len(fit.frames) for fit in fits):
        raise DubplateError(
            f"actor {actor.name}: the mouth is covered in every fitted footage frame; nothing to"
            " learn from (see occlusion.json)"
        )
    return fits


def train_actor_cover(directory: Path, settings: CoverSettings = DEFAULT_COVER) -> dict:
    """Train the actor's cover network on their uncovered footage crops and save it beside the
    actor (cover.pt, cover.json); returns its report."""
    directory = Path(directory)
    if (directory / f"{COVER_KIND}.json").exists():
        raise DubplateError(
            f"{directory}: already has a cover network (cover.json); not overwritten"
        )
    started = time.perf_counter()
    actor = Actor.load(directory)
    fits = uncovered_fits(actor, covered_footage_frames(directory))
    crops, mouths = [], []
    for source, fit in zip(actor.sources, fits, strict=True):
        if not len(fit.frames):
            continue
        plate = reopen_plate(source["plate"])
        maker = FrameMaker(
            plate, actor.model, fit, crop_track(actor.model, fit, CROP_PX), fit.lower[:1]
        )
        rows = spread(np.arange(len(fit.frames)), max(1, MAX_COVER_CROPS // len(fits)))
        for start in range(0, len(rows), READ_CHUNK):
            part = rows[start : start + READ_CHUNK]
            display = maker.real_display(read_crops(maker, part))
            crops.append(np.round(display * 255).astype(np.uint8))
            mouths.append(np.stack([maker.mouth(row) for row in part]))
    network, report = train_cover_net(np.concatenate(crops), np.concatenate(mouths), settings)
    report["seconds"] = round(time.perf_counter() - started, 1)
    caught = report["fresh_covers_caught"]
    log.info(
        "actor: cover network learnt from %d footage crops: %s of fresh covers of them caught,"
        " %.0f%% of them as they are taken for covered",
        report["frames"],
        "none drawn" if caught is None else f"{100 * caught:.0f}%",
        100 * report["clean_flagged"],
    )
    with atomic_path(directory / f"{COVER_KIND}.pt") as temp:
        torch.save(network.state_dict(), temp)
    manifest = {
        **manifest_header(COVER_KIND, COVER_VERSION),
        "weights": f"{COVER_KIND}.pt",
        "network": {"width": WIDTH, "crop_px": CROP_PX},
        "training": {**report, "seed": settings.seed},
    }
    write_manifest(directory / f"{COVER_KIND}.json", COVER_KIND, manifest)
    return report


def cover_manifest(directory: Path) -> dict:
    return read_actor_stage_manifest(directory, COVER_KIND, COVER_VERSION)


def load_cover(directory: Path) -> CoverNet | None:
    """The actor's cover network; None for an actor built before there was one."""
    directory = Path(directory)
    if not (directory / f"{COVER_KIND}.json").exists():
        return None
    manifest = cover_manifest(directory)
    network = CoverNet(manifest["network"]["width"])
    remedy = f"; delete {COVER_KIND}.json and run `dubplate actor build` again to train it anew"
    return load_weights(network, directory / manifest["weights"], remedy=remedy).eval()
