"""Audio at any rate and channel count: originals kept, 16 kHz mono for analysis."""

from fractions import Fraction

import numpy as np
import pytest
import soundfile

from dubplate.core.errors import DubplateError
from dubplate.core.media import load_audio, open_plate
from tests.fixtures import numbered_frames, write_movie, write_wav


def dominant_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 6), (8000, 1), (16000, 1)])
def test_any_rate_and_channel_count(tmp_path, rate, channels):
    t = np.arange(rate * 2) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    samples = np.repeat(tone[:, None], channels, axis=1).astype(np.float32)
    audio = load_audio(write_wav(tmp_path / "tone.wav", samples, rate))
    assert (audio.rate, audio.channels) == (rate, channels)
    np.testing.assert_allclose(audio.samples, samples, atol=1e-4)  # 16-bit PCM on disk
    analysis = audio.analysis
    assert analysis.dtype == np.float32 and analysis.ndim == 1
    assert abs(len(analysis) - 32000) <= 1
    assert dominant_hz(analysis, 16000) == pytest.approx(440, abs=1)


def test_audio_from_a_movie(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], 1) * 0.3
    path = write_movie(tmp_path / "m.mp4", numbered_frames(25), audio=(stereo, rate))
    audio = open_plate(path).audio()
    assert (audio.rate, audio.channels) == (rate, 2)
    assert float(audio.duration) == pytest.approx(1.0, abs=0.05)
    assert dominant_hz(audio.analysis, 16000) == pytest.approx(300, abs=2)


def _burst_audio(onset_s: float, rate: int = 44100) -> np.ndarray:
    """Two seconds of stereo silence with a 1 kHz burst from `onset_s` on."""
    t = np.arange(2 * rate) / rate
    tone = np.where(t >= onset_s, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    return np.stack([tone, tone], axis=1)


def _onset_s(audio) -> float:
    return np.flatnonzero(np.abs(audio.analysis) > 0.1)[0] / 16000


@pytest.mark.parametrize(
    ("video_start", "audio_start", "burst_at", "heard_at"),
    [(0.0, 0.4, 0.2, 0.6), (0.4, 0.0, 0.6, 0.2)],  # audio starting after, then before, the video
)
def test_a_movies_audio_is_timed_from_its_first_frame(
    tmp_path, video_start, audio_start, burst_at, heard_at
):
    times = [Fraction(video_start) + Fraction(i, 25) for i in range(25)]
    path = write_movie(
        tmp_path / "m.mp4",
        numbered_frames(25),
        times=times,
        audio=(_burst_audio(burst_at), 44100),
        audio_start=audio_start,
    )
    plate = open_plate(path)
    assert plate.time_of(0) == 0
    assert _onset_s(plate.audio()) == pytest.approx(heard_at, abs=0.005)
    # As a dub file, its clock is the file's, where both streams start at 0 here.
    assert _onset_s(load_audio(path)) == pytest.approx(burst_at + audio_start, abs=0.005)


def test_movie_without_audio(tmp_path):
    assert open_plate(write_movie(tmp_path / "m.mp4", numbered_frames(3))).audio() is None


def test_corrupt_and_missing_audio(tmp_path):
    bad = tmp_path / "dub.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    with pytest.raises(DubplateError, match=r"dub\.wav"):
        load_audio(bad)
    with pytest.raises(DubplateError, match=r"gone\.wav: audio file not found"):
        load_audio(tmp_path / "gone.wav")


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_a_truncated_wav_is_refused_not_read_short(tmp_path, subtype):
    noise = np.random.default_rng(0).normal(0, 0.1, (32000, 2)).astype(np.float32)
    whole = tmp_path / "whole.wav"
    soundfile.write(str(whole), noise, 16000, subtype=subtype)
    assert float(load_audio(whole).duration) == 2.0
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DubplateError, match=r"cut\.wav: truncated: its header says \d+ bytes"):
        load_audio(cut)


def test_shared_dub_tracks(shared_data):
    paths = sorted((shared_data / "audio").glob("*.wav"))
    assert len(paths) == 7, "the shared dub tracks"
    for path in paths:
        audio = load_audio(path)
        assert len(audio.analysis) == pytest.approx(float(audio.duration) * 16000, abs=2), path
