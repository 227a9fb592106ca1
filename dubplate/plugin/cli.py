"""The `dubplate` command: a thin shell over the core stages.

Every command logs progress and decisions to stderr; with --json its last line of stdout is one
JSON object. A DubplateError prints one line and exits 2; --debug shows tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import traceback
from pathlib import Path

import numpy as np

from dubplate import __version__
from dubplate.core.errors import DubplateError
from dubplate.core.files import cache_dir, publish_version, staged_dir
from dubplate.core.media import open_plate
from dubplate.core.media.timing import parse_frame_range

log = logging.getLogger("dubplate")

PLATE_HELP = "movie file or EXR, DPX, TIFF or PNG sequence"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname).1s %(message)s"
        if not args.debug
        else "%(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = args.command(args)
    except DubplateError as error:
        if args.debug:
            traceback.print_exc()
        print(f"dubplate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dubplate: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: still one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        print(
            f"dubplate: internal error: {type(error).__name__}: {error}"
            " (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(result))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dubplate", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dubplate {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    track = commands.add_parser(
        "track",
        parents=[common],
        help="track the actor's face through a plate",
        description="Track one face through a plate; write track.npz, track.json and preview.mp4.",
    )
    track.add_argument("plate", help=f"{PLATE_HELP} (shot.####.exr, shot.%%04d.dpx, shot.@.exr)")
    _plate_options(track)
    track.add_argument(
        "--out", type=Path, help="output directory; results go in a new vNNN inside it"
    )
    _target_options(track)
    track.add_argument("--no-preview", action="store_true", help="skip the preview movie")
    track.set_defaults(command=_track)

    actor = commands.add_parser("actor", help="build and inspect an actor's face model")
    actor_commands = actor.add_subparsers(required=True, metavar="ACTION")
    fit = actor_commands.add_parser(
        "fit",
        parents=[common],
        help="fit the actor's morphable face to their footage",
        description="Track (or reuse cached tracks), then build the actor's morphable model: "
        "neutral shape, lower/upper-face expression bases, UV albedo and per-frame SH light.",
    )
    _footage_options(fit)
    _plate_options(fit)
    fit.add_argument("--out", type=Path, required=True, help="actor directory (must not exist)")
    fit.add_argument(
        "--lower-basis", type=_at_least_one, default=24, help="lower-face coefficients"
    )
    fit.add_argument(
        "--upper-basis", type=_at_least_one, default=16, help="upper-face coefficients"
    )
    fit.add_argument("--texture-px", type=_at_least_one, default=256, help="albedo atlas size")
    _cache_option(fit)
    fit.set_defaults(command=_actor_fit)

    preview = actor_commands.add_parser(
        "preview",
        parents=[common],
        help="plate, render and blend side by side",
    )
    preview.add_argument("actor", type=Path, help="actor directory")
    preview.add_argument("plate", help=PLATE_HELP)
    _plate_options(preview)
    preview.add_argument("--out", type=Path, required=True, help="preview movie (.mp4)")
    _cache_option(preview)
    preview.set_defaults(command=_actor_preview)

    train = actor_commands.add_parser(
        "train-a2e",
        parents=[common],
        help="train the actor's audio-to-expression network",
        description="Train A2E on the actor's footage: its audio in augmented voices against "
        "the fitted lower-face coefficients; the footage's last 20%% is held out.",
    )
    train.add_argument("actor", type=Path, help="actor directory (from actor fit)")
    _device_option(train)
    train.add_argument("--seed", type=_whole_number, default=0)
    train.set_defaults(command=_train_a2e)

    build = actor_commands.add_parser(
        "build",
        parents=[common],
        help="track, fit, covered mouths, cover network, A2E and neural renderer in one go",
        description="Build everything `dub` needs from the actor's footage. Each stage is kept "
        "in the actor directory and skipped when it is already there; a stopped renderer "
        "training resumes from its checkpoint.",
    )
    _footage_options(build)
    _plate_options(build)
    build.add_argument("--out", type=Path, required=True, help="actor directory")
    build.add_argument("--size", type=int, default=256, help="neural renderer crop size")
    build.add_argument("--steps", type=_at_least_one, help="renderer training steps (default 2000)")
    _device_option(build)
    build.add_argument("--seed", type=_whole_number, default=0)
    _cache_option(build)
    build.set_defaults(command=_actor_build)

    a2e = commands.add_parser("a2e", help="drive the actor's face from audio")
    a2e_commands = a2e.add_subparsers(required=True, metavar="ACTION")
    drive = a2e_commands.add_parser(
        "predict",
        parents=[common],
        help="lower-face coefficients and a preview for any audio",
    )
    drive.add_argument("actor", type=Path, help="actor directory with a trained A2E")
    drive.add_argument("--audio", required=True, type=Path, help="dub audio (WAV, FLAC, movie...)")
    _audio_offset_option(drive, "frame 0")
    drive.add_argument("--frames", metavar="A-B", help="frames to drive (default: all the audio)")
    drive.add_argument(
        "--pad", action="store_true", help="treat audio missing for frames as silence"
    )
    drive.add_argument("--out", type=Path, required=True, help="results go in a new vNNN inside it")
    _device_option(drive)
    drive.set_defaults(command=_a2e_predict)

    dub = commands.add_parser(
        "dub",
        parents=[common],
        help="re-animate the actor's lower face in a plate to a dub track",
        description="For an EXR, DPX, TIFF or PNG plate: a sequence of the comped plate and a "
        "premultiplied RGBA face plate, same windows, metadata and frame numbers. For a movie: "
        "a movie with the dub audio. Results go in a new vNNN inside --out; a dub that"
        " stopped half way is taken up again by the same command.",
    )
    dub.add_argument("--actor", type=Path, required=True, help="actor directory (actor build)")
    dub.add_argument("--plate", required=True, help=PLATE_HELP)
    _plate_options(dub)
    dub.add_argument("--audio", type=Path, required=True, help="dub audio (WAV, FLAC, movie...)")
    _target_options(dub)
    _audio_offset_option(dub, "the plate's first frame")
    # Both at once: a dub track that starts after the plate's first frame and runs past its last.
    dub.add_argument("--pad", action="store_true", help="audio missing for frames is silence")
    dub.add_argument("--trim", action="store_true", help="ignore audio beyond the frames")
    dub.add_argument(
        "--lossless",
        action="store_true",
        help="movie plates: lossless video, FFV1 for sources of more than 8 bits (default: H.264"
        " CRF 18; ProRes 422 HQ, or 4444 for 4:4:4, for sources of more than 8 bits)",
    )
    dub.add_argument("--no-grain", action="store_true", help="do not match the plate's grain")
    dub.add_argument(
        "--sharpen",
        type=_finite,
        metavar="AMOUNT",
        help="add back this much of the generated mouth's fine detail (0: none; under 0 takes it"
        " away, -1: all; default: what makes the plate's sampled mouths, drawn, as sharp as they"
        " are)",
    )
    dub.add_argument(
        "--shutter-angle",
        type=_finite,
        metavar="DEG",
        help="smear the generated mouth along its motion over this shutter angle (0: none;"
        " default: the one measured on the actor's footage when the renderer was built)",
    )
    dub.add_argument(
        "--articulation",
        type=_finite,
        default=1.0,
        metavar="GAIN",
        help="open the mouth this many times as far past closed as A2E does (default: 1, as"
        " learnt; from a few seconds of footage A2E opens it less than the actor did)",
    )
    dub.add_argument(
        "--no-plate-detail",
        action="store_true",
        help="do not keep the plate's own fine detail where the generated face matches it",
    )
    dub.add_argument(
        "--no-plate-expression",
        action="store_true",
        help="drive the whole lower face from the audio, without the plate's held expression "
        "or its held mouth in the dub's pauses",
    )
    dub.add_argument(
        "--no-cover-network",
        action="store_true",
        help="find covered mouths by the colour test alone: for a shot whose mouths the actor's"
        " cover network takes for covered when they are not (a mouth opened wider than anywhere"
        " in the actor's footage)",
    )
    dub.add_argument(
        "--drive",
        choices=("audio", "plate"),
        default="audio",
        help="what moves the lower face: the dub's audio (default), or the plate's own, redrawn"
        " through the actor's renderer as a null test of it (the audio is still muxed)",
    )
    dub.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="what the generator computes in: bfloat16 draws within a level of float32's 8-bit"
        " values almost everywhere; auto (default) takes it where it is faster (a CPU with"
        " AVX512-BF16 or AMX-BF16)",
    )
    dub.add_argument("--out", type=Path, required=True, help="results go in a new vNNN inside it")
    _device_option(dub)
    _cache_option(dub)
    dub.set_defaults(command=_dub)

    qc = commands.add_parser(
        "qc",
        parents=[common],
        help="lip-sync figures of a video against its audio",
    )
    qc.add_argument("video", help=PLATE_HELP)
    qc.add_argument("--audio", type=Path, help="audio to check against (default: the video's)")
    _plate_options(qc)
    _cache_option(qc)
    qc.set_defaults(command=_qc)
    return parser


def _finite(text: str) -> float:
    """A number argument: NaN or an infinity would only fail at the end of a run."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: not a finite number")
    return value


def _whole_number(text: str) -> int:
    return _int_from(text, 0, "0 or more")


def _at_least_one(text: str) -> int:
    return _int_from(text, 1, "at least 1")


def _int_from(text: str, least: int, said: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text}: must be {said}")
    return value


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _audio_offset_option(parser: argparse.ArgumentParser, first: str) -> None:
    parser.add_argument(
        "--audio-offset",
        type=_finite,
        default=0.0,
        metavar="S",
        help=f"seconds into the audio that line up with {first}",
    )


def _cache_option(parser: argparse.ArgumentParser) -> None:

    parser.add_argument(
        "--track-cache",
        type=Path,
        default=cache_dir("tracks"),
        help="where tracks are cached and reused (default: %(default)s)",
    )


def _footage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--footage",
        action="append",
        required=True,
        metavar="PLATE",
        help="footage of the actor; repeat for more pieces of the same actor",
    )
    parser.add_argument(
        "--footage-audio",
        action="append",
        metavar="AUDIO",
        help="the footage's sound, from its first frame on (an image sequence has none of its"
        " own; a movie's own is replaced); once per --footage, in the same order",
    )
    parser.add_argument(
        "--footage-target",
        action="append",
        metavar="X,Y",
        help="the actor's face in the footage, a pixel on it on its first frame (default: the"
        " largest face); once per --footage, in the same order",
    )


def _plate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--colourspace", "--colorspace", help="the plate's OCIO colourspace")
    parser.add_argument("--layer", help="EXR part or layer to read (default: the unnamed RGB(A))")
    parser.add_argument("--frames", metavar="A-B", help="inclusive frame range")


def _track(args: argparse.Namespace) -> dict:
    from dubplate.core.track import track_plate
    from dubplate.core.track.preview import write_track_preview

    plate = open_plate(args.plate, colourspace=args.colourspace, layer=args.layer)
    numbers = plate.select(parse_frame_range(args.frames) if args.frames else None)
    hint = _target_hint(args)
    track = track_plate(plate, numbers, hint)
    base = args.out or Path(f"{Path(args.plate).name.split('.')[0]}_track")
    with staged_dir(base) as staged:
        track.save(staged)
        if not args.no_preview:
            write_track_preview(plate, track, staged / "preview.mp4")
        out = publish_version(staged, base)
    log.info("track: wrote %s", out)
    return {
        "frames": len(track.frames),
        "frames_with_face": int(track.found.sum()),
        "frames_without_face": track.frames_without_face,
        "track": str(out / "track.json"),
        "preview": None if args.no_preview else str(out / "preview.mp4"),
        "out": str(out),
        "fps": track.plate["fps"],
        "colourspace": track.plate["colourspace"],
    }


def _tracked(args: argparse.Namespace, source: str, known=None):
    plate = open_plate(source, colourspace=args.colourspace, layer=args.layer)
    return plate, _cached_track(args, plate, known=known)


def _cached_track(args: argparse.Namespace, plate, target=None, known=None):
    from dubplate.core.track.cache import cached_track

    numbers = plate.select(parse_frame_range(args.frames) if args.frames else None)
    return cached_track(plate, numbers, args.track_cache, target=target, known=known)


def _tracked_footage(args: argparse.Namespace) -> list:
    """(plate, track) per --footage, heard with its --footage-audio; every plate and sound is
    opened, and so checked, before the first is tracked. A footage without --footage-target
    after the first is tracked on the face that looks like the actor tracked so far."""
    from dubplate.core.track import TargetHint

    sounds = _once_per_footage(args, "--footage-audio", args.footage_audio)
    points = _once_per_footage(args, "--footage-target", args.footage_target)
    targets = [p and TargetHint(point=_numbers(p, 2, "--footage-target")) for p in points]
    plates = [
        open_plate(source, sound, colourspace=args.colourspace, layer=args.layer)
        for source, sound in zip(args.footage, sounds, strict=True)
    ]
    tracked = []
    known = None
    for plate, target in zip(plates, targets, strict=True):
        track = _cached_track(args, plate, target, None if target else known)
        looks = track.target_looks()
        if looks is not None:
            known = looks if known is None else known.joined(looks)
        tracked.append((plate, track))
    return tracked


def _once_per_footage(args: argparse.Namespace, option: str, given: list | None) -> list:
    given = given or [None] * len(args.footage)
    if len(given) != len(args.footage):
        raise DubplateError(
            f"{option}: given {len(given)} time(s) for {len(args.footage)} --footage;"
            " give one per footage, in the same order"
        )
    return given


def _actor_fit(args: argparse.Namespace) -> dict:
    from dubplate.core.morph.actor import build_actor

    if args.out.exists():
        raise DubplateError(f"{args.out}: already exists; choose another --out")
    footage = _tracked_footage(args)
    actor = build_actor(args.out.name, footage, args.lower_basis, args.upper_basis, args.texture_px)
    actor.save(args.out)
    log.info("actor: wrote %s", args.out)
    return {"actor": str(args.out), **actor.figures}


def _actor_preview(args: argparse.Namespace) -> dict:
    from dubplate.core.morph.actor import Actor
    from dubplate.core.morph.preview import write_actor_preview

    actor = Actor.load(args.actor)
    plate, track = _tracked(args, args.plate, actor.looks)  # the actor's face, as dub picks it
    if args.out.exists():
        raise DubplateError(f"{args.out}: already exists; choose another --out")
    frames = write_actor_preview(actor, plate, track, args.out)
    log.info("actor preview: wrote %s (%d frames)", args.out, frames)
    return {"preview": str(args.out), "frames": frames}


def _device(choice: str) -> str:
    import torch

    from dubplate.core.determinism import fix_cublas_workspace

    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise DubplateError("--device cuda: no CUDA device is available")
    if choice == "cuda":
        fix_cublas_workspace()
    return choice


def _train_a2e(args: argparse.Namespace) -> dict:
    from dubplate.core.a2e.store import train_actor_a2e
    from dubplate.core.a2e.train import TrainSettings

    report = train_actor_a2e(
        args.actor,
        TrainSettings(seed=args.seed),
        _device(args.device),
        audio_cache=cache_dir("audio"),
    )
    return {"actor": str(args.actor), "a2e": str(args.actor / "a2e.json"), **report}


def _actor_build(args: argparse.Namespace) -> dict:
    from dubplate.core.a2e.store import a2e_manifest, train_actor_a2e
    from dubplate.core.a2e.train import TrainSettings
    from dubplate.core.morph.actor import Actor, build_actor
    from dubplate.core.neural.cover import CoverSettings
    from dubplate.core.neural.covered import (
        cover_manifest,
        covered_footage_frames,
        train_actor_cover,
    )
    from dubplate.core.neural.store import renderer_manifest, train_actor_renderer
    from dubplate.core.neural.train import RendererSettings

    device = _device(args.device)
    # Settings are checked before any stage runs: a bad --size fails in a second, not an hour.
    renderer_settings = RendererSettings(size=args.size, seed=args.seed)
    if args.steps is not None:
        renderer_settings = dataclasses.replace(renderer_settings, steps=args.steps)
    out = args.out
    if (out / "actor.json").exists():
        log.info("actor build: %s: reusing the fitted actor", out)
    elif out.exists():
        raise DubplateError(f"{out}: exists but holds no actor (actor.json); choose another --out")
    else:
        build_actor(out.name, _tracked_footage(args)).save(out)
    stages = {"fit": Actor.load(out).figures, "covered": covered_footage_frames(out)}
    if (out / "cover.json").exists():
        cover_manifest(out)
        log.info("actor build: %s: reusing the cover network", out)
    else:
        stages["cover"] = train_actor_cover(out, CoverSettings(seed=args.seed))
    # A stage of an older format is refused here, not reused only to be refused by `dub`.
    if (out / "a2e.json").exists():
        a2e_manifest(out)
        log.info("actor build: %s: reusing the trained A2E", out)
    else:
        stages["a2e"] = train_actor_a2e(
            out, TrainSettings(seed=args.seed), device, audio_cache=cache_dir("audio")
        )
    if (out / "renderer.json").exists():
        renderer_manifest(out)
        log.info("actor build: %s: reusing the trained renderer", out)
    else:
        stages["renderer"] = train_actor_renderer(out, renderer_settings, device)
    return {"actor": str(out), **stages}


def _dub(args: argparse.Namespace) -> dict:
    from dubplate.core.dub import DubCaches, DubSettings, dub
    from dubplate.core.media import open_audio

    plate = open_plate(args.plate, colourspace=args.colourspace, layer=args.layer)
    numbers = plate.select(parse_frame_range(args.frames) if args.frames else None)
    settings = DubSettings(
        audio_offset=args.audio_offset,
        pad=args.pad,
        trim=args.trim,
        lossless=args.lossless,
        grain=not args.no_grain,
        plate_detail=not args.no_plate_detail,
        sharpen=args.sharpen,
        shutter_angle=args.shutter_angle,
        plate_expression=not args.no_plate_expression,
        articulation=args.articulation,
        cover_network=not args.no_cover_network,
        drive=args.drive,
        device=_device(args.device),
        precision=args.precision,
        target=_target_hint(args),
    )
    audio = open_audio(args.audio)
    caches = DubCaches(args.track_cache, cache_dir("audio"), cache_dir("plate_checks"))
    return dub(args.actor, plate, numbers, audio, args.out, settings, caches)


def _a2e_predict(args: argparse.Namespace) -> dict:
    from dubplate.core.a2e.predict import drive, prediction_lip_sync, write_prediction_preview
    from dubplate.core.a2e.store import load_a2e
    from dubplate.core.media import open_audio
    from dubplate.core.media.timing import as_rate
    from dubplate.core.morph.actor import Actor

    device = _device(args.device)
    actor = Actor.load(args.actor)
    network, manifest = load_a2e(args.actor, device)
    fps = as_rate(manifest["network"]["fps"])
    audio = open_audio(args.audio)
    frames = parse_frame_range(args.frames) if args.frames else None
    prediction = drive(
        network, audio, fps, args.audio_offset, frames, args.pad, cache_dir("audio"), device
    )
    figures = prediction_lip_sync(actor.model, prediction, fps)
    with staged_dir(args.out) as staged:
        np.savez_compressed(
            staged / "coefficients.npz",
            frames=prediction.frames,
            times=prediction.times,
            lower=prediction.lower,
        )
        write_prediction_preview(actor, prediction, audio, fps, staged / "preview.mp4")
        out = publish_version(staged, args.out)
    log.info("a2e: wrote %s", out)
    return {
        "frames": len(prediction.frames),
        "coefficients": str(out / "coefficients.npz"),
        "preview": str(out / "preview.mp4"),
        "fps": str(fps),
        **figures.as_dict(),
        # At the frames driven, not in the whole file as the lip-sync figures count it.
        "speech": prediction.speech,
    }


def _qc(args: argparse.Namespace) -> dict:
    from dubplate.core.a2e.sync import sync_offset
    from dubplate.core.audio.features import cached_analysis
    from dubplate.core.media import open_audio
    from dubplate.core.qc.lipsync import track_lip_sync, track_mouth_gap

    plate, track = _tracked(args, args.video)
    audio = open_audio(args.audio) if args.audio else plate.audio()
    if audio is None:
        raise DubplateError(f"{args.video}: no audio; give one with --audio")
    analysis = cached_analysis(audio, cache_dir("audio"))
    frame_seconds = float(1 / plate.info.fps)
    unheard = int(((track.times < 0) | (track.times > analysis.duration)).sum())
    if unheard:
        log.warning(
            "%s: %d of its %d frames lie outside the audio (%.2f s); they count as silence",
            args.video,
            unheard,
            len(track.times),
            analysis.duration,
        )
    figures = track_lip_sync(track, analysis, track.times, frame_seconds)
    offset = sync_offset(track_mouth_gap(track), analysis, track.times, frame_seconds)
    return {
        "video": args.video,
        "audio": audio.source,
        "frames": len(track.frames),
        "frames_without_audio": unheard,
        **figures.as_dict(),
        "sound_offset": offset.as_dict(),
    }


def _target_options(parser: argparse.ArgumentParser) -> None:
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--target",
        metavar="X,Y",
        help="pick the face under this plate pixel (default: in dub, the face that looks like"
        " the actor where there are several; else the largest)",
    )
    pick.add_argument("--target-box", metavar="X0,Y0,X1,Y1", help="pick the face in this box")
    parser.add_argument(
        "--target-frame", type=int, help="frame of --target/--target-box (default: first)"
    )


def _target_hint(args: argparse.Namespace):
    from dubplate.core.track import TargetHint

    if args.target:
        return TargetHint(point=_numbers(args.target, 2, "--target"), frame=args.target_frame)
    if args.target_box:
        return TargetHint(box=_numbers(args.target_box, 4, "--target-box"), frame=args.target_frame)
    if args.target_frame is not None:
        raise DubplateError("--target-frame: needs --target or --target-box")
    return None


def _numbers(text: str, count: int, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise DubplateError(f"{option}: expected {count} comma-separated numbers, got {text!r}")
    return values
