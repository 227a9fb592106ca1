"""Morphable-model figures on the shared footage (issue 3), written into bench/RESULTS.md.

    .venv/bin/python bench/morph_bench.py [--no-write]

1. Landmark reprojection of the fitted model against the track (px of a 256-px face box), all
   468 points and the lip points, against basis size; and on the held-out last 20% of each clip.
2. Pose stability: frame-to-frame change of the fitted rotation where only the mouth moves.
3. Photometric error of the render inside the face mask: SH light vs the albedo under flat
   (ambient-only) light.
4. Identity distance of each clip's frames from each other clip's model, against the refusal
   threshold.
5. Renderer speed: batched 256x256 renders per second (rasterise, texture, SH shade), and the
   rasteriser alone.
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np
import torch
from results import FOOTAGE, arguments, provenance, publish, start

from dubplate.core.media import open_plate
from dubplate.core.morph.actor import build_actor
from dubplate.core.morph.appearance import crop_regions, renderer_for, to_screen
from dubplate.core.morph.fit import (
    IDENTITY_THRESHOLD_PX,
    build_geometry,
    fit_frames,
    identity_distance_px,
    lip_error_px,
    reprojection_px,
)
from dubplate.core.render.rasterizer import rasterize
from dubplate.core.track import track_plate
from dubplate.core.track.quality import mouth_only_steps

BASES = [(4, 2), (8, 4), (12, 8), (16, 12), (24, 16)]
BATCH = 16


def reprojection_curve(shapes: np.ndarray) -> list[tuple[float, float]]:
    curve = []
    for lower_k, upper_k in BASES:
        model = build_geometry([shapes], lower_k, upper_k)
        errors = reprojection_px(model, fit_frames(model, shapes, np.arange(len(shapes))), shapes)
        curve.append((float(errors.mean()), lip_error_px(errors)))
    return curve


def held_out(shapes: np.ndarray) -> tuple[float, float]:
    split = int(0.8 * len(shapes))
    model = build_geometry([shapes[:split]], *BASES[-1])
    tail = shapes[split:]
    errors = reprojection_px(model, fit_frames(model, tail, np.arange(len(tail))), tail)
    return float(errors.mean()), lip_error_px(errors)


def rotation_steps_deg(rotation: np.ndarray) -> np.ndarray:
    relative = np.einsum("fji,fjk->fik", rotation[:-1], rotation[1:])
    cosine = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return np.degrees(np.arccos(cosine))


def clip_rows(clips):
    rows = []
    for clip in clips:
        plate = open_plate(clip)
        track = track_plate(plate, plate.select())
        shapes = track.landmarks[track.found]
        curve = reprojection_curve(shapes)
        actor = build_actor(clip.stem, [(plate, track)])
        fit = actor.fits[0]
        steps = rotation_steps_deg(fit.rotation)
        still_steps = steps[mouth_only_steps(shapes)]
        rows.append(
            {
                "clip": clip.name,
                "frames": len(shapes),
                "curve": curve,
                "held_out": held_out(shapes),
                "mouth_only_steps": still_steps,
                "all_steps": steps,
                "sh": actor.figures["photometric_error"],
                "flat": actor.figures["photometric_error_flat"],
                "model": actor.model,
                "fit": fit,
                "shapes": shapes,
            }
        )
        print(clip.name, curve[-1], rows[-1]["held_out"], file=sys.stderr)
    return rows


def render_speed(model, fit) -> tuple[float, float]:
    posed = fit.posed(model)[:BATCH]
    screen = torch.from_numpy(to_screen(posed, crop_regions(posed)).astype(np.float32))
    texture = torch.from_numpy(model.texture).permute(2, 0, 1)[None]
    light = torch.from_numpy(fit.light[:BATCH])
    renderer = renderer_for(model)

    def per_second(work) -> float:
        work()
        started, runs = time.perf_counter(), 5
        for _ in range(runs):
            work()
        return runs * len(screen) / (time.perf_counter() - started)

    with torch.no_grad():
        full = per_second(lambda: renderer.render(screen, texture, light, (256, 256)))
        raster = per_second(lambda: rasterize(screen, renderer.faces, (256, 256)))
    return full, raster


def markdown(rows, speed) -> str:
    header = " | ".join(f"{lo}+{up}" for lo, up in BASES)
    lines = [
        "## Morphable model (issue 3): `bench/morph_bench.py`",
        "",
        provenance(),
        "",
        "Reprojection of the fitted model against the track, px of a 256-px face box, mean over "
        "all 468 points / over the 40 lip points, by basis size (lower + upper coefficients), "
        "fitted on every frame of the clip; last column: basis 24+16 built on the first 80% and "
        "fitted to the held-out last 20%.",
        "",
        f"| clip | frames | {header} | held-out 24+16 |",
        "| --- | --- | " + " | ".join("---" for _ in BASES) + " | --- |",
    ]
    for r in rows:
        cells = " | ".join(f"{a:.2f} / {b:.2f}" for a, b in r["curve"])
        lines.append(
            f"| {r['clip']} | {r['frames']} | {cells} | "
            f"{r['held_out'][0]:.2f} / {r['held_out'][1]:.2f} |"
        )
    lines += [
        "",
        "Pose stability: change of the fitted head rotation between consecutive frames, in "
        "degrees, where only the mouth moves (rigid points < 0.5 face-box px, inner-lip gap "
        "changing by > 0.5 px) and on all frames. Photometric error: mean absolute difference "
        "in working display values (0-1) between the render and the frame over the face mesh, "
        "SH light vs the same albedo under flat (ambient-only) light.",
        "",
        "| clip | mouth-only steps | rotation step mean / p95 (mouth only) | mean / p95 (all) | "
        "photometric SH | flat | SH lowers it by |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        still, every = r["mouth_only_steps"], r["all_steps"]
        still_text = f"{still.mean():.3f} / {np.percentile(still, 95):.3f}" if len(still) else "n/a"
        lines.append(
            f"| {r['clip']} | {len(still)} | {still_text} | {every.mean():.3f} / "
            f"{np.percentile(every, 95):.3f} | {r['sh']:.4f} | {r['flat']:.4f} | "
            f"{100 * (1 - r['sh'] / r['flat']):.0f}% |"
        )
    lines += [
        "",
        "Identity distance of clip B's frames from clip A's model (px of a 256-px face box); "
        f"plates of 25 frames or more are refused above {IDENTITY_THRESHOLD_PX}:",
        "",
        "| clip A (model) | clip B (frames) | distance | same person? |",
        "| --- | --- | --- | --- |",
    ]
    for a, b in itertools.permutations(rows, 2):
        distance = identity_distance_px(a["model"], b["shapes"])
        same = "yes" if distance <= IDENTITY_THRESHOLD_PX else "no"
        lines.append(f"| {a['clip']} | {b['clip']} | {distance:.2f} | {same} |")
    full, raster = speed
    lines += [
        "",
        f"Renderer, batches of {BATCH} at 256x256 on this CPU ({torch.get_num_threads()} "
        f"threads): {full:.0f} renders/s with texture and SH shading, {raster:.0f}/s "
        "rasterising alone.",
    ]
    return "\n".join(lines)


def main() -> None:
    args = start(arguments(__doc__))
    rows = clip_rows(sorted(FOOTAGE.glob("*.mp4")))
    speed = render_speed(rows[0]["model"], rows[0]["fit"])
    publish("morph_bench", markdown(rows, speed), args)


if __name__ == "__main__":
    main()
