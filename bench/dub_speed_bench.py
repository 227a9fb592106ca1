"""Dub speed benchmark (issue 5): the portrait HD clip's held-out frames dubbed as the 1080p
movie it is, as a 1080p 10-bit ProRes movie, as a 1080p 10-bit DPX sequence, and upscaled to a
2160x3840 ACEScg half-float EXR plate.

    .venv/bin/python bench/dub_speed_bench.py [--steps 50] [--frames 48] [--no-write]

An actor is built on the first 80% of the portrait clip. Its renderer trains for only --steps
steps: how fast `dub` runs depends on the renderer's size, not on how long it trained. The first
--frames held-out frames are dubbed with the clip's own audio: the movie to a review movie (CRF
18) and to a lossless one, each checking the plate afresh as a shot's first dub does, and to a
lossless one again with the first dub's plate check (`PlateCheck`) kept; the same frames as a
10-bit ProRes 422 HQ movie to ProRes and to lossless FFV1; as a 10-bit DPX sequence (targets
>= 3 frames/s); and as a 4K EXR plate (data window inset from the display window; target >= 1
frame/s), with what one 4K frame's two EXR writes cost alone. For the DPX and 4K plates also:
frame numbers, windows, channels and metadata of the comp and of the face plate against the
source's; changed pixels, and how many lie outside the matte.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
from dub_bench import TRAIN_SHARE, build, dub_into
from results import FOOTAGE, arguments, provenance, publish, start
from track_bench import INSET, PORTRAIT, write_acescg_exrs

from dubplate.core.dub import DubSettings
from dubplate.core.media import open_plate
from dubplate.core.media.movie_writer import DEEP_REVIEW, write_movie
from dubplate.core.neural.train import RendererSettings

# What must survive the round trip, besides the windows.
HEADER_ATTRIBUTES = ("FramesPerSecond", "chromaticities", "compression", "smpte:TimeCode")
DPX_ATTRIBUTES = ("oiio:BitsPerSample", "dpx:Transfer", "dpx:FrameRate", "smpte:TimeCode")
DPX_TIMECODE = (0x01000000, 0)  # 01:00:00:00


def dub_movie(actor_dir: Path, held_out: list[int], workdir: Path) -> dict:
    """Frames/s of the 1080p movie dubbed to a review movie and to a lossless one, and the
    precision "auto" drew in."""
    movie = open_plate(FOOTAGE / PORTRAIT)
    fps = {}
    first = workdir / "movie_review"
    for name, lossless, checked_by, precision in (
        ("review", False, None, "auto"),
        ("lossless", True, None, "auto"),
        ("float32", True, None, "float32"),
        ("again", True, first, "auto"),  # the shot dubbed again: its plate check kept
    ):
        # The movie's own times and audio.
        settings = DubSettings(trim=True, lossless=lossless, precision=precision)
        out = workdir / f"movie_{name}"
        result = dub_into(actor_dir, movie, held_out, movie.audio(), out, settings, checked_by)
        fps[name] = result["frames_per_second"]
        if name == "review":
            fps["precision"] = result["settings"]["precision"]
    return {"size": f"{movie.info.width}x{movie.info.height}", **fps}


def dub_prores(actor_dir: Path, held_out: list[int], workdir: Path) -> dict:
    """Frames/s of the movie's frames as 10-bit ProRes 422 HQ, dubbed to ProRes and to lossless
    FFV1, and whether what came back is 10-bit or more, frame for frame."""
    movie = open_plate(FOOTAGE / PORTRAIT)
    path = workdir / "portrait_prores.mov"
    deep_frames = (movie.read(n).astype(np.uint16) * 257 for n in held_out)
    write_movie(path, deep_frames, movie.info.fps, codec=DEEP_REVIEW, yuv=movie.yuv)
    plate = open_plate(path)
    row = {"size": f"{plate.info.width}x{plate.info.height}"}
    for name, lossless in (("review", False), ("lossless", True)):
        settings = DubSettings(
            audio_offset=float(movie.time_of(held_out[0])), trim=True, lossless=lossless
        )
        numbers = list(plate.select())
        result = dub_into(
            actor_dir, plate, numbers, movie.audio(), workdir / f"prores_{name}", settings
        )
        written = open_plate(result["output"])
        row[name] = result["frames_per_second"]
        row[f"{name}_codec"] = result["movie_codec"]
        row[f"{name}_kept"] = written.deep and written.info.frames == plate.info.frames
    return row


def dub_4k(actor_dir: Path, held_out: list[int], workdir: Path) -> dict:
    movie = open_plate(FOOTAGE / PORTRAIT)
    folder = workdir / "exr4k"
    folder.mkdir()
    plate = open_plate(write_acescg_exrs(movie, held_out, folder))
    row, comp, face = dub_frame_files(actor_dir, plate, movie, held_out, workdir / "exr4k_dub")
    return {**row, "write_s": _write_seconds(plate, comp, face, plate.info.frames[0], workdir)}


def dub_dpx(actor_dir: Path, held_out: list[int], workdir: Path) -> dict:
    """The movie's frames as a 10-bit DPX sequence, dubbed: speed, headers, pixels kept."""
    movie = open_plate(FOOTAGE / PORTRAIT)
    folder = workdir / "dpx"
    folder.mkdir()
    plate = open_plate(_write_dpx_fixture(movie, held_out, folder), colourspace="srgb_tx")
    out = workdir / "dpx_dub"
    return dub_frame_files(actor_dir, plate, movie, held_out, out, DPX_ATTRIBUTES)[0]


def dub_frame_files(actor_dir, plate, movie, held_out, out, attributes=HEADER_ATTRIBUTES):
    """A plate of `movie`'s `held_out` frames dubbed with the movie's audio: its figures, and
    the comp and face plates written."""
    numbers = list(plate.select())
    settings = DubSettings(audio_offset=float(movie.time_of(held_out[0])), trim=True)
    result = dub_into(actor_dir, plate, numbers, movie.audio(), out, settings)
    comp, face = open_plate(result["output"]), open_plate(result["face_plate"])
    changed, outside = _changed_pixels(plate, comp, face, numbers)

    def header(written) -> dict:
        return _header(written.source_files(numbers[:1])[0], attributes)

    row = {
        "frames": len(numbers),
        "size": f"{plate.info.width}x{plate.info.height}",
        "fps": result["frames_per_second"],
        "same_frames": comp.info.frames == plate.info.frames == face.info.frames,
        "comp_header": header(comp) == header(plate),
        "face_header": header(face) == {**header(plate), "channels": ("R", "G", "B", "A")},
        "changed": changed,
        "outside_changed": outside,
        "passed": result["frames_passed_through"],
    }
    return row, comp, face


def _write_dpx_fixture(movie, numbers: list[int], folder: Path) -> Path:
    """The movie's frames widened to 10 bits, with a DPX film header's rate and a timecode."""
    for number in numbers:
        ten_bit = np.rint(movie.read(number).astype(np.float32) * (1023 / 255)).astype(np.uint16)
        height, width = ten_bit.shape[:2]
        spec = oiio.ImageSpec(width, height, 3, "uint16")
        spec.attribute("oiio:BitsPerSample", 10)
        spec.attribute("dpx:FrameRate", float(movie.info.fps))
        spec.attribute("dpx:Transfer", "User defined")
        spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), DPX_TIMECODE)
        path = folder / f"portrait.{1001 + number:04d}.dpx"
        out = oiio.ImageOutput.create(str(path))
        out.open(str(path), spec)
        out.write_image(ten_bit << 6 | ten_bit >> 4)  # widened as OpenImageIO reads 10 bits
        out.close()
    return folder / "portrait.####.dpx"


def _changed_pixels(plate, comp, face, numbers) -> tuple[int, int]:
    """Pixels whose bits differ from the source's, and those of them where the face's alpha is 0."""
    changed = outside = 0
    for number in numbers:
        source, result = plate.read(number), comp.read(number)
        differs = (source.view(np.uint16) != result.view(np.uint16)).any(-1)
        changed += int(differs.sum())
        outside += int((differs & (face.read(number)[..., 3] == 0)).sum())
    return changed, outside


def _header(path: Path, attributes: tuple[str, ...]) -> dict:
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    inp.close()
    return {
        "data": (spec.x, spec.y, spec.width, spec.height),
        "display": (spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        "channels": tuple(spec.channelnames),
        **{name: str(spec.getattribute(name)) for name in attributes},
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


def markdown(movie: dict, prores: dict, dpx: dict, exr: dict, steps: int) -> str:
    write = exr["write_s"]
    return "\n".join(
        [
            "## Dub speed, 1080p movies and DPX, 4K EXR plate (issue 5):"
            " `bench/dub_speed_bench.py`",
            "",
            provenance(),
            "",
            f"{PORTRAIT}: actor built on its first {TRAIN_SHARE:.0%} (renderer {steps} steps: the"
            f" speed does not depend on them); its first {exr['frames']} held-out frames dubbed"
            " with the clip's own audio. Frames/s as `dub` reports them (making and writing the"
            " frames; tracking, fit and QC of the result not counted). The generator drew in"
            f" {movie['precision']} (`--precision auto` on this machine) except where said.",
            "",
            "| plate | output | dub frames/s | target |",
            "| --- | --- | --- | --- |",
            f"| {movie['size']} movie | H.264 CRF 18 movie | {movie['review']:.2f} | >= 3 |",
            f"| {movie['size']} movie | lossless H.264 RGB movie | {movie['lossless']:.2f} |"
            " >= 3 |",
            f"| {movie['size']} movie | lossless H.264 RGB movie, the generator in float32"
            f" (`--precision float32`) | {movie['float32']:.2f} | >= 3 |",
            f"| {movie['size']} movie, dubbed again (its plate check kept from the first dub) |"
            f" lossless H.264 RGB movie | {movie['again']:.2f} | >= 3 |",
            *(
                f"| {prores['size']} 10-bit ProRes 422 HQ movie | {prores[f'{name}_codec']}"
                f" movie (10 bits or more, every frame: {prores[f'{name}_kept']}) |"
                f" {prores[name]:.2f} | >= 3 |"
                for name in ("review", "lossless")
            ),
            f"| {dpx['size']} 10-bit DPX sequence | DPX comp + face plate | {dpx['fps']:.2f} |"
            " >= 3 |",
            f"| {exr['size']} ACEScg half EXR (zip, data window inset {INSET} px) | EXR comp +"
            f" face plate | {exr['fps']:.2f} | >= 1 |",
            "",
            f"One 4K frame's writes, each timed alone: comp {write['comp']:.2f} s, face plate"
            f" {write['face']:.2f} s.",
            "",
            "| plate | same frame numbers | comp: same windows, channels, metadata |"
            " face plate: same windows and metadata, RGBA | pixels changed |"
            " changed outside the matte | passed through |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(
                f"| {name} | {row['same_frames']} | {row['comp_header']} | {row['face_header']} |"
                f" {row['changed']} | {row['outside_changed']} | {row['passed'] or 'none'} |"
                for name, row in (("10-bit DPX", dpx), ("4K EXR", exr))
            ),
            "",
            f"DPX metadata compared: bit depth, transfer, frame rate, timecode"
            f" ({', '.join(DPX_ATTRIBUTES)}).",
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
        settings = RendererSettings(steps=args.steps)
        actor_dir, _ = build(open_plate(clip), clip.stem, numbers[:cut], workdir, settings)
        movie = dub_movie(actor_dir, held_out, workdir)
        prores = dub_prores(actor_dir, held_out, workdir)
        dpx = dub_dpx(actor_dir, held_out, workdir)
        exr = dub_4k(actor_dir, held_out, workdir)
    publish("dub_speed_bench", markdown(movie, prores, dpx, exr, args.steps), args)


if __name__ == "__main__":
    main()
