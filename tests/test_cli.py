"""The `dubplate track` command as a user runs it: outputs, versions, JSON and one-line errors."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from dubplate.core.a2e.store import footage_audio_offsets
from dubplate.core.a2e.sync import MAX_OFFSET_S
from dubplate.core.a2e.train import DEFAULT_SETTINGS as DEFAULT_A2E_SETTINGS
from dubplate.core.manifest import read_manifest
from dubplate.core.media import load_audio
from dubplate.plugin.cli import main
from tests.fixtures import (
    audio_start_s,
    footage_frames,
    numbered_frames,
    write_exr,
    write_movie,
    write_wav,
)


def run_cli(*args, cwd=None):
    """The installed command in a child process, as a pipeline would run it (in `cwd`)."""
    return subprocess.run(
        [sys.executable, "-m", "dubplate", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_track_writes_a_track_and_preview_in_a_new_version(shared_data, tmp_path):
    clip = shared_data / "footage" / "woman_flag_b_8s.mp4"
    out = tmp_path / "out"
    done = run_cli("track", clip, "--frames", "10-17", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames"] == 8 and result["frames_with_face"] == 8
    assert result["track"] == str(out / "v001" / "track.json")
    manifest = read_manifest(out / "v001" / "track.json", "face_track")
    assert (manifest["frames"]["first"], manifest["frames"]["last"]) == (10, 17)
    assert manifest["plate"]["fps"] == "25/1" and len(manifest["confidence"]) == 8
    with av.open(result["preview"]) as preview:
        assert sum(1 for _ in preview.decode(video=0)) == 8
        assert preview.streams.audio, "the preview carries the plate's audio"
    # ...from frame 10's time, in sync with the frames it shows.
    assert audio_start_s(result["preview"], clip) == pytest.approx(10 / 25, abs=0.02)
    assert "track: 8/8 frames" in done.stderr  # progress is shown

    again = last_json(run_cli("track", clip, "--frames", "10-11", "--out", out, "--json").stdout)
    assert again["out"] == str(out / "v002")
    assert read_manifest(out / "v001" / "track.json", "face_track")["frames"]["count"] == 8


def test_track_on_an_exr_sequence(shared_data, tmp_path):
    """A face in a linear EXR sequence with a data window inside the display window."""
    frames = footage_frames("man_map_5s.mp4", 3)
    srgb = np.stack(frames).astype(np.float32) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    for i, pixels in enumerate(linear):
        write_exr(
            tmp_path / f"plate.{1001 + i:04d}.exr",
            pixels[8:-8, 8:-8],
            data_origin=(8, 8),
            display=(0, 0, 844, 844),
            attributes={"FramesPerSecond": ("rational", (24000, 1001))},
        )
    out = tmp_path / "out"
    pattern = tmp_path / "plate.%04d.exr"
    done = run_cli("track", pattern, "--colourspace", "lin_rec709", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert (result["frames"], result["frames_with_face"]) == (3, 3)
    assert result["fps"] == "24000/1001" and result["colourspace"] == "Linear Rec.709 (sRGB)"


def one_line_error(done, *names):
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("dubplate: error: ")
    assert "Traceback" not in done.stderr
    for name in names:
        assert name in lines[-1]


def test_bad_inputs_end_in_one_line_errors(tmp_path):
    write_movie(tmp_path / "blank.mp4", numbered_frames(3))
    one_line_error(
        run_cli("track", tmp_path / "blank.mp4", "--out", tmp_path), "blank.mp4", "no face"
    )
    one_line_error(run_cli("track", tmp_path / "gone.mp4", cwd=tmp_path), "gone.mp4", "not found")
    one_line_error(
        run_cli("track", tmp_path / "blank.mp4", "--colourspace", "rec709ish", cwd=tmp_path),
        "rec709ish",
    )
    one_line_error(
        run_cli("track", tmp_path / "blank.mp4", "--frames", "5-9", cwd=tmp_path), "--frames 5-9"
    )
    for n in (1, 2, 4):
        write_exr(tmp_path / f"gap.{n:04d}.exr", np.zeros((4, 4, 3), np.float32))
    one_line_error(
        run_cli("track", tmp_path / "gap.####.exr", cwd=tmp_path), "gap.####.exr", "missing: 3"
    )
    # Nothing published, in --out or in the working directory where --out defaults to NAME_track.
    inputs = {"blank.mp4", "gap.0001.exr", "gap.0002.exr", "gap.0004.exr"}
    assert {p.name for p in tmp_path.iterdir()} == inputs


def test_footage_sounds_are_checked_before_anything_is_tracked(tmp_path):
    for n in (1, 2):
        write_exr(tmp_path / f"take.{n}.exr", np.zeros((4, 4, 3), np.float32))
    take = tmp_path / "take.#.exr"
    wav = write_wav(tmp_path / "take.wav", np.zeros(1600, np.float32), 16000)
    for command in ("fit", "build"):
        one_line_error(
            run_cli(
                "actor",
                command,
                "--footage",
                take,
                "--footage",
                take,
                "--footage-audio",
                wav,
                "--out",
                tmp_path / "actor",
            ),
            "--footage-audio: given 1 time(s) for 2 --footage",
        )
        one_line_error(
            run_cli(
                "actor", command, "--footage", take, "--footage-target", "1,2",
                "--footage-target", "3,4", "--out", tmp_path / "actor",
            ),
            "--footage-target: given 2 time(s) for 1 --footage",
        )  # fmt: skip
    one_line_error(
        run_cli(
            "actor",
            "fit",
            "--footage",
            take,
            "--footage-audio",
            tmp_path / "gone.wav",
            "--out",
            tmp_path / "actor",
        ),
        "gone.wav",
        "not found",
    )
    # Refused before tracking (blank frames would fail on no face) and before --out is made.
    assert {p.name for p in tmp_path.iterdir()} == {"take.1.exr", "take.2.exr", "take.wav"}


def test_debug_shows_the_traceback(tmp_path):
    done = run_cli("track", tmp_path / "gone.mp4", "--debug")
    assert done.returncode == 2 and "Traceback" in done.stderr


def damaged(shared):
    return sorted((shared / "exr" / "Damaged").glob("*"))


def test_every_damaged_exr_is_a_clear_error(shared_data, tmp_path, capsys):
    assert len(damaged(shared_data)) > 50, "the shared Damaged/ files"
    for path in damaged(shared_data):
        code = main(["track", str(path), "--out", str(tmp_path), "--no-preview"])
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert code == 2, path.name
        assert error.startswith("dubplate: error: ") and path.name in error, error
    assert not any(tmp_path.iterdir()), "no output for a damaged plate"


@pytest.mark.parametrize("option", [["--target", "1,2,3"], ["--target-frame", "3"]])
def test_bad_target_options(tmp_path, option, capsys):
    write_movie(tmp_path / "m.mp4", numbered_frames(2))
    assert main(["track", str(tmp_path / "m.mp4"), *option]) == 2
    assert "--target" in capsys.readouterr().err


def test_actor_fit_and_preview(shared_data, tmp_path):
    clip = shared_data / "footage" / "woman_flag_b_8s.mp4"
    cache = ["--track-cache", tmp_path / "cache"]
    actor = tmp_path / "actors" / "woman"
    done = run_cli(
        "actor",
        "fit",
        "--footage",
        clip,
        "--frames",
        "0-29",
        "--out",
        actor,
        "--lower-basis",
        "8",
        "--upper-basis",
        "4",
        "--texture-px",
        "64",
        *cache,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["frames"] == 30
    assert result["reprojection_px"] < 1.0 and result["mouth_reprojection_px"] < 0.8
    assert result["photometric_error"] < result["photometric_error_flat"]
    assert read_manifest(actor / "actor.json", "actor")["model"]["lower_basis"] == 8

    again = run_cli("actor", "fit", "--footage", clip, "--frames", "0-29", "--out", actor, *cache)
    one_line_error(again, "already exists")

    preview = tmp_path / "preview.mp4"
    done = run_cli(
        "actor", "preview", actor, clip, "--frames", "0-29", "--out", preview, *cache, "--json"
    )
    assert done.returncode == 0, done.stderr
    assert "track: cached" in done.stderr  # the fit's track is reused
    with av.open(str(preview)) as movie:
        stream = movie.streams.video[0]
        frame = next(movie.decode(stream))
        assert frame.width == 3 * frame.height  # plate | render | blend
        assert sum(1 for _ in movie.decode(stream)) == 29

    done = run_cli("actor", "train-a2e", actor, "--json")
    assert done.returncode == 0, done.stderr
    trained = last_json(done.stdout)
    runs = DEFAULT_A2E_SETTINGS.runs
    assert trained["voices"] == 1 + runs * 8 and trained["validation_frames"] > 0
    assert [run["seed"] for run in trained["runs"]] == list(range(runs))
    manifest = read_manifest(actor / "a2e.json", "a2e")
    assert manifest["network"]["fps"] == "25/1"
    # The sound offset it learnt with is recorded, and read back for the footage's own audio.
    (sync,) = trained["footage_sync"]
    assert manifest["training"]["footage_sync"] == [sync]
    assert footage_audio_offsets(actor) == {str(clip): sync["offset_s"]}
    assert abs(sync["best_offset_s"]) <= MAX_OFFSET_S
    assert sync["offset_s"] in (0.0, sync["best_offset_s"])
    # An A2E trained before the offset was measured took the sound as recorded.
    saved = (actor / "a2e.json").read_text()
    older = json.loads(saved)
    del older["training"]["footage_sync"]
    (actor / "a2e.json").write_text(json.dumps(older))
    assert footage_audio_offsets(actor) == {str(clip): 0.0}
    (actor / "a2e.json").write_text(saved)
    one_line_error(run_cli("actor", "train-a2e", actor), "already has an A2E network")

    dub = shared_data / "audio" / "fr_speech.wav"
    out = tmp_path / "dub"
    done = run_cli("a2e", "predict", actor, "--audio", dub, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    driven = last_json(done.stdout)
    assert driven["speech"] and driven["frames"] == int(load_audio(dub).duration * 25)
    # /p b m/ are enforced, even by an A2E of 30 frames (all 5 of fr_speech's closed when measured).
    assert driven["bilabial_segments"] > 0 and driven["bilabial_closure"] >= 0.8
    with np.load(driven["coefficients"]) as arrays:
        assert arrays["lower"].shape == (driven["frames"], 8)
    with av.open(driven["preview"]) as movie:
        assert movie.streams.audio and movie.streams.video[0].frames == driven["frames"]
    predict = ["a2e", "predict", actor, "--audio", dub, "--out", out]
    ranged = run_cli(*predict, "--frames", "50-99", "--device", "cpu")
    assert ranged.returncode == 0, ranged.stderr
    # The preview's sound starts at its first frame's time in the dub: 2 s.
    assert audio_start_s(out / "v002" / "preview.mp4", dub) == pytest.approx(2.0, abs=0.02)
    too_long = run_cli(*predict, "--frames", "0-400")
    one_line_error(too_long, "fr_speech.wav", "--pad")
    if not torch.cuda.is_available():
        on_cuda = run_cli(*predict, "--device", "cuda")
        one_line_error(on_cuda, "--device cuda", "no CUDA device")
        assert not (out / "v003").exists()

    silent = write_wav(tmp_path / "silent.wav", np.zeros(3 * 16000, np.float32), 16000)
    done = run_cli("a2e", "predict", actor, "--audio", silent, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    rest = last_json(done.stdout)
    assert rest["speech"] is False and "no speech" in done.stderr
    with np.load(rest["coefficients"]) as arrays:
        assert np.ptp(arrays["lower"], axis=0).max() == 0  # one mouth, held
    spoken = load_audio(dub)
    pause = np.zeros((3 * spoken.rate, spoken.samples.shape[1]), np.float32)
    paused = write_wav(
        tmp_path / "paused.wav", np.concatenate([spoken.samples, pause]), spoken.rate
    )
    # A range a second into the pause: no speech heard there, though the file holds some.
    quiet = f"{int(spoken.duration * 25) + 25}-{int(spoken.duration * 25) + 50}"
    args = ["a2e", "predict", actor, "--audio", paused, "--frames", quiet, "--out", out]
    done = run_cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["speech"] is False and "no speech heard" in done.stderr

    # An A2E of an earlier format (before the viseme prior) is refused with what to do.
    manifest = json.loads((actor / "a2e.json").read_text())
    manifest["format_version"] = 1
    del manifest["validation"]["validation_loss_viseme_prior"]
    (actor / "a2e.json").write_text(json.dumps(manifest))
    old_format = run_cli("a2e", "predict", actor, "--audio", dub, "--out", out)
    one_line_error(old_format, "a2e.json", "a2e format 1", "train it anew")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["dub", "--actor", "a", "--plate", "p.mov", "--audio", "d.wav", "--out", "o"]
            + ["--audio-offset", "nan"],
            "--audio-offset: nan: not a finite number",
        ),
        (["a2e", "predict", "a", "--audio", "d.wav", "--out", "o", "--audio-offset", "inf"], "inf"),
        (
            ["actor", "build", "--footage", "f.mov", "--out", "o", "--steps", "0"],
            "must be at least 1",
        ),
        (["actor", "fit", "--footage", "f.mov", "--out", "o", "--texture-px", "-8"], "-8"),
        (["actor", "train-a2e", "a", "--seed", "-1"], "--seed: -1: must be 0 or more"),
    ],
)
def test_numbers_that_cannot_be_right_are_refused_before_anything_runs(argv, said, capsys):
    """`--steps 0` was taken for no --steps (2000 steps), and a NaN offset failed at the end."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and said in capsys.readouterr().err


def test_a2e_needs_an_actor(shared_data, tmp_path):
    one_line_error(
        run_cli(
            "a2e",
            "predict",
            tmp_path / "nobody",
            "--audio",
            shared_data / "audio" / "fr_speech.wav",
            "--out",
            tmp_path / "o",
        ),
        "nobody",
        "not found",
    )


def test_qc_on_real_footage(shared_data, tmp_path):
    clip = shared_data / "footage" / "woman_flag_b_8s.mp4"
    done = run_cli("qc", clip, "--frames", "0-74", "--track-cache", tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    figures = last_json(done.stdout)
    assert figures["frames"] == 75 and figures["speech"]
    assert 0.2 < figures["phone_sync"] <= 1.0  # a real speaker's mouth follows the phones
    assert abs(figures["lag_frames"]) <= 2
    # This clip's sound runs 3 frames late, as train-a2e finds from its fitted mouth.
    offset = figures["sound_offset"]
    assert offset["offset_s"] == offset["best_offset_s"] == pytest.approx(0.12)
    assert offset["phone_sync"] > offset["phone_sync_as_recorded"] + 0.2
