"""Cross-shot benchmark (issue 5): an actor built on one shot of a person dubs another shot of them.

    .venv/bin/python bench/cross_shot_bench.py [--steps 2000] [--size 256] [--actors DIR]
        [--no-write]

The shared footage holds one person in two shots (woman_flag_a and woman_flag_b: another light,
another framing). Each shot's last 20% is dubbed with its own sound twice: by the actor built on
its own first 80% (as dub_bench builds it) and by the actor built on the other shot's first 80%.
Both are driven alike (the sound moved by the offset the shot's own actor found in its footage)
and scored alike against the real frames: identity distance, M-LMD (and with the plate's own
fitted mouth redrawn, what the renderer and crop module leave a perfect A2E), face-crop SSIM and
PSNR, mouth sharpness (and the sharpening `dub` measured) and flicker against the real frames',
and the lips' colour: the mean CIELAB over the lips, each frame's where its own track puts them,
of the dub against the real frames' (Delta E 1976, and Delta L: under 0 darker); and the same
of the plate's own fitted mouths redrawn (the plate drive) on the real frames' track: the same
mouth where the lips are, so colour alone (a re-track of drawn lips may place their edges a
pixel otherwise, over skin or the opening). dub_bench's within-clip figures cannot see a fault
that only another shot shows, such as drawn lips in the footage's colour or a mouth drawn
sharper than the plate holds it. Real and dubbed mouths go to
bench/cross_shot_bench_contact_sheet.jpg.

With --actors DIR the actors are taken from, or built into, the folder dub_bench keeps them in.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from dub_bench import TRAIN_SHARE, kept_or_built, self_reconstruction
from results import FOOTAGE, REPO, arguments, provenance, publish, start

from dubplate.core.a2e.store import footage_audio_offsets
from dubplate.core.media import open_plate
from dubplate.core.neural.train import RendererSettings

SHOTS = ("woman_flag_a_5s.mp4", "woman_flag_b_8s.mp4")  # one person, two shots
SHEET = "cross_shot_bench_contact_sheet.jpg"


def figures(plate_clip: Path, actor_dir: Path, held_out: list[int], workdir: Path, offset):
    row = self_reconstruction(
        plate_clip, actor_dir, held_out, workdir / actor_dir.name, offset, ("plate_drive",), True
    )
    for drive, lips in (("", row["lips_dub"]), ("_plate_drive", row["lips_plate_drive"])):
        difference = {part: lips[part] - row["lips_real"][part] for part in lips}
        row[f"delta_e{drive}"] = {part: float(np.linalg.norm(d)) for part, d in difference.items()}
        row[f"delta_l{drive}"] = {part: float(d[0]) for part, d in difference.items()}
    return row


def markdown(rows: list[dict], settings: RendererSettings) -> str:
    lines = [
        "## Cross-shot dub (issue 5): `bench/cross_shot_bench.py`",
        "",
        provenance(),
        "",
        "One woman in two shots of the shared footage. Each shot's last 20% dubbed with its own"
        " sound (moved by the offset its own actor found in its first 80%; M-LMD over the"
        " frames whose sound, so moved, is in the recording) by the actor built on its own first"
        " 80% and by the actor built on the other shot's, against the real frames (renderer:"
        f" {settings.steps} steps of batch 4 at {settings.size} px). Lips: the mean CIELAB over"
        " the lips, each frame's where its own track puts them, real and dubbed: their Delta E"
        " 1976, and of each lip alone, with its Delta L (under 0, the dub's lip is darker); the"
        " lips as one can hide two lips wrong the opposite ways. Plate drive: the same of the"
        " plate's own fitted mouths redrawn, each frame's lips where the real frame's track puts"
        " them (the same mouth: a re-track of drawn lips may place their edges a pixel"
        " otherwise, over skin or the opening). Sharpen: what `dub` measured on"
        " the plate's sampled mouths (under 0: softened); shutter: the angle the actor's"
        " renderer measured on its own footage.",
        "",
        f"Contact sheet (each row pair: real, then dubbed; the rows in the table's order):"
        f" `bench/{SHEET}`, written by the run and not committed (it is cut from the shared"
        " footage).",
        "",
        "| plate (held-out frames) | actor built on | identity px | M-LMD px | M-LMD plate drive"
        " | SSIM | PSNR dB | sharpness dub / real | sharpen | shutter | flicker dub / real"
        " | lips L a b: real | dub | Delta E | upper lip: Delta E (L) | lower lip"
        " | plate drive: upper lip Delta E (L) | lower lip |",
        "|" + " --- |" * 18,
    ]
    for r in rows:
        lines.append(
            f"| {r['plate']} ({r['frames']}) | {r['actor']} | {r['identity']:.2f}"
            f" | {r['mlmd']:.2f} | {r['mlmd_plate_drive']:.2f} | {r['ssim']:.3f}"
            f" | {r['psnr']:.1f} | {r['sharp_dub'] / r['sharp_real']:.2f} | {r['sharpen']:g}"
            f" | {r['shutter']:g}"
            f" | {r['flicker_dub'] / r['flicker_real']:.2f} | {_lab(r['lips_real']['lips'])}"
            f" | {_lab(r['lips_dub']['lips'])} | {r['delta_e']['lips']:.1f}"
            f" | {_lip(r, 'upper')} | {_lip(r, 'lower')}"
            f" | {_lip(r, 'upper', '_plate_drive')} | {_lip(r, 'lower', '_plate_drive')} |"
        )
    return "\n".join(lines)


def _lip(row: dict, part: str, drive: str = "") -> str:
    return f"{row[f'delta_e{drive}'][part]:.1f} ({row[f'delta_l{drive}'][part]:+.1f})"


def _lab(colour: np.ndarray) -> str:
    return " ".join(f"{c:.1f}" for c in colour)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=int, default=RendererSettings.steps)
    parser.add_argument("--size", type=int, default=RendererSettings.size, help="crop side")
    parser.add_argument("--actors", type=Path, help="dub_bench's folder of kept actors")
    args = start(parser)
    settings = RendererSettings(steps=args.steps, size=args.size)
    rows, sheet = [], []
    with tempfile.TemporaryDirectory(prefix="dubplate-cross-shot-bench-") as folder:
        workdir = Path(folder)
        actors, held_out = {}, {}
        for name in SHOTS:
            numbers = list(open_plate(FOOTAGE / name).select())
            cut = int(len(numbers) * TRAIN_SHARE)
            held_out[name] = numbers[cut:]
            actors[name], _, _ = kept_or_built(
                open_plate(FOOTAGE / name),
                Path(name).stem,
                numbers[:cut],
                args.actors or workdir,
                settings,
            )
        for plate_name in SHOTS:
            (offset,) = footage_audio_offsets(actors[plate_name]).values()
            for actor_name in SHOTS:
                row = figures(
                    FOOTAGE / plate_name,
                    actors[actor_name],
                    held_out[plate_name],
                    workdir / plate_name,
                    offset,
                )
                row.update(plate=plate_name, actor=actor_name)
                sheet.append(row.pop("sheet"))
                print(row, file=sys.stderr)
                rows.append(row)
    image = (np.concatenate(sheet, axis=0) * 255).astype(np.uint8)
    cv2.imwrite(str(REPO / "bench" / SHEET), image[..., ::-1])
    publish("cross_shot_bench", markdown(rows, settings), args)


if __name__ == "__main__":
    main()
