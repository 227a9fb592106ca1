"""Tracking figures on the shared footage (issue 2), written into bench/RESULTS.md.

    .venv/bin/python bench/track_bench.py [--exr-frames 48] [--no-write]

1. Coverage and throughput: every frame of every clip in ../shared/data/footage.
2. Smoothing: landmark jitter (RMS second difference, px of a 256-px face box) on still-head
   runs, raw vs smoothed, and the lag of the smoothed mouth opening behind the raw one.
3. Likeness (how the tracker keeps one person): look distance of each clip's second half, and
   of every other clip, to the gallery the tracker builds from the clip's first half; and the
   picture change (shot cuts) between a clip's frames and from one clip's last to another's
   first. Picking the actor: each clip's face from its last 20%, smaller, beside another
   person's, larger; the looks kept from the clip's first 80% (as `actor build` keeps them)
   pick one of the two, as `dub` does; and again where the shot opens on the other alone.
4. 4K EXR: the portrait clip upscaled to 2160x3840, written as ACEScg half EXR with a data
   window inside the display window; its track against the movie's, and EXR throughput.
"""

from __future__ import annotations

import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
from results import FOOTAGE, arguments, provenance, publish, start

from dubplate.core.colour import default_config
from dubplate.core.media import open_plate
from dubplate.core.media.movie_writer import write_movie
from dubplate.core.media.plate import crop_padded
from dubplate.core.track import track_plate
from dubplate.core.track.likeness import UNLIKE, Likeness
from dubplate.core.track.quality import jitter_px, mouth_lag, still_head_frames
from dubplate.core.track.tracker import CUT_CHANGE, FaceTracker, thumbnail

PORTRAIT = "woman_seated_hd_20s.mp4"
ACESCG_PRIMARIES = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
INSET = 48  # data window inset from the display window, per side, in 4K pixels
LIKENESS_EVERY = 6  # frames between the looks compared in the likeness table
SAME_SPEAKER = ("woman_flag_a_5s.mp4", "woman_flag_b_8s.mp4")  # data README: one woman, two crops
TRAIN_SHARE = 0.8  # as dub_bench builds its actors


def timed_track(plate, numbers):
    started = time.perf_counter()
    track = track_plate(plate, numbers)
    return track, len(numbers) / (time.perf_counter() - started)


def footage_rows(clips):
    rows, tracks = [], {}
    for clip in clips:
        plate = open_plate(clip)
        track, fps = timed_track(plate, plate.select())
        tracks[clip.name] = track
        still = still_head_frames(track.landmarks)
        raw_jitter = jitter_px(track.raw_landmarks, still) if still.any() else float("nan")
        smooth_jitter = jitter_px(track.landmarks, still) if still.any() else float("nan")
        everywhere = track.found
        all_cut = 1 - jitter_px(track.landmarks, everywhere) / jitter_px(
            track.raw_landmarks, everywhere
        )
        rows.append(
            {
                "clip": clip.name,
                "size": f"{plate.info.width}x{plate.info.height}",
                "frames": len(track.frames),
                "found": 100.0 * track.found.mean(),
                "fps": fps,
                "still": int(still.sum()),
                "raw_jitter": raw_jitter,
                "smooth_jitter": smooth_jitter,
                "cut": 100.0 * (1 - smooth_jitter / raw_jitter),
                "all_cut": 100.0 * all_cut,
                "lag": mouth_lag(track.raw_landmarks[track.found], track.landmarks[track.found]),
                "refused": len(track.settings["target"]["refused"]),
            }
        )
        print(rows[-1], file=sys.stderr)
    return rows, tracks


def clip_looks(track) -> tuple[np.ndarray, np.ndarray]:
    """(F, 478, 3) landmarks and (F, 468) looks of the tracked frames of a clip, as the tracker
    took them."""
    return track.raw_landmarks[track.found], track.looks[track.found]


def picture_changes(clips) -> dict:
    """The largest mean thumbnail change between consecutive frames of any clip (cuts are found
    over CUT_CHANGE), and the smallest from one clip's last frame to another's first."""
    first, last, within = {}, {}, []
    for clip in clips:
        plate = open_plate(clip)
        thumbs = np.array([thumbnail(plate, pixels) for _, pixels in plate.frames(plate.select())])
        within.append(float(_change(thumbs[1:], thumbs[:-1]).max()))
        first[clip.name], last[clip.name] = thumbs[0], thumbs[-1]
    between = [_change(last[a], first[b]) for a in last for b in first if a != b]
    return {"within": max(within), "between": float(min(between))}


def _change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=(-3, -2, -1))


def likeness_rows(clips, tracks, every: int = LIKENESS_EVERY):
    """Per clip: the farthest of its own second half's frames (every `every`-th) from the
    gallery of its first half, and the nearest and farthest of each other clip's."""
    looks = {clip.name: clip_looks(tracks[clip.name]) for clip in clips}
    rows = []
    for name, (points, own) in looks.items():
        half = len(own) // 2
        likeness = Likeness(points[0], own[0])
        for look in own[1:half]:
            likeness.remember(look)
        distances = {
            other: [likeness.distance(look) for look in theirs[::every]]
            for other, (_, theirs) in looks.items()
            if other != name
        }
        own_distances = [likeness.distance(look) for look in own[half::every]]
        spans = {other: (min(values), max(values)) for other, values in distances.items()}
        rows.append({"clip": name, "own": max(own_distances), **spans})
        print(rows[-1], file=sys.stderr)
    return rows


def face_square(frame: np.ndarray, box: np.ndarray, face_px: int) -> np.ndarray:
    """The square three face sizes wide around a face `box`, scaled so the face is `face_px`."""
    x0, y0, x1, y1 = box
    side = 3 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    region = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
    square = crop_padded(frame, region)
    return cv2.resize(square, (3 * face_px, 3 * face_px), interpolation=cv2.INTER_AREA)


def pick_rows(clips, tracks, workdir: Path) -> list[dict]:
    """For each clip (the actor) and each other person's clip: three frames of the actor's last
    20% beside three of the other's, the other's face larger; whether the actor's looks from
    the first 80% pick the actor, and each face's look distance from them on the first frame.
    Then the same three frames after three of the other person alone (a shot that opens on
    them): whether the pick waits for the actor, on the first frame the actor is in."""
    rows = []
    for actor in clips:
        track = tracks[actor.name]
        cut = int(len(track.frames) * TRAIN_SHARE)
        known = track.head(cut).target_looks()
        for other in clips:
            if other.name == actor.name or {actor.name, other.name} == set(SAME_SPEAKER):
                continue
            canvases = _beside(actor, tracks[actor.name], other, tracks[other.name], cut)
            movie = workdir / f"{actor.stem}_beside_{other.stem}.mp4"
            write_movie(movie, canvases, Fraction(25))
            plate = open_plate(movie)
            picked = track_plate(plate, plate.select(), known=known)
            box = picked.settings["target"]["box"]
            with FaceTracker() as tracker:
                pixels = plate.read(plate.info.frames[0])
                seen = [tracker.sighting(plate, pixels, f) for f in tracker.find_all(plate, pixels)]
            distances = {
                "actor_look" if s.face.centre[0] < PICK_SPLIT else "other_look": known.distance(
                    s.look
                )
                for s in seen
                if s is not None
            }
            rows.append(
                {
                    "actor": actor.name,
                    "other": other.name,
                    "picked_actor": (box[0] + box[2]) / 2 < PICK_SPLIT,
                    "waited_for_actor": _waited(canvases, known, workdir / movie.name),
                    **distances,
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


PICK_SPLIT = 430  # canvas x: the actor's square lies left of it, the other person's right
ACTOR_SQUARE = (slice(120, 480), slice(40, 400))  # where `_beside` puts the actor's face


def _waited(canvases: list[np.ndarray], known, path: Path) -> bool:
    """Whether the looks pick the actor on the first frame they are in, where the shot opens
    on the other person alone for as many frames."""
    alone = [c.copy() for c in canvases]
    for canvas in alone:
        canvas[ACTOR_SQUARE] = 90
    path = path.with_name(f"{path.stem}_opening{path.suffix}")
    write_movie(path, alone + canvases, Fraction(25))
    plate = open_plate(path)
    target = track_plate(plate, plate.select(), known=known).settings["target"]
    x0, _, x1, _ = target["box"]
    return target["frame"] == len(alone) and (x0 + x1) / 2 < PICK_SPLIT


def _beside(actor, actor_track, other, other_track, cut: int) -> list[np.ndarray]:
    found = np.flatnonzero(actor_track.found[cut:])[:3] + cut
    theirs = np.flatnonzero(other_track.found)[:3]
    a_plate, b_plate = open_plate(actor), open_plate(other)
    canvases = []
    for i, j in zip(found, theirs, strict=True):
        canvas = np.full((600, 1000, 3), 90, np.uint8)
        mine = a_plate.read(int(actor_track.frames[i]))[..., :3]
        yours = b_plate.read(int(other_track.frames[j]))[..., :3]
        canvas[ACTOR_SQUARE] = face_square(mine, actor_track.boxes[i], 120)
        canvas[30:570, PICK_SPLIT + 10 : PICK_SPLIT + 550] = face_square(
            yours, other_track.boxes[j], 180
        )
        canvases.append(canvas)
    return canvases


def write_acescg_exrs(
    movie, numbers, folder: Path, name: str = "portrait4k", scale: int = 2, exposure: float = 1
) -> Path:
    """Upscale `scale` times, convert the display-referred frames to ACEScg, `exposure` times
    brighter, write half EXR."""
    colour = default_config()
    for number in numbers:
        rgb = movie.read(number)
        big = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        linear = colour.convert(big.astype(np.float32) / 255, colour.working_space, "ACEScg")
        linear *= np.float32(exposure)
        height, width = linear.shape[:2]
        spec = oiio.ImageSpec(width - 2 * INSET, height - 2 * INSET, 3, "half")
        spec.x = spec.y = INSET
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, width, height
        spec.attribute("compression", "zip")
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), (25, 1))
        spec.attribute("chromaticities", oiio.TypeDesc("float[8]"), ACESCG_PRIMARIES)
        path = folder / f"{name}.{1001 + number:04d}.exr"
        out = oiio.ImageOutput.create(str(path))
        out.open(str(path), spec)
        out.write_image(np.ascontiguousarray(linear[INSET:-INSET, INSET:-INSET]))
        out.close()
    return folder / f"{name}.####.exr"


def exr_row(movie_track, frames: int):
    movie = open_plate(FOOTAGE / PORTRAIT)
    numbers = list(movie.select())[:frames]
    with tempfile.TemporaryDirectory(prefix="dubplate-bench-") as folder:
        pattern = write_acescg_exrs(movie, numbers, Path(folder))
        plate = open_plate(pattern)
        track, fps = timed_track(plate, plate.select())

    def distance(kind):
        exr_points = getattr(track, kind)[:, :, :2] / 2
        movie_points = getattr(movie_track, kind)[: len(numbers), :, :2]
        return np.linalg.norm(exr_points - movie_points, axis=-1)

    smoothed, raw = distance("landmarks"), distance("raw_landmarks")
    return {
        "size": f"{plate.info.width}x{plate.info.height}",
        "colourspace": plate.info.colourspace,
        "frames": len(numbers),
        "found": 100.0 * track.found.mean(),
        "mean_px": float(np.nanmean(smoothed)),
        "p95_px": float(np.nanpercentile(smoothed, 95)),
        "raw_mean_px": float(np.nanmean(raw)),
        "fps": fps,
    }


def likeness_markdown(rows) -> list[str]:
    names = [r["clip"] for r in rows]
    lines = [
        "",
        f"Likeness: look distance (one minus the correlation of upper-face brightness at the mesh "
        f"vertices, track/likeness.py) to the gallery the tracker builds from the clip's first half"
        f", every {LIKENESS_EVERY}th frame compared. A face farther than {UNLIKE} from the target "
        "is refused. Own: the farthest of the clip's second half; others: the nearest and the "
        "farthest frame of each other clip (" + " and ".join(SAME_SPEAKER) + " are the same "
        "woman).",
        "",
        "| gallery | own (max) | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for r in rows:
        cells = ["-" if n == r["clip"] else f"{r[n][0]:.3f}-{r[n][1]:.3f}" for n in names]
        lines.append(f"| {r['clip']} | {r['own']:.3f} | " + " | ".join(cells) + " |")
    return lines


def pick_markdown(rows) -> list[str]:
    right = sum(r["picked_actor"] for r in rows)
    waited = sum(r["waited_for_actor"] for r in rows)
    return [
        "",
        f"Picking the actor among faces (`dub` without `--target`): each clip's face from its "
        f"last 20% at 120 px beside another person's at 180 px; the looks kept from the clip's "
        f"first 80% (`actor build`'s `looks.npz`) picked the actor in {right} of {len(rows)} "
        f"pairs (largest face taken where neither is within {UNLIKE}). Look distance from them, "
        f"first frame: the actor's face {_span([r.get('actor_look') for r in rows])}, the other "
        f"person's {_span([r.get('other_look') for r in rows])}. The same after three frames of"
        f" the other person alone (a shot that opens on them): the pick waited for the actor, and"
        f" took them on the first frame they are in, in {waited} of {len(rows)} pairs.",
    ]


def _span(values: list[float | None]) -> str:
    """min-max of the values measured (None: that face was not meshed)."""
    measured = [v for v in values if v is not None]
    return f"{min(measured):.3f}-{max(measured):.3f}" if measured else "n/a"


def markdown(rows, likeness, changes, exr, picks) -> str:
    lines = [
        "## Tracking (issue 2): `bench/track_bench.py`",
        "",
        provenance(),
        "",
        "| clip | size | frames | face found | track fps | still frames | jitter raw | "
        "jitter smoothed | jitter cut (still) | jitter cut (all frames) | mouth lag | refused |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['size']} | {r['frames']} | {r['found']:.1f}% | {r['fps']:.1f} | "
            f"{r['still']} | {_num(r['raw_jitter'])} | {_num(r['smooth_jitter'])} | "
            f"{_num(r['cut'], '.0f', '%')} | {r['all_cut']:.0f}% | {r['lag']} | {r['refused']} |"
        )
    lines += [
        "",
        "Jitter: RMS second difference of all 478 landmarks, px of a 256-px face box, on runs of "
        ">= 8 frames whose head (rigid points, smoothed) moves < 1 px/frame (n/a: no such run), "
        "and on all tracked frames. Mouth lag: frames by which the smoothed inner-lip gap trails "
        "the raw one (cross-correlation, +-5 frames). Track fps: decode, colour conversion, "
        "detection, mesh and smoothing, end to end. Refused: frames where a face at the target's "
        "place was taken for another person (each clip holds one person: 0 is right).",
        *likeness_markdown(likeness),
        *pick_markdown(picks),
        "",
        "Shot cuts: the mean change of a frame's 32x32 HSV thumbnail (0-255) from the frame "
        f"before is at most {changes['within']:.1f} within any clip, and at least "
        f"{changes['between']:.1f} from one clip's last frame to another's first; the tracker "
        f"takes a change over {CUT_CHANGE:g} for a cut.",
        "",
        f"4K EXR: {PORTRAIT} upscaled 2x to {exr['size']} ({exr['colourspace']} half, ZIP, data "
        f"window inset {INSET} px), first {exr['frames']} frames: face found in "
        f"{exr['found']:.1f}%, landmarks vs the movie's track (EXR / 2): mean "
        f"{exr['mean_px']:.3f} px, 95th percentile {exr['p95_px']:.3f} px (before smoothing: "
        f"mean {exr['raw_mean_px']:.3f} px); "
        f"{exr['fps']:.1f} frames/s including EXR decode and colour conversion.",
    ]
    return "\n".join(lines)


def _num(value: float, spec: str = ".3f", unit: str = "") -> str:
    return "n/a" if np.isnan(value) else f"{value:{spec}}{unit}"


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--exr-frames", type=int, default=48)
    args = start(parser)
    clips = sorted(FOOTAGE.glob("*.mp4"))
    rows, tracks = footage_rows(clips)
    likeness = likeness_rows(clips, tracks)
    changes = picture_changes(clips)
    print(changes, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="dubplate-track-bench-") as folder:
        picks = pick_rows(clips, tracks, Path(folder))
    exr = exr_row(tracks[PORTRAIT], args.exr_frames)
    publish("track_bench", markdown(rows, likeness, changes, exr, picks), args)


if __name__ == "__main__":
    main()
