"""HDR benchmark: an ACEScg EXR plate brighter than display white, built on and dubbed.

    .venv/bin/python bench/hdr_bench.py [--clip man_map_5s.mp4] [--exposure 7] [--steps 100]
        [--no-write]

The clip's frames become a half-float ACEScg EXR sequence at `exposure` times their scene-linear
values (at 7, most of the face is over 1.0, red the brightest), with the clip's sound as a WAV
beside it. An actor is built on the sequence's first 80% (`--footage-audio`'s way) and its last
20% is dubbed with the same sound. Against the source, where the face layer's alpha is full:
how far the comp's colour turns from the source's (the angle between their ACEScg RGB vectors:
a hue or saturation shift, whatever the brightness), and how much of the source's brightness
over 1.0 stays over 1.0; every pixel outside the matte must be the source's. Run three times,
actor and dub alike: as the renderer's view holds colour now (hue kept, `ColourConfig._into_range`,
and highlights rolled off under white up to the peak measured on the footage, `Highlights`); for
comparison, without the roll-off (over-white darkened to white, before headroom); and with what
the view cannot hold clipped channel by channel, as before 6cf2258. A sheet of the
mouth, source against comp at 1/exposure, goes to bench/hdr_bench_contact_sheet.jpg (not
committed: it is cut from the shared footage).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import soundfile
from dub_bench import TRAIN_SHARE, build, dub_into
from results import FOOTAGE, REPO, arguments, provenance, publish, start
from track_bench import write_acescg_exrs

from dubplate.core.a2e.store import footage_audio_offsets
from dubplate.core.colour import WITHIN_WHITE, ColourConfig
from dubplate.core.dub import DubSettings
from dubplate.core.media import open_plate
from dubplate.core.neural import store as neural_store
from dubplate.core.neural.train import RendererSettings

FULL_ALPHA = 0.99
SHIFTED_DEGREES = 5.0  # a colour this far from the source's reads as another hue or saturation
SHEET_FRAMES = 2
SHEET_PX = 192


def make_plate(clip: Path, exposure: float, folder: Path) -> tuple[Path, Path]:
    """The clip as ACEScg half EXRs 1001-, `exposure` times brighter, and its sound as a WAV."""
    movie = open_plate(clip)
    pattern = write_acescg_exrs(movie, movie.info.frames, folder, "shot", 1, exposure)
    sound = movie.audio()
    wav = folder / "shot.wav"
    soundfile.write(str(wav), sound.samples, sound.rate)
    return pattern, wav


@contextmanager
def within_white():
    """The renderer's view as it was before headroom: over-white darkened to white, hue kept."""
    with mock.patch.object(neural_store, "footage_highlights", lambda *_: WITHIN_WHITE):
        yield


@contextmanager
def clipped_channel_by_channel():
    """The working space's view as it was before hue was kept: each channel clipped alone, and
    no headroom."""
    clip = mock.patch.object(ColourConfig, "_into_range", lambda self, w: np.clip(w, 0.0, 1.0))
    with clip, within_white():
        yield


def build_and_dub(pattern: Path, wav: Path, workdir: Path, name: str, steps: int) -> dict:
    """The dub's result, and the seconds the build and the dub took."""
    began = time.perf_counter()
    plate = open_plate(pattern, wav)
    numbers = list(plate.info.frames)
    cut = int(len(numbers) * TRAIN_SHARE)
    actor_dir, _ = build(plate, name, numbers[:cut], workdir, RendererSettings(steps=steps))
    (offset,) = footage_audio_offsets(actor_dir).values()
    settings = DubSettings(audio_offset=offset, pad=offset > 0, trim=True)
    result = dub_into(actor_dir, plate, numbers[cut:], plate.audio(), workdir / name, settings)
    peak = neural_store.load_renderer(actor_dir).highlights.peak
    return {**result, "seconds": time.perf_counter() - began, "peak": peak}


def colour_figures(source: Path, result: dict, exposure: float) -> tuple[dict, np.ndarray]:
    """Figures over the dubbed frames, and a sheet row of source and comp mouths."""
    plate, comp = open_plate(source), open_plate(result["output"])
    face = open_plate(result["face_plate"])
    angles, over, kept, brightness, outside, tiles = [], 0, 0, [], 0, []
    picks = set(np.linspace(0, len(comp.info.frames) - 1, SHEET_FRAMES).round().astype(int))
    for index, number in enumerate(comp.info.frames):
        src = plate.read(number).astype(np.float32)
        out = comp.read(number).astype(np.float32)
        alpha = face.read(number)[..., 3].astype(np.float32)
        full = alpha > FULL_ALPHA
        outside += int(((src != out).any(axis=-1) & (alpha == 0)).sum())
        angles.append(_angle_degrees(src[full], out[full]))
        hot = full & (src.max(axis=-1) > 1.0)
        over += int(hot.sum())
        kept += int((out.max(axis=-1)[hot] > 1.0).sum())
        brightness.append(out.max(axis=-1)[hot] / src.max(axis=-1)[hot])
        if index in picks:
            tiles.append(_mouth_tile(src, out, alpha, exposure, plate.colour))
    angles, brightness = np.concatenate(angles), np.concatenate(brightness)
    figures = {
        "frames": len(comp.info.frames),
        "pixels": len(angles),
        "angle_median": float(np.median(angles)),
        "angle_p95": float(np.percentile(angles, 95)),
        "shifted": float((angles > SHIFTED_DEGREES).mean()),
        "over": over,
        "kept_over": kept / max(over, 1),
        "brightness_median": float(np.median(brightness)) if len(brightness) else float("nan"),
        "changed_outside": outside,
    }
    return figures, np.concatenate(tiles, axis=1)


def _angle_degrees(source: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """(K,) degrees between the pixels' RGB vectors; black pixels (no colour to turn) left out."""
    norms = np.linalg.norm(source, axis=-1) * np.linalg.norm(comp, axis=-1)
    seen = norms > 1e-6
    cosine = (source[seen] * comp[seen]).sum(axis=-1) / norms[seen]
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def _mouth_tile(src, out, alpha, exposure, colour) -> np.ndarray:
    """Source over comp, square around the matte, at 1/exposure in the working space."""
    ys, xs = np.nonzero(alpha > 0)
    side = max(ys.max() - ys.min(), xs.max() - xs.min())
    y0, x0 = (ys.min() + ys.max() - side) // 2, (xs.min() + xs.max() - side) // 2
    rows = []
    for pixels in (src, out):
        crop = np.ascontiguousarray(pixels[max(y0, 0) : y0 + side, max(x0, 0) : x0 + side])
        shown = colour.to_working_uint8(crop / np.float32(exposure), "ACEScg")
        rows.append(cv2.resize(shown, (SHEET_PX, SHEET_PX), interpolation=cv2.INTER_AREA))
    return np.concatenate(rows, axis=0)


def markdown(runs: dict[str, dict], clip: str, exposure: float, steps: int) -> str:
    lines = [
        "## HDR plate: hue and brightness kept under the matte (bench/hdr_bench.py)",
        "",
        provenance(),
        "",
        f"{clip} as a half-float ACEScg EXR sequence at {exposure:g}x its scene-linear values,"
        f" with its sound as a WAV (`--footage-audio`); actor built on the first 80%"
        f" ({steps} renderer steps), the last 20% dubbed with the same sound. Figures over the"
        " pixels where the face layer's alpha is full. Colour angle: between the comp's and"
        " the source's ACEScg RGB vectors (a hue or saturation shift, brightness aside);"
        f" shifted: share over {SHIFTED_DEGREES:g} degrees. Over 1.0: the source's pixels"
        " brighter than 1.0 there, the share of them still over 1.0 in the comp and the median"
        " comp/source ratio of their brightest channel. Each row builds its own actor. The"
        " renderer's peak: the linear brightness its view puts on white (`Highlights`, measured"
        " on the footage's lower face; 1: what is over white is darkened to it).",
        "",
        "| working space view | renderer's peak | frames | pixels"
        " | colour angle median / p95 (deg) | shifted | over 1.0 | kept over 1.0"
        " | brightness comp/source | changed outside matte | build + dub (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in runs.items():
        f = run["figures"]
        lines.append(
            f"| {name} | {run['peak']:.2f} | {f['frames']} | {f['pixels']} |"
            f" {f['angle_median']:.2f} /"
            f" {f['angle_p95']:.2f} | {f['shifted']:.1%} | {f['over']} | {f['kept_over']:.1%}"
            f" | {f['brightness_median']:.2f} | {f['changed_outside']} | {run['seconds']:.0f} |"
        )
    lines += [
        "",
        "Contact sheet (`bench/hdr_bench_contact_sheet.jpg`, written by the run and not"
        " committed: it is cut from the shared footage): mouths at 1/exposure, two dubbed frames"
        " across; down, per view in the table's order, source then comp.",
    ]
    return "\n".join(lines)


VIEWS = {
    "hue kept, highlights rolled off under white": nullcontext,
    "hue kept, darkened to white (before headroom)": within_white,
    "clipped channel by channel (before hue was kept)": clipped_channel_by_channel,
}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--clip", default="man_map_5s.mp4")
    parser.add_argument("--exposure", type=float, default=7.0)
    parser.add_argument("--steps", type=int, default=100, help="renderer training steps")
    args = start(parser)
    runs, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="dubplate-hdr-bench-") as folder:
        workdir = Path(folder)
        pattern, wav = make_plate(FOOTAGE / args.clip, args.exposure, workdir)
        for index, (name, view) in enumerate(VIEWS.items()):
            with view():
                result = build_and_dub(pattern, wav, workdir, f"view{index}", args.steps)
            figures, row = colour_figures(pattern, result, args.exposure)
            runs[name] = {"figures": figures, "seconds": result["seconds"], "peak": result["peak"]}
            print(name, figures, flush=True)
            rows.append(row)
    image = np.concatenate(rows, axis=0)
    cv2.imwrite(str(REPO / "bench" / "hdr_bench_contact_sheet.jpg"), image[..., ::-1])
    publish("hdr_bench", markdown(runs, args.clip, args.exposure, args.steps), args)


if __name__ == "__main__":
    main()
