"""The A2E network, its training and prediction, and voice augmentation."""

import logging
import os
import warnings
from dataclasses import asdict, replace
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dubplate.core.a2e import store as a2e_store
from dubplate.core.a2e import sync as a2e_sync
from dubplate.core.a2e import train as a2e_train
from dubplate.core.a2e.augment import DRY, Voice
from dubplate.core.a2e.expression import (
    MouthOpening,
    articulated,
    bridge_covered,
    keep_plate_expression,
    keep_plate_pauses,
    mouth_gap_px,
)
from dubplate.core.a2e.network import A2E, FRAMES_EACH_SIDE, MEMBERS
from dubplate.core.a2e.predict import drive, drive_frames
from dubplate.core.a2e.store import train_actor_a2e
from dubplate.core.a2e.sync import MIN_PHONE_SYNC, MIN_SYNC_GAIN, sync_offset, unsynced_frames
from dubplate.core.a2e.train import (
    BILABIAL,
    MEL_MASK_BANDS,
    MEL_MASKS,
    Footage,
    MouthPrior,
    Sequence,
    TrainSettings,
    footage_frames,
    footage_sequences,
    predict,
    train,
    train_bag,
    voices_for,
)
from dubplate.core.audio import features as audio_features
from dubplate.core.audio.features import FEATURE_SIZE, MEL_BANDS, AudioAnalysis, FrameFeatures
from dubplate.core.audio.phones import PHONE_INDEX, PHONES, VISEMES
from dubplate.core.colour import default_config
from dubplate.core.determinism import CUBLAS_WORKSPACE, seeded
from dubplate.core.errors import DubplateError
from dubplate.core.manifest import read_manifest
from dubplate.core.media import load_audio, open_plate
from dubplate.core.media.audio import ANALYSIS_RATE
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.model import ActorModel
from dubplate.core.qc.lipsync import openness
from dubplate.core.track.landmarks import LOWER_LIP_INNER, UPPER_LIP_INNER
from tests.fixtures import ArrayPlate, numbered_frames, write_exr, write_wav
from tests.test_cli import run_cli


def test_each_output_sees_a_third_of_a_second_either_side():
    network = A2E(FEATURE_SIZE, 4).eval()
    quiet = torch.zeros(1, 60, FEATURE_SIZE)
    impulse = quiet.clone()
    impulse[0, 30] = 5.0
    with torch.no_grad():
        changed = (network(impulse) - network(quiet)).abs().sum(dim=-1)[0] > 1e-6
    assert changed.nonzero().squeeze(1).tolist() == list(
        range(30 - FRAMES_EACH_SIDE, 31 + FRAMES_EACH_SIDE)
    )
    assert FRAMES_EACH_SIDE / 25 == pytest.approx(0.32)


NO_PRIOR = MouthPrior(rest=np.zeros(2), visemes=np.zeros((len(VISEMES), 2)))


def synthetic_footage(frames=400, seed=0):
    """An open vowel switching on and off, seen as real audio shows it (the phone, its viseme
    and louder mel bands); the first coefficient follows it one frame later, the second is
    noise: learnable, and not learnable."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 0.1, (frames, FEATURE_SIZE)).astype(np.float32)
    vowel = (np.sin(np.arange(frames) / 3.0) > 0).astype(np.float32)
    open_vowel = len(PHONES) + list(VISEMES).index("open_vowel")
    mel = len(PHONES) + len(VISEMES)
    for column in [PHONE_INDEX["AA"], open_vowel, *range(mel, mel + 20)]:
        features[:, column] += vowel
    targets = np.stack([np.roll(vowel, 1) * 2.0, rng.normal(0, 0.3, frames)], axis=1)
    mask = rng.uniform(size=frames) > 0.1
    targets[~mask] = 0
    return Sequence(features, targets.astype(np.float32), mask)


def test_training_learns_what_the_audio_says_and_stops_early():
    settings = TrainSettings(voices=0, steps=400, eval_every=25, patience=4)
    network, report = train([[synthetic_footage()]], NO_PRIOR, settings)
    assert report["validation_loss"] < 0.3 * report["validation_loss_mean_expression"]
    again, report_again = train([[synthetic_footage()]], NO_PRIOR, settings)
    assert report_again == {**report, "seconds": report_again["seconds"]}  # seeded
    for a, b in zip(network.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_training_on_cuda_chooses_deterministic_kernels_and_gives_them_back(monkeypatch, caplog):
    """Checked without a GPU: the switches are torch's own, set and restored around training."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # so that monkeypatch restores it
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    with seeded(4, "cpu"):
        first = torch.rand(3)
        assert not torch.are_deterministic_algorithms_enabled()
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    with seeded(4, "cuda:0"):
        assert torch.equal(torch.rand(3), first)  # the same seed
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    # Once CUDA has started, a workspace set now would not be the one cuBLAS uses: said, not set.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with caplog.at_level(logging.WARNING), seeded(4, "cuda"):
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert "CUDA started before CUBLAS_WORKSPACE_CONFIG was set" in caplog.text


def test_a_footage_whose_held_out_tail_is_all_covered_is_refused():
    """With no unmasked frame to validate on, early stopping would keep the untrained network."""
    footage = synthetic_footage()
    footage.mask[-100:] = False  # the tail (the last 20%) covered throughout
    settings = TrainSettings(voices=0, steps=50, eval_every=25, patience=1)
    with pytest.raises(DubplateError, match="uncovered in the footage's training part or in its"):
        train([[footage]], NO_PRIOR, settings)
    footage.mask[-10:] = True  # a few frames of the tail seen: it trains
    network, report = train([[footage]], NO_PRIOR, settings)
    assert np.isfinite(report["validation_loss"])


def test_a_footage_with_a_coefficient_that_is_not_a_number_is_refused():
    """Early stopping never improves on a NaN loss: it would keep a network of NaN weights."""
    footage = synthetic_footage()
    footage.targets[200, 0] = np.nan
    settings = TrainSettings(voices=0, steps=100, eval_every=25, patience=2)
    with pytest.raises(DubplateError, match="held-out loss is nan at step 25"):
        train([[footage]], NO_PRIOR, settings)


def test_the_held_out_tail_is_learnt_from_once_it_has_chosen_the_steps():
    """A rounded /uw/ heard only in the footage's last 20% rounds the lips (the second
    coefficient): the network refit on every frame has learnt it, the one trained without the
    tail has not."""
    footage = synthetic_footage()
    rounded = len(PHONES) + list(VISEMES).index("rounded")
    heard = np.zeros(len(footage.mask), bool)
    heard[330:] = np.sin(np.arange(330, len(heard)) / 4.0) > 0.3
    footage.features[heard, PHONE_INDEX["UW"]] += 1.0
    footage.features[heard, rounded] += 1.0
    footage.targets[heard & footage.mask, 1] += 1.5
    settings = TrainSettings(voices=0, steps=300, eval_every=25, patience=4)
    rounding = {}
    for refit in (False, True):
        network, report = train([[footage]], NO_PRIOR, replace(settings, refit=refit))
        with torch.no_grad():
            driven = network.coefficients(torch.from_numpy(footage.features)[None])[0].numpy()
        rounding[refit] = driven[heard, 1].mean() - driven[~heard, 1].mean()
        assert network.gain.tolist() == pytest.approx([report["gain"]] * MEMBERS, abs=1e-3)
    assert rounding[True] > 1.0
    assert rounding[False] < 0.3
    assert report["refit_frames"] == footage.mask.sum() > report["train_frames"]


def test_a_bag_drives_the_mean_of_its_runs_each_with_its_own_voice_and_gain():
    footage = synthetic_footage()
    # Each run's own voice: one quiet, one loud, whose networks learn different gains.
    voices = [Sequence(footage.features * g, footage.targets, footage.mask) for g in (0.3, 1.5)]
    settings = TrainSettings(voices=1, steps=100, eval_every=25, patience=2, runs=2, seed=1)
    bagged, report = train_bag([[footage, *voices]], NO_PRIOR, settings)
    features = torch.from_numpy(footage.features)[None]
    alone = []
    for run, voice in zip(report["runs"], voices, strict=True):
        network, _ = train([[footage, voice]], NO_PRIOR, replace(settings, seed=run["seed"]))
        with torch.no_grad():
            alone.append(network.coefficients(features)[0].numpy())
        assert network.gain[0] == pytest.approx(run["gain"], abs=1e-3)
    assert np.abs(alone[0] - alone[1]).max() > 1e-2
    with torch.no_grad():
        driven = bagged.coefficients(features)[0].numpy()
    np.testing.assert_allclose(driven, np.mean(alone, axis=0), atol=1e-5)
    assert [run["seed"] for run in report["runs"]] == [2, 3]  # seed 0's are 0 and 1
    assert len(bagged.members) == 2 * MEMBERS
    assert report["validation_loss"] == pytest.approx(
        np.mean([run["validation_loss"] for run in report["runs"]]), abs=1e-4
    )
    with pytest.raises(ValueError, match="needs 3 voices"):
        train_bag([[footage, voices[0]]], NO_PRIOR, settings)


def test_the_viseme_prior_moves_the_mouth_where_the_network_learnt_nothing():
    """The first coefficient is 2 x the open-vowel share: the prior, fitted in closed form,
    carries it with the network's gain at zero."""
    footage = synthetic_footage()
    open_vowel = len(PHONES) + list(VISEMES).index("open_vowel")
    footage.targets[:, 0] = 2.0 * footage.features[:, open_vowel] * footage.mask
    settings = TrainSettings(voices=0, steps=50, eval_every=25, patience=1)
    network, report = train([[footage]], NO_PRIOR, settings)
    network.gain.fill_(0.0)
    with torch.no_grad():
        driven = network.coefficients(torch.from_numpy(footage.features)[None])[0].numpy()
    error = np.abs(driven[footage.mask, 0] - footage.targets[footage.mask, 0])
    assert error.mean() < 0.1
    assert report["validation_loss_viseme_prior"] < 0.5 * report["validation_loss_mean_expression"]


def frame_features(frames, bilabial_from=None):
    phones = np.zeros((frames, len(PHONES)), np.float32)
    phones[:, PHONE_INDEX["AA"]] = 1
    visemes = np.zeros((frames, len(VISEMES)), np.float32)
    visemes[:, list(VISEMES).index("open_vowel")] = 1
    if bilabial_from is not None:
        visemes[bilabial_from:] = 0
        visemes[bilabial_from:, BILABIAL] = 1
    return FrameFeatures(
        np.arange(frames) / 25, phones, visemes, np.zeros((frames, 80), np.float32)
    )


def test_silence_rests_and_bilabials_close():
    network = A2E(FEATURE_SIZE, 3)
    network.rest.copy_(torch.tensor([1.0, -2.0, 0.5]))
    network.viseme_map[list(VISEMES).index("open_vowel")] = 9.0
    silent = predict(network, frame_features(10), speech=False)
    assert np.allclose(silent, [1.0, -2.0, 0.5])
    spoken = predict(network, frame_features(20, bilabial_from=10), speech=True)
    assert np.allclose(spoken[12:], [1.0, -2.0, 0.5], atol=1e-5)
    assert np.abs(spoken[:5] - [1.0, -2.0, 0.5]).max() > 1.0


def spoken_features(labels):
    """FrameFeatures of one phone a frame."""
    phones = np.zeros((len(labels), len(PHONES)), np.float32)
    visemes = np.zeros((len(labels), len(VISEMES)), np.float32)
    for frame, phone in enumerate(labels):
        phones[frame, PHONE_INDEX[phone]] = 1
        group = next(i for i, members in enumerate(VISEMES.values()) if phone in members)
        visemes[frame, group] = 1
    times = np.arange(len(labels)) / 25
    return FrameFeatures(times, phones, visemes, np.zeros((len(labels), 80), np.float32))


def test_lips_stay_shut_in_the_silence_before_a_bilabial():
    """A network that opens the mouth in silence (as one trained on a few seconds anticipates
    the vowel it hears coming) is held shut over the frames from which it hears a /p b m/ coming,
    and only there: the same silence before a vowel, or further back, is left as it is."""
    network = A2E(FEATURE_SIZE, 3)
    rest = np.array([1.0, -2.0, 0.5])
    network.rest.copy_(torch.from_numpy(rest))
    for group in ("silence", "open_vowel"):
        network.viseme_map[list(VISEMES).index(group)] = 9.0
    silence = 20
    before_bilabial = predict(
        network, spoken_features(["SIL"] * silence + ["P", "AA", "AA"]), speech=True
    )
    before_vowel = predict(network, spoken_features(["SIL"] * silence + ["AA"] * 3), speech=True)
    held = slice(silence - FRAMES_EACH_SIDE, silence + 1)
    assert np.allclose(before_bilabial[held], rest, atol=1e-5)
    assert np.abs(before_bilabial[: silence - FRAMES_EACH_SIDE] - rest).min() > 5
    assert np.abs(before_vowel[:silence] - rest).min() > 5
    assert np.abs(before_bilabial[-1] - rest).min() > 5


def test_a_range_of_frames_is_driven_as_the_whole_shot_drives_it():
    """A shot dubbed in parts (a --frames range, a farm task) gets the mouth the whole shot
    gets, at its first and last frames too: the network hears the audio past the range's ends.
    Heard from the range alone, its first frames come out otherwise."""
    rng = np.random.default_rng(3)
    sounds = ["AA", "M", "IY", "SIL", "B", "OW", "S", "AE"]
    starts = np.arange(0, 4.0, 0.13)
    phones = np.array(
        [(PHONE_INDEX[sounds[i % len(sounds)]], a, a + 0.13) for i, a in enumerate(starts)]
    )
    analysis = AudioAnalysis(phones, rng.normal(size=(400, 80)).astype(np.float32), 4.0)
    torch.manual_seed(3)
    network = A2E(FEATURE_SIZE, 5)
    network.viseme_map.normal_()
    times = np.arange(100) / 25
    whole = drive_frames(network, analysis, times, 0.04)
    part = drive_frames(network, analysis, times[40:70], 0.04)
    assert np.allclose(part.lower, whole.lower[40:70], atol=1e-5)
    assert np.allclose(part.closing, whole.closing[40:70])
    assert np.allclose(part.features.matrix(), whole.features.matrix()[40:70], atol=1e-6)
    alone = predict(network, audio_features.frame_features(analysis, times[40:70], 0.04), True)
    assert np.abs(alone[:4] - whole.lower[40:44]).max() > 1e-2


def test_a_silent_stretch_of_a_file_with_speech_moves_as_the_whole_file_moves_it():
    """Two seconds of speech, then four of silence: frames well into the silence are said to
    hold no speech, and are driven as the whole file drives them (a shot dubbed in parts
    matches the shot dubbed at once)."""
    speech = speech_of_random_syllables(2.0, seed=5)
    phones = np.concatenate([speech.phones, [(PHONE_INDEX["SIL"], 2.0, 6.0)]])
    log_mel = np.random.default_rng(5).normal(size=(600, 80)).astype(np.float32)
    analysis = AudioAnalysis(phones, log_mel, 6.0)
    torch.manual_seed(5)
    network = A2E(FEATURE_SIZE, 5)
    whole = drive_frames(network, analysis, np.arange(150) / 25, 0.04)
    quiet = drive_frames(network, analysis, np.arange(100, 140) / 25, 0.04)
    assert whole.speech and not quiet.speech
    np.testing.assert_allclose(quiet.lower, whole.lower[100:140], atol=1e-5)
    assert np.abs(quiet.lower - network.rest.numpy()).max() > 1e-3  # not held at rest


def test_an_audio_offset_moves_which_sound_each_frame_hears(shared_data, tmp_path):
    """Frame n with --audio-offset 0.4 hears what frame n + 10 hears without one (25 fps)."""
    audio = load_audio(shared_data / "audio" / "en_speech_5s.wav")
    torch.manual_seed(7)
    network = A2E(FEATURE_SIZE, 5)
    fps = Fraction(25)
    moved = drive(network, audio, fps, offset=0.4, frames=(0, 39), cache_dir=tmp_path)
    later = drive(network, audio, fps, frames=(10, 49), cache_dir=tmp_path)
    np.testing.assert_allclose(moved.times, later.times)
    np.testing.assert_allclose(moved.lower, later.lower, atol=1e-5)
    unmoved = drive(network, audio, fps, frames=(0, 39), cache_dir=tmp_path)
    assert np.abs(unmoved.lower - moved.lower).max() > 1e-2


def speech_of_random_syllables(seconds: float, seed: int) -> AudioAnalysis:
    """Consonant-vowel syllables of random length: a mouth that follows them has one timing."""
    rng = np.random.default_rng(seed)
    rows, start = [], 0.0
    while start < seconds:
        for sound in (rng.choice(["M", "B", "S", "T"]), rng.choice(["AA", "AE", "OW", "IY"])):
            end = start + rng.uniform(0.06, 0.3)
            rows.append((PHONE_INDEX[sound], start, end))
            start = end
    return AudioAnalysis(np.array(rows), np.zeros((int(seconds * 100), 80), np.float32), seconds)


def test_a_footage_whose_sound_runs_late_is_learnt_in_sync():
    """The mouth opens for each vowel 120 ms before the sound track has it: A2E learns from the
    sound moved 120 ms back, where the mouth follows the phones; footage in sync, a mouth
    between two offsets, or one that does not follow its phones keeps its sound as recorded."""
    analysis = speech_of_random_syllables(8.0, seed=5)
    times = np.arange(200) / 25
    rng = np.random.default_rng(0)

    def mouth(*sounds_late_s):
        heard = [
            audio_features.frame_features(analysis, times + s, 0.04, pad=True)
            for s in sounds_late_s
        ]
        gap = 12 * np.mean([openness(h) for h in heard], axis=0) + rng.normal(0, 1.0, len(times))
        gap[rng.uniform(size=len(gap)) < 0.1] = np.nan  # frames without a fitted face
        return gap

    late = sync_offset(mouth(0.12), analysis, times, 0.04)
    assert late.offset_s == late.best_offset_s == pytest.approx(0.12)
    assert late.phone_sync > 0.8 > late.phone_sync_as_recorded
    assert sync_offset(mouth(0.0), analysis, times, 0.04).offset_s == 0.0
    assert sync_offset(mouth(-0.08), analysis, times, 0.04).offset_s == pytest.approx(-0.08)
    # Three fifths of the way to a frame late: it peaks there, too little over as recorded.
    between = sync_offset(mouth(0.0, 0.0, 0.04, 0.04, 0.04), analysis, times, 0.04)
    assert between.best_offset_s == pytest.approx(0.04)
    assert between.phone_sync - between.phone_sync_as_recorded < MIN_SYNC_GAIN
    assert between.offset_s == 0.0
    unrelated = sync_offset(rng.normal(0, 1.0, len(times)), analysis, times, 0.04)
    assert unrelated.offset_s == 0.0 and unrelated.phone_sync < MIN_PHONE_SYNC
    seen = 40  # frames: 1.6 s, too few to time it by
    short = sync_offset(mouth(0.12)[:seen], analysis, times[:seen], 0.04)
    assert short.best_offset_s == pytest.approx(0.12) and short.offset_s == 0.0
    held = sync_offset(np.full(len(times), 5.0), analysis, times, 0.04)  # a mouth held still
    assert held.offset_s == 0.0 and held.as_dict()["phone_sync"] is None


def test_training_windows_lose_a_few_mel_bands_and_nothing_else():
    """Each window of training features has up to two runs of at most 8 mel bands set to the
    utterance's mean (0), the same bands in every frame; phones and visemes are untouched, and
    so are the footage's own features."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, FEATURE_SIZE)).astype(np.float32)
    kept = features.copy()
    mel = slice(FEATURE_SIZE - MEL_BANDS, FEATURE_SIZE)
    masked_counts = []
    for _ in range(200):
        masked = a2e_train._masked_mel(features, rng)
        np.testing.assert_array_equal(masked[:, : mel.start], features[:, : mel.start])
        zeroed = (masked[:, mel] == 0).all(axis=0)
        np.testing.assert_array_equal(masked[:, mel][:, ~zeroed], features[:, mel][:, ~zeroed])
        edges = np.diff(np.concatenate([[0], zeroed.astype(int), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        assert len(runs) <= 2 and (runs <= 16).all()  # two runs of 8 may touch
        masked_counts.append(int(zeroed.sum()))
    np.testing.assert_array_equal(features, kept)
    assert max(masked_counts) <= 16 and np.mean(masked_counts) > 4


def test_a_stretch_where_the_mouth_does_not_follow_its_sound_is_found():
    """8 s of syllables: the mouth opens on the vowels for 4 s, then smiles through the rest,
    widest on the consonants. The frames of the smile, from 1.5 s past its start, are out of
    sync, and those of the speech up to 1.5 s before it are not; a mouth held still, or seen
    in too few frames, is not judged."""
    analysis = speech_of_random_syllables(8.0, seed=5)
    times = np.arange(200) / 25
    heard = openness(audio_features.frame_features(analysis, times, 0.04, pad=True))
    noise = np.random.default_rng(1).normal(0, 1.0, len(times))
    gap = np.where(times < 4.0, 12 * heard, 12 * (1 - heard)) + noise
    unsynced = unsynced_frames(gap, analysis, times, 0.04)
    assert unsynced[(times >= 5.5)].all()
    assert not unsynced[times < 2.5].any()
    with warnings.catch_warnings():  # not judged, rather than a correlation of nothing
        warnings.simplefilter("error")
        assert not unsynced_frames(np.full(len(times), 5.0), analysis, times, 0.04).any()
    glimpsed = np.where(np.arange(len(times)) % 4 == 0, gap, np.nan)  # 1 frame in 4 seen
    assert not unsynced_frames(glimpsed, analysis, times, 0.04).any()


def test_a_footage_heard_late_is_judged_only_where_its_sound_was_recorded(monkeypatch):
    """A mouth that closes on every vowel, its sound heard 0.2 s late: every frame whose sound
    is in the 7 s of audio is out of sync, and none heard past its end."""
    analysis = speech_of_random_syllables(8.0, seed=5)
    times = np.arange(200) / 25
    noise = np.random.default_rng(2).normal(0, 1.0, len(times))
    heard = openness(audio_features.frame_features(analysis, times + 0.2, 0.04, pad=True))
    monkeypatch.setattr(a2e_sync, "fitted_gap", lambda footage, model: 12 * (1 - heard) + noise)
    footage = Footage(
        SimpleNamespace(duration=7.0), times, 0.04, np.zeros((200, 2)), np.ones(200, bool)
    )
    unsynced = a2e_sync.footage_unsynced(footage, analysis, None, 0.2)
    recorded = times + 0.2 <= 7.0
    assert unsynced[recorded].all() and not unsynced[~recorded].any()


def test_a2e_learns_around_the_stretches_out_of_sync_unless_they_are_too_many(caplog):
    """Frames out of sync are masked and counted, the log gives their times; where they are
    over half the frames to learn from, or all of the tail held out to validate, nothing is
    masked and the log says why. Frames without a face, or heard past the audio's end, are
    not counted."""
    caplog.set_level(logging.INFO)
    frames = 100
    footage = Footage(
        SimpleNamespace(duration=3.6),  # frames 90-99, heard 0.04 s late, are past its end
        np.arange(frames) / 25,
        0.04,
        np.zeros((frames, 2), np.float32),
        np.arange(frames) % 10 != 5,  # no face
    )
    number = np.arange(frames)

    def gated(unsynced):
        caplog.clear()
        return a2e_store._without_unsynced(footage, unsynced, 0.04, 0.2, "take.mov")

    kept, figures = gated((number >= 30) & (number < 55))
    assert figures == {"frames_unsynced": 23, "frames_left_out_unsynced": 23}
    assert np.array_equal(kept.mask, footage.mask & ~((number >= 30) & (number < 55)))
    assert "take.mov: 23 frame(s) not learnt from" in caplog.text
    assert "1.20-2.16 s" in caplog.text  # its frames without a face too
    kept, figures = gated((number >= 30) & (number < 80))
    assert figures == {"frames_unsynced": 45, "frames_left_out_unsynced": 0} and kept is footage
    assert "does not follow its sound in 45 of the 81 frames" in caplog.text
    kept, figures = gated(number >= 80)  # the held-out tail: from frame 80
    assert figures["frames_left_out_unsynced"] == 0 and kept is footage
    assert "anywhere in the last 20% of its frames" in caplog.text
    kept, figures = gated(number >= 81)  # frame 80 is left to validate on
    assert figures["frames_left_out_unsynced"] == 8


def test_the_footage_is_heard_moved_by_its_offset(tmp_path):
    """Two frames' offset: each frame gets the features of the frame two later as recorded."""
    rng = np.random.default_rng(4)
    bursts = np.repeat(rng.uniform(0, 0.5, 30), 1600) * rng.normal(size=30 * 1600)
    audio = load_audio(write_wav(tmp_path / "take.wav", bursts.astype(np.float32), 16000))
    frames = 60
    targets = np.zeros((frames, 2), np.float32)
    footage = Footage(audio, np.arange(frames) / 25, 0.04, targets, np.ones(frames, bool))
    as_recorded, moved = (
        footage_sequences(footage, [DRY], np.random.default_rng(0), offset)[0].features
        for offset in (0.0, 0.08)
    )
    np.testing.assert_allclose(moved[:-2], as_recorded[2:], atol=1e-5)
    assert not np.allclose(moved, as_recorded, atol=1e-2)


def test_footage_frames_heard_past_the_end_of_its_sound_are_not_learnt(tmp_path, caplog):
    """A take whose sound stops a second before its picture: the mouth there is not taught as
    the mouth of silence; nor, heard 0.2 s late, are the frames the offset moves past it."""

    class Take(ArrayPlate):
        def audio(self):
            noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
            return load_audio(write_wav(tmp_path / "take.wav", noise, 16000))

    plate = Take(numbered_frames(50))  # 2 s at 25 fps
    fit = SimpleNamespace(frames=np.arange(50), lower=np.ones((50, 2), np.float32))
    footage = footage_frames(plate, fit)
    assert footage.mask.all()
    rng = np.random.default_rng(0)
    for offset, heard in ((0.0, 26), (0.2, 21)):  # frame 25 is at 1.00 s, frame 20 at 0.80 s
        (sequence,) = footage_sequences(footage, [DRY], rng, offset)
        assert np.flatnonzero(sequence.mask).tolist() == list(range(heard))
    assert (
        "24 of the footage's 50 frames are heard outside its audio (1.00 s, offset +0.000"
        in caplog.text
    )


def test_an_image_sequence_footage_is_learnt_from_the_sound_it_is_given(
    shared_data, tmp_path, monkeypatch
):
    """EXR footage has no sound of its own: the actor is built with its production sound as a
    WAV, the actor's manifest keeps it, and A2E, reopening the footage, hears it. That sound's
    analysis is cached for a dub of the take, and a2e.json records the voices heard."""
    movie = open_plate(shared_data / "footage" / "man_map_5s.mp4")
    colour = default_config()
    for number in range(40):
        linear = colour.convert(
            movie.read(number) / np.float32(255), colour.working_space, "ACEScg"
        )
        write_exr(tmp_path / f"take.{1001 + number}.exr", linear)
    sound = movie.audio()
    wav = write_wav(tmp_path / "take.wav", sound.samples, sound.rate)
    footage = tmp_path / "take.####.exr"
    fit = ["actor", "fit", "--footage", footage, "--lower-basis", "8", "--upper-basis", "4"]
    fit += ["--texture-px", "64", "--track-cache", tmp_path / "tracks"]
    done = run_cli(*fit, "--footage-audio", wav, "--out", tmp_path / "heard")
    assert done.returncode == 0, done.stderr
    (source,) = Actor.load(tmp_path / "heard").sources
    assert source["plate"]["sound"] == str(wav) and source["plate"]["kind"] == "exr"
    settings = TrainSettings(voices=1, steps=50, eval_every=25)
    report = train_actor_a2e(tmp_path / "heard", settings, audio_cache=tmp_path / "audio")
    (sync,) = report["footage_sync"]
    assert sync["phone_sync"] > MIN_PHONE_SYNC  # its mouth follows the sound it was given
    assert sync["frames_left_out_unsynced"] == 0
    # The WAV's analysis is cached: a dub of the take reads it rather than analysing again.
    assert len(list((tmp_path / "audio").glob("*.npz"))) == 1
    monkeypatch.setattr(audio_features, "analyse", None)
    reread = audio_features.cached_analysis(load_audio(wav), tmp_path / "audio")
    assert reread.duration == pytest.approx(sound.samples.shape[0] / sound.rate, abs=1e-3)
    # The manifest says what the networks heard: the dry voice and each run's own.
    heard = read_manifest(tmp_path / "heard" / "a2e.json", "a2e")["training"]["augmentation"]
    assert [Voice(**voice) for voice in heard["voices"]] == voices_for(settings)
    assert heard["voices"][0] == asdict(DRY) and len(heard["voices"]) == 4
    assert (heard["mel_masks"], heard["mel_mask_bands"]) == (MEL_MASKS, MEL_MASK_BANDS)
    assert run_cli(*fit, "--out", tmp_path / "deaf").returncode == 0
    with pytest.raises(DubplateError, match=r"take\.####\.exr: no audio.*--footage-audio"):
        train_actor_a2e(tmp_path / "deaf", TrainSettings(voices=1, steps=50, eval_every=25))


def test_voice_changes():
    rng = np.random.default_rng(0)
    t = np.arange(ANALYSIS_RATE) / ANALYSIS_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    faster = Voice(0.0, 1.25, 1.0, 60.0, 0.0).apply(tone, rng)
    assert len(faster) == pytest.approx(len(tone) / 1.25, rel=0.01)
    noisy = Voice(0.0, 1.0, 1.0, 10.0, 0.0).apply(tone, rng)
    snr = 10 * np.log10(np.mean(tone**2) / np.mean((noisy - tone) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    mel = np.zeros((1, 80), np.float32)
    mel[0, 40] = 1.0
    assert np.argmax(Voice(0.0, 1.0, 1.1, 60.0, 0.0).warp_mel(mel)[0]) == 44


def test_pitch_shift_moves_the_voice_and_keeps_its_length():
    t = np.arange(ANALYSIS_RATE) / ANALYSIS_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    higher = Voice(3.0, 1.0, 1.0, 60.0, 0.0).apply(tone, np.random.default_rng(0))
    assert len(higher) == len(tone)
    spectrum = np.abs(np.fft.rfft(higher * np.hanning(len(higher))))
    peak_hz = np.argmax(spectrum) * ANALYSIS_RATE / len(higher)
    assert peak_hz == pytest.approx(220 * 2 ** (3 / 12), abs=3)  # 261.6 Hz, a 1 Hz bin


def test_reverberation_decays_60_db_over_its_rt60():
    rt60 = 0.4
    click = np.zeros(ANALYSIS_RATE, np.float32)
    click[0] = 1.0
    wet = Voice(0.0, 1.0, 1.0, 200.0, rt60).apply(click, np.random.default_rng(0))
    assert wet[0] == pytest.approx(0.6, abs=0.05)  # the dry sound stays, under the room's

    def level_db(start_s: float) -> float:
        part = wet[int(start_s * ANALYSIS_RATE) : int((start_s + 0.05) * ANALYSIS_RATE)]
        return 10 * np.log10(np.mean(part**2))

    # Decaying 60 dB over the RT60: 37.5 dB between windows 0.25 s apart.
    assert level_db(0.05) - level_db(0.3) == pytest.approx(60 * 0.25 / rt60, abs=3)
    assert np.abs(wet[int(rt60 * ANALYSIS_RATE) :]).max() < 1e-6  # the room's response ends


def test_the_plate_keeps_its_held_expression_but_not_its_words():
    """Coefficient 0 opens the mouth and, in this actor, pulls coefficient 1 along; the plate
    smiles (coefficient 1) from frame 100, talks (coefficient 2 at syllable rate) and holds its
    mouth 0.3 more open than the dub. The smile stays, less what the opening carried with it;
    the talk and the opening stay the dub's."""
    frames, fps = 200, 25
    t = np.arange(frames) / fps
    opening = MouthOpening(gradient=np.array([1.0, 0, 0]), direction=np.array([1.0, 0.5, 0]))
    driven = np.zeros((frames, 3), np.float32)
    driven[:, 0] = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    plate = np.zeros((frames, 3), np.float32)
    plate[:, 0] = 0.8 + 0.5 * np.sin(2 * np.pi * 4 * t)
    plate[100:, 1] = 0.8
    plate[:, 2] = 0.5 * np.sin(2 * np.pi * 4 * t)
    kept = keep_plate_expression(driven, plate, opening, 1 / fps)
    np.testing.assert_allclose(kept[:, 0], driven[:, 0], atol=1e-5)
    assert np.abs(kept[150:, 1] - (0.8 - 0.5 * 0.3)).max() < 0.02
    assert np.abs(kept[:50, 1] - (0.0 - 0.5 * 0.3)).max() < 0.02
    assert np.abs(kept[25:-25, 2]).max() < 0.005  # the talk, 0.5 in the plate
    assert np.abs(kept[:, 2]).max() < 0.05  # a half window at the shot's ends


def test_frames_whose_mouth_is_covered_lend_the_held_expression_nothing():
    """The plate smiles (coefficient 1 at 0.4) throughout; under a hand in frames 40-59 the
    tracker guessed a wide-open grimace. Bridged over, the frames around the hand keep the
    smile as if the hand were not there; left in, the grimace drags them a second either side."""
    frames, fps = 100, 25
    opening = MouthOpening(gradient=np.array([1.0, 0.0]), direction=np.array([1.0, 0.0]))
    driven = np.zeros((frames, 2), np.float32)
    plate = np.zeros((frames, 2), np.float32)
    plate[:, 1] = 0.4
    covered = np.zeros(frames, bool)
    covered[40:60] = True
    plate[covered] = [3.0, -2.0]
    bridged = bridge_covered(plate, covered)
    np.testing.assert_array_equal(bridged[~covered], plate[~covered])
    np.testing.assert_allclose(bridged[covered], [[0.0, 0.4]] * 20, atol=1e-6)
    around = ~covered
    kept = keep_plate_expression(driven, bridged, opening, 1 / fps)
    assert np.abs(kept[around, 1] - 0.4).max() < 1e-5
    dragged = np.abs(keep_plate_expression(driven, plate, opening, 1 / fps)[:, 1] - 0.4)
    second = np.r_[40 - fps : 40, 60 : 60 + fps]
    assert dragged[second].min() > 0.05  # 1e-5 bridged
    assert dragged[np.r_[30:40, 60:70]].min() > 0.4
    # At a shot's ends the nearest uncovered frame stands in; a shot all covered is left as is.
    ends = np.array([True, False, False, True])
    column = np.array([[9.0], [1.0], [2.0], [9.0]])
    np.testing.assert_array_equal(bridge_covered(column, ends)[:, 0], [1, 1, 2, 2])
    np.testing.assert_array_equal(bridge_covered(column, np.ones(4, bool)), column)


def opening_model() -> ActorModel:
    """An actor whose one lower coefficient opens the inner lips by that many px of a 256-px
    face box."""
    rng = np.random.default_rng(0)
    neutral = rng.uniform(0, 256, (468, 3))
    neutral[LOWER_LIP_INNER] = neutral[UPPER_LIP_INNER]
    lower_basis = np.zeros((1, 468, 3))
    lower_basis[0, LOWER_LIP_INNER, 1] = 1.0
    vertices = np.flatnonzero(lower_basis[0].any(axis=1))
    return ActorModel(neutral, lower_basis, np.zeros((1, 468, 3)), vertices, np.zeros((468, 2)))


def test_articulation_opens_the_mouth_further_past_closed_and_nothing_else():
    """Gain 1.5: a mouth 8 px open past the closed one opens 12 px past it; the closed
    mouth, one pressed shut past it, and the rest of the expression stay as they were."""
    model = opening_model()
    opening = MouthOpening(gradient=np.array([1.0]), direction=np.array([1.0]))
    rest = np.array([2.0], np.float32)
    lower = np.array([[2.0], [10.0], [1.0]], np.float32)  # closed, open, pressed shut
    more = articulated(lower, rest, opening, 1.5)
    before, after = mouth_gap_px(model, lower), mouth_gap_px(model, more)
    assert after[1] - after[0] == pytest.approx(1.5 * (before[1] - before[0]), rel=1e-4)
    assert before[1] - before[0] == pytest.approx(8.0, rel=0.01)
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    np.testing.assert_array_equal(articulated(lower, rest, opening, 1.0), lower)
    # Opening pulls a second coefficient (the corners) along; a third (a smile) is left.
    # (An opening whose gradient and direction do not meet at 1: each scale must cancel.)
    carried = MouthOpening(gradient=np.array([1.0, 0, 0]), direction=np.array([2.0, 1.0, 0]))
    smiling = np.array([[10.0, 0.0, 0.7]], np.float32)
    moved = articulated(smiling, np.zeros(3, np.float32), carried, 2.0)
    np.testing.assert_allclose(moved, [[20.0, 5.0, 0.7]], atol=1e-5)


def talking_gap(frames: int) -> np.ndarray:
    """(frames, 1) an inner-lip gap that moves as speech does: shut for 3 frames (0.12 s at 25
    fps, a /p b m/), then 12 px apart for 3."""
    return np.where((np.arange(frames) // 3) % 2 == 0, 0.0, 12.0)[:, None].astype(np.float32)


def test_in_the_dubs_pauses_the_plates_held_mouth_is_kept():
    """The dub pauses over frames 15-35 (0.84 s); the A2E drives a 2-px gap. Where the plate
    holds its lips 10 px apart, the middle of the pause is the plate's and the speech stays the
    dub's; where the plate's mouth moves as speech does, or the dub's lips are held shut for a
    coming /p b m/, the pause stays the dub's."""
    model, frames, fps = opening_model(), 50, 25
    speech = np.ones(frames, bool)
    speech[15:36] = False
    no_closing = np.zeros(frames)
    driven = np.full((frames, 1), 2.0, np.float32)
    held = np.full((frames, 1), 10.0, np.float32)
    kept, weight = keep_plate_pauses(driven, held, model, speech, no_closing, 1 / fps)
    np.testing.assert_allclose(kept[22:29], held[22:29], atol=0.05)
    np.testing.assert_allclose(kept[:14], driven[:14])
    np.testing.assert_allclose(kept[37:], driven[37:])
    assert weight.max() == pytest.approx(1.0)
    talking = talking_gap(frames)
    kept, weight = keep_plate_pauses(driven, talking, model, speech, no_closing, 1 / fps)
    np.testing.assert_allclose(kept, driven)
    closing = np.zeros(frames)
    closing[20:36] = 1.0
    kept, _ = keep_plate_pauses(driven, held, model, speech, closing, 1 / fps)
    np.testing.assert_allclose(kept[20:36], driven[20:36])
    assert kept[17, 0] > 3.0


def test_in_the_dubs_pauses_the_plates_shut_mouth_is_kept():
    """The dub pauses over frames 15-35; the A2E drives a 6-px gap. The plate talks (lips
    shut for 3 frames, 0.12 s, as in a /p b m/, then 12 px apart) into the pause, then shuts its
    mouth over frames 24-32: there the mouth is the plate's, shut; where the plate talks, the
    dub's."""
    model, frames, fps = opening_model(), 50, 25
    speech = np.ones(frames, bool)
    speech[15:36] = False
    driven = np.full((frames, 1), 6.0, np.float32)
    plate = talking_gap(frames)
    plate[24:33] = 0.5
    kept, weight = keep_plate_pauses(driven, plate, model, speech, np.zeros(frames), 1 / fps)
    np.testing.assert_allclose(kept[26:30], plate[26:30], atol=0.05)
    np.testing.assert_allclose(kept[:24], driven[:24])
    np.testing.assert_allclose(kept[33:], driven[33:])
    assert weight[18:21].max() == 0.0
