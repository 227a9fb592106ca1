"""Dub a shot: the actor's plate speaking the dub track, only the lower face replaced.

track the plate -> fit the actor's model (upper face from the plate) -> A2E lower face from the
dub audio -> synthetic lower face -> neural renderer -> crop module back into the plate ->
EXR sequences (comp + face plate with alpha) or a movie with the dub audio -> lip-sync QC of
what was written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import torch

import dubplate
from dubplate.core.a2e.expression import (
    EXPRESSION_SIGMA_S,
    MouthOpening,
    articulated,
    bridge_covered,
    mouth_opening_of,
    with_plate_expression,
)
from dubplate.core.a2e.network import A2E
from dubplate.core.a2e.predict import Driven, drive_frames
from dubplate.core.a2e.store import load_a2e
from dubplate.core.audio.features import AudioAnalysis, cached_analysis
from dubplate.core.colour import WITHIN_WHITE, Highlights
from dubplate.core.composite.comp import EMPTY_REGION, Composite, composite_frame
from dubplate.core.composite.crop import CropTrack, crop_track
from dubplate.core.composite.kept import KeptComps
from dubplate.core.composite.match import (
    GrainNoise,
    detail_agreement,
    finished,
    fresh_grain_share,
    lip_shift,
    match_colour,
)
from dubplate.core.composite.matte import lower_face_matte
from dubplate.core.errors import DubplateError
from dubplate.core.files import (
    cached_result,
    file_stamps,
    key_of,
    publish_version,
    resumable_dir,
    unfinished_work,
)
from dubplate.core.manifest import manifest_header, write_manifest
from dubplate.core.media import open_plate
from dubplate.core.media.audio import Sound
from dubplate.core.media.movie import MoviePlate
from dubplate.core.media.movie_writer import (
    VideoCodec,
    muxed_audio_codec,
    muxed_layout,
    output_codec,
    write_movie,
)
from dubplate.core.media.plate import Plate
from dubplate.core.media.timing import timecode_after
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.appearance import LINEAR_SPACE
from dubplate.core.morph.fit import (
    IDENTITY_THRESHOLD_PX,
    ActorFit,
    fit_frames,
    identity_distance_px,
    identity_threshold_px,
)
from dubplate.core.neural.cover import CoverNet
from dubplate.core.neural.covered import footage_lip_limit, load_cover
from dubplate.core.neural.finish import finish_words, matched_amount, stiller_half
from dubplate.core.neural.frames import FaceFrames, FrameMaker
from dubplate.core.neural.occlusion import (
    OcclusionTest,
    ShotSample,
    covered_rows,
    lips_said,
    spread,
)
from dubplate.core.neural.store import NeuralRenderer, load_renderer
from dubplate.core.neural.train import bfloat16_is_faster, draw
from dubplate.core.plate_check import FORMAT_VERSION as PLATE_CHECK_FORMAT
from dubplate.core.plate_check import PlateCheck
from dubplate.core.progress import Progress
from dubplate.core.qc.lipsync import track_lip_sync
from dubplate.core.track import FaceTrack
from dubplate.core.track.cache import cached_track
from dubplate.core.track.mediapipe_face import MEDIAPIPE_VERSION
from dubplate.core.track.tracker import TargetHint, track_plate

log = logging.getLogger(__name__)

MANIFEST_KIND = "dub"
FORMAT_VERSION = 2  # 2: movie_codec replaced movie_crf
# How frames are drawn, in the key of unfinished work: frames kept from a run before a change
# are not mixed with the new ones. 2: crops, motion and held expression within each run; 3: the
# drawn lips take the plate's colour; 4: the finish may soften; 5: each lip its own colour;
# 6: each lip shifted whole, feathered outwards, by its shift measured on every sampled mouth.
DRAWING_VERSION = 6
CHUNK = 8  # frames cut, rendered and generated at once
MAX_SHARPEN = 4.0  # beyond it the sharpening rings: edges get bright and dark halos
MIN_SHARPEN = -1.0  # all the detail finer than the sharpening's scale taken away
# A judgement, not a measure: three times A2E's opening already takes a wide vowel well past
# the widest mouth of most footage, which the renderer never learnt to draw.
MAX_ARTICULATION = 3.0
LEAST_SHARPENING_SAMPLE = 4  # uncovered sampled mouths (the stiller half sets the sharpening)
GRAIN_FIELD_SEED = 0
MATTE_DILATE = 0.03  # of the face's size, past the hull of the lower face
MATTE_FEATHER = 0.0375  # sigma of the matte's soft edge, of the face's size
DRIVES = ("audio", "plate")
PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class DubSettings:
    audio_offset: float = 0.0  # seconds into the audio that line up with the plate's first frame
    pad: bool = False  # audio missing for frames is silence
    trim: bool = False  # audio beyond the frames is ignored
    lossless: bool = False  # movie outputs: lossless instead of visually lossless
    grain: bool = True
    plate_detail: bool = True  # the plate's own fine detail kept where the patch matches it
    # How much of its fine detail the generated mouth gets added back (0: none). None: the
    # amount that makes the plate's sampled still mouths, drawn from their own fitted faces, as
    # sharp as they are.
    sharpen: float | None = None
    # The shutter angle over which the generated mouth is smeared by the way it moves (180: half
    # the frame interval, film's usual; 0: none). None: the one measured when the renderer was
    # built, which leaves out the blur the generator learnt to draw itself.
    shutter_angle: float | None = None
    # The plate's held expression (a smile, a pout) kept under the dub's mouth movements.
    plate_expression: bool = True
    # How far the dub's mouth opens past closed, against how far A2E opens it (1: as learnt;
    # from a few seconds of footage A2E opens it less than the actor did: 0.34-0.85 of the
    # real inner-lip gap's spread on the shared clips' held-out tails).
    articulation: float = 1.0
    # What moves the lower face: the dub's audio, or the plate's own fitted lower face (a null
    # test of the actor's renderer and crop module: the result should look like the plate).
    drive: str = "audio"
    # The actor's cover network tests each mouth beside the colour test (where it has one).
    cover_network: bool = True
    device: str = "cpu"
    # What the generator computes in: bfloat16 draws within a level of float32's 8-bit values
    # almost everywhere. "auto": bfloat16 where it is faster (`bfloat16_is_faster`).
    precision: str = "auto"
    target: TargetHint | None = None  # the face to dub (default: the actor's, see track_plate)

    @property
    def bfloat16(self) -> bool:
        """Whether the generator draws in bfloat16 (once "auto" is resolved)."""
        return self.precision == "bfloat16"

    def __post_init__(self):
        if self.sharpen is not None and not MIN_SHARPEN <= self.sharpen <= MAX_SHARPEN:
            raise DubplateError(
                f"--sharpen {self.sharpen}: must be from {MIN_SHARPEN:g} to {MAX_SHARPEN:g}"
            )
        if self.shutter_angle is not None and not 0 <= self.shutter_angle <= 360:
            raise DubplateError(
                f"--shutter-angle {self.shutter_angle}: must be from 0 to 360 degrees"
            )
        if not 0 < self.articulation <= MAX_ARTICULATION:
            raise DubplateError(
                f"--articulation {self.articulation}: must be over 0 and at most"
                f" {MAX_ARTICULATION:g}"
            )
        if self.drive not in DRIVES:
            raise DubplateError(f"--drive {self.drive}: must be one of {', '.join(DRIVES)}")
        if self.drive == "plate" and self.articulation != 1.0:
            raise DubplateError(
                "--articulation opens the mouth the audio drives; --drive plate redraws the"
                " plate's own"
            )
        if self.precision not in PRECISIONS:
            raise DubplateError(
                f"--precision {self.precision}: must be one of {', '.join(PRECISIONS)}"
            )


@dataclass(frozen=True)
class DubCaches:
    """Where `dub` keeps what it works out of its inputs for the runs after it: the plate's
    track, the audio's analysis, and the plate checked for the actor (`PlateCheck`)."""

    tracks: Path
    audio: Path
    plate_checks: Path

    @classmethod
    def under(cls, root: Path) -> DubCaches:
        return cls(Path(root) / "tracks", Path(root) / "audio", Path(root) / "plate_checks")


@dataclass
class DubModels:
    actor: Actor
    a2e: A2E
    a2e_manifest: dict
    renderer: NeuralRenderer
    cover: CoverNet | None  # None: an actor built before there was one

    @classmethod
    def load(cls, directory: Path, device: str) -> DubModels:
        actor = Actor.load(directory)
        a2e, manifest = load_a2e(directory, device)
        renderer = load_renderer(directory, device)
        return cls(actor, a2e, manifest, renderer, load_cover(directory))


def dub(
    directory: Path,
    plate: Plate,
    numbers: Sequence[int],
    audio: Sound,
    out_base: Path,
    settings: DubSettings,
    caches: DubCaches,
) -> dict:
    """Dub `numbers` of `plate` with `audio`; the result goes into a new version in `out_base`."""
    settings = _with_precision(settings)
    models = DubModels.load(directory, settings.device)
    # The audio first: a dub track too short, too long or unreadable is refused before the
    # plate is tracked.
    analysis = cached_analysis(audio, caches.audio)
    times = np.array([float(plate.time_of(n)) for n in numbers]) + settings.audio_offset
    try:
        driven = _drive(models.a2e, analysis, times, plate, settings)
    except DubplateError as error:
        raise DubplateError(f"{audio.source}: {error}{_offset_hint(plate, numbers)}") from error
    # Unpicked, the face dubbed is the one that looks like the actor, where the plate has several.
    known = None if settings.target else models.actor.looks
    track = cached_track(plate, numbers, caches.tracks, target=settings.target, known=known)
    distance = check_identity(models.actor, track)
    fit = fit_frames(models.actor.model, track.landmarks[track.found], track.frames[track.found])
    fit.runs = track.found_runs()
    passed = track.frames_without_face
    if passed:
        log.warning("dub: no face in %d frame(s), passed through: %s", len(passed), passed)
    began = time.monotonic()
    crops = crop_track(models.actor.model, fit, models.renderer.size)
    least_lip_limit = footage_lip_limit(directory)
    cover = models.cover if settings.cover_network else None
    if cover is not None:
        log.info("dub: a frame whose mouth the actor's cover network finds covered passes too")
    else:
        log.info(
            "dub: covered mouths are found by their colour alone (%s)",
            "--no-cover-network"
            if models.cover is not None
            else "the actor has no cover network: built before there was one",
        )
    # Before the check: it smears the sampled mouths it draws as the comp will.
    settings = _with_shutter_angle(settings, models.renderer)
    check = cached_result(
        caches.plate_checks / _check_key(directory, plate, numbers, track, settings),
        "plate check",
        lambda entry: PlateCheck.load(entry, fit.frames),
        lambda: _check_plate(plate, models, fit, crops, least_lip_limit, cover, settings),
        PlateCheck.save,
    )
    # Each frame's light was solved for the occlusion test: the renders are lit by it.
    fit = dataclasses.replace(fit, light=check.light)
    occluded = [int(n) for n in fit.frames[check.covered]]
    occluded_by = {
        "colour": [int(n) for n in fit.frames[check.by_colour]],
        "cover_network": None if cover is None else [int(n) for n in fit.frames[check.by_cover]],
    }
    _log_occluded(occluded, occluded_by, len(fit.frames))
    lower = _lower_face(settings, driven, fit, models, track, plate, check.covered)
    maker = _frame_maker(plate, models, fit, crops, lower)
    if models.renderer.highlights.rolls:
        log.info(
            "dub: the renderer draws brightness over white up to %.2f in linear light, its"
            " footage's peak; what the plate holds past it stays where the drawn face matches",
            models.renderer.highlights.peak,
        )
    requested = settings
    if settings.sharpen is None:
        settings = dataclasses.replace(settings, sharpen=check.sharpen)
        log.info("dub: %s, as measured on the plate's own mouths", finish_words(check.sharpen))
    else:
        log.info(
            "dub: %s as asked (%g measured on the plate's own mouths)",
            finish_words(settings.sharpen),
            check.sharpen,
        )
    # What a run that stopped had made is kept and taken up again: a sequence's frame files as
    # written, a movie's comped pixels a chunk at a time (the movie is one stream, encoded anew).
    work = resumable_dir(out_base, dub_key(directory, plate, numbers, audio, requested))
    with work as staged:
        movie = plate.frame_suffix is None
        kept = KeptComps(staged, (plate.info.height, plate.info.width)) if movie else None
        resumed = (
            kept.kept_frames(_chunks(numbers))
            if kept is not None
            else _resumed_frames(plate, numbers, staged)
        )
        _log_unfinished(out_base, staged, len(resumed), len(numbers))
        frames = _dubbed_frames(
            plate,
            numbers,
            models,
            fit,
            crops,
            maker,
            settings,
            set(occluded),
            resumed,
            kept,
            check.lip_shift,
        )
        output, face_output = _write(plate, numbers, frames, staged, audio, settings)
        seconds = time.monotonic() - began
        figures = _output_lip_sync(staged / output, numbers, analysis, times, plate, track)
        manifest = {
            **manifest_header(MANIFEST_KIND, FORMAT_VERSION),
            "actor": str(Path(directory).absolute()),
            "plate": plate.info.manifest(),
            "audio": {"path": audio.source, "offset": settings.audio_offset},
            "output": output,
            "face_plate": face_output,
            "frames": [int(numbers[0]), int(numbers[-1])],
            "frames_written": len(numbers),
            "frames_resumed": len(resumed),
            "frames_passed_through": sorted(passed + occluded),
            "frames_occluded": occluded,
            "frames_occluded_by": occluded_by,
            "identity_distance_px": round(distance, 3),
            "face_tracked": {k: track.settings["target"][k] for k in ("reason", "frame", "box")},
            **_movie_codecs(plate, settings, face_output is None, audio),
            "settings": _settings_record(settings),
            "frames_per_second": round((len(numbers) - len(resumed)) / max(seconds, 1e-9), 3),
            "lip_sync": figures,
        }
        write_manifest(staged / "dub.json", MANIFEST_KIND, manifest)
        if kept is not None:
            kept.discard()
        out = publish_version(staged, out_base)
    log.info("dub: wrote %s", out)
    return {
        **manifest,
        "out": str(out),
        "output": str(out / output),
        "face_plate": str(out / face_output) if face_output else None,
    }


def dub_key(
    directory: Path, plate: Plate, numbers: Sequence[int], audio: Sound, settings: DubSettings
) -> str:
    """What a dub's frames are made from: the shot and the actor (`_shot_for_actor`), the
    audio's file and the settings asked for (what is measured from them follows). A run stopped
    half way is taken up again only by the same dub."""
    audio_file = Path(audio.source)
    return key_of(
        {
            **_shot_for_actor(directory, plate, numbers),
            "format": FORMAT_VERSION,
            "drawing": DRAWING_VERSION,
            "audio": {
                "file": file_stamps([audio_file]) if audio_file.is_file() else audio.source,
                "rate": audio.rate,
                "channels": audio.channels,
            },
            "settings": dataclasses.asdict(settings),
        }
    )


def _check_key(
    directory: Path,
    plate: Plate,
    numbers: Sequence[int],
    track: FaceTrack,
    settings: DubSettings,
) -> str:
    """What a `PlateCheck` is made from: the shot and the actor, the track itself (another
    machine may round the tracking differently, and the light is solved on its fit), whether
    the actor's cover network tests the mouths, the device and precision that draw its sampled
    mouths and the shutter that smears them. Not the sound given to the plate, which moves no
    face."""
    shot = _shot_for_actor(directory, plate, numbers)
    landmarks = hashlib.sha256(track.landmarks[track.found].tobytes())
    return key_of(
        {
            **shot,
            "plate": {k: v for k, v in shot["plate"].items() if k != "sound"},
            "track": landmarks.hexdigest(),
            "spans": track.found_spans(),
            "plate_check": PLATE_CHECK_FORMAT,
            "cover_network": settings.cover_network,
            "device": settings.device,
            "precision": settings.precision,
            "shutter_angle": settings.shutter_angle,
        }
    )


def _shot_for_actor(directory: Path, plate: Plate, numbers: Sequence[int]) -> dict:
    """The actor's files, the plate's frames and files, its OCIO config, and this dubplate and
    the libraries that track, draw and read."""
    actor_files = sorted(p for p in Path(directory).iterdir() if p.is_file())
    return {
        "dubplate": dubplate.__version__,
        # PyAV and its FFmpeg decode a movie's frames, which a resumed dub comps again.
        "libraries": [
            torch.__version__,
            MEDIAPIPE_VERSION,
            oiio.VERSION_STRING,
            av.__version__,
            av.library_versions,
        ],
        "ocio": plate.colour.identity,
        "actor": file_stamps(actor_files),
        "plate": plate.info.manifest(),
        "plate_files": file_stamps(plate.source_files(numbers)),
        "frames": [int(n) for n in numbers],
    }


def _chunks(numbers: Sequence[int]) -> list[list[int]]:
    """`numbers` in the runs of `CHUNK` that are cut, rendered and drawn together."""
    return [[int(n) for n in numbers[i : i + CHUNK]] for i in range(0, len(numbers), CHUNK)]


def _resumed_frames(plate: Plate, numbers: Sequence[int], staged: Path) -> set[int]:
    """The frames an earlier run of the same dub left in `staged` that need not be made again:
    those of every chunk whose comp and face plate files are all there and open as images (a
    node that lost its power may leave a file renamed but empty; a frame is drawn with its
    chunk, so a chunk is made whole for its frames to be the very ones a run that did not stop
    makes)."""
    written = set()
    for number, source in zip(numbers, plate.source_files(numbers), strict=True):
        face = staged / "face" / _face_name(source.name)
        if _opens(staged / "comp" / source.name) and _opens(face):
            written.add(int(number))
    return {n for chunk in _chunks(numbers) if written.issuperset(chunk) for n in chunk}


def _opens(path: Path) -> bool:
    if not path.is_file():
        return False
    image = oiio.ImageInput.open(str(path))
    if image is None:
        oiio.geterror()  # cleared, or the next failed open reports this one's error too
        return False
    image.close()
    return True


def _log_unfinished(out_base: Path, staged: Path, resumed: int, frames: int) -> None:
    if resumed:
        log.info(
            "dub: taking up the unfinished dub in %s: %d of its %d frames were made, the rest"
            " follow",
            staged,
            resumed,
            frames,
        )
    for other in unfinished_work(out_base):
        if other != staged:
            log.warning(
                "dub: %s holds an unfinished dub of other inputs or settings; remove it if it"
                " will not be taken up again",
                other,
            )


def plate_sample(maker: FrameMaker, fit: ActorFit) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows of the fit spread over the shot (the occlusion test's samples), and their frames."""
    rows = spread(np.arange(len(fit.frames)))
    return rows, [p for _, p in maker.plate.frames(int(fit.frames[r]) for r in rows)]


def _check_plate(
    plate: Plate,
    models: DubModels,
    fit: ActorFit,
    crops: CropTrack,
    least_lip_limit: float,
    cover: CoverNet | None,
    settings: DubSettings,
) -> PlateCheck:
    """Which frames' mouth is covered, each frame's light, and the sharpening measured on rows
    sampled over the shot (read once, and let go of as soon as cut: 16 4K frames are 800 MB;
    the covered-mouth test takes up their crops and comparisons). Every
    frame is read for the covers before anything is drawn, so what the tracker guessed under a
    hand never reaches the held expression of the frames around it."""
    tester = FrameMaker(plate, models.actor.model, fit, crops, fit.lower[:1])
    # Started before the sample is read: its frames are the first it counts as done.
    progress = Progress("dub: covered mouths", len(fit.frames))
    rows, pixels = plate_sample(tester, fit)
    real_linear = tester.real_linear(rows, pixels)
    del pixels  # only their crops are kept
    sample = ShotSample.of(tester, rows, real_linear)
    every_row = np.arange(len(fit.frames))
    checked = covered_rows(tester, every_row, CHUNK, progress, sample, least_lip_limit, cover)
    _log_occlusion_test(checked.test, len(rows))
    light = checked.light.numpy()
    seen = ~checked.covered[rows]
    lit = dataclasses.replace(fit, light=light)
    sampled = sample.real_linear[seen]
    sharpen, lips = _plate_drawing(models, plate, lit, crops, rows[seen], sampled, settings)
    return PlateCheck(
        fit.frames, checked.covered, checked.by_colour, checked.by_cover, light, sharpen, lips
    )


def _log_occluded(occluded: list[int], by: dict, frames: int) -> None:
    if not occluded:
        return
    found = f"{len(by['colour'])} by colour"
    if by["cover_network"] is not None:
        both = len(set(by["colour"]) & set(by["cover_network"]))
        found += f", {len(by['cover_network'])} by the cover network, {both} by both"
    log.warning(
        "dub: the mouth is covered in %d frame(s), passed through: %s (%s)",
        len(occluded),
        occluded,
        found,
    )
    network = by["cover_network"] or []
    if len(network) > frames / 2:
        log.warning(
            "dub: the cover network finds the mouth covered in %d of %d frames: if it is not,"
            " the plate is unlike the footage the actor was built from (a head turned or"
            " tilted further, another grade or lens); build the actor with footage like it",
            len(network),
            frames,
        )


def _log_occlusion_test(test: OcclusionTest, samples: int) -> None:
    log.info(
        "dub: a frame whose lower face is more than %.0f%% unlike the actor's%s (from %d frames"
        " of the plate) is taken as covered and passed through",
        100 * test.limit,
        lips_said(test.lip_limit),
        samples,
    )


def _frame_maker(
    plate: Plate,
    models: DubModels,
    fit: ActorFit,
    crops: CropTrack,
    lower: np.ndarray | None = None,
) -> FrameMaker:
    """The renderer's inputs for `plate`, its mouth driven by `lower` (the fit's own if None)."""
    renderer = models.renderer
    return FrameMaker(
        plate,
        models.actor.model,
        fit,
        crops,
        renderer.hole_lowers,
        lower,
        renderer.references,
        highlights=renderer.highlights,
    )


def _with_precision(settings: DubSettings) -> DubSettings:
    """`settings` with "auto" precision resolved for its device, before any key is made of
    them: a dub drawn in one precision is never taken up in the other."""
    if settings.precision != "auto":
        cuda = torch.device(settings.device).type == "cuda"
        if settings.precision == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
            raise DubplateError(f"--precision bfloat16: {settings.device} does not compute it")
        log.info("dub: the generator draws in %s, as asked", settings.precision)
        return settings
    faster = bfloat16_is_faster(settings.device)
    precision = "bfloat16" if faster else "float32"
    log.info(
        "dub: the generator draws in %s (%s; --precision float32 or bfloat16 chooses)",
        precision,
        "this CPU computes bfloat16 in hardware"
        if faster
        else f"bfloat16 is not known to be faster on {settings.device}",
    )
    return dataclasses.replace(settings, precision=precision)


def _with_shutter_angle(settings: DubSettings, renderer: NeuralRenderer) -> DubSettings:
    """`settings` with the shutter angle measured on the actor's footage, where it leaves it
    open."""
    if settings.shutter_angle is not None:
        return settings
    log.info(
        "dub: shutter angle %g, measured on the actor's footage when the renderer was built",
        renderer.shutter_angle,
    )
    return dataclasses.replace(settings, shutter_angle=renderer.shutter_angle)


def _plate_drawing(
    models: DubModels,
    plate: Plate,
    fit: ActorFit,
    crops: CropTrack,
    rows: np.ndarray,
    real_linear: np.ndarray,
    settings: DubSettings,
) -> tuple[float, np.ndarray]:
    """The sharpening that makes the drawn mouths of the plate's sampled `rows` as sharp as their
    real ones, of the stiller half by the plate's own mouth (its blur is the plate's whatever
    the dub says); and the shift that gives the drawn lips the plate's colour (`lip_shift`), of
    every sampled mouth: the renderer's lips are off the plate's one way shut and another open
    (shifted by what the stiller, mostly shut, half measured, woman_flag_a's own redrawn upper
    lip came out up to 1.7 L* too light where shut and 3-6 L* too dark where open). Each is drawn
    from its own fitted face, so that drawn and real are one mouth."""
    renderer = models.renderer
    if len(rows) < LEAST_SHARPENING_SAMPLE:
        log.info(
            "dub: %d sampled mouth(s) not covered, too few to measure the sharpening and the lips'"
            " colour on; %s, as measured on the footage when the renderer was built",
            len(rows),
            finish_words(renderer.sharpen.amount),
        )
        return renderer.sharpen.amount, np.zeros((2, 3), np.float32)
    redrawing = _frame_maker(plate, models, fit, crops)
    drawn = []
    for start in range(0, len(rows), CHUNK):
        part = slice(start, start + CHUNK)
        inputs = redrawing.make_from_crops(rows[part], real_linear[part])
        tensors = (inputs.real, inputs.renders, inputs.hole, inputs.references)
        drawn.append(draw(renderer.generator, *tensors, settings.device, settings.bfloat16))
    real, holes = redrawing.real_crops(rows, real_linear)
    drawn = np.concatenate(drawn)
    still = stiller_half(redrawing.plate_mouth_motion[rows])
    amount, ratios = matched_amount(drawn[still], real[still], holes[still])
    log.info(
        "dub: the plate's %d stillest sampled mouths, drawn from their own faces, come out"
        " %.2fx as sharp as they are; %s to match (%.2fx)",
        len(still),
        ratios[0.0],
        finish_words(amount),
        ratios[amount],
    )
    # As the comp draws them: sharpened, then smeared over the shutter by the plate's own mouth
    # motion, which blurred the real lips' colour into the skin and the opening around them.
    streaks = redrawing.plate_mouth_motion[rows] * np.float32(settings.shutter_angle / 360)
    drawn = np.stack(
        [finished(d, amount, s, h) for d, s, h in zip(drawn, streaks, holes, strict=True)]
    )
    return amount, _lip_shift(redrawing, plate, crops, rows, drawn, real)


def _lip_shift(
    redrawing: FrameMaker,
    plate: Plate,
    crops: CropTrack,
    rows: np.ndarray,
    drawn: np.ndarray,
    real: np.ndarray,
) -> np.ndarray:
    """(2, 3): for the upper and the lower lip, the median over the sampled mouths of how far
    the plate's lip is from the drawn one in colour beyond the seam's shift (composite/match.py
    `lip_shift`): zero where none shows."""
    width, height = plate.info.width, plate.info.height
    shifts = [[], []]
    for i, row in enumerate(rows):
        matte = frame_matte(redrawing.lower_points[row], crops)
        inside = crops.inside_frame(row, width, height)
        for lip, where in enumerate(redrawing.each_lip(row)):
            shift = lip_shift(drawn[i], real[i], where, matte, inside)
            if shift is not None:
                shifts[lip].append(shift)
    medians = np.zeros((2, 3), np.float32)
    for lip, (name, measured) in enumerate(zip(("upper", "lower"), shifts, strict=True)):
        if not measured:
            log.info("dub: too little of the plate's %s lip shows to measure its colour", name)
            continue
        medians[lip] = np.median(measured, axis=0)
        log.info(
            "dub: the plate's %s lip is %s (working RGB) from the drawn one beyond the seam's"
            " shift, over %d sampled mouths; added inside the drawn %s lip",
            name,
            [round(float(v), 3) for v in medians[lip]],
            len(measured),
            name,
        )
    return medians


def check_identity(actor: Actor, track: FaceTrack) -> float:
    """Refuse a plate whose face is another person's than the actor's."""
    shapes = track.landmarks[track.found]
    if len(shapes) == 0:
        raise DubplateError(f"{track.plate.get('path')}: the face is found in no frame")
    distance = identity_distance_px(actor.model, shapes)
    threshold = identity_threshold_px(len(shapes))
    log.info("dub: identity distance plate to actor %s: %.2f px", actor.name, distance)
    if threshold > IDENTITY_THRESHOLD_PX:
        log.warning(
            "dub: only %d frame(s) with a face: the identity check refuses only distances over"
            " %.2f px",
            len(shapes),
            threshold,
        )
    if distance > threshold:
        raise DubplateError(
            f"{track.plate.get('path')}: identity distance {distance:.2f} px from actor"
            f" {actor.name} (threshold {threshold}): not the same person as the face tracked"
            f" ({_picked(track)}); where the shot holds the actor beside others, pick the"
            " actor's face with --target X,Y or --target-box"
        )
    return distance


def _picked(track: FaceTrack) -> str:
    target = track.settings["target"]
    x0, y0, x1, y1 = target["box"]
    where = f"({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})"
    return f"at {where} on frame {target['frame']}, {target['reason']}"


def _drive(
    network: A2E, analysis: AudioAnalysis, times: np.ndarray, plate: Plate, settings: DubSettings
) -> Driven:
    """The A2E's lower face at every frame's time in the dub."""
    frame_seconds = float(1 / plate.info.fps)
    tail = analysis.duration - (times[-1] + frame_seconds)
    if tail > frame_seconds and not settings.trim:
        raise DubplateError(
            f"audio runs {tail:.2f} s past the last frame (use --trim to ignore the rest)"
        )
    driven = drive_frames(network, analysis, times, frame_seconds, settings.pad, settings.device)
    if not analysis.has_speech and settings.drive == "audio":
        log.warning(
            "dub: no speech in the audio; the mouth stays closed unless the plate's is held"
        )
    elif not driven.speech and settings.drive == "audio":
        log.warning("dub: no speech heard in the audio at these frames")
    return driven


def _offset_hint(plate: Plate, numbers: Sequence[int]) -> str:
    """Where the frames dubbed start after the plate's first, what `--audio-offset` counts from:
    a range's audio that seems too short is often one that was meant to start with the range."""
    first = plate.info.frames[0]
    if numbers[0] == first:
        return ""
    seconds = float(plate.time_of(numbers[0]) - plate.time_of(first))
    return (
        f"; --audio-offset counts from the plate's first frame, {first}, and frame"
        f" {numbers[0]} plays {seconds:.2f} s after it"
    )


def _lower_face(
    settings: DubSettings,
    driven: Driven,
    fit: ActorFit,
    models: DubModels,
    track: FaceTrack,
    plate: Plate,
    covered: np.ndarray,
) -> np.ndarray:
    """The lower-face coefficients of the track's found frames that the renderer draws: the
    A2E's, opened further by `settings.articulation`, over the plate's held expression. The
    `covered` ones (over the fit's frames) are passed through; their fitted lower face, the
    tracker's guess under the cover, is bridged over before the plate lends the drive anything
    (its held expression and held mouth), and before their neighbours' t-1 and t+1 renders and
    motion smear take it. Each run of frames the face was followed through (`ActorFit.spans`)
    lends only to itself: the expression held in another shot is not this one's."""
    spans = [slice(start, stop) for start, stop in fit.spans()]
    plate_lower = np.concatenate([bridge_covered(fit.lower[s], covered[s]) for s in spans])
    if settings.drive == "plate":
        log.info("dub: --drive plate: the plate's own lower face redrawn; the audio is only muxed")
        return plate_lower
    actor = models.actor
    opening = mouth_opening_of(actor.model, actor.fits)
    lower = driven.lower[track.found]
    if settings.articulation != 1.0:
        rest = models.a2e.rest.cpu().numpy()
        lower = articulated(lower, rest, opening, settings.articulation)
        log.info("dub: the mouth opened %g times as far as A2E opens it", settings.articulation)
    if settings.plate_expression:
        lower = _with_plate_expression(
            lower, plate_lower, actor, opening, driven, track.found, plate, spans
        )
    return lower


def _with_plate_expression(
    lower: np.ndarray,
    plate_lower: np.ndarray,
    actor: Actor,
    opening: MouthOpening,
    driven: Driven,
    found: np.ndarray,
    plate: Plate,
    spans: list[slice],
) -> np.ndarray:
    """The driven `lower` face of the `found` frames (the A2E's, perhaps articulated), with
    the plate's held expression (`plate_lower`, its fitted lower face) under it and its own
    held mouth where the dub pauses, within each of the `spans` of rows; `opening` is how the
    actor's mouth opens."""
    frame_seconds = float(1 / plate.info.fps)
    closing = driven.closing[found]
    speech = driven.features.speech[found]
    parts = [
        with_plate_expression(
            lower[s], plate_lower[s], actor.model, opening, speech[s], closing[s], frame_seconds
        )
        for s in spans
    ]
    log.info(
        "dub: the plate's expression held %.1f s or longer kept under the dub's mouth",
        EXPRESSION_SIGMA_S,
    )
    log.info(
        "dub: the plate's own mouth kept in %d frame(s) where the dub pauses and it is held "
        "still or shut",
        sum(int((weight > 0.5).sum()) for _, weight in parts),
    )
    return np.concatenate([part for part, _ in parts])


def _dubbed_frames(
    plate: Plate,
    numbers: Sequence[int],
    models: DubModels,
    fit: ActorFit,
    crops: CropTrack,
    maker: FrameMaker,
    settings: DubSettings,
    covered: set[int],
    resumed: set[int],
    kept: KeptComps | None = None,
    lips_shift: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray, Composite | None]]:
    """(number, source pixels, composite or None where the face is passed through: not found,
    or its mouth `covered`), in order. The `resumed` frames, made by a run that stopped, do not
    come; for a movie (`kept`: where each chunk it makes is kept) they come as the comps kept,
    with None."""
    renderer = models.renderer
    longest = float(np.hypot(*maker.mouth_motion.T).max(initial=0)) * settings.shutter_angle / 360
    log.info(
        "dub: the mouth is smeared by its motion over a %g-degree shutter (at most %.1f crop px)",
        settings.shutter_angle,
        longest,
    )
    row_of = {int(n): row for row, n in enumerate(fit.frames)}
    # Each frame's lip masks cost two distance transforms: not made for a shift of nothing.
    shifts_lips = lips_shift is not None and bool(lips_shift.any())
    progress = Progress("dub", len(numbers) - len(resumed))
    grain = None
    for chunk in _chunks(numbers):
        drawn_here = [n for n in chunk if n in row_of and n not in covered]
        rows = np.array([row_of[n] for n in drawn_here], int)
        # The shot's grain is measured on its first drawn chunk, made already or not.
        measure_grain = settings.grain and grain is None and len(rows) > 0
        made = resumed.issuperset(chunk)
        if made and not measure_grain and kept is None:
            continue
        pixels = dict(plate.frames(chunk))
        needs_inputs = len(rows) > 0 and (measure_grain or not made)
        inputs = maker.make(rows, [pixels[n] for n in drawn_here]) if needs_inputs else None
        if measure_grain:
            grain = shot_grain(inputs, crops, pixels[chunk[0]].shape[:2])
        if made:
            if kept is not None:
                yield from ((n, comp, None) for n, comp in kept.restored(chunk, pixels))
            continue
        generated = (
            {}
            if inputs is None
            else _generated(inputs, maker, rows, fit, renderer, settings, shifts_lips)
        )
        for number in chunk:
            # Composited one at a time: a 4K frame's comp and face layer are 200 MB together.
            composite = None
            if number in generated:
                noise = None if grain is None else grain.for_frame(number)
                row, drawn, real, points, lips = generated[number]
                composite = comp_patch(
                    plate,
                    pixels[number],
                    crops,
                    row,
                    drawn,
                    real,
                    points,
                    noise,
                    settings.plate_detail,
                    highlights=renderer.highlights,
                    lips=lips,
                    lips_shift=lips_shift,
                )
            if kept is not None:
                kept.hold(number, composite)
            yield number, pixels[number], composite
        if kept is not None:
            kept.keep(chunk)
        progress.advance(len(chunk))


def _generated(
    inputs: FaceFrames,
    maker: FrameMaker,
    rows: np.ndarray,
    fit: ActorFit,
    renderer: NeuralRenderer,
    settings: DubSettings,
    lips: bool,
) -> dict[int, tuple]:
    """Frame number -> (fit row, the finished generated crop, the real crop, the lower-face
    points, the drawn lips if `lips`, else None) for the `rows` of one chunk, whose crops
    `maker` made (`inputs`)."""
    crops_out = draw(
        renderer.generator,
        inputs.real,
        inputs.renders,
        inputs.hole,
        inputs.references,
        settings.device,
        settings.bfloat16,
    )
    reals = inputs.real_images()
    streaks = inputs.mouth_motion * (settings.shutter_angle / 360)
    generated = {}
    for index, row in enumerate(rows):
        drawn = inputs.hole[index, 0].numpy()
        generated[int(fit.frames[row])] = (
            row,
            finished(crops_out[index], settings.sharpen, streaks[index], drawn),
            reals[index],
            inputs.lower_points[index],
            maker.drawn_lips(row) if lips else None,
        )
    return generated


def frame_matte(points: np.ndarray, crops: CropTrack) -> np.ndarray:
    """The matte of one frame in crop pixels, from its lower-face hull points."""
    face = crops.face_px
    return lower_face_matte(points, crops.size, MATTE_DILATE * face, MATTE_FEATHER * face)


def comp_patch(
    plate: Plate,
    pixels: np.ndarray,
    crops: CropTrack,
    row: int,
    generated: np.ndarray,
    real: np.ndarray,
    points: np.ndarray,
    grain: GrainNoise | None,
    plate_detail: bool = True,
    highlights: Highlights = WITHIN_WHITE,
    lips: np.ndarray | None = None,
    lips_shift: np.ndarray | None = None,
) -> Composite:
    """One frame's generated crop (working values, in the renderer's view of `highlights`)
    matched to its real crop and comped into the frame's `pixels`; with `grain`, the plate's
    grain is added, and with `plate_detail`, where the generated crop matches the real one the
    plate's own fine detail stays, with any of its values the view cannot hold (highlights over
    its white: an HDR or camera-log plate's). With `lips` ((2, N, N) weights of the upper and
    the lower lip) each drawn lip is moved by its row of `lips_shift` (2, 3) beyond the seam's
    match (the plate's lips, `PlateCheck.lip_shift`)."""
    matte = frame_matte(points, crops)
    inside = crops.inside_frame(row, pixels.shape[1], pixels.shape[0])
    patch = match_colour(generated, real, matte, inside)
    if lips is not None and lips_shift is not None:
        patch = patch + np.einsum("lyx,lc->yxc", lips, lips_shift)
    agreement = detail_agreement(patch, real) if plate_detail else None
    colour, space = plate.colour, plate.info.colourspace
    if highlights.rolls:
        linear = colour.resolve(LINEAR_SPACE)
        patch = highlights.unroll(colour.convert(patch, colour.working_space, linear))
        patch = colour.convert(patch, linear, space)
    else:
        patch = colour.convert(patch, colour.working_space, space)
    return composite_frame(
        pixels,
        patch,
        matte,
        crops.matrix(row),
        grain,
        agreement,
        lambda values: colour.through_working(values, space, highlights.peak),
    )


def shot_grain(inputs: FaceFrames, crops: CropTrack, frame_shape: tuple[int, int]) -> GrainNoise:
    """The shot's grain, measured on consecutive real crops where the face holds still relative
    to the crop: around the mouth, inside the matte, outside the hole."""
    real = inputs.real_images()
    mattes = np.stack([frame_matte(points, crops) for points in inputs.lower_points])
    weights = (mattes > 0) & ~inputs.hole[:, 0].numpy()
    share = fresh_grain_share(real, weights) if len(real) > 1 else 1.0
    log.info(
        "dub: %.0f%% of the plate's grain is new each frame (from %d face crops); the patch's"
        " grain changes as much",
        100 * share,
        len(real),
    )
    field = np.random.default_rng(GRAIN_FIELD_SEED).standard_normal(
        (*frame_shape, 3), dtype=np.float32
    )
    return GrainNoise(share, field)


def _write(
    plate: Plate,
    numbers: Sequence[int],
    frames: Iterator[tuple[int, np.ndarray, Composite | None]],
    staged: Path,
    audio: Sound,
    settings: DubSettings,
) -> tuple[str, str | None]:
    """Write the comp (and the face plate for frame files); return their paths relative to
    `staged`."""
    if plate.frame_suffix is None:
        codec = _movie_codec(plate, settings)
        name = f"{Path(plate.info.source).stem}_dub{codec.suffix}"
        start = settings.audio_offset + float(plate.time_of(numbers[0]))
        span = float(plate.time_of(numbers[-1]) - plate.time_of(numbers[0]) + 1 / plate.info.fps)
        # Movie frames are RGB code values of the movie's own encoding, written back in it.
        comps = (c.comp[..., :3] if c is not None else p[..., :3] for _, p, c in frames)
        write_movie(
            staged / name,
            comps,
            plate.info.fps,
            audio=audio.part(start, span),
            codec=codec,
            yuv=plate.yuv,
            pixel_aspect=plate.pixel_aspect,
            timecode=_movie_timecode(plate, numbers[0]),
            times=[plate.time_of(n) - plate.time_of(numbers[0]) for n in numbers]
            if plate.info.frame_times
            else None,
        )
        return name, None
    (staged / "comp").mkdir(exist_ok=True)
    (staged / "face").mkdir(exist_ok=True)
    # A frame is written in the background while the next is made: the EXR encoder leaves a core
    # idle part of the time. At most one write is in flight, so at most two frames are held.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dub-write") as writer:
        pending = None
        for number, pixels, composite in frames:
            if pending is not None:
                pending.result()
            pending = writer.submit(_write_frame_files, plate, number, pixels, composite, staged)
        if pending is not None:
            pending.result()
    pattern = Path(plate.info.source).name
    return f"comp/{pattern}", f"face/{_face_name(pattern)}"


def _write_frame_files(
    plate: Plate, number: int, pixels: np.ndarray, composite: Composite | None, staged: Path
) -> None:
    """The comp and the face plate of one frame; the face plate in the comp's sample type."""
    source = plate.source_files([number])[0]
    channels = ("R", "G", "B", "A")[: len(plate.info.channels)]
    dtype = np.float16 if pixels.dtype == np.float16 else np.float32
    if composite is None:
        comp, face = pixels, np.zeros((*pixels.shape[:2], 4), dtype)
        changed = face_box = EMPTY_REGION
    else:
        comp, face = composite.comp, composite.face_layer(dtype)
        changed, face_box = composite.region, composite.box
    plate.write_frame(number, comp, staged / "comp" / source.name, channels, region=changed)
    face_path = staged / "face" / _face_name(source.name)
    plate.write_frame(number, face, face_path, ("R", "G", "B", "A"), layer=True, region=face_box)


def _face_name(name: str) -> str:
    stem, dot, rest = name.partition(".")
    return f"{stem}_face{dot}{rest}"


def _settings_record(settings: DubSettings) -> dict:
    """How the frames were made, for the manifest (the audio offset is under `audio`)."""
    record = dataclasses.asdict(settings)
    del record["audio_offset"]
    record["target"] = settings.target and settings.target.manifest()
    return record


def _movie_timecode(plate: MoviePlate, first: int) -> str | None:
    """The timecode of the dub's first frame: the source's, counted on to it."""
    if plate.info.timecode is None:
        return None
    where = f"{plate.info.source}: timecode"
    return timecode_after(plate.info.timecode, first, plate.info.fps, where)


def _movie_codecs(plate: Plate, settings: DubSettings, movie: bool, audio: Sound) -> dict:
    if not movie:
        return {"movie_codec": None, "movie_audio_codec": None, "movie_audio_layout": None}
    codec = _movie_codec(plate, settings)
    sound = muxed_audio_codec(codec, audio.channels, audio.layout)
    return {
        "movie_codec": codec.label,
        "movie_audio_codec": sound.encoder,
        "movie_audio_layout": muxed_layout(sound, audio.channels, audio.layout),
    }


def _movie_codec(plate: MoviePlate, settings: DubSettings) -> VideoCodec:
    """A movie plate's dub keeps its bit depth (and, for deeper sources, full chroma)."""
    return output_codec(plate.deep, settings.lossless, plate.full_chroma)


def _output_lip_sync(
    output: Path,
    numbers: Sequence[int],
    analysis: AudioAnalysis,
    times: np.ndarray,
    plate: Plate,
    dubbed: FaceTrack,
) -> dict:
    """`dubplate qc` figures of what was written, tracked afresh: the face that was dubbed,
    picked by its box where the plate's track picked it."""
    target = dubbed.settings["target"]
    with open_plate(output, colourspace=plate.info.colourspace) as written:
        written_numbers = written.info.frames if plate.frame_suffix is None else numbers
        anchor = written_numbers[list(numbers).index(target["frame"])]
        hint = TargetHint(box=tuple(target["box"]), frame=anchor)
        try:
            track = track_plate(written, written_numbers, hint)
        except DubplateError as error:
            log.warning("dub: %s; the result's lip sync is measured on its largest face", error)
            track = track_plate(written, written_numbers)
    figures = track_lip_sync(track, analysis, times, float(1 / plate.info.fps))
    log.info("dub: lip sync of the result: %s", figures.as_dict())
    return figures.as_dict()
