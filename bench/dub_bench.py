"""Dub benchmark (issue 5): build an actor on the first 80% of each shared clip, dub the rest.

    .venv/bin/python bench/dub_bench.py [--steps 2000] [--size 256] [--clips NAME ...]
        [--actors DIR] [--section NAME] [--no-write]

Per clip: stage times of `actor build` (track, fit, covered mouths and the footage frames they
leave out, the cover network, A2E, renderer); the held-out 20% dubbed with the clip's own audio
(lossless movie; moved by the sound offset A2E found in the first 80%) against the real frames:
mouth landmark distance (M-LMD, lips, px of a 256-px face box; again without the plate's held
expression, with the plate's own fitted mouth, and with `--articulation 1.5`), how far the
dubbed mouth opens against the real one (gap spread), face-crop SSIM and PSNR, mouth sharpness
(variance of the Laplacian) and flicker inside the lower face (mean absolute frame-to-frame
change), each beside the real frames', and
the sharpness left when the real crop itself is comped back (without and with the plate's own
detail); then the clip's first 75 frames dubbed with every file in shared/data/audio (phone-
sync and bilabial closure of the re-tracked result, against the real footage with its own audio,
and the dubbed mouth's sharpness against the real frames'). A contact sheet of real and dubbed
mouths goes to bench/SECTION_contact_sheet.jpg. Speed at 1080p and 4K: bench/dub_speed_bench.py.

With --actors DIR each clip's actor is built into DIR/CLIP and kept with its stage times, and a
later run with the same DIR, steps and size dubs that actor again without rebuilding it: a change
to what `dub` does is measured in minutes where a build at 2000 steps takes most of an hour.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from results import COMMIT, FOOTAGE, REPO, SHARED, arguments, provenance, publish, start

from dubplate.core.a2e.store import footage_audio_offsets, train_actor_a2e
from dubplate.core.audio.features import cached_analysis, heard_within
from dubplate.core.audio.phones import PHONE_INDEX
from dubplate.core.composite.crop import crop_track
from dubplate.core.composite.match import GrainNoise
from dubplate.core.dub import DubCaches, DubModels, DubSettings, comp_patch, dub
from dubplate.core.media import Plate, load_audio, open_plate
from dubplate.core.morph.actor import build_actor
from dubplate.core.morph.fit import fit_frames
from dubplate.core.neural.covered import covered_footage_frames, train_actor_cover
from dubplate.core.neural.frames import FrameMaker
from dubplate.core.neural.losses import ssim
from dubplate.core.neural.store import train_actor_renderer
from dubplate.core.neural.train import RendererSettings
from dubplate.core.qc.lipsync import track_lip_sync
from dubplate.core.track import track_plate
from dubplate.core.track.landmarks import (
    FACE_BOX_PX,
    INNER_LIP_LOOP,
    LIPS,
    LOWER_LIP_LOOP,
    OUTER_LIP_LOOP,
    UPPER_LIP_LOOP,
    face_size,
    mouth_opening,
)

TRAIN_SHARE = 0.8
CROP_PX = 256
MOUTH_PX = 128
SHEET_FRAMES = 4
LIPSYNC_FRAMES = 75  # frames dubbed with each dub file
LEAD_S = 0.2  # audio kept before a dub file's first speech
# `dub --articulation` measured beside the default: how far it opens the under-opened mouths and
# what that costs in M-LMD, which rewards A2E's shrunk guess.
ARTICULATION = 1.5


def build(
    plate: Plate, name: str, numbers: list[int], workdir: Path, settings: RendererSettings
) -> tuple[Path, dict]:
    """`actor build` of `plate`'s `numbers` into workdir/NAME, and each stage's seconds."""
    times = {}
    began = time.perf_counter()
    track = track_plate(plate, numbers)
    times["track"] = time.perf_counter() - began
    actor_dir = workdir / name
    began = time.perf_counter()
    build_actor(name, [(plate, track)]).save(actor_dir)
    times["fit"] = time.perf_counter() - began
    began = time.perf_counter()
    times["left_out"] = sum(len(f) for f in covered_footage_frames(actor_dir).values())
    times["covered"] = time.perf_counter() - began
    began = time.perf_counter()
    train_actor_cover(actor_dir)
    times["cover"] = time.perf_counter() - began
    began = time.perf_counter()
    train_actor_a2e(actor_dir)
    times["a2e"] = time.perf_counter() - began
    began = time.perf_counter()
    report = train_actor_renderer(actor_dir, settings)
    times["renderer"] = time.perf_counter() - began
    times["seconds_per_step"] = report["seconds_per_step"]
    return actor_dir, times


def kept_or_built(
    plate: Plate, name: str, numbers: list[int], folder: Path, settings: RendererSettings
) -> tuple[Path, dict, str | None]:
    """The actor of `build`, its stage times, and the commit an earlier run built it at (None if
    built now): the one kept in folder/NAME by a run with the same footage frames and renderer
    settings, or else built there."""
    actor_dir, record = folder / name, folder / name / "bench_build.json"
    wanted = {"frames": [numbers[0], numbers[-1]], "renderer": asdict(settings)}
    if record.exists():
        kept = json.loads(record.read_text())
        if {k: kept.get(k) for k in wanted} != wanted:
            sys.exit(
                f"{record}: built from other frames or renderer settings than {wanted}: give"
                " another --actors folder"
            )
        print(f"{name}: the actor kept in {actor_dir} (built at {kept['commit']})", file=sys.stderr)
        return actor_dir, kept["times"], kept["commit"]
    if actor_dir.exists():
        sys.exit(f"{actor_dir}: no {record.name} (a build that stopped?): remove it to build again")
    actor_dir, times = build(plate, name, numbers, folder, settings)
    record.write_text(json.dumps({**wanted, "commit": COMMIT, "times": times}, indent=2))
    return actor_dir, times, None


def face_crops(plate, numbers, track) -> np.ndarray:
    """(F, 256, 256, 3) float working-space crops, square around each frame's real face."""
    out = []
    for row, (_, pixels) in enumerate(plate.frames(numbers)):
        out.append(_square(plate, pixels, track.landmarks[row][:, :2], 1.3, CROP_PX))
    return np.stack(out)


def mouth_crops(plate, numbers, track) -> np.ndarray:
    out = []
    for row, (_, pixels) in enumerate(plate.frames(numbers)):
        out.append(_square(plate, pixels, track.landmarks[row][list(LIPS), :2], 1.6, MOUTH_PX))
    return np.stack(out)


def _square(plate, pixels, points, margin, size) -> np.ndarray:
    low, high = points.min(axis=0), points.max(axis=0)
    centre, side = (low + high) / 2, margin * (high - low).max()
    k = size / side
    matrix = np.array([[k, 0, size / 2 - k * centre[0]], [0, k, size / 2 - k * centre[1]]])
    rgb = plate.analysis_rgb(pixels).astype(np.float32) / 255
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_AREA)


def sharpness(crops: np.ndarray) -> float:
    grey = crops.mean(axis=-1)
    return float(np.mean([cv2.Laplacian(g, cv2.CV_32F).var() for g in grey]))


def round_trip_sharpness(plate, actor_dir: Path, numbers, track) -> tuple[float, float]:
    """Mouth sharpness, of the real frames', with each frame's own real crop comped back in place
    of the generated one, without and with the plate's own detail: the most the crop module lets
    a perfect generator keep."""
    models = DubModels.load(actor_dir, "cpu")
    found = np.flatnonzero(track.found)
    fit = fit_frames(models.actor.model, track.landmarks[found], track.frames[found])
    fit.runs = track.found_runs()  # as dub's: nothing crosses a cut
    crops = crop_track(models.actor.model, fit, models.renderer.size)
    highlights = models.renderer.highlights
    maker = FrameMaker(
        plate, models.actor.model, fit, crops, models.renderer.hole_lowers, highlights=highlights
    )
    real_mouths, comped_mouths = [], {False: [], True: []}
    for row, (number, pixels) in enumerate(plate.frames(track.frames[found])):
        inputs = maker.make(np.array([row]), [pixels])
        real = inputs.real_images()[0]
        lips = track.landmarks[found[row]][list(LIPS), :2]
        real_mouths.append(_square(plate, pixels, lips, 1.6, MOUTH_PX))
        for detail, mouths in comped_mouths.items():
            grain = GrainNoise(seed=number)
            points = inputs.lower_points[0]
            comped = comp_patch(
                plate, pixels, crops, row, real, real, points, grain, detail, highlights
            )
            mouths.append(_square(plate, comped.comp, lips, 1.6, MOUTH_PX))
    real_sharpness = sharpness(np.stack(real_mouths))
    without, with_detail = (sharpness(np.stack(comped_mouths[d])) for d in (False, True))
    return without / real_sharpness, with_detail / real_sharpness


def flicker(crops: np.ndarray) -> float:
    """Mean absolute frame-to-frame change in the crop's lower half (where the matte lies)."""
    lower = crops[:, CROP_PX // 2 :]
    return float(np.abs(np.diff(lower, axis=0)).mean())


def self_reconstruction(
    clip: Path,
    actor_dir: Path,
    held_out: list[int],
    workdir: Path,
    offset: float,
    variants: tuple[str, ...] = ("audio_only", "plate_drive", "articulated"),
    lips: bool = False,
):
    """`held_out` of `clip` dubbed by `actor_dir` with the clip's own sound, moved by `offset`
    (as A2E found it in the footage and learnt with; padded where that takes the last frames
    past the audio's end), against the real frames; and dubbed again as each of `variants`.
    With `lips`, the lips' colours too (`lip_colours`): of the real frames, the dub and the
    plate drive."""
    plate = open_plate(clip)
    settings = DubSettings(audio_offset=offset, pad=offset > 0, trim=True, lossless=True)
    own = workdir / f"{clip.stem}_own"
    sound = plate.audio()  # decoded once: a movie decodes its sound on every call
    result = dub_into(actor_dir, plate, held_out, sound, own, settings)
    # M-LMD is taken where the moved sound was recorded: padded silence says nothing of a mouth.
    times = np.array([float(plate.time_of(n)) for n in held_out]) + offset
    heard = heard_within(times, float(sound.duration))
    dubbed = open_plate(result["output"])
    dubbed_numbers = list(dubbed.info.frames)
    real_track = track_plate(plate, held_out)
    dubbed_track = track_plate(dubbed, dubbed_numbers)
    variant_settings = {
        "audio_only": replace(settings, plate_expression=False),
        "plate_drive": replace(settings, drive="plate"),
        "articulated": replace(settings, articulation=ARTICULATION),
    }
    variant_tracks, colours = {}, {}
    for name in variants:
        out = workdir / f"{clip.stem}_{name}"
        done = dub_into(actor_dir, plate, held_out, sound, out, variant_settings[name])
        variant = open_plate(done["output"])
        variant_tracks[name] = track_plate(variant, dubbed_numbers)
        if lips and name == "plate_drive":  # the real mouths redrawn, where the real ones are
            colours["lips_plate_drive"] = lip_colours(variant, dubbed_numbers, real_track)
    if lips:
        colours["lips_real"] = lip_colours(plate, held_out, real_track)
        colours["lips_dub"] = lip_colours(dubbed, dubbed_numbers, dubbed_track)
    real_faces = face_crops(plate, held_out, real_track)
    dubbed_faces = face_crops(dubbed, dubbed_numbers, real_track)
    real_mouths = mouth_crops(plate, held_out, real_track)
    dubbed_mouths = mouth_crops(dubbed, dubbed_numbers, real_track)
    mse = ((real_faces - dubbed_faces) ** 2).mean(axis=(1, 2, 3))
    round_trip = round_trip_sharpness(plate, actor_dir, held_out, real_track)
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
    return {
        "frames": len(held_out),
        "unheard": int((~heard).sum()),
        "mlmd": mouth_landmark_distance(real_track, dubbed_track, heard),
        **{
            f"mlmd_{name}": mouth_landmark_distance(real_track, track, heard)
            for name, track in variant_tracks.items()
        },
        "gap_spread": gap_spread(real_track, dubbed_track, heard),
        **{
            f"gap_spread_{name}": gap_spread(real_track, track, heard)
            for name, track in variant_tracks.items()
        },
        "ssim": float(ssim(as_tensor(real_faces), as_tensor(dubbed_faces)).mean()),
        "psnr": float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-10)))),
        "sharp_real": sharpness(real_mouths),
        "sharp_dub": sharpness(dubbed_mouths),
        "sharp_round_trip": round_trip,
        "flicker_real": flicker(real_faces),
        "flicker_dub": flicker(dubbed_faces),
        **colours,
        "identity": result["identity_distance_px"],
        "fps": result["frames_per_second"],
        "sharpen": result["settings"]["sharpen"],
        "shutter": result["settings"]["shutter_angle"],
        "precision": result["settings"]["precision"],
        "size": f"{plate.info.width}x{plate.info.height}",
        "sheet": _sheet_row(real_mouths, dubbed_mouths),
        "own_sync": result["lip_sync"],
    }


LIP_POLYGONS = {"upper": UPPER_LIP_LOOP, "lower": LOWER_LIP_LOOP}


def lip_colours(plate: Plate, numbers: list[int], track) -> dict[str, np.ndarray]:
    """Mean CIELAB (L 0-100) of the lips (outer contour less inner), and of each lip, over the
    found frames, each frame's lips where its own track puts them."""
    means = {"lips": [], **{name: [] for name in LIP_POLYGONS}}
    for row, (_, pixels) in enumerate(plate.frames(numbers)):
        if not track.found[row]:
            continue
        points = track.landmarks[row, :, :2]
        lab = cv2.cvtColor(plate.analysis_rgb(pixels).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
        masks = {
            "lips": _polygon(pixels, points, OUTER_LIP_LOOP)
            & ~_polygon(pixels, points, INNER_LIP_LOOP)
        }
        masks.update({name: _polygon(pixels, points, loop) for name, loop in LIP_POLYGONS.items()})
        for name, mask in masks.items():
            means[name].append(lab[mask].mean(axis=0))
    return {name: np.mean(values, axis=0) for name, values in means.items()}


def _polygon(pixels: np.ndarray, points: np.ndarray, loop: tuple[int, ...]) -> np.ndarray:
    inside = np.zeros(pixels.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(points[list(loop)]).astype(np.int32)], 1)
    return inside.astype(bool)


def mouth_landmark_distance(real_track, dubbed_track, scored: np.ndarray) -> float:
    """M-LMD: mean distance of the lip landmarks over the `scored` frames, px of a 256-px face
    box."""
    lips = list(LIPS)
    distance = np.linalg.norm(
        dubbed_track.landmarks[:, lips, :2] - real_track.landmarks[:, lips, :2], axis=-1
    ).mean(axis=1)
    scaled = distance * FACE_BOX_PX / face_size(real_track.landmarks)
    return float(np.nanmean(scaled[scored]))


def gap_spread(real_track, dubbed_track, scored: np.ndarray) -> float:
    """How far the dubbed mouth opens and closes against the real one over the `scored` frames:
    the standard deviation of its tracked inner-lip gap over the real gap's (under 1: less)."""
    real, dubbed = (mouth_opening(t.landmarks[scored]) for t in (real_track, dubbed_track))
    return float(np.nanstd(dubbed) / np.nanstd(real))


def _sheet_row(real: np.ndarray, dubbed: np.ndarray) -> np.ndarray:
    picks = np.linspace(0, len(real) - 1, SHEET_FRAMES).round().astype(int)
    tiles = [np.concatenate([real[i], dubbed[i]], axis=0) for i in picks]
    return np.concatenate(tiles, axis=1)


def dub_figures(clip: Path, actor_dir: Path, workdir: Path) -> dict:
    """Lip sync of the clip's first LIPSYNC_FRAMES frames dubbed with every shared dub file,
    from just before its first speech: the leading silence of a file says nothing of sync."""
    plate = open_plate(clip)
    numbers = list(plate.select())[:LIPSYNC_FRAMES]
    real_track = track_plate(plate, numbers)
    real_sharpness = sharpness(mouth_crops(plate, numbers, real_track))
    figures = {}
    for path in sorted((SHARED / "audio").glob("*.wav")):
        audio = load_audio(path)
        speech = cached_analysis(audio, workdir / "cache" / "audio").phones
        first_speech = speech[speech[:, 0] != PHONE_INDEX["SIL"], 1].min()
        settings = DubSettings(audio_offset=max(0.0, first_speech - LEAD_S), pad=True, trim=True)
        out = workdir / f"{clip.stem}_{path.stem}"
        result = dub_into(actor_dir, plate, numbers, audio, out, settings)
        dubbed = open_plate(result["output"])
        mouths = mouth_crops(dubbed, list(dubbed.info.frames), real_track)
        figures[path.stem] = {
            **result["lip_sync"],
            "sharpness": sharpness(mouths) / real_sharpness,
        }
    return figures


def real_sync(clip: Path) -> dict:
    plate = open_plate(clip)
    track = track_plate(plate, list(plate.select()))
    analysis = cached_analysis(plate.audio(), Path(tempfile.gettempdir()) / "dubplate-bench-audio")
    return track_lip_sync(track, analysis, track.times, float(1 / plate.info.fps)).as_dict()


def dub_into(actor_dir, plate, numbers, audio, out, settings, checked_by=None) -> dict:
    """`dub` with its track and audio caches beside `out`. The plate is checked afresh, as a
    shot's first dub does, unless `checked_by`, an earlier dub's output, kept its check."""
    cache = out.parent / "cache"
    checks = cache / "plate_checks" / (checked_by or out).name
    caches = replace(DubCaches.under(cache), plate_checks=checks)
    return dub(actor_dir, plate, numbers, audio, out, settings, caches)


def markdown(rows: list[dict], settings: RendererSettings, sheet_name: str) -> str:
    lines = [
        "## Dub: neural renderer and crop module (issue 5): `bench/dub_bench.py`",
        "",
        provenance(),
        "",
        f"Actor built on the first {TRAIN_SHARE:.0%} of each clip (renderer: {settings.steps} steps"
        f" of batch {settings.batch} at {settings.size} px), its last 20% dubbed. "
        "Self-reconstruction with the clip's own audio (moved by the sound offset A2E found "
        "in the first 80%, `core/a2e/sync.py`; M-LMD over the frames whose sound, so moved, "
        "is in the recording: left out, the frames it moves past the audio's end), lossless "
        "movie, against the real frames "
        "(targets: M-LMD <= 2.5, SSIM >= 0.90, "
        "PSNR >= 28 dB, sharpness >= 0.85 x real, flicker <= 1.2 x real). Round trip: the "
        "sharpness ratio with each frame's real crop comped back instead of the generated one, "
        "the ceiling the crop module leaves a perfect generator, without / with the plate's own "
        "detail where the patch matches the plate (`dub`'s default). M-LMD audio only: the same "
        "frames dubbed without the plate's held expression (`--no-plate-expression`). M-LMD "
        "plate drive: the same frames with their own fitted lower face redrawn (`--drive plate`), "
        "what the fit, renderer and crop module leave a perfect A2E. Sharpen: how much of its "
        "fine detail the drawn mouth gets back, measured by `dub` on the plate's sampled frames "
        "(drawn from their own faces against the real ones); shutter: the angle it is smeared "
        "over, measured when the renderer was built. The generator drew in "
        f"{' and '.join(sorted({row['precision'] for row in rows}))} (`--precision auto` on this"
        " machine):",
        "",
        "| clip | size | held-out frames (left out of M-LMD) | M-LMD px | M-LMD audio only |"
        " M-LMD plate drive | SSIM | PSNR dB | sharpness dub / real | round trip |"
        " flicker dub / real | sharpen | shutter | dub fps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['size']} | {r['frames']} ({r['unheard']}) | {r['mlmd']:.2f} |"
            f" {r['mlmd_audio_only']:.2f} | {r['mlmd_plate_drive']:.2f} | {r['ssim']:.3f} |"
            f" {r['psnr']:.1f} | {r['sharp_dub']:.2e} / {r['sharp_real']:.2e} ="
            f" {r['sharp_dub'] / r['sharp_real']:.2f} | {r['sharp_round_trip'][0]:.2f} /"
            f" {r['sharp_round_trip'][1]:.2f} |"
            f" {r['flicker_dub']:.4f} /"
            f" {r['flicker_real']:.4f} = {r['flicker_dub'] / r['flicker_real']:.2f} |"
            f" {r['sharpen']:g} | {r['shutter']:g} | {r['fps']:.2f} |"
        )
    lines += [
        "",
        "How far the dubbed mouth opens and closes against the real one (gap spread: the standard"
        " deviation of the re-tracked inner-lip gap over the real frames', over the frames M-LMD"
        " scores; under 1: less), as dubbed, as audio only and as the plate drive, and with"
        f" `--articulation {ARTICULATION:g}` (the dub's opening past closed times"
        f" {ARTICULATION:g}) beside its M-LMD:",
        "",
        "| clip | gap spread: dub | audio only | plate drive |"
        f" --articulation {ARTICULATION:g} | M-LMD: dub | --articulation {ARTICULATION:g} |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['gap_spread']:.2f} | {r['gap_spread_audio_only']:.2f} |"
            f" {r['gap_spread_plate_drive']:.2f} | {r['gap_spread_articulated']:.2f} |"
            f" {r['mlmd']:.2f} | {r['mlmd_articulated']:.2f} |"
        )
    dubs = sorted(rows[0]["dubs"])
    lines += [
        "",
        f"Phone-sync of the re-tracked result, the clip's first {LIPSYNC_FRAMES} frames dubbed "
        "with each file in shared/data/audio (from 0.2 s before its first speech), against the "
        "real clip with its own audio "
        "(target: mean >= 0.8 x real); bilabial closure (target >= 0.8); the dubbed mouths' "
        "sharpness, mean over the dubs, against the real frames':",
        "",
        f"| clip | real | {' | '.join(dubs)} | mean / real | closure (mean) | sharpness (mean) |",
        "| --- | --- | " + " | ".join("---" for _ in dubs) + " | --- | --- | --- |",
    ]
    syncs, reals, closures = [], [], []
    for r in rows:
        values = [r["dubs"][d]["phone_sync"] for d in dubs]
        closed = [r["dubs"][d]["bilabial_closure"] for d in dubs]
        closed = [c for c in closed if c is not None]
        syncs.append(np.mean(values))
        reals.append(r["real"]["phone_sync"])
        closures += closed
        lines.append(
            f"| {r['clip']} | {r['real']['phone_sync']:.2f} | "
            + " | ".join(f"{v:.2f}" for v in values)
            + f" | {np.mean(values) / r['real']['phone_sync']:.2f} |"
            f" {np.mean(closed) if closed else float('nan'):.2f} |"
            f" {np.mean([r['dubs'][d]['sharpness'] for d in dubs]):.2f} |"
        )
    lines += [
        "",
        f"Averaged over clips: phone-sync {np.mean(syncs):.3f} vs real {np.mean(reals):.3f} "
        f"(ratio {np.mean(syncs) / np.mean(reals):.2f}); bilabial closure "
        f"{np.mean(closures):.2f} over {len(closures)} dubs with /p b m/.",
        "",
        "`actor build` stage times (s) on the 80% of each clip:",
        "",
        "| clip | footage s | track | fit | covered mouths (frames left out) | cover network |"
        " A2E | renderer | s/step | total | per 20 s of footage at the default 2000 steps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t = r["times"]
        total = t["track"] + t["fit"] + t["covered"] + t["cover"] + t["a2e"] + t["renderer"]
        # The cover network's steps and crops do not grow with the footage.
        default = (t["track"] + t["fit"] + t["covered"] + t["a2e"]) * 20 / r["footage_s"] + (
            t["cover"] + 2000 * t["seconds_per_step"]
        )
        lines.append(
            f"| {r['clip']} | {r['footage_s']:.1f} | {t['track']:.0f} | {t['fit']:.0f} |"
            f" {t['covered']:.0f} ({t['left_out']}) | {t['cover']:.0f} | {t['a2e']:.0f} |"
            f" {t['renderer']:.0f} | {t['seconds_per_step']:.2f} | {total:.0f} |"
            f" {default / 60:.1f} min |"
        )
    kept = [f"{r['clip']} at `{r['kept_from']}`" for r in rows if r["kept_from"]]
    if kept:
        lines += [
            "",
            "Actors kept from an earlier run's build (`--actors`), dubbed by this one, their "
            f"stage times that build's: {', '.join(kept)}.",
        ]
    lines += [
        "",
        "Contact sheet (top: real, bottom: dubbed with own audio; four held-out frames a clip): "
        f"`bench/{sheet_name}`, written by the run and not committed (it is cut from "
        "the shared footage).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=int, default=RendererSettings.steps)
    parser.add_argument("--size", type=int, default=RendererSettings.size, help="crop side")
    parser.add_argument("--clips", nargs="*", help="clip file names (default: all)")
    parser.add_argument(
        "--actors",
        type=Path,
        help="folder to keep each clip's actor in, and to take it from on a later run",
    )
    parser.add_argument(
        "--section",
        default="dub_bench",
        help="RESULTS.md section to write: another name keeps a partial run beside the full one",
    )
    args = start(parser)
    settings = RendererSettings(steps=args.steps, size=args.size)
    clips = sorted(FOOTAGE.glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if c.name in args.clips]
    rows, sheet = [], []
    sheet_name = f"{args.section}_contact_sheet.jpg"
    with tempfile.TemporaryDirectory(prefix="dubplate-dub-bench-") as folder:
        workdir = Path(folder)
        for clip in clips:
            numbers = list(open_plate(clip).select())
            cut = int(len(numbers) * TRAIN_SHARE)
            actor_dir, times, kept_from = kept_or_built(
                open_plate(clip), clip.stem, numbers[:cut], args.actors or workdir, settings
            )
            (offset,) = footage_audio_offsets(actor_dir).values()
            row = self_reconstruction(clip, actor_dir, numbers[cut:], workdir, offset)
            row.update(
                clip=clip.name,
                times=times,
                kept_from=kept_from,
                footage_s=cut / float(open_plate(clip).info.fps),
            )
            row["dubs"] = dub_figures(clip, actor_dir, workdir)
            row["real"] = real_sync(clip)
            sheet.append(row.pop("sheet"))
            print({k: v for k, v in row.items()}, file=sys.stderr)
            rows.append(row)
        image = (np.concatenate(sheet, axis=0) * 255).astype(np.uint8)
        cv2.imwrite(str(REPO / "bench" / sheet_name), image[..., ::-1])
    publish(args.section, markdown(rows, settings, sheet_name), args)


if __name__ == "__main__":
    main()
