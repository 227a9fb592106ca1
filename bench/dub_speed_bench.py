"""Dub speed benchmark (issue 5): the portrait HD clip's held-out frames dubbed as the 1080p
movie it is, and upscaled to a 2160x3840 ACEScg half-float EXR plate.

    .venv/bin/python bench/dub_speed_bench.py [--steps 50] [--frames 48] [--no-write]

An actor is built on the first 80% of the portrait clip. Its renderer trains for only --steps
steps: how fast `dub` runs depends on the renderer's size, not on how long it trained. The first
--frames held-out frames are dubbed with the clip's own audio three ways: the movie to a review
movie (CRF 18) and to a lossless one (targets >= 3 frames/s), and as a 4K EXR plate (data window
inset from the display window; target >= 1 frame/s), with what one 4K frame's two EXR writes
cost alone. For the 4K plate also: frame numbers, windows, channels and metadata of the comp and
of the face plate against the source's; changed pixels, and how many lie outside the matte.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
from dub_bench import TRAIN_SHARE, build, dub_into
from results import FOOTAGE, arguments, provenance, publish, start
from track_bench import INSET, PORTRAIT, write_4k_exr_fixture

from dubplate.core.dub import DubSettings
from dubplate.core.media import open_plate
from dubplate.core.neural.train import RendererSettings

# What must survive the round trip, besides the windows.
HEADER_ATTRIBUTES = ("FramesPerSecond", "chromaticities", "compression", "smpte:TimeCode")


def dub_movie(actor_dir: Path, held_out: list[int], workdir: Path) -> dict:
    """Frames/s of the 1080p movie dubbed to a review movie and to a lossless one."""
    movie = open_plate(FOOTAGE / PORTRAIT)
    fps = {}
    for name, lossless in (("review", False), ("lossless", True)):
        settings = DubSettings(trim=True, lossless=lossless)  # the movie's own times and audio
        out = workdir / f"movie_{name}"
        fps[name] = dub_into(actor_dir, movie, held_out, movie.audio(), out, settings)[
            "frames_per_second"
        ]
    return {"size": f"{movie.info.width}x{movie.info.height}", **fps}


def dub_4k(actor_dir: Path, held_out: list[int], workdir: Path) -> dict:
    movie = open_plate(FOOTAGE / PORTRAIT)
    folder = workdir / "exr4k"
    folder.mkdir()
    plate = open_plate(write_4k_exr_fixture(movie, held_out, folder))
    numbers = list(plate.select())
    settings = DubSettings(audio_offset=float(movie.time_of(held_out[0])), trim=True)
    result = dub_into(actor_dir, plate, numbers, movie.audio(), workdir / "exr4k_dub", settings)
    comp, face = open_plate(result["output"]), open_plate(result["face_plate"])
    changed, outside = _changed_pixels(plate, comp, face, numbers)
    source_header = _header(plate.source_files(numbers[:1])[0])
    return {
        "frames": len(numbers),
        "size": f"{plate.info.width}x{plate.info.height}",
        "fps": result["frames_per_second"],
        "same_frames": comp.info.frames == plate.info.frames == face.info.frames,
        "comp_header": _header(comp.source_files(numbers[:1])[0]) == source_header,
        "face_header": _header(face.source_files(numbers[:1])[0])
        == {**source_header, "channels": ("R", "G", "B", "A")},
        "changed": changed,
        "outside_changed": outside,
        "passed": result["frames_passed_through"],
        "write_s": _write_seconds(plate, comp, face, numbers[0], workdir),
    }


def _changed_pixels(plate, comp, face, numbers) -> tuple[int, int]:
    """Pixels whose bits differ from the source's, and those of them where the face's alpha is 0."""
    changed = outside = 0
    for number in numbers:
        differs = (plate.read(number).view(np.uint16) != comp.read(number).view(np.uint16)).any(-1)
        changed += int(differs.sum())
        outside += int((differs & (face.read(number)[..., 3] == 0)).sum())
    return changed, outside


def _header(path: Path) -> dict:
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    inp.close()
    return {
        "data": (spec.x, spec.y, spec.width, spec.height),
        "display": (spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        "channels": tuple(spec.channelnames),
        **{name: str(spec.getattribute(name)) for name in HEADER_ATTRIBUTES},
    }


def _write_seconds(plate, comp, face, number: int, workdir: Path) -> dict:
    """One frame's comp and face plate written again, each timed alone."""
    seconds = {}
    for name, layer, channels in (
        ("comp", comp.read(number), ("R", "G", "B")),
        ("face", face.read(number), ("R", "G", "B", "A")),
    ):
        began = time.perf_counter()
        plate.write_frame(number, layer, workdir / f"again_{name}.exr", channels)
        seconds[name] = time.perf_counter() - began
    return seconds


def markdown(movie: dict, exr: dict, steps: int) -> str:
    write = exr["write_s"]
    return "\n".join(
        [
            "## Dub speed, 1080p movie and 4K EXR plate (issue 5): `bench/dub_speed_bench.py`",
            "",
            provenance(),
            "",
            f"{PORTRAIT}: actor built on its first {TRAIN_SHARE:.0%} (renderer {steps} steps: the"
            f" speed does not depend on them); its first {exr['frames']} held-out frames dubbed"
            " with the clip's own audio. Frames/s as `dub` reports them (making and writing the"
            " frames; tracking, fit and QC of the result not counted).",
            "",
            "| plate | output | dub frames/s | target |",
            "| --- | --- | --- | --- |",
            f"| {movie['size']} movie | H.264 CRF 18 movie | {movie['review']:.2f} | >= 3 |",
            f"| {movie['size']} movie | lossless H.264 RGB movie | {movie['lossless']:.2f} |"
            " >= 3 |",
            f"| {exr['size']} ACEScg half EXR (zip, data window inset {INSET} px) | EXR comp +"
            f" face plate | {exr['fps']:.2f} | >= 1 |",
            "",
            f"One 4K frame's writes, each timed alone: comp {write['comp']:.2f} s, face plate"
            f" {write['face']:.2f} s.",
            "",
            "| 4K: same frame numbers | comp: same windows, channels, metadata |"
            " face plate: same windows and metadata, RGBA | pixels changed |"
            " changed outside the matte | passed through |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {exr['same_frames']} | {exr['comp_header']} | {exr['face_header']} |"
            f" {exr['changed']} | {exr['outside_changed']} | {exr['passed'] or 'none'} |",
        ]
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=48)
    args = start(parser)
    clip = FOOTAGE / PORTRAIT
    numbers = list(open_plate(clip).select())
    cut = int(len(numbers) * TRAIN_SHARE)
    held_out = numbers[cut:][: args.frames]
    with tempfile.TemporaryDirectory(prefix="dubplate-speed-bench-") as folder:
        workdir = Path(folder)
        actor_dir, _ = build(clip, numbers[:cut], workdir, RendererSettings(steps=args.steps))
        movie = dub_movie(actor_dir, held_out, workdir)
        exr = dub_4k(actor_dir, held_out, workdir)
    publish("dub_speed_bench", markdown(movie, exr, args.steps), args)


if __name__ == "__main__":
    main()
