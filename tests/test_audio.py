"""Audio at any rate and channel count: originals kept, 16 kHz mono for analysis."""

import numpy as np
import pytest

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


def test_movie_without_audio(tmp_path):
    assert open_plate(write_movie(tmp_path / "m.mp4", numbered_frames(3))).audio() is None


def test_corrupt_and_missing_audio(tmp_path):
    bad = tmp_path / "dub.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    with pytest.raises(DubplateError, match=r"dub\.wav"):
        load_audio(bad)
    with pytest.raises(DubplateError, match=r"gone\.wav: audio file not found"):
        load_audio(tmp_path / "gone.wav")


def test_shared_dub_tracks(shared_data):
    for path in sorted((shared_data / "audio").glob("*.wav")):
        audio = load_audio(path)
        assert len(audio.analysis) == pytest.approx(float(audio.duration) * 16000, abs=2), path
