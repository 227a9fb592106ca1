"""Occluded mouths (issue 5): does `dub` pass through the frames where something covers the
mouth, and only those? Into bench/RESULTS.md.

    .venv/bin/python bench/occlusion_bench.py [--no-write]

For each footage clip the actor is built on its first 80%. The whole clip is then written as a
PNG sequence as it is, and with the mouth covered in a run of a quarter of its frames by:
- `skin`: a patch of the actor's own forehead over the whole mouth (a hand's colour and
  texture, the hardest case for a colour test);
- `dark`: a dark object there instead (a microphone in front of the face);
- `hand side`: the forehead patch over one corner of the mouth and the cheek beside it;
- `finger`: a narrow upright strip of forehead across the lips;
- `mic`: a small dark ellipse over the lips (a microphone head; the tracker takes it for an
  open mouth).
Each plate goes through `dub`'s own path up to the decision: tracked, fitted, its colour test
set from the 16 frames `dub` samples (the lips' limit no lower than the one the actor's
footage set, as `actor build` keeps it), and every frame tested by it and by the actor's cover
network, trained on the first 80% as `actor build` trains it. Counted: covered frames caught,
and uncovered frames passed through; and how far the covered frames' fit moves the held
expression `dub` keeps under the drive in the frames around them, left in and bridged over.

The cover network learns from covers of its own drawing: ellipses and strips of random size,
place, angle and fill. These five are of that family, at places and on frames it has not seen;
that it catches them says it learnt the actor's uncovered mouth well enough to tell them from
it, not that it would catch every real hand.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
from results import FOOTAGE, arguments, provenance, publish, start

from dubplate.core.a2e.expression import bridge_covered, keep_plate_expression, mouth_opening_of
from dubplate.core.composite.crop import crop_track
from dubplate.core.media import open_plate
from dubplate.core.morph.actor import build_actor
from dubplate.core.morph.fit import ActorFit, fit_frames
from dubplate.core.neural.cover import CoverSettings
from dubplate.core.neural.covered import (
    covered_footage_frames,
    footage_lip_limit,
    load_cover,
    train_actor_cover,
)
from dubplate.core.neural.frames import FrameMaker
from dubplate.core.neural.occlusion import covered_rows
from dubplate.core.track import track_plate

TRAIN_SHARE = 0.8
COVERED_SHARE = 0.25  # of the frames, one run in the middle of the clip
CROP_PX = 256
BATCH = 16
# Landmarks: inner lips (the mouth's centre) and the forehead above the brows.
UPPER_LIP, LOWER_LIP, FOREHEAD = 13, 14, 151
DARK_RGB = (30, 30, 35)


# Covers, by kind: (centre's offset from the mouth, half axes, angle in degrees), in face widths.
COVERS = {
    "skin": ((0.0, 0.0), (0.32, 0.16), 0),
    "dark": ((0.0, 0.0), (0.32, 0.16), 0),
    "hand side": ((0.3, 0.0), (0.3, 0.2), 0),
    "finger": ((0.0, 0.0), (0.08, 0.22), 10),
    "mic": ((0.0, 0.05), (0.16, 0.12), 0),
}
DARK_KINDS = ("dark", "mic")


def covered_frame(pixels: np.ndarray, points: np.ndarray, kind: str) -> np.ndarray:
    """The frame with the `kind` of ellipse of COVERS over the mouth: the forehead's own pixels
    moved down there, or a dark grey for DARK_KINDS."""
    width = float(np.ptp(points[:, 0]))
    mouth = (points[UPPER_LIP] + points[LOWER_LIP]) / 2
    offset, half_axes, angle = COVERS[kind]
    centre = tuple(int(v) for v in mouth + np.array(offset) * width)
    axes = tuple(int(a * width) for a in half_axes)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, -1)
    if kind in DARK_KINDS:
        fill = np.empty_like(pixels)
        fill[:] = DARK_RGB
    else:
        dx, dy = np.round(points[FOREHEAD] - mouth).astype(int)
        fill = np.roll(pixels, (-dy, -dx), axis=(0, 1))
    out = pixels.copy()
    out[mask > 0] = fill[mask > 0]
    return out


def write_plate(movie, numbers, track, kind: str | None, covered: set[int], folder: Path) -> Path:
    folder.mkdir()
    for row, number in enumerate(numbers):
        pixels = movie.read(number)
        if kind and number in covered:
            pixels = covered_frame(pixels, track.landmarks[row][:, :2], kind)
        out = oiio.ImageOutput.create(str(folder / f"plate.{number:04d}.png"))
        height, width = pixels.shape[:2]
        out.open(str(folder / f"plate.{number:04d}.png"), oiio.ImageSpec(width, height, 3, "uint8"))
        out.write_image(np.ascontiguousarray(pixels))
        out.close()
    return folder / "plate.####.png"


def occluded_frames(
    actor, pattern: Path, least_lip_limit: float, cover
) -> tuple[dict, set, ActorFit]:
    """`dub`'s decision on every frame of a plate: the covered frames by either test, by the
    colour test and by the cover network, with the colour test's limits; the frames passed
    through for want of a face; and the plate's fit."""
    plate = open_plate(pattern, colourspace="srgb_tx")
    numbers = list(plate.select())
    track = track_plate(plate, numbers)
    model = actor.model
    fit = fit_frames(model, track.landmarks[track.found], track.frames[track.found])
    fit.runs = track.found_runs()  # as dub's: nothing crosses a cut
    maker = FrameMaker(plate, model, fit, crop_track(model, fit, CROP_PX), fit.lower[:1])
    found = covered_rows(
        maker, np.arange(len(fit.frames)), BATCH, least_lip_limit=least_lip_limit, cover=cover
    )
    decisions = {
        "either": set(fit.frames[found.covered].tolist()),
        "colour": set(fit.frames[found.by_colour].tolist()),
        "cover": set(fit.frames[found.by_cover].tolist()),
        "limit": found.test.limit,
        "lip_limit": found.test.lip_limit,
    }
    return decisions, set(track.frames_without_face), fit


def held_expression_shift(
    actor, clean: ActorFit, plate: ActorFit, caught: set[int], fps
) -> tuple[float, float]:
    """How far (mean px of a 256-px face, lower-face vertices) the covered `plate` moves the held
    expression `dub` keeps under the drive, against the `clean` plate's, over the uncovered frames
    within a second of a `caught` one: with the caught frames' fit left in, and bridged as `dub`
    does. The drive is the mean expression: the held expression is what differs from it."""
    shared = np.intersect1d(clean.frames, plate.frames)
    clean_lower = clean.lower[np.isin(clean.frames, shared)]
    lower = plate.lower[np.isin(plate.frames, shared)]
    covered = np.isin(shared, sorted(caught))
    if not covered.any():
        return float("nan"), float("nan")
    model = actor.model
    opening = mouth_opening_of(model, actor.fits)
    driven = np.repeat(actor.fits[0].lower.mean(axis=0)[None], len(shared), axis=0)
    upper = np.zeros((len(shared), len(model.upper_basis)), np.float32)
    vertices = model.lower_vertices

    def held(plate_lower: np.ndarray) -> np.ndarray:
        kept = keep_plate_expression(driven, plate_lower, opening, float(1 / fps))
        return model.shape(kept, upper)[:, vertices, :2]

    reach = np.abs(np.arange(len(shared))[:, None] - np.flatnonzero(covered)[None]).min(axis=1)
    near = ~covered & (reach <= float(fps))
    reference = held(clean_lower)

    def shift(plate_lower: np.ndarray) -> float:
        moved = np.linalg.norm(held(plate_lower) - reference, axis=-1).mean(axis=1)
        return float(moved[near].mean() * model.face_box_scale)

    return shift(lower), shift(bridge_covered(lower, covered))


def clip_rows(clip: Path, workdir: Path) -> list[dict]:
    movie = open_plate(clip)
    numbers = list(movie.select())
    track = track_plate(movie, numbers)
    cut = int(len(numbers) * TRAIN_SHARE)
    head = track.head(cut)
    actor = build_actor(clip.stem, [(movie, head)])
    # As `actor build` does: the actor's footage sets the floor of a plate's lips' limit.
    actor.save(workdir / clip.stem)
    covered_footage_frames(workdir / clip.stem)
    least_lip_limit = footage_lip_limit(workdir / clip.stem)
    cover_report = train_actor_cover(workdir / clip.stem)
    cover = load_cover(workdir / clip.stem)
    run = int(len(numbers) * COVERED_SHARE)
    first = (len(numbers) - run) // 2
    covered = set(numbers[first : first + run])
    rows = []
    for kind in (None, *COVERS):
        folder = workdir / f"{clip.stem}_{(kind or 'clean').replace(' ', '_')}"
        marked = covered if kind else set()
        pattern = write_plate(movie, numbers, track, kind, marked, folder)
        decisions, lost, fit = occluded_frames(actor, pattern, least_lip_limit, cover)
        caught = decisions["either"]
        if kind is None:
            clean_fit = fit
        uncovered = set(numbers) - marked
        left_in, bridged = held_expression_shift(actor, clean_fit, fit, caught, movie.info.fps)
        rows.append(
            {
                "clip": clip.name,
                "plate": kind or "as shot",
                "frames": len(numbers),
                "covered": len(marked),
                "caught": len(caught & marked),
                "caught_colour": len(decisions["colour"] & marked),
                "caught_cover": len(decisions["cover"] & marked),
                "false": len(caught & uncovered),
                "false_cover": len(decisions["cover"] & uncovered),
                "lost": len(lost),
                "limit": decisions["limit"],
                "lip_limit": decisions["lip_limit"],
                "held_left_in": left_in,
                "held_bridged": bridged,
                "cover_training": cover_report,
            }
        )
        print(rows[-1], flush=True)
    return rows


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def held_figures(row: dict) -> str:
    if np.isnan(row["held_left_in"]):
        return "-"
    return f"{row['held_left_in']:.2f} / {row['held_bridged']:.2f}"


def markdown(rows: list[dict]) -> str:
    lines = [
        "## Occluded mouths passed through (issue 5): `bench/occlusion_bench.py`",
        "",
        provenance(),
        "",
        f"Actor built on the first {TRAIN_SHARE:.0%} of each clip, its cover network"
        " (`core/neural/cover.py`) learnt from those frames with random covers of its own"
        f" making; the whole clip as a PNG plate, as shot, and with the mouth covered in a run"
        f" of {COVERED_SHARE:.0%} of its frames by an ellipse: the actor's own forehead moved"
        " over the whole mouth (skin, 0.64 x 0.32 face widths), over one corner and the cheek"
        " beside it (hand side, 0.6 x 0.4), or across the lips as an upright strip (finger, 0.16"
        " x 0.44); or a dark grey over the whole mouth (dark, 0.64 x 0.32) or over the lips"
        " (mic, 0.32 x 0.24). `dub`'s tests on every frame: the colour test set from the 16"
        " frames it samples, and the cover network. Caught: covered frames passed through, by"
        " the colour test, by the cover network and by either (what `dub` does); false:"
        " uncovered frames passed through, by either and by the network alone (target: all"
        " caught, none false). Lost: frames the tracker found no face in (passed through"
        " anyway). Limits: the colour test's share of unlike pixels over which a frame is"
        " covered, over the lower face and over the lips. Held expression: how far the covered"
        " plate moves the held expression `dub` keeps under the drive (mean px of a 256-px face"
        " over the lower face), against the plate as shot, over the uncovered frames within a"
        " second of a caught one; with the caught frames' fit left in, and bridged over them as"
        " `dub` does.",
        "",
        "| clip | plate | frames | covered | caught (colour / network / either) | false (either /"
        " network) | lost | limits (lower face / lips) | held expression left in / bridged |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['clip']} | {row['plate']} | {row['frames']} | {row['covered']} |"
            f" {row['caught_colour']} / {row['caught_cover']} / {row['caught']} |"
            f" {row['false']} / {row['false_cover']} | {row['lost']} |"
            f" {row['limit']:.3f} / {row['lip_limit']:.3f} | {held_figures(row)} |"
        )

    def by_kind(key: str) -> str:
        return ", ".join(
            f"{kind} {sum(r[key] for r in rows if r['plate'] == kind)}/"
            f"{sum(r['covered'] for r in rows if r['plate'] == kind)}"
            for kind in COVERS
        )

    covered = sum(r["covered"] for r in rows)
    uncovered = sum(r["frames"] - r["covered"] for r in rows)
    lines += [
        "",
        f"Over all plates: {sum(r['caught'] for r in rows)}/{covered} covered frames caught"
        f" ({by_kind('caught')}), {sum(r['false'] for r in rows)}/{uncovered} uncovered frames"
        f" passed through. The colour test alone: {sum(r['caught_colour'] for r in rows)}/"
        f"{covered} ({by_kind('caught_colour')}); the cover network alone:"
        f" {sum(r['caught_cover'] for r in rows)}/{covered} ({by_kind('caught_cover')}),"
        f" {sum(r['false_cover'] for r in rows)} uncovered frames passed through.",
        "",
        f"The cover networks, as `actor build` trains them ({CoverSettings().steps} steps on this"
        " CPU): crops learnt"
        " from, time, and their own check, on new random covers of those crops and on the crops"
        " as they are.",
        "",
        "| clip | crops | seconds | fresh covers caught | crops as they are taken for covered |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row["plate"] == "as shot":
            report = row["cover_training"]
            lines.append(
                f"| {row['clip']} | {report['frames']} | {report['seconds']:.0f} |"
                f" {share(report['fresh_covers_caught'])} | {share(report['clean_flagged'])} |"
            )
    return "\n".join(lines)


def main() -> None:
    args = start(arguments(__doc__))
    rows = []
    with tempfile.TemporaryDirectory(prefix="dubplate-occlusion-bench-") as folder:
        for clip in sorted(FOOTAGE.glob("*.mp4")):
            rows += clip_rows(clip, Path(folder))
    publish("occlusion_bench", markdown(rows), args)


if __name__ == "__main__":
    main()
