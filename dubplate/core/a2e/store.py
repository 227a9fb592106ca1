"""An actor's A2E network on disk, beside the actor: a2e.pt (state_dict) and a2e.json."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from dubplate.core.a2e.expression import footage_mouths
from dubplate.core.a2e.network import A2E, FRAMES_EACH_SIDE, HIDDEN
from dubplate.core.a2e.sync import (
    LOCAL_SYNC_FLOOR,
    LOCAL_SYNC_HALF_S,
    MAX_OFFSET_S,
    MIN_PHONE_SYNC,
    footage_sync,
    footage_unsynced,
)
from dubplate.core.a2e.train import (
    DEFAULT_SETTINGS,
    MEL_MASK_BANDS,
    MEL_MASKS,
    VISEME_RIDGE,
    Footage,
    MouthPrior,
    TrainSettings,
    footage_frames,
    footage_sequences,
    held_out_start,
    train_bag,
    voices_for,
)
from dubplate.core.audio.features import (
    ANALYSIS_VERSION,
    FEATURE_SIZE,
    MEL_BANDS,
    SOFT_EDGE_FRAMES,
    cached_analysis,
    heard_within,
)
from dubplate.core.audio.phones import PHONES, VISEME_OPENNESS, VISEME_SPREAD, VISEMES
from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.manifest import manifest_header, read_actor_stage_manifest, write_manifest
from dubplate.core.media import reopen_plate
from dubplate.core.media.audio import ANALYSIS_RATE
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.model import ActorModel
from dubplate.core.neural.covered import covered_footage_frames, uncovered_fits
from dubplate.core.runs import runs
from dubplate.core.stored import load_weights
from dubplate.core.track.landmarks import mouth_width

log = logging.getLogger(__name__)

MANIFEST_KIND = "a2e"
FORMAT_VERSION = 3  # 2: the linear viseme prior; 3: a bag of networks, a gain per member


def train_actor_a2e(
    directory: Path,
    settings: TrainSettings = DEFAULT_SETTINGS,
    device: str = "cpu",
    last_frame: int | None = None,
    audio_cache: Path | None = None,
) -> dict:
    """Train on every footage of the actor (up to `last_frame` in each) and save beside it; the
    footage's sound, from its first frame on, is analysed once where `audio_cache` is given
    (read back by `qc` of the footage, or by a dub of an image sequence with its WAV)."""
    directory = Path(directory)
    if (directory / "a2e.json").exists():
        raise DubplateError(f"{directory}: already has an A2E network (a2e.json); not overwritten")
    actor = Actor.load(directory)
    covered = covered_footage_frames(directory)
    rng = np.random.default_rng(settings.seed)
    voices = voices_for(settings)
    sequences, syncs = [], []
    for source, fit in zip(actor.sources, actor.fits, strict=True):
        plate_info = source["plate"]
        plate = reopen_plate(plate_info)
        footage = footage_frames(plate, fit, last_frame, covered.get(plate_info["path"], []))
        analysis = cached_analysis(footage.audio, audio_cache)
        sync = footage_sync(footage, analysis, actor.model)
        figures = sync.as_dict()
        log.info(
            "train-a2e: %s: its mouth follows its sound best %+.0f ms past its frames' times"
            " (phone-sync %s, %s as recorded); learnt from the sound %s, in %d voices",
            plate_info["path"],
            1000 * sync.best_offset_s,
            figures["phone_sync"],
            figures["phone_sync_as_recorded"],
            f"moved {1000 * sync.offset_s:+.0f} ms" if sync.offset_s else "as recorded",
            len(voices),
        )
        if sync.phone_sync is None or sync.phone_sync < MIN_PHONE_SYNC:
            log.warning(
                "train-a2e: %s: its mouth follows the phones heard little at any offset within"
                " %.1f s (phone-sync %s); A2E learns little from it: is the sound the actor's"
                " own voice, and in sync?",
                plate_info["path"],
                MAX_OFFSET_S,
                figures["phone_sync"],
            )
        unsynced = footage_unsynced(footage, analysis, actor.model, sync.offset_s)
        footage, left_out = _without_unsynced(
            footage, unsynced, sync.offset_s, settings.validation_share, plate_info["path"]
        )
        figures.update(left_out)
        sequences.append(footage_sequences(footage, voices, rng, sync.offset_s))
        syncs.append(figures)
    # The mouth's range, shut to wide open, is the actor's in any frame: out of sync ones too.
    mouths = mouth_prior(actor.model, uncovered_fits(actor, covered))
    network, report = train_bag(sequences, mouths, settings, device)
    report["footage_sync"] = syncs
    fps = actor.sources[0]["plate"]["fps"]
    with atomic_path(directory / "a2e.pt") as temp:
        torch.save(network.state_dict(), temp)
    manifest = {
        **manifest_header(MANIFEST_KIND, FORMAT_VERSION),
        "weights": "a2e.pt",
        "features": {
            "phones": list(PHONES),
            "visemes": list(VISEMES),
            "mel_bands": MEL_BANDS,
            "soft_edge_frames": SOFT_EDGE_FRAMES,
            "analysis_rate": ANALYSIS_RATE,
            "size": FEATURE_SIZE,
            "analysis_version": ANALYSIS_VERSION,
        },
        "network": {
            "coefficients": int(network.rest.shape[0]),
            "hidden": HIDDEN,
            "members": len(network.members),
            "window_frames": FRAMES_EACH_SIDE,
            "fps": fps,
            "viseme_ridge": VISEME_RIDGE,
        },
        "training": {
            "footage": [s["plate"]["path"] for s in actor.sources],
            "last_frame": last_frame,
            "settings": dataclasses.asdict(settings),
            # What the network heard: each voice as drawn, in `voices_for`'s order, and how many
            # runs of mel bands each training window lost, each at most how wide.
            "augmentation": {
                "voices": [dataclasses.asdict(voice) for voice in voices],
                "mel_masks": MEL_MASKS,
                "mel_mask_bands": MEL_MASK_BANDS,
            },
            **{k: report[k] for k in ("seconds", "voices", "train_frames")},
            # Each bagged network's seed, its held-out choices of steps and gain, its loss there.
            "runs": report["runs"],
            # The saved networks': trained again on every frame for their best_step steps.
            "refit_frames": report.get("refit_frames"),
            "footage_sync": syncs,
            "device": device,
        },
        "validation": {
            k: report[k]
            for k in (
                "validation_loss",
                "validation_loss_viseme_prior",
                "validation_loss_mean_expression",
                "validation_frames",
            )
        },
    }
    write_manifest(directory / "a2e.json", MANIFEST_KIND, manifest)
    return report


def _without_unsynced(
    footage: Footage, unsynced: np.ndarray, offset_s: float, validation_share: float, source: str
) -> tuple[Footage, dict]:
    """The footage with its `unsynced` frames masked, and how many of the frames A2E would learn
    from (seen, and heard `offset_s` late within the audio) were found out of sync and how
    many left out. Nothing is left out where that would leave under half of them, or none in
    the tail held out for validation: a mouth that mostly does not follow its sound is more
    likely a sound out of sync, or not the actor's, than a laugh."""
    learnable = footage.mask & heard_within(footage.times + offset_s, float(footage.audio.duration))
    found = learnable & unsynced
    kept = learnable & ~unsynced
    figures = {"frames_unsynced": int(found.sum()), "frames_left_out_unsynced": 0}
    if not found.any():
        return footage, figures
    if kept.sum() < learnable.sum() / 2:
        log.warning(
            "train-a2e: %s: its mouth does not follow its sound in %d of the %d frames to learn"
            " from, too many to leave out; A2E learns from all of them (is the sound in sync,"
            " and the actor's?)",
            source,
            figures["frames_unsynced"],
            int(learnable.sum()),
        )
        return footage, figures
    if not kept[held_out_start(len(kept), validation_share) :].any():
        log.warning(
            "train-a2e: %s: its mouth does not follow its sound anywhere in the last %.0f%% of"
            " its frames, held out to validate A2E; A2E learns from all of them",
            source,
            100 * validation_share,
        )
        return footage, figures
    figures["frames_left_out_unsynced"] = figures["frames_unsynced"]
    log.info(
        "train-a2e: %s: %d frame(s) not learnt from, where its mouth does not follow its sound"
        " (phone-sync under %g over %g s either side; a laugh, a held smile, another voice): %s",
        source,
        figures["frames_unsynced"],
        LOCAL_SYNC_FLOOR,
        LOCAL_SYNC_HALF_S,
        ", ".join(
            f"{footage.times[start]:.2f}-{footage.times[stop - 1]:.2f} s"
            for start, stop in runs(unsynced)
        ),
    )
    return dataclasses.replace(footage, mask=footage.mask & ~unsynced), figures


def a2e_manifest(directory: Path) -> dict:
    return read_actor_stage_manifest(directory, MANIFEST_KIND, FORMAT_VERSION)


def footage_audio_offsets(directory: Path) -> dict[str, float]:
    """Per footage path, the offset of its sound that the actor's A2E learnt with (`sync.py`):
    what its own audio needs to drive its frames as they were shot. 0 for an A2E trained
    before it was measured."""
    training = a2e_manifest(directory)["training"]
    syncs = training.get("footage_sync") or [{"offset_s": 0.0}] * len(training["footage"])
    return {path: s["offset_s"] for path, s in zip(training["footage"], syncs, strict=True)}


def load_a2e(directory: Path, device: str = "cpu") -> tuple[A2E, dict]:
    directory = Path(directory)
    manifest = a2e_manifest(directory)
    shape = manifest["network"]
    network = A2E(
        manifest["features"]["size"],
        shape["coefficients"],
        shape["hidden"],
        members=shape["members"],
    )
    load_weights(network, directory / manifest["weights"], device)
    _warn_of_another_analysis(directory, manifest)
    return network.to(device).eval(), manifest


def _warn_of_another_analysis(directory: Path, manifest: dict) -> None:
    """A network learnt from features the audio analysis no longer makes still runs, a little
    off (3: mel frames timed at their centres, 5 ms earlier): say so, and how to mend it."""
    learnt_from = manifest["features"].get("analysis_version", 2)
    if learnt_from != ANALYSIS_VERSION:
        log.warning(
            "%s: learnt from audio analysis version %d, which is now %d; `dubplate actor"
            " train-a2e %s` learns it again",
            directory / "a2e.json",
            learnt_from,
            ANALYSIS_VERSION,
            directory,
        )


def rest_coefficients(model: ActorModel, fits) -> np.ndarray:
    """The actor's closed mouth: mean lower-face coefficients of their most-closed 3% frames
    (at least one), where the lips meet if they ever do in the footage."""
    lower, _, gap = footage_mouths(model, fits)
    return _closed_mouth(lower, gap)


def mouth_prior(model: ActorModel, fits) -> MouthPrior:
    """The closed mouth, and each viseme's phonetic mouth: its openness placed between the
    actor's closed (5th percentile) and wide open (95th) inner-lip gap, and its spread or
    rounding in halves of their mouth width's 5th-95th percentile range either side of its mean,
    along the least-squares plane of the coefficients on gap and width."""
    lower, upper, gap = footage_mouths(model, fits)
    width = mouth_width(model.shape(lower, upper))
    axes = np.stack([gap - gap.mean(), width - width.mean()], axis=1)
    per_gap, per_width = np.linalg.lstsq(axes, lower - lower.mean(axis=0), rcond=None)[0]
    shut, wide = np.percentile(gap, [5, 95])
    narrow, broad = np.percentile(width, [5, 95])
    openness = np.array([VISEME_OPENNESS[v] for v in VISEMES])
    spread = np.array([VISEME_SPREAD[v] for v in VISEMES])
    wanted_gap = shut + openness * (wide - shut) - gap.mean()
    wanted_width = spread * (broad - narrow) / 2
    visemes = lower.mean(axis=0) + np.outer(wanted_gap, per_gap) + np.outer(wanted_width, per_width)
    return MouthPrior(rest=_closed_mouth(lower, gap), visemes=visemes)


def _closed_mouth(lower: np.ndarray, gap: np.ndarray) -> np.ndarray:
    closed = np.argsort(gap)[: max(1, len(gap) * 3 // 100)]
    return lower[closed].mean(axis=0)
