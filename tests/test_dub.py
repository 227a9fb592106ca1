"""Dubbing a shot end to end: a tiny actor built on real footage, an EXR plate dubbed with a
real dub track, and what a VFX artist checks in what comes back."""

import dataclasses
import json
import logging
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from dubplate.core import dub as dub_module
from dubplate.core.a2e.augment import DRY
from dubplate.core.a2e.expression import mouth_gap_px
from dubplate.core.a2e.predict import Driven
from dubplate.core.a2e.store import load_a2e, train_actor_a2e
from dubplate.core.a2e.train import TrainSettings, footage_frames, footage_sequences
from dubplate.core.audio.features import ANALYSIS_VERSION
from dubplate.core.colour import WITHIN_WHITE, Highlights, default_config
from dubplate.core.composite.crop import crop_track
from dubplate.core.composite.matte import EDGE_PX
from dubplate.core.dub import (
    DubCaches,
    DubSettings,
    check_identity,
    comp_patch,
    dub,
    dub_key,
    frame_matte,
)
from dubplate.core.errors import DubplateError
from dubplate.core.media import load_audio, open_audio, open_plate
from dubplate.core.morph.actor import Actor, build_actor
from dubplate.core.morph.fit import IDENTITY_THRESHOLD_PX
from dubplate.core.neural import frames, store
from dubplate.core.neural.covered import (
    covered_footage_frames,
    footage_lip_limit,
    load_cover,
    train_actor_cover,
)
from dubplate.core.neural.finish import AMOUNTS
from dubplate.core.neural.frames import FrameMaker
from dubplate.core.neural.occlusion import LIP_MIN_EXCESS
from dubplate.core.neural.store import (
    INPUTS_DIR,
    extreme_mouths,
    load_renderer,
    train_actor_renderer,
    training_set,
)
from dubplate.core.neural.train import RendererSettings
from dubplate.core.track import track_plate
from dubplate.core.track.landmarks import mouth_opening
from tests.fixtures import audio_start_s, write_exr, write_movie, write_wav
from tests.fixtures import footage_frames as fixture_frames
from tests.test_a2e import opening_model
from tests.test_cli import last_json, one_line_error, run_cli

CLIP = "man_map_5s.mp4"
PRORES_TIMECODE = "00:59:59:23"  # at 25 fps: frame 2 is 01:00:00:00
PLATE_FRAMES = range(30, 36)
BLACK_FRAME = 1003  # the face is lost here: passed through
INSET = 8
ATTRIBUTES = {
    "FramesPerSecond": ("rational", (25, 1)),
    "studio:shot": ("string", "sq010_sh020"),
}


@pytest.fixture(scope="module")
def actor_dir(shared_data, tmp_path_factory):
    movie = open_plate(shared_data / "footage" / CLIP)
    track = track_plate(movie, list(range(30)))
    directory = tmp_path_factory.mktemp("actors") / "man"
    build_actor("man", [(movie, track)], lower_k=8, upper_k=4, texture_px=64).save(directory)
    train_actor_a2e(directory, TrainSettings(voices=1, steps=50, eval_every=25))
    train_actor_renderer(directory, RendererSettings(size=128, steps=2))
    return directory


@pytest.fixture(scope="module")
def cover_actor_dir(actor_dir, tmp_path_factory):
    """The actor with a cover network, learnt as `actor build` learns it (its 30 frames need
    every step to tell a finger from the mouth)."""
    directory = tmp_path_factory.mktemp("covered") / "man"
    shutil.copytree(actor_dir, directory)
    train_actor_cover(directory)
    return directory


@pytest.fixture(scope="module")
def exr_plate(shared_data, tmp_path_factory):
    """Frames 30-35 of the clip as an ACEScg half sequence 1001-1006 with a data window inset
    inside the display window, one frame black."""
    movie = open_plate(shared_data / "footage" / CLIP)
    colour = default_config()
    folder = tmp_path_factory.mktemp("plate")
    for index, number in enumerate(PLATE_FRAMES):
        rgb = movie.read(number).astype(np.float32) / 255
        linear = colour.convert(rgb, colour.working_space, "ACEScg")
        if 1001 + index == BLACK_FRAME:
            linear[:] = 0
        height, width = linear.shape[:2]
        block = linear[INSET:-INSET, INSET:-INSET]
        write_exr(
            folder / f"shot.{1001 + index}.exr",
            block,
            "half",
            (INSET, INSET),
            (0, 0, width, height),
            attributes=ATTRIBUTES,
        )
    return folder / "shot.####.exr"


def test_dub_of_an_exr_plate(shared_data, actor_dir, exr_plate, tmp_path):
    audio = shared_data / "audio" / "en_speech_5s.wav"
    out = tmp_path / "dubs"
    args = ["dub", "--actor", actor_dir, "--plate", exr_plate, "--audio", audio, "--out", out]
    done = run_cli(*args, "--trim", "--shutter-angle", "90", "--json")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_written"] == 6
    manifest = json.loads((out / "v001" / "dub.json").read_text())
    assert manifest["settings"]["shutter_angle"] == 90 and manifest["settings"]["trim"]
    assert result["frames_passed_through"] == [BLACK_FRAME]
    assert result["identity_distance_px"] < 1.8
    assert {"phone_sync", "bilabial_closure", "open_vowel_opening"} <= result["lip_sync"].keys()

    source, comp = open_plate(exr_plate), open_plate(result["output"])
    face = open_plate(result["face_plate"])
    assert comp.info.frames == face.info.frames == source.info.frames
    assert comp.info.fps == source.info.fps and comp.info.colourspace == "ACEScg"
    changed_inside = 0
    for number in source.info.frames:
        before, after = source.read(number), comp.read(number)
        alpha = face.read(number)[..., 3]
        changed = (before.view(np.uint16) != after.view(np.uint16)).any(axis=-1)
        assert not (changed & (alpha == 0)).any(), f"frame {number}: changed outside the matte"
        changed_inside += int(changed.sum())
        # Premultiplied: the face plate over the source is the comp (to half precision).
        layer = face.read(number).astype(np.float32)
        over = layer[..., :3] + (1 - layer[..., 3:]) * before.astype(np.float32)
        inside = alpha > 0
        np.testing.assert_allclose(
            after[inside].astype(np.float32), over[inside], rtol=4e-3, atol=1e-3
        )
        if number == BLACK_FRAME:
            assert not changed.any() and not alpha.any()
    assert changed_inside > 1000  # the mouth was replaced

    spec, face_spec = (
        oiio.ImageSpec(oiio.ImageBuf(str(plate.source_files([1001])[0])).spec())
        for plate in (comp, face)
    )
    assert (spec.x, spec.y) == (INSET, INSET)
    assert (spec.full_width, spec.full_height) == (source.info.width, source.info.height)
    assert spec.get_string_attribute("studio:shot") == "sq010_sh020"
    # The face plate: the comp's windows and header, its own RGBA channels.
    windows = ("x", "y", "width", "height", "full_x", "full_y", "full_width", "full_height")
    assert [getattr(face_spec, w) for w in windows] == [getattr(spec, w) for w in windows]
    assert face_spec.get_string_attribute("studio:shot") == "sq010_sh020"
    assert face_spec.getattribute("FramesPerSecond") == spec.getattribute("FramesPerSecond")
    assert tuple(face_spec.channelnames) == ("R", "G", "B", "A")

    first_files = {p: p.read_bytes() for p in (out / "v001").rglob("*") if p.is_file()}
    again = run_cli(*args, "--trim", "--no-plate-expression", "--json")
    assert again.returncode == 0, again.stderr
    second = last_json(again.stdout)
    assert second["out"].endswith("v002")
    kept = {p: p.read_bytes() for p in (out / "v001").rglob("*") if p.is_file()}
    assert kept == first_files  # v001 as it was, file for file, byte for byte
    # Without the plate's held expression the audio alone drives the mouth: other pixels.
    assert manifest["settings"]["plate_expression"] and not second["settings"]["plate_expression"]
    # Without --shutter-angle, the smear is the one measured when the renderer was built.
    renderer = json.loads((actor_dir / "renderer.json").read_text())
    measured = renderer["shutter"]
    assert second["settings"]["shutter_angle"] == measured["angle"]
    assert set(measured["drawn_fast_to_slow"]) == {"0", "45", "90", "135", "180", "270", "360"}
    # Without --sharpen, the sharpening is measured on the plate's own mouths as they are, so
    # what drives the dubbed one does not move it.
    assert second["settings"]["sharpen"] == manifest["settings"]["sharpen"]
    assert second["settings"]["sharpen"] in AMOUNTS
    audio_only = open_plate(second["output"])
    assert any(
        (comp.read(n).view(np.uint16) != audio_only.read(n).view(np.uint16)).any()
        for n in source.info.frames
        if n != BLACK_FRAME
    )


def test_dub_of_a_10_bit_dpx_plate_keeps_its_bits_outside_the_matte(
    shared_data, actor_dir, tmp_path
):
    movie = open_plate(shared_data / "footage" / CLIP)
    folder = tmp_path / "plate"
    folder.mkdir()
    for index, number in enumerate(PLATE_FRAMES):
        ten_bit = np.rint(movie.read(number).astype(np.float32) * (1023 / 255)).astype(np.uint16)
        spec = oiio.ImageSpec(movie.info.width, movie.info.height, 3, "uint16")
        spec.attribute("oiio:BitsPerSample", 10)
        spec.attribute("dpx:Transfer", "Printing density")
        out = oiio.ImageOutput.create(str(folder / f"shot.{1001 + index}.dpx"))
        assert out.open(str(folder / f"shot.{1001 + index}.dpx"), spec)
        assert out.write_image(ten_bit << 6 | ten_bit >> 4)
        out.close()
    plate = folder / "shot.####.dpx"
    audio = shared_data / "audio" / "en_speech_5s.wav"
    args = ["dub", "--actor", actor_dir, "--plate", plate, "--audio", audio, "--out", tmp_path]
    done = run_cli(*args, "--trim", "--json")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_written"] == 6 and result["frames_passed_through"] == []
    source, comp = open_plate(plate), open_plate(result["output"])
    face = open_plate(result["face_plate"])
    assert comp.info.frames == face.info.frames == source.info.frames
    changed_inside = 0
    for number in source.info.frames:
        changed = (source.read(number) != comp.read(number)).any(axis=-1)
        alpha = face.read(number)[..., 3]
        assert not (changed & (alpha == 0)).any(), f"frame {number}: changed outside the matte"
        changed_inside += int(changed.sum())
    assert changed_inside > 1000  # the mouth was replaced
    spec = oiio.ImageInput.open(str(comp.source_files([1001])[0])).spec()
    assert spec.get_int_attribute("oiio:BitsPerSample") == 10
    assert spec.get_string_attribute("dpx:Transfer") == "Printing density"


@pytest.fixture(scope="module")
def prores_plate(shared_data, tmp_path_factory):
    """Frames 30-35 of the clip as 10-bit ProRes 422 HQ, BT.709 tagged, its own audio muxed,
    with a fine dither so the low bits carry picture."""
    movie = open_plate(shared_data / "footage" / CLIP)
    dither = np.random.default_rng(0).integers(0, 257, (movie.info.height, movie.info.width, 3))
    frames = [(movie.read(n) * 257 + dither).astype(np.uint16) for n in PLATE_FRAMES]
    audio = movie.audio()
    path = tmp_path_factory.mktemp("prores") / "shot.mov"
    write_movie(
        path,
        frames,
        movie.info.fps,
        audio=(np.repeat(audio.samples[:, :1], 2, axis=1), audio.rate),
        encoder="prores_ks",
        pix_fmt="yuv422p10le",
        options={"profile": "3", "color_range": "tv", "colorspace": "bt709"},
        timecode=PRORES_TIMECODE,
    )
    return path


def lower_face_box(plate) -> tuple[int, int, int, int]:
    """Where the lower-face matte can reach in any frame: the mesh's lower half, widened by a
    fifth of the face on every side (the matte's dilation and feather are well inside that)."""
    landmarks = track_plate(plate, list(plate.info.frames)).landmarks[..., :2]
    low, high = np.nanmin(landmarks, axis=(0, 1)), np.nanmax(landmarks, axis=(0, 1))
    margin = 0.2 * float((high - low).max())
    x0, x1 = max(low[0] - margin, 0), high[0] + margin
    y0, y1 = max((low[1] + high[1]) / 2 - margin, 0), high[1] + margin
    return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))


def test_dub_of_a_10_bit_prores_movie_keeps_its_depth(
    shared_data, actor_dir, prores_plate, tmp_path
):
    source = open_plate(prores_plate)
    assert source.deep and not source.full_chroma
    x0, y0, x1, y1 = lower_face_box(source)
    outside = np.ones((source.info.height, source.info.width), bool)
    outside[y0:y1, x0:x1] = False
    audio = shared_data / "audio" / "en_speech_5s.wav"
    args = ["dub", "--actor", actor_dir, "--plate", prores_plate, "--audio", audio, "--trim"]
    # Lossless, the whole shot; review, from frame 2 on (its timecode counted on to it).
    for lossless, first, timecode in ((True, 0, PRORES_TIMECODE), (False, 2, "01:00:00:00")):
        options = ["--lossless"] if lossless else ["--frames", f"{first}-5"]
        done = run_cli(*args, "--out", tmp_path / str(lossless), "--json", *options)
        assert done.returncode == 0, done.stderr
        result = last_json(done.stdout)
        numbers = list(source.info.frames[first:])
        assert result["frames_written"] == len(numbers) and result["frames_passed_through"] == []
        comp = open_plate(result["output"])
        assert comp.deep and len(comp.info.frames) == len(numbers)
        assert comp.info.fps == source.info.fps and comp.audio() is not None
        assert comp.info.timecode == timecode
        # The dub's sound (not the plate's own), from the first frame dubbed on.
        assert audio_start_s(Path(result["output"]), audio) == pytest.approx(first / 25, abs=2e-3)
        changed_inside = 0
        for written, number in zip(comp.info.frames, numbers, strict=True):
            before, after = source.read(number), comp.read(written)
            changed = (before != after).any(axis=-1)
            changed_inside += int((changed & ~outside).sum())
            error = np.abs(after.astype(np.int32) - before)[outside] / 64  # 10-bit steps
            if lossless:
                assert not changed[outside].any(), f"frame {number}: changed outside the face"
            else:  # a second ProRes generation: well under a 10-bit step on average
                assert error.mean() < 0.5, f"frame {number}: {error.mean():.2f} 10-bit steps"
        assert changed_inside > 1000  # the mouth was replaced
        assert result["movie_codec"] == (
            "FFV1 16-bit RGB, lossless" if lossless else "ProRes 422 HQ"
        )
        assert result["output"].endswith(".mkv" if lossless else ".mov")
    assert comp.yuv == source.yuv  # the review movie decodes as the source does


def cover_mouth(rgb: np.ndarray, landmarks: np.ndarray) -> None:
    """A dark ellipse over the tracked mouth, as an object held before it."""
    points = landmarks[:, :2]
    width = np.ptp(points[:, 0])
    mouth = (points[13] + points[14]) / 2
    centre, axes = tuple(int(v) for v in mouth), (int(0.3 * width), int(0.15 * width))
    cv2.ellipse(rgb, centre, axes, 0, 0, 360, (30, 30, 35), -1)


def cover_lips_with_a_finger(rgb: np.ndarray, landmarks: np.ndarray) -> None:
    """The forehead's own pixels in an upright strip across the lips: a finger, too little of
    the lower face and too like its skin for the lower face's test."""
    points = landmarks[:, :2]
    width = np.ptp(points[:, 0])
    mouth = (points[13] + points[14]) / 2
    mask = np.zeros(rgb.shape[:2], np.uint8)
    axes = (int(0.08 * width), int(0.22 * width))
    cv2.ellipse(mask, tuple(int(v) for v in mouth), axes, 10, 0, 360, 255, -1)
    dx, dy = np.round(points[151] - mouth).astype(int)
    forehead = np.roll(rgb, (-dy, -dx), axis=(0, 1))
    rgb[mask > 0] = forehead[mask > 0]


def test_frames_whose_mouth_is_covered_are_passed_through_and_listed(
    shared_data, actor_dir, cover_actor_dir, tmp_path
):
    """A dark object before the mouth in two of eight frames and a finger across the lips in a
    third: those three come back as the source, bit for bit, and are listed; the others are
    dubbed. An actor whose footage says the model misses their lips too variably to tell a
    finger passes the finger's frame as the lower face's test does: dubbed; unless the actor
    has a cover network, which knows their mouth from a finger."""
    movie = open_plate(shared_data / "footage" / CLIP)
    numbers = list(range(30, 38))
    track = track_plate(movie, numbers)
    covered, fingered = {1003, 1004}, 1006
    for index, number in enumerate(numbers):
        rgb = movie.read(number).copy()
        if 1001 + index in covered:
            cover_mouth(rgb, track.landmarks[index])
        if 1001 + index == fingered:
            cover_lips_with_a_finger(rgb, track.landmarks[index])
        write_exr(tmp_path / f"shot.{1001 + index}.exr", rgb.astype(np.float32) / 255, "half")
    plate = tmp_path / "shot.####.exr"
    audio = shared_data / "audio" / "en_speech_5s.wav"
    args = ["--plate", plate, "--audio", audio, "--trim", "--colourspace", "srgb_tx", "--json"]
    done = run_cli("dub", "--actor", actor_dir, *args, "--out", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    passed = sorted(covered | {fingered})
    assert result["frames_occluded"] == result["frames_passed_through"] == passed
    assert f"the mouth is covered in 3 frame(s), passed through: {passed}" in done.stderr
    source, comp = open_plate(plate), open_plate(result["output"])
    for number in source.info.frames:
        before, after = source.read(number).view(np.uint16), comp.read(number).view(np.uint16)
        assert np.array_equal(before, after) == (number in passed), f"frame {number}"

    misfit = tmp_path / "misfit_lips"
    shutil.copytree(actor_dir, misfit)
    saved = json.loads((misfit / "occlusion.json").read_text())
    saved["lip_limits"] = {path: 1.5 for path in saved["lip_limits"]}
    (misfit / "occlusion.json").write_text(json.dumps(saved))
    done = run_cli("dub", "--actor", misfit, *args, "--out", tmp_path / "o2")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_occluded"] == sorted(covered)
    assert result["frames_occluded_by"] == {"colour": sorted(covered), "cover_network": None}
    assert "the actor has no cover network" in done.stderr

    shutil.copytree(cover_actor_dir, misfit, dirs_exist_ok=True)
    (misfit / "occlusion.json").write_text(json.dumps(saved))
    done = run_cli("dub", "--actor", misfit, *args, "--out", tmp_path / "o3")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_occluded"] == passed
    assert result["frames_occluded_by"]["colour"] == sorted(covered)
    assert fingered in result["frames_occluded_by"]["cover_network"]
    done = run_cli("dub", "--actor", misfit, *args, "--no-cover-network", "--out", tmp_path / "o4")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_occluded_by"] == {"colour": sorted(covered), "cover_network": None}
    assert "by their colour alone (--no-cover-network)" in done.stderr


def test_actor_build_learns_nothing_from_footage_frames_whose_mouth_is_covered(
    shared_data, tmp_path
):
    movie = open_plate(shared_data / "footage" / CLIP)
    numbers = list(range(30))
    track = track_plate(movie, numbers)
    covered = [12, 13, 14]
    for number in numbers:
        rgb = movie.read(number).copy()
        if number in covered:
            cover_mouth(rgb, track.landmarks[number])
        cv2.imwrite(str(tmp_path / f"take.{number:04d}.png"), rgb[..., ::-1])
    footage = open_plate(tmp_path / "take.####.png")
    actor = build_actor("man", [(footage, track_plate(footage, numbers))], 8, 4, texture_px=64)
    actor.save(tmp_path / "actor")
    found = covered_footage_frames(tmp_path / "actor")
    assert found == {footage.info.source: covered}
    saved = json.loads((tmp_path / "actor" / "occlusion.json").read_text())
    assert saved["frames_occluded"] == found
    # The lips' limit the take set is the floor of a plate's: a share over it, no more.
    (lip_limit,) = saved["lip_limits"].values()
    assert LIP_MIN_EXCESS <= lip_limit < 1 and footage_lip_limit(tmp_path / "actor") == lip_limit

    data, references, _ = training_set(actor, 128, extreme_mouths(actor, found), covered=found)
    assert len(data.real) == len(data.opening) == len(numbers) - len(covered)
    # Neither reference is a covered frame's crop: both are crops of frames trained on.
    for reference in references.pixels:
        assert (data.real == reference).all(dim=(1, 2, 3)).any()
    # The PNG take has no sound: the A2E's sequence is made with the movie's, frame for frame.
    rng = np.random.default_rng(0)
    footage = footage_frames(movie, actor.fits[0], None, covered)
    (sequence,) = footage_sequences(footage, [DRY], rng)
    assert np.flatnonzero(~sequence.mask).tolist() == covered


def test_a_plate_driven_dub_redraws_the_plates_own_mouth_whatever_the_audio(
    shared_data, actor_dir, exr_plate, tmp_path
):
    """--drive plate is the renderer's null test: the audio is muxed but moves nothing."""
    plate = open_plate(exr_plate)
    numbers = list(plate.info.frames)
    speech = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    silence = load_audio(write_wav(tmp_path / "silence.wav", np.zeros(8000, np.float32), 16000))
    settings = DubSettings(trim=True, drive="plate")
    runs = {
        name: dub(actor_dir, plate, numbers, audio, tmp_path / name, s, DubCaches.under(tmp_path))
        for name, audio, s in (
            ("speech", speech, settings),
            ("silence", silence, settings),
            ("audio", speech, dataclasses.replace(settings, drive="audio")),
        )
    }
    assert runs["speech"]["settings"]["drive"] == "plate"
    comps = {name: open_plate(run["output"]) for name, run in runs.items()}
    same, other = [], []
    for number in numbers:
        speech_pixels = comps["speech"].read(number).view(np.uint16)
        same.append(np.array_equal(speech_pixels, comps["silence"].read(number).view(np.uint16)))
        other.append(np.array_equal(speech_pixels, comps["audio"].read(number).view(np.uint16)))
    assert all(same)
    assert not all(other)  # the audio drives other mouths
    with pytest.raises(DubplateError, match="--drive lips"):
        DubSettings(drive="lips")


def test_the_sharpening_is_measured_on_the_plate_and_a_softer_plate_gets_less(
    shared_data, actor_dir, tmp_path
):
    """The same shot, and the same shot softened by its lens: the drawn mouths are sharpened
    to each plate's own, so the soft one's patch is not sharper than the plate around it."""
    movie = open_plate(shared_data / "footage" / CLIP)
    colour = default_config()
    speech = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    amounts = {}
    for name, sigma in (("sharp", 0.0), ("soft", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        for index, number in enumerate(PLATE_FRAMES):
            rgb = movie.read(number).astype(np.float32) / 255
            if sigma:
                rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
            linear = colour.convert(rgb, colour.working_space, "ACEScg")
            write_exr(folder / f"shot.{1001 + index}.exr", linear)
        plate = open_plate(folder / "shot.####.exr")
        out = tmp_path / f"{name}_dub"
        settings = DubSettings(trim=True)
        result = dub(
            actor_dir, plate, list(plate.info.frames), speech, out, settings, DubCaches.under(out)
        )
        amounts[name] = result["settings"]["sharpen"]
    assert amounts["sharp"] > 0  # the test renderer draws softer than the real mouths
    assert amounts["soft"] < amounts["sharp"]


def test_dub_audio_length_must_match_unless_told(shared_data, actor_dir, exr_plate, tmp_path):
    """Refused before the plate is tracked: nothing goes into the track cache."""
    long = shared_data / "audio" / "en_speech_5s.wav"
    tracks = tmp_path / "tracks"
    args = ["dub", "--actor", actor_dir, "--plate", exr_plate, "--out", tmp_path / "o"]
    args += ["--track-cache", tracks]
    one_line_error(
        run_cli(*args, "--audio", long), "en_speech_5s.wav", "past the last frame", "--trim"
    )
    short = write_wav(tmp_path / "short.wav", np.zeros(1600, np.float32), 16000)
    one_line_error(run_cli(*args, "--audio", short), "short.wav", "--pad")
    one_line_error(
        run_cli(*args, "--audio", short, "--frames", "1004-1006"),
        "short.wav",
        "--audio-offset counts from the plate's first frame, 1001, and frame 1004 plays 0.12 s",
    )
    late = ["--audio", long, "--audio-offset", "-0.2", "--trim"]
    one_line_error(
        run_cli(*args, *late), "en_speech_5s.wav", "0.20 s before the audio", "--audio-offset"
    )
    one_line_error(run_cli(*args, "--audio", long, "--trim", "--shutter-angle", "400"), "400")
    one_line_error(run_cli(*args, "--audio", long, "--trim", "--sharpen", "-1.5"), "--sharpen -1.5")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    assert not tracks.exists() or not any(tracks.iterdir())


def test_a_dub_track_starting_late_and_running_long_takes_pad_and_trim_together(
    shared_data, actor_dir, exr_plate, tmp_path
):
    """A shot with handles: the dub starts 0.2 s after the plate's first frame and runs on past
    its last."""
    audio = shared_data / "audio" / "en_speech_5s.wav"
    args = ["dub", "--actor", actor_dir, "--plate", exr_plate, "--audio", audio]
    done = run_cli(*args, "--out", tmp_path, "--audio-offset", "-0.2", "--pad", "--trim", "--json")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_written"] == 6 and result["audio"]["offset"] == -0.2
    assert result["settings"]["pad"] and result["settings"]["trim"]


def test_another_persons_plate_is_refused_with_the_distance(shared_data, actor_dir, tmp_path):
    actor = Actor.load(actor_dir)
    own = open_plate(shared_data / "footage" / CLIP)
    assert check_identity(actor, track_plate(own, range(60, 85))) < IDENTITY_THRESHOLD_PX
    woman = shared_data / "footage" / "woman_flag_b_8s.mp4"
    audio = shared_data / "audio" / "en_speech_5s.wav"
    out = tmp_path / "dubs"
    args = ["dub", "--actor", actor_dir, "--plate", woman, "--audio", audio, "--out", out]
    done = run_cli(*args, "--frames", "0-24", "--trim")
    one_line_error(
        done,
        "woman_flag_b_8s.mp4: identity distance ",
        "from actor man (threshold 1.15)",
        "largest of 1 face(s)",
        "--target X,Y",
    )
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(DubplateError, match=r"px from actor man \(threshold 1.6\)"):
        check_identity(actor, track_plate(open_plate(woman), range(8)))


def _without_looks(actor_dir: Path, directory: Path) -> Path:
    """A copy of the actor as built before actors kept their looks."""
    shutil.copytree(actor_dir, directory)
    manifest = json.loads((directory / "actor.json").read_text())
    del manifest["arrays"]["looks"]
    (directory / "actor.json").write_text(json.dumps(manifest))
    (directory / "looks.npz").unlink()
    return directory


def _picked_at_x(stderr: str, reason: str) -> int:
    """The x of the face the (first) track picked for `reason`."""
    picked = re.search(rf"target: face at \((\d+), \d+\).*\({re.escape(reason)}", stderr)
    assert picked, stderr
    return int(picked[1])


def test_the_actor_beside_a_larger_face_is_dubbed_by_its_look_or_where_target_picks_it(
    shared_data, actor_dir, tmp_path
):
    """The woman is larger. The actor's looks pick him; an actor without looks tracks her and
    is refused, until --target picks him; each pick's track is cached apart. A second footage
    with both faces is fitted on his face, by the look of the first."""
    man = fixture_frames(CLIP, 25, start=60)
    woman = fixture_frames("woman_flag_b_8s.mp4", 25, start=60)
    canvases = []
    for his, hers in zip(man, woman, strict=True):
        canvas = np.full((600, 1000, 3), 90, np.uint8)
        canvas[100:522, :422] = cv2.resize(his, (422, 422), interpolation=cv2.INTER_AREA)
        canvas[:, 400:] = cv2.resize(hers, (600, 600), interpolation=cv2.INTER_AREA)
        canvases.append(canvas)
    movie = write_movie(tmp_path / "two_faces.mp4", canvases)
    audio = shared_data / "audio" / "en_speech_5s.wav"
    old_actor = _without_looks(actor_dir, tmp_path / "old" / "man")
    plate = ["--plate", movie, "--audio", audio, "--trim", "--track-cache", tmp_path / "tracks"]

    refused = run_cli("dub", "--actor", old_actor, *plate, "--out", tmp_path / "refused")
    one_line_error(refused, "two_faces.mp4: identity distance", "largest of 2", "--target X,Y")

    done = run_cli("dub", "--actor", actor_dir, *plate, "--out", tmp_path / "o", "--json")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_written"] == 25 and result["frames_passed_through"] == []
    assert _picked_at_x(done.stderr, "nearest the actor's look of 2 face(s) meshed") < 422
    assert result["face_tracked"]["reason"].startswith(
        "nearest the actor's look of 2 face(s) meshed"
    )
    # The lip sync is measured on his face in the result too, not on hers.
    assert _picked_at_x(done.stderr, "picked by box") < 422

    hinted = ["--out", tmp_path / "o2", "--target", "200,300", "--json"]
    done = run_cli("dub", "--actor", old_actor, *plate, *hinted)
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames_written"] == 25
    assert result["settings"]["target"] == {"point": [200, 300], "box": None, "frame": None}
    assert len(list((tmp_path / "tracks").iterdir())) == 3
    # An actor fitted on this footage, his face picked: the track is his, read from the cache.
    tracks = ["--track-cache", tmp_path / "tracks"]
    fitted = run_cli(
        "actor", "fit", "--footage", movie, "--footage-target", "200,300", *tracks,
        "--out", tmp_path / "actor", "--json",
    )  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    assert len(list((tmp_path / "tracks").iterdir())) == 3
    # Fitted on his own footage first, then on this one: the second is tracked on him by look.
    alone = write_movie(tmp_path / "man.mp4", fixture_frames(CLIP, 10, start=0))
    fitted = run_cli(
        "actor", "fit", "--footage", alone, "--footage", movie, *tracks,
        "--out", tmp_path / "actor2", "--json",
    )  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    assert _picked_at_x(fitted.stderr, "nearest the actor's look of 2 face(s) meshed") < 422
    assert (tmp_path / "actor2" / "looks.npz").exists()


def test_a_disk_that_fills_half_way_leaves_no_finished_looking_output(
    shared_data, actor_dir, exr_plate, tmp_path, monkeypatch
):
    plate = open_plate(exr_plate)
    writes = []

    def fill_up(number, pixels, path, channels, layer=False, region=None):
        writes.append(path)
        if len(writes) == 3:
            raise DubplateError(f"{path}: cannot write EXR (No space left on device)")

    monkeypatch.setattr(plate, "write_frame", fill_up)
    audio = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    out = tmp_path / "dubs"
    with pytest.raises(DubplateError, match="No space left"):
        dub(
            actor_dir,
            plate,
            plate.info.frames,
            audio,
            out,
            DubSettings(trim=True),
            DubCaches.under(tmp_path),
        )
    assert list(out.iterdir()) == []


def test_a_dub_stopped_half_way_is_taken_up_again_and_finishes_as_if_it_had_not_stopped(
    shared_data, actor_dir, exr_plate, tmp_path, monkeypatch, caplog
):
    """The disk fills while frame 1004's face plate is written, after its comp: what was
    written stays; the same dub again makes only the chunks not written whole (1004's comp
    alone does not make it written), leaves the rest untouched, and publishes the very files a
    run that did not stop writes."""
    monkeypatch.setattr(dub_module, "CHUNK", 2)  # chunks 1001-1002, 1003-1004, 1005-1006
    plate = open_plate(exr_plate)
    audio = load_audio(shared_data / "audio" / "en_speech_5s.wav")

    def dub_into(out: Path) -> dict:
        settings = DubSettings(trim=True)
        return dub(
            actor_dir, plate, plate.info.frames, audio, out, settings, DubCaches.under(tmp_path)
        )

    whole = Path(dub_into(tmp_path / "whole")["out"])
    write_frame, written, disk_full = plate.write_frame, [], True

    def fill_up_at_1004(number, pixels, path, *args, **kwargs):
        if disk_full and number == 1004 and "_face" in path.name:
            raise DubplateError(f"{path}: cannot write EXR (No space left on device)")
        written.append(path.name)
        write_frame(number, pixels, path, *args, **kwargs)

    monkeypatch.setattr(plate, "write_frame", fill_up_at_1004)
    out = tmp_path / "dubs"
    with pytest.raises(DubplateError, match="No space left"):
        dub_into(out)
    (work,) = list(out.iterdir())  # no version: a hidden work directory
    assert work.name.startswith(".partial-")
    kept = {p: p.stat().st_mtime_ns for p in work.rglob("*.exr")}
    assert sorted(p.name for p in kept) == sorted(written)  # 1001-1003, and 1004's comp
    assert "shot.1004.exr" in written and "shot_face.1004.exr" not in written

    written.clear()
    disk_full = False
    with caplog.at_level(logging.INFO, logger="dubplate"):
        result = dub_into(out)
    assert "2 of its 6 frames were made" in caplog.text
    assert result["frames_written"] == 6 and result["frames_resumed"] == 2
    # The chunk written whole is not made again; the one cut short is, frame 1003 with it.
    assert sorted(written) == sorted(
        name for n in range(1003, 1007) for name in (f"shot.{n}.exr", f"shot_face.{n}.exr")
    )
    assert [p.name for p in out.iterdir()] == ["v001"]
    version = Path(result["out"])
    for path, stamp in kept.items():
        if "1001" in path.name or "1002" in path.name:
            assert (version / path.relative_to(work)).stat().st_mtime_ns == stamp
    files = sorted(p.relative_to(whole) for p in whole.rglob("*.exr"))
    assert files == sorted(p.relative_to(version) for p in version.rglob("*.exr"))
    for name in files:
        assert (version / name).read_bytes() == (whole / name).read_bytes(), name


def test_a_movie_dub_stopped_half_way_draws_only_what_it_had_not_kept(
    shared_data, actor_dir, prores_plate, tmp_path, monkeypatch, caplog
):
    """Stopped while comping frame 3: the chunk made whole (0-1) is kept as its changed
    pixels; the same dub again draws only 2-5 and writes the frames a run that did not stop
    writes (the container's own IDs and dates differ run to run), without what it kept."""
    monkeypatch.setattr(dub_module, "CHUNK", 2)
    plate = open_plate(prores_plate)
    audio = load_audio(shared_data / "audio" / "en_speech_5s.wav")

    def dub_into(out: Path) -> dict:
        settings = DubSettings(trim=True, lossless=True)
        return dub(
            actor_dir, plate, plate.info.frames, audio, out, settings, DubCaches.under(tmp_path)
        )

    whole = dub_into(tmp_path / "whole")
    comp_patch, comped, stop = dub_module.comp_patch, [], True

    def stopped_at_3(plate, pixels, crops, row, *args, **kwargs):
        if stop and row == 3:  # every frame has its face: a frame's fit row is its number
            raise KeyboardInterrupt
        comped.append(row)
        return comp_patch(plate, pixels, crops, row, *args, **kwargs)

    monkeypatch.setattr(dub_module, "comp_patch", stopped_at_3)
    out = tmp_path / "dubs"
    with pytest.raises(KeyboardInterrupt):
        dub_into(out)
    (work,) = list(out.iterdir())
    assert work.name.startswith(".partial-")
    (chunk,) = (work / "kept").iterdir()
    assert chunk.name == "00000000-00000001.npz"
    with np.load(chunk) as kept:  # the mouth was drawn in both frames kept
        assert all(kept[f"pixels_{n}"].size > 1000 for n in (0, 1))

    comped.clear()
    stop = False
    with caplog.at_level(logging.INFO, logger="dubplate"):
        result = dub_into(out)
    assert "2 of its 6 frames were made" in caplog.text
    assert comped == [2, 3, 4, 5]
    assert result["frames_written"] == 6 and result["frames_resumed"] == 2
    version = Path(result["out"])
    assert [p.name for p in out.iterdir()] == ["v001"] and not (version / "kept").exists()
    resumed, straight = open_plate(result["output"]), open_plate(whole["output"])
    for number in resumed.info.frames:
        assert np.array_equal(resumed.read(number), straight.read(number)), f"frame {number}"


def test_a_kept_frame_left_empty_by_a_lost_node_is_made_again(exr_plate, tmp_path, monkeypatch):
    monkeypatch.setattr(dub_module, "CHUNK", 2)
    plate = open_plate(exr_plate)
    numbers = plate.info.frames
    for folder in ("comp", "face"):
        (tmp_path / folder).mkdir()
    for source in plate.source_files(numbers):
        shutil.copy(source, tmp_path / "comp" / source.name)
        shutil.copy(source, tmp_path / "face" / source.name.replace("shot.", "shot_face."))
    assert dub_module._resumed_frames(plate, numbers, tmp_path) == set(numbers)
    (tmp_path / "face" / "shot_face.1004.exr").write_bytes(b"")  # renamed, never written out
    assert dub_module._resumed_frames(plate, numbers, tmp_path) == {1001, 1002, 1005, 1006}


def dub_whole_plate(shared_data: Path, actor_dir: Path, plate, folder: Path) -> dict:
    """Every frame of `plate` dubbed with en_speech_5s (trimmed), out and caches in `folder`."""
    speech = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    caches = DubCaches.under(folder / "cache")
    settings = DubSettings(trim=True)
    return dub(actor_dir, plate, plate.info.frames, speech, folder / "out", settings, caches)


def test_the_plate_check_reads_and_compares_each_frame_once(
    shared_data, actor_dir, exr_plate, tmp_path, monkeypatch
):
    """The colour test's sampled frames are tested for covers as they were compared when it
    was learnt, not read and compared again; every other frame once."""
    plate = open_plate(exr_plate)
    compared = []
    actor_difference = FrameMaker.actor_difference

    def counted(maker, rows, real_linear, light):
        compared.extend(int(row) for row in rows)
        return actor_difference(maker, rows, real_linear, light)

    monkeypatch.setattr(FrameMaker, "actor_difference", counted)
    result = dub_whole_plate(shared_data, actor_dir, plate, tmp_path)
    found = len(plate.info.frames) - 1  # the black frame has no face
    assert sorted(compared) == list(range(found))
    assert result["frames_passed_through"] == [BLACK_FRAME]


def test_the_lips_colour_is_measured_on_every_sampled_mouth_the_sharpening_on_the_stiller_half(
    shared_data, actor_dir, exr_plate, tmp_path, monkeypatch
):
    """Drawn lips are off the plate's one way shut and another open: their colour shift is
    taken over every sampled mouth. The sharpening, which a moving mouth's blur would skew, is
    taken over the stiller half."""
    sampled, still, coloured, sharpened = [], [], [], []
    plate_drawing, stiller_half = dub_module._plate_drawing, dub_module.stiller_half
    lip_shift, matched_amount = dub_module.lip_shift, dub_module.matched_amount

    def drawing(models, plate, fit, crops, rows, real_linear, settings):
        sampled.append(len(rows))
        return plate_drawing(models, plate, fit, crops, rows, real_linear, settings)

    def stiller(motion):
        half = stiller_half(motion)
        still.extend(half)
        return half

    def each_lip(drawn, real, lips, matte, inside=None):
        coloured.append(hash(real.tobytes()))
        return lip_shift(drawn, real, lips, matte, inside)

    def amount(drawn, real, holes):
        sharpened.extend(hash(mouth.tobytes()) for mouth in real)
        return matched_amount(drawn, real, holes)

    monkeypatch.setattr(dub_module, "_plate_drawing", drawing)
    monkeypatch.setattr(dub_module, "stiller_half", stiller)
    monkeypatch.setattr(dub_module, "lip_shift", each_lip)
    monkeypatch.setattr(dub_module, "matched_amount", amount)
    dub_whole_plate(shared_data, actor_dir, open_plate(exr_plate), tmp_path)
    (mouths,) = sampled
    assert mouths >= 4
    each_mouth = coloured[::2]  # both lips on each mouth's real crop, in the sample's order
    assert coloured[1::2] == each_mouth
    assert len(set(each_mouth)) == mouths
    assert len(still) == mouths // 2
    assert sharpened == [each_mouth[i] for i in still]


def test_a_shot_dubbed_again_reads_its_plate_check_back(
    shared_data, actor_dir, exr_plate, tmp_path, monkeypatch, caplog
):
    """Covered mouths, light and sharpening depend on the shot and the actor, not on the audio:
    the shot dubbed again, with its own track or another, reads them from the cache and makes
    the very files a fresh check does. Another cover setting checks again; so does another
    shutter (the check smears its sampled mouths over it), and a damaged check."""
    plate = open_plate(exr_plate)
    caches = DubCaches.under(tmp_path / "cache")
    speech = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    french = load_audio(shared_data / "audio" / "fr_speech.wav")
    checks = []
    check_plate = dub_module._check_plate

    def counted(*args):
        checks.append(args)
        return check_plate(*args)

    monkeypatch.setattr(dub_module, "_check_plate", counted)

    def dub_as(name: str, audio, cover_network: bool = True, shutter: float | None = None) -> dict:
        settings = DubSettings(trim=True, cover_network=cover_network, shutter_angle=shutter)
        return dub(actor_dir, plate, plate.info.frames, audio, tmp_path / name, settings, caches)

    first = dub_as("first", speech)
    with caplog.at_level(logging.INFO, logger="dubplate"):
        again, other = dub_as("again", speech), dub_as("french", french)
    assert len(checks) == 1 and "plate check: cached" in caplog.text
    assert again["settings"]["sharpen"] == other["settings"]["sharpen"] > 0
    assert f"sharpened by {again['settings']['sharpen']:g}, as measured" in caplog.text
    assert again["frames_passed_through"] == first["frames_passed_through"]
    files = sorted(p.relative_to(first["out"]) for p in Path(first["out"]).rglob("*.exr"))
    assert files and files == sorted(
        p.relative_to(again["out"]) for p in Path(again["out"]).rglob("*.exr")
    )
    for name in files:
        assert (Path(again["out"]) / name).read_bytes() == (Path(first["out"]) / name).read_bytes()

    (arrays,) = caches.plate_checks.rglob("plate_check.npz")
    arrays.write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level(logging.INFO, logger="dubplate"):
        damaged = dub_as("damaged", speech)
    assert f"{arrays}: missing or damaged" in caplog.text
    assert "the plate check is made again" in caplog.text
    assert len(checks) == 2 and damaged["settings"] == first["settings"]
    dub_as("colour", speech, cover_network=False)
    assert len(checks) == 3
    shutter = dub_as("shutter", speech, shutter=33.0)  # no angle a build measures
    assert len(checks) == 4 and shutter["settings"]["shutter_angle"] == 33.0


def test_the_generator_draws_in_bfloat16_where_it_is_faster_within_a_level_of_float32(
    shared_data, actor_dir, exr_plate, tmp_path, monkeypatch, caplog
):
    """Precision "auto" is bfloat16 on a CPU that computes it in hardware, float32 elsewhere;
    the comped mouths of the two differ by a fraction of a level of the working display
    values, and the matte not at all. Each precision's plate check is its own: the sharpening
    is measured on mouths drawn in it."""
    plate = open_plate(exr_plate)
    caches = DubCaches.under(tmp_path / "cache")
    speech = load_audio(shared_data / "audio" / "en_speech_5s.wav")

    def dub_where(faster: bool) -> dict:
        monkeypatch.setattr(dub_module, "bfloat16_is_faster", lambda device: faster)
        out = tmp_path / str(faster)
        return dub(actor_dir, plate, plate.info.frames, speech, out, DubSettings(trim=True), caches)

    with caplog.at_level(logging.INFO, logger="dubplate"):
        fast, full = dub_where(True), dub_where(False)
    assert "the generator draws in bfloat16 (this CPU computes" in caplog.text
    assert fast["settings"]["precision"] == "bfloat16"
    assert full["settings"]["precision"] == "float32"
    assert len(list(caches.plate_checks.rglob("plate_check.json"))) == 2
    colour = default_config()
    differences = []
    for number in plate.info.frames:
        alpha = open_plate(fast["face_plate"]).read(number)[..., 3]
        assert np.array_equal(alpha, open_plate(full["face_plate"]).read(number)[..., 3])
        comps = [open_plate(r["output"]).read(number).astype(np.float32) for r in (fast, full)]
        levels = [255 * colour.convert(c, "ACEScg", colour.working_space) for c in comps]
        differences.append(np.abs(levels[0] - levels[1])[alpha > 0])
    differences = np.concatenate(differences)
    # Measured: mean 0.02, 99% within 0.1, the most 0.3 of a level.
    assert differences.max() > 0, "the same pixels: bfloat16 was not drawn in"
    assert differences.mean() < 0.1 and np.percentile(differences, 99) < 0.5
    with pytest.raises(DubplateError, match="--precision float16: must be one of auto"):
        DubSettings(precision="float16")


def test_an_articulation_out_of_range_or_of_the_plates_own_mouth_is_refused():
    for articulation in (0.0, -1.0, 3.5, float("nan")):
        with pytest.raises(DubplateError, match="--articulation .*: must be over 0 and at most 3"):
            DubSettings(articulation=articulation)
    assert DubSettings(articulation=3.0).articulation == 3.0
    with pytest.raises(DubplateError, match="--articulation opens the mouth the audio drives"):
        DubSettings(articulation=1.5, drive="plate")


def test_the_dubs_mouth_opens_further_past_closed_by_its_articulation():
    """The A2E drives a closed mouth (2 px) and an open one (10 px); at 1.5 the open one is
    drawn 12 px past closed, the closed one as it was."""
    model = opening_model()
    footage = SimpleNamespace(
        lower=np.linspace(0, 16, 20, dtype=np.float32)[:, None], upper=np.zeros((20, 1))
    )
    models = SimpleNamespace(
        actor=SimpleNamespace(model=model, fits=[footage]),
        a2e=SimpleNamespace(rest=torch.ones(1) * 2),
    )
    driven = Driven(None, np.array([[2.0], [10.0]], np.float32), np.zeros(2), True)
    fit = SimpleNamespace(lower=np.full((2, 1), 5.0, np.float32), spans=lambda: [(0, 2)])
    track = SimpleNamespace(found=np.ones(2, bool))

    def gaps(articulation):
        settings = DubSettings(articulation=articulation, plate_expression=False)
        lower = dub_module._lower_face(
            settings, driven, fit, models, track, None, np.zeros(2, bool)
        )
        return mouth_gap_px(model, lower)

    as_learnt, opened = gaps(1.0), gaps(1.5)
    assert opened[0] == pytest.approx(as_learnt[0])
    assert opened[1] - opened[0] == pytest.approx(1.5 * (as_learnt[1] - as_learnt[0]), rel=1e-3)


def test_only_the_same_dub_takes_up_unfinished_work(shared_data, actor_dir, exr_plate, tmp_path):
    """The work's key changes with anything its frames are made from, and only with that."""
    actor = tmp_path / "man"
    shutil.copytree(actor_dir, actor)
    plate = open_plate(exr_plate)
    audio = open_audio(shared_data / "audio" / "en_speech_5s.wav")
    frames, settings = plate.info.frames, DubSettings(trim=True)
    key = dub_key(actor, plate, frames, audio, settings)
    assert dub_key(actor, open_plate(exr_plate), frames, audio, DubSettings(trim=True)) == key
    others = {
        "settings": dub_key(actor, plate, frames, audio, DubSettings(trim=True, grain=False)),
        "offset": dub_key(actor, plate, frames, audio, DubSettings(trim=True, audio_offset=0.5)),
        "precision": dub_key(
            actor, plate, frames, audio, DubSettings(trim=True, precision="bfloat16")
        ),
        "articulation": dub_key(
            actor, plate, frames, audio, DubSettings(trim=True, articulation=1.5)
        ),
        "frames": dub_key(actor, plate, frames[:-1], audio, settings),
        "audio": dub_key(
            actor, plate, frames, open_audio(shared_data / "audio" / "fr_speech.wav"), settings
        ),
    }
    (actor / "renderer.pt").write_bytes((actor / "renderer.pt").read_bytes() + b"retrained")
    others["actor"] = dub_key(actor, plate, frames, audio, settings)
    assert len({key, *others.values()}) == 1 + len(others), others


def test_the_renderers_training_inputs_held_in_files_are_each_frames_own(actor_dir, tmp_path):
    """`actor build` holds them in files beside the actor while the renderer learns (a minute
    of footage at 1024 px is 28 GiB of them), and removes the files when it is done."""
    assert not (actor_dir / INPUTS_DIR).exists()
    actor = Actor.load(actor_dir)
    hole_lowers = extreme_mouths(actor)
    data, references, highlights = training_set(actor, 128, hole_lowers, work_dir=tmp_path)
    (fit,) = actor.fits
    plate = open_plate(actor.sources[0]["plate"]["path"])
    maker = FrameMaker(
        plate,
        actor.model,
        fit,
        crop_track(actor.model, fit, 128),
        hole_lowers,
        references=references,
        highlights=highlights,
    )
    rows = np.arange(len(fit.frames))
    made = maker.make(rows, [p for _, p in plate.frames(int(n) for n in fit.frames)])
    for name in ("real", "renders", "hole", "references"):
        assert torch.equal(getattr(data, name), getattr(made, name)), name
        held = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
        assert np.array_equal(held, getattr(made, name).numpy()), name
    np.testing.assert_array_equal(data.mouth_motion, made.mouth_motion)


def test_the_crops_are_not_smoothed_across_a_cut(actor_dir):
    """The face jumps 300 px after row 5 (a cut to the actor elsewhere): smoothed within each
    run, the crops before the cut stay where they were; smoothed across, they slide toward it."""
    actor = Actor.load(actor_dir)
    (fit,) = actor.fits
    runs = (np.arange(len(fit.frames)) >= 6).astype(np.int32)
    steady = dataclasses.replace(fit, runs=runs)
    jumped = dataclasses.replace(steady, translation=fit.translation.copy())
    jumped.translation[6:, 0] += 300
    assert jumped.spans() == [(0, 6), (6, len(fit.frames))]
    still = crop_track(actor.model, steady, 128).corner
    cut = crop_track(actor.model, jumped, 128).corner
    np.testing.assert_allclose(cut[:6], still[:6], atol=1e-6)
    np.testing.assert_allclose(cut[6:, 0], still[6:, 0] + 300, atol=1e-3)
    across = crop_track(actor.model, dataclasses.replace(jumped, runs=None), 128).corner
    assert across[5, 0] - still[5, 0] > 50
    # Nor is the jump read as the mouth moving 300 px (a 128-px smear at a film shutter), and a
    # frame's t-1 and t+1 renders stay in its own run.
    plate = open_plate(actor.sources[0]["plate"]["path"])
    cut_crops = crop_track(actor.model, jumped, 128)
    motion = FrameMaker(plate, actor.model, jumped, cut_crops, fit.lower[:1]).mouth_motion
    crops = crop_track(actor.model, steady, 128)
    unmoved = FrameMaker(plate, actor.model, steady, crops, fit.lower[:1]).mouth_motion
    np.testing.assert_allclose(motion, unmoved, atol=1e-3)
    first, stop = jumped.span_of_rows()
    assert (first[5], stop[5], first[6]) == (0, 6, 6)


def test_a_renderer_learns_from_inputs_held_beside_the_actor_and_removes_them(
    actor_dir, tmp_path, monkeypatch
):
    directory = tmp_path / "man"
    shutil.copytree(actor_dir, directory)
    for name in ("renderer.json", "renderer.pt", "renderer.npz"):
        (directory / name).unlink()
    held = []

    def holding(*args, **kwargs):
        made = training_set(*args, **kwargs)
        held.append(sorted(p.name for p in kwargs["work_dir"].iterdir()))
        return made

    monkeypatch.setattr(store, "training_set", holding)
    train_actor_renderer(directory, RendererSettings(size=128, steps=1))
    assert held == [["hole.npy", "real.npy", "references.npy", "renders.npy"]]
    assert (directory / "renderer.json").is_file() and not (directory / INPUTS_DIR).exists()


def test_no_room_for_the_renderers_inputs_is_said_before_any_is_written(
    actor_dir, tmp_path, monkeypatch
):
    def full(descriptor, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "posix_fallocate", full)
    actor = Actor.load(actor_dir)
    with pytest.raises(DubplateError, match=f"{tmp_path}: no room for the renderer's training"):
        training_set(actor, 128, extreme_mouths(actor), work_dir=tmp_path)


def test_the_matte_stays_clear_of_the_crop_edges_on_real_footage(shared_data, actor_dir):
    # Where the crop's edge fade cut into the matte, the patch would end in a visible seam.
    actor = Actor.load(actor_dir)
    fit = actor.fits[0]
    crops = crop_track(actor.model, fit, 128)
    plate = open_plate(shared_data / "footage" / CLIP)
    maker = FrameMaker(plate, actor.model, fit, crops, extreme_mouths(actor))
    band = np.ones((crops.size, crops.size), bool)
    band[2 * EDGE_PX : -2 * EDGE_PX, 2 * EDGE_PX : -2 * EDGE_PX] = False
    mattes = np.stack([frame_matte(points, crops) for points in maker.lower_points])
    assert (mattes == 1).sum(axis=(1, 2)).min() > 0.05 * crops.size**2
    assert not mattes[:, band].any()


def test_each_lip_is_its_own_part_of_the_lips_and_takes_its_shift_once(shared_data, actor_dir):
    """The upper and the lower lip take their own colour shifts: split from the lips as one,
    they do not overlap (a pixel shifted twice would draw a line where the lips meet), leave no
    lip pixel out and take none of the opening; drawn, each lip takes its whole shift (a thin lip
    feathered across its edge kept a fraction of it), feathered outwards, never adding up past 1."""
    actor = Actor.load(actor_dir)
    fit = actor.fits[0]
    crops = crop_track(actor.model, fit, 128)
    plate = open_plate(shared_data / "footage" / CLIP)
    maker = FrameMaker(plate, actor.model, fit, crops, extreme_mouths(actor))
    rows = np.arange(0, len(fit.frames), 4)
    for row in rows:
        upper, lower = maker.each_lip(row)
        assert not (upper & lower).any()
        np.testing.assert_array_equal(upper | lower, maker.lips(row))
        assert np.flatnonzero(upper.any(axis=1)).mean() < np.flatnonzero(lower.any(axis=1)).mean()
    drawn = np.stack([maker.drawn_lips(row) for row in rows])
    assert drawn.shape == (len(rows), 2, crops.size, crops.size)
    each_lip = np.stack([maker.each_lip(row) for row in rows])  # not driven: the same lips
    np.testing.assert_array_equal(drawn[each_lip], 1)
    beside = drawn.transpose(0, 2, 3, 1)[~each_lip.any(axis=1)]  # (pixels, 2) off the lips
    assert 0 < beside.max() < 1
    assert drawn.sum(axis=1).max() <= 1 + 1e-5


def test_mouth_motion_is_how_far_the_driven_mouth_moves_in_the_plate(shared_data, actor_dir):
    actor = Actor.load(actor_dir)
    fit = actor.fits[0]
    crops = crop_track(actor.model, fit, 128)
    plate = open_plate(shared_data / "footage" / CLIP)
    still = FrameMaker(plate, actor.model, fit, crops, extreme_mouths(actor)).mouth_motion
    pan = np.arange(len(fit.frames))[:, None] * np.array([3.0, -1.0, 0.0])  # plate px a frame
    panned = dataclasses.replace(fit, translation=fit.translation + pan)
    moving = FrameMaker(plate, actor.model, panned, crops, extreme_mouths(actor)).mouth_motion
    expected = np.stack([3 * crops.scale, -crops.scale], axis=1)  # in crop pixels
    np.testing.assert_allclose(moving - still, expected, rtol=1e-4)
    # Driven by other words, the drawn mouth moves otherwise, and the plate's own as it did: the
    # plate's still mouths, which set the sharpening, are the same whatever the dub says.
    other_words = fit.lower[::-1].copy()
    dubbed = FrameMaker(plate, actor.model, fit, crops, extreme_mouths(actor), other_words)
    assert np.abs(dubbed.mouth_motion - still).max() > 0.5
    np.testing.assert_array_equal(dubbed.plate_mouth_motion, still)


def test_the_references_land_on_each_frames_mouth_on_real_footage(shared_data, actor_dir):
    """Pulled along the mesh, the open-mouth reference matches every frame's real mouth better
    than as it was cut, and on its own frame it comes back as it was."""
    actor = Actor.load(actor_dir)
    fit = actor.fits[0]
    renderer = load_renderer(actor_dir)
    crops = crop_track(actor.model, fit, renderer.size)
    plate = open_plate(shared_data / "footage" / CLIP)
    maker = FrameMaker(
        plate, actor.model, fit, crops, renderer.hole_lowers, None, renderer.references
    )
    rows = np.arange(len(fit.frames))
    frames = [pixels for _, pixels in plate.frames(fit.frames.tolist())]
    made = maker.make(rows, frames)
    hole = made.hole[:, 0].numpy()
    real = made.real.permute(0, 2, 3, 1).numpy().astype(float)
    # The plate's sharpness is measured on the very crops and holes the generator is given.
    real_crops, holes = maker.real_crops(rows[:4], maker.real_linear(rows[:4], frames[:4]))
    np.testing.assert_array_equal(real_crops, made.real_images()[:4])
    np.testing.assert_array_equal(holes, hole[:4])

    def error(references) -> np.ndarray:
        """Per frame: mean absolute difference from the real crop in the hole, code values."""
        difference = np.abs(references.permute(0, 2, 3, 1).numpy() - real).mean(axis=-1)
        return (difference * hole).sum(axis=(1, 2)) / hole.sum(axis=(1, 2))

    pulled = error(made.references[:, 0])
    as_cut = error(renderer.references.pixels[0].expand(len(rows), -1, -1, -1))
    widest = int(np.argmax(mouth_opening(actor.model.shape(fit.lower, fit.upper))))
    assert pulled[widest] < 1.0
    assert as_cut[widest] < 1.0  # the same crop: only the pull could differ
    others = np.arange(len(rows)) != widest
    assert np.median(pulled[others]) < 0.8 * np.median(as_cut[others])


def test_a_plates_light_solved_on_shrunk_crops_shades_as_the_full_size_solve(
    shared_data, actor_dir, monkeypatch
):
    actor = Actor.load(actor_dir)
    fit = dataclasses.replace(actor.fits[0], light=None)  # a plate's fit, as `dub` makes it
    crops = crop_track(actor.model, fit, 128)
    plate = open_plate(shared_data / "footage" / CLIP)
    rows = np.arange(0, len(fit.frames), 5)
    pixels = [pixels for _, pixels in plate.frames([int(fit.frames[r]) for r in rows])]

    def renders() -> np.ndarray:
        maker = FrameMaker(plate, actor.model, fit, crops, extreme_mouths(actor))
        return maker.make(rows, pixels).renders[:, 1].numpy().astype(float)

    shrunk = renders()
    monkeypatch.setattr(frames, "LIGHT_SHRINK", 1)
    full = renders()
    lit = full > 0
    assert lit.mean() > 0.2
    assert np.abs(shrunk - full)[lit].mean() < 0.5  # code values of 255


def test_actor_build_reuses_every_stage_already_built(shared_data, cover_actor_dir, tmp_path):
    clip = shared_data / "footage" / CLIP
    done = run_cli("actor", "build", "--footage", clip, "--out", cover_actor_dir, "--json")
    assert done.returncode == 0, done.stderr
    for stage in ("fitted actor", "cover network", "trained A2E", "trained renderer"):
        assert f"reusing the {stage}" in done.stderr
    result = last_json(done.stdout)
    assert set(result) == {"actor", "fit", "covered"}
    assert list(result["covered"].values()) == [[]]  # no covered mouth in the footage
    elsewhere = tmp_path / "new"
    one_line_error(
        run_cli("actor", "build", "--footage", clip, "--out", elsewhere, "--size", "100"),
        "--size 100",
    )
    assert not elsewhere.exists()  # refused before any stage ran


def test_actor_build_refuses_to_reuse_a_renderer_of_an_older_format(
    shared_data, actor_dir, tmp_path
):
    stale = tmp_path / "man"
    shutil.copytree(actor_dir, stale)
    manifest = json.loads((stale / "renderer.json").read_text())
    manifest["format_version"] -= 1
    (stale / "renderer.json").write_text(json.dumps(manifest))
    weights = (stale / "renderer.pt").read_bytes()
    clip = shared_data / "footage" / CLIP
    one_line_error(
        run_cli("actor", "build", "--footage", clip, "--out", stale),
        "renderer.json: renderer format",
        "delete renderer.json and run `dubplate actor build` again",
    )
    assert (stale / "renderer.pt").read_bytes() == weights  # nothing overwritten


def test_a_cover_network_is_neither_trained_over_nor_reused_from_an_older_format(
    cover_actor_dir, tmp_path
):
    with pytest.raises(DubplateError, match="already has a cover network"):
        train_actor_cover(cover_actor_dir)
    stale = tmp_path / "man"
    shutil.copytree(cover_actor_dir, stale)
    manifest = json.loads((stale / "cover.json").read_text())
    manifest["format_version"] -= 1
    (stale / "cover.json").write_text(json.dumps(manifest))
    with pytest.raises(DubplateError, match="delete cover.json and run `dubplate actor build`"):
        load_cover(stale)
    (stale / "cover.pt").write_bytes(b"")
    manifest["format_version"] += 1
    (stale / "cover.json").write_text(json.dumps(manifest))
    with pytest.raises(DubplateError, match=r"cover\.pt: missing or damaged.*delete cover\.json"):
        load_cover(stale)


def test_an_a2e_learnt_from_an_older_audio_analysis_says_so(actor_dir, tmp_path, caplog):
    older = tmp_path / "man"
    shutil.copytree(actor_dir, older)
    load_a2e(older)
    assert "audio analysis" not in caplog.text
    manifest = json.loads((older / "a2e.json").read_text())
    del manifest["features"]["analysis_version"]
    (older / "a2e.json").write_text(json.dumps(manifest))
    load_a2e(older)
    assert f"learnt from audio analysis version 2, which is now {ANALYSIS_VERSION}" in caplog.text


def test_weights_of_another_network_are_a_damaged_file(actor_dir, cover_actor_dir, tmp_path):
    """A renderer.pt, a2e.pt or cover.pt of another shape (copied from another actor, or another
    --size), or a renderer.npz cut short, is named as damaged, not raised as PyTorch's or
    NumPy's error on loading it."""
    other = tmp_path / "man"
    shutil.copytree(actor_dir, other)
    for name in ("renderer.pt", "a2e.pt"):
        torch.save({"weight": torch.zeros(3)}, other / name)
    with pytest.raises(DubplateError, match=r"renderer\.pt: missing or damaged"):
        load_renderer(other, "cpu")
    with pytest.raises(DubplateError, match=r"a2e\.pt: missing or damaged"):
        load_a2e(other)
    shutil.copy(actor_dir / "renderer.pt", other / "renderer.pt")
    (other / "renderer.npz").write_bytes(b"PK\x03\x04 cut short")  # a zip a lost node cut short
    with pytest.raises(DubplateError, match=r"renderer\.npz: missing or damaged"):
        load_renderer(other, "cpu")
    shutil.copytree(cover_actor_dir, other, dirs_exist_ok=True)
    torch.save({"weight": torch.zeros(3)}, other / "cover.pt")
    with pytest.raises(DubplateError, match=r"cover\.pt: missing or damaged"):
        load_cover(other)


def test_a_renderer_built_before_the_finish_was_measured_loads_with_a_film_shutter_unsharpened(
    actor_dir, tmp_path
):
    older = tmp_path / "man"
    shutil.copytree(actor_dir, older)
    manifest = json.loads((older / "renderer.json").read_text())
    measured = manifest.pop("shutter")["angle"]
    amount = manifest.pop("sharpen")["amount"]
    (older / "renderer.json").write_text(json.dumps(manifest))
    assert (load_renderer(older).shutter_angle, load_renderer(older).sharpen.amount) == (180.0, 0)
    assert load_renderer(actor_dir).shutter_angle == measured
    assert load_renderer(actor_dir).sharpen.amount == amount


HDR_EXPOSURE = 8.0


def test_a_renderer_learns_footage_over_white_with_headroom_and_its_face_comes_back_as_bright(
    shared_data, tmp_path, caplog
):
    """The clip at 8x its scene-linear values (much of the lower face over 1.0): the renderer's
    view rolls it off under white, and a crop drawn as the real one is comped back as bright as
    the plate, where the view without headroom brings back white."""
    movie = open_plate(shared_data / "footage" / CLIP)
    colour = default_config()
    numbers = list(range(25))
    for number in numbers:
        rgb = movie.read(number).astype(np.float32) / 255
        linear = HDR_EXPOSURE * colour.convert(rgb, colour.working_space, "ACEScg")
        write_exr(tmp_path / f"bright.{number:04d}.exr", linear)
    plate = open_plate(tmp_path / "bright.####.exr")
    actor = build_actor("man", [(plate, track_plate(movie, numbers))], 8, 4, texture_px=64)
    hole_lowers = extreme_mouths(actor)
    with caplog.at_level("INFO", logger="dubplate"):
        data, _, highlights = training_set(actor, 128, hole_lowers)
    assert 1.5 < highlights.peak < 1.1 * HDR_EXPOSURE
    # At a peak of 2.6, one code of the view near white is 5.7% of the peak's brightness.
    assert f"up to {highlights.peak:.2f} in linear light" in caplog.text
    assert "near the peak, a code of the view is 6% of its brightness" in caplog.text

    (fit,) = actor.fits
    crops = crop_track(actor.model, fit, 128)
    row, number = 5, int(fit.frames[5])
    source = next(iter(plate.frames([number])))[1]
    brightness = {}
    for view in (highlights, WITHIN_WHITE):
        maker = FrameMaker(plate, actor.model, fit, crops, hole_lowers, highlights=view)
        inputs = maker.make(np.array([row]), [source])
        real = inputs.real_images()[0]
        white = (real.max(axis=-1) >= 1.0)[inputs.hole[0, 0].numpy()].mean()
        points = inputs.lower_points[0]
        comped = comp_patch(plate, source, crops, row, real, real, points, None, False, view)
        full = comped.face[..., 3] >= 0.99
        x0, y0, x1, y1 = comped.box
        before = source[y0:y1, x0:x1, :3][full].max(axis=-1)
        after = comped.comp[y0:y1, x0:x1, :3][full].max(axis=-1)
        over = before > 1.2
        brightness[view.peak] = (white, over.mean(), float(np.median(after[over] / before[over])))
    rolled, plain = brightness[highlights.peak], brightness[1.0]
    assert rolled[1] > 0.2  # a fifth of the drawn face or more is over 1.2 in the plate
    # Without headroom the view is white over most of the lower face (81% when written); with
    # it, nowhere; and what is drawn there comes back as bright (0.998 against 0.61).
    assert plain[0] > 0.5 and rolled[0] < 0.01
    assert abs(rolled[2] - 1) < 0.02 and plain[2] < 0.8
    assert len(data.real) == len(numbers)


def test_footage_within_white_and_renderers_made_before_headroom_roll_nothing_off(
    actor_dir, tmp_path
):
    manifest = json.loads((actor_dir / "renderer.json").read_text())
    assert manifest["highlights"] == {"peak": 1.0, "knee": WITHIN_WHITE.knee}
    older = tmp_path / "man"
    shutil.copytree(actor_dir, older)
    del manifest["highlights"]
    (older / "renderer.json").write_text(json.dumps(manifest))
    assert load_renderer(older).highlights == WITHIN_WHITE == load_renderer(actor_dir).highlights


def test_dub_draws_in_the_renderers_view_of_highlights(
    shared_data, actor_dir, exr_plate, tmp_path, caplog, monkeypatch
):
    """A renderer whose view rolls highlights off: `dub` makes the crops it draws from in that
    view and comps what it draws back through it (the occlusion test's crops stay in the plain
    view the cover network learnt). A 2-step renderer draws too loosely for the brightness of
    the result to tell a half-wired view from a whole one, so the calls are what is checked."""
    rolled = tmp_path / "man"
    shutil.copytree(actor_dir, rolled)
    manifest = json.loads((rolled / "renderer.json").read_text())
    manifest["highlights"] = {"peak": 8.0, "knee": 0.5}
    (rolled / "renderer.json").write_text(json.dumps(manifest))
    views = {"crops": [], "comps": []}

    def recorded(name, function):
        def call(*args, **kwargs):
            views[name].append(kwargs.get("highlights", WITHIN_WHITE))
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(dub_module, "FrameMaker", recorded("crops", FrameMaker))
    monkeypatch.setattr(dub_module, "comp_patch", recorded("comps", comp_patch))
    audio = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    plate = open_plate(exr_plate)
    settings = DubSettings(trim=True)
    with caplog.at_level("INFO", logger="dubplate"):
        done = dub(
            rolled,
            plate,
            plate.info.frames,
            audio,
            tmp_path / "dub",
            settings,
            DubCaches.under(tmp_path),
        )
    assert "draws brightness over white up to 8.00" in caplog.text
    expected = Highlights(peak=8.0)
    # The occlusion test's, the sharpening measure's, then the drawing's.
    assert views["crops"] == [WITHIN_WHITE, expected, expected]
    drawn = len(plate.info.frames) - len(done["frames_passed_through"])
    assert views["comps"] == [expected] * drawn
