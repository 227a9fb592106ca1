"""Audio at any rate and channel count: originals kept, 16 kHz mono for analysis."""

import logging
import re
import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile
import soxr

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


def _encode(
    path, mono: np.ndarray, rate: int, codec: str, sample_format: str, first_sample: int = 0
) -> None:
    """`mono` float samples encoded by FFmpeg's `codec`, fed as `sample_format` ("flt", "fltp",
    "s16"), the first played at `first_sample` on the file's clock."""
    if sample_format == "s16":
        mono = (np.clip(mono, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        for start in range(0, len(mono), 1152):
            chunk = np.ascontiguousarray(mono[None, start : start + 1152])
            frame = av.AudioFrame.from_ndarray(chunk, format=sample_format, layout="mono")
            frame.sample_rate, frame.pts = rate, first_sample + start
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.mark.parametrize(
    ("suffix", "codec", "sample_format"), [(".mp3", "libmp3lame", "fltp"), (".mka", "flac", "s16")]
)
def test_a_truncated_mp3_or_matroska_file_is_refused_not_read_short(
    tmp_path, suffix, codec, sample_format
):
    """libsndfile (the MP3) and FFmpeg (the Matroska) decode what a cut-short file holds without
    complaint; its header (an MP3's frame count, Matroska's segment duration) still says how
    long it was. A whole file whose audio starts late is not cut short."""
    noise = np.random.default_rng(0).normal(0, 0.1, 44100 * 3).astype(np.float32)
    whole = tmp_path / f"whole{suffix}"
    _encode(whole, noise, 44100, codec, sample_format)
    assert float(load_audio(whole).duration) == pytest.approx(3.0, abs=0.03)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    message = rf"cut\{suffix}: truncated: its header says 3\.00 s of audio, the file holds 1\.\d+ s"
    with pytest.raises(DubplateError, match=message):
        load_audio(cut)
    late = tmp_path / f"late{suffix}"
    _encode(late, noise, 44100, codec, sample_format, first_sample=22050)
    assert float(load_audio(late).duration) == pytest.approx(3.0, abs=0.03)  # whole, not refused


def test_an_mp3_without_a_vbr_header_is_read_to_its_end(tmp_path, caplog):
    """Without a Xing or VBRI header libsndfile takes an MP3 for constant bitrate at its first
    frame's and stops reading where that puts its end: 6 s of speech in variable bitrate, its
    header frame taken off (as a cut or joined file loses it), read as under half of it."""
    rng = np.random.default_rng(0)
    seconds = np.arange(16000 * 6) / 16000
    speech = np.where(seconds % 1 < 0.5, rng.normal(0, 0.3, len(seconds)), 0).astype(np.float32)
    tagged = tmp_path / "tagged.mp3"
    soundfile.write(
        str(tagged), speech, 16000, "MPEG_LAYER_III", format="MP3", bitrate_mode="VARIABLE"
    )
    frame = re.search(r"framesize\s*:\s*(\d+)", soundfile.info(str(tagged)).extra_info)
    untagged = tmp_path / "untagged.mp3"
    untagged.write_bytes(tagged.read_bytes()[int(frame[1]) :])
    assert soundfile.info(str(untagged)).duration < 3  # libsndfile's guess
    with caplog.at_level(logging.INFO):
        assert float(load_audio(untagged).duration) == pytest.approx(6.0, abs=0.15)
    assert "untagged.mp3: an MP3 without a Xing or VBRI header" in caplog.text
    assert float(load_audio(tagged).duration) == pytest.approx(6.0, abs=0.01)


def test_the_default_audio_stream_is_read_where_there_are_several(tmp_path, caplog):
    """A guide track first, the mix marked default after it: a player plays the mix, and so
    does the dub hear it."""
    path = tmp_path / "reel.mka"
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    with av.open(str(path), "w") as out:
        guide, mix = (out.add_stream("flac", rate=16000, layout="mono") for _ in range(2))
        guide.metadata["title"], mix.metadata["title"] = "guide", "mix"
        guide.disposition, mix.disposition = 0, av.stream.Disposition.default
        for stream, level in ((guide, 0.1), (mix, 0.5)):
            samples = (level * 32767 * tone).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
            out.mux(stream.encode(frame))
            out.mux(stream.encode())
    with caplog.at_level(logging.INFO):
        heard = load_audio(path)
    assert np.abs(heard.samples).max() == pytest.approx(0.5, abs=0.01)
    assert "reel.mka: 2 audio streams; reading stream 1 (mix, marked default)" in caplog.text


def _two_tones(path, second_at: float, codec: str = "pcm_s16le", rate: int = 16000) -> None:
    """15 frames of 1024 samples (0.96 s) of quiet tone stamped 0 s, then as many of loud tone
    stamped `second_at`, each frame its own packet (PCM in Matroska; AAC's frames are 1024)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        for start_s, level in ((0.0, 0.01), (second_at, 0.5)):
            tone = level * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
            for offset in range(0, rate - 1024 + 1, 1024):
                chunk = tone[offset : offset + 1024].astype(np.float32)[None]
                pcm = codec.startswith("pcm")
                frame = av.AudioFrame.from_ndarray(
                    (chunk * 32767).astype(np.int16) if pcm else chunk,
                    format="s16" if pcm else "fltp",
                    layout="mono",
                )
                frame.sample_rate, frame.pts = rate, round(start_s * rate) + offset
                frame.time_base = Fraction(1, rate)
                out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.mark.parametrize(("suffix", "codec"), [(".mka", "pcm_s16le"), (".mp4", "aac")])
def test_a_gap_in_the_audio_timestamps_is_kept_as_silence(tmp_path, caplog, suffix, codec):
    """No packets for 0.54 s (a dropout), then the loud tone stamped 1.5 s: joined end to end it
    would play at 0.96 s, half a second ahead of the picture."""
    path = tmp_path / f"dropout{suffix}"
    _two_tones(path, 1.5, codec)
    with caplog.at_level(logging.WARNING):
        heard = load_audio(path)
    loud = np.flatnonzero(np.abs(heard.samples[:, 0]) > 0.2)
    assert loud[0] / heard.rate == pytest.approx(1.5, abs=0.03)
    assert (
        "timestamps jump +0.540 s at 0.960 s" in caplog.text
        and "filled with silence" in caplog.text
    )


def test_shared_dub_tracks(shared_data):
    paths = sorted((shared_data / "audio").glob("*.wav"))
    assert len(paths) == 7, "the shared dub tracks"
    for path in paths:
        audio = load_audio(path)
        assert len(audio.analysis) == pytest.approx(float(audio.duration) * 16000, abs=2), path


def _noise_wav(path, seconds, rate=48000, channels=2, subtype="PCM_24"):
    """Noise written a second at a time; returns the path."""
    rng = np.random.default_rng(1)
    with soundfile.SoundFile(str(path), "w", rate, channels, subtype) as file:
        for _ in range(seconds):
            file.write(rng.uniform(-0.3, 0.3, (rate, channels)).astype(np.float32))
    return path


@pytest.mark.parametrize("suffix", [".wav", ".mp4"])
def test_a_part_of_a_file_is_read_without_the_rest(tmp_path, monkeypatch, suffix):
    """A shot's part of a reel-long dub file, read a block at a time (small blocks here, so
    every part straddles them): the very samples the whole file holds there, led by silence
    for a start before the file's. libsndfile seeks a WAV; FFmpeg decodes a movie's sound and
    drops what comes before the part."""
    from dubplate.core.media import audio as audio_module
    from dubplate.core.media import open_audio

    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 5000)
    path = _noise_wav(tmp_path / "reel.wav", 3)
    if suffix == ".mp4":
        path = write_movie(
            tmp_path / "reel.mp4", numbered_frames(75), audio=(load_audio(path).samples, 48000)
        )
    whole = load_audio(path).samples
    reel = open_audio(path)
    assert (reel.aligned_to is None) == (suffix == ".wav")
    np.testing.assert_array_equal(reel.part(1.5, 1.0).load().samples, whole[72000:120000])
    led = reel.part(-0.25, 1.0).load().samples
    assert led.shape == (48000, 2) and not led[:12000].any()
    np.testing.assert_array_equal(led[12000:], whole[:36000])
    np.testing.assert_array_equal(reel.part(1.0).part(0.5, 1.0).load().samples, whole[72000:120000])
    np.testing.assert_array_equal(reel.part(2.5).load().samples, whole[120000:])
    assert len(reel.part(5.0).load().samples) == 0


def test_a_long_dub_track_is_analysed_in_memory_that_does_not_hold_it(tmp_path):
    """A minute of 8-channel 48 kHz sound is 92 MB of float samples; its analysis, read a block
    at a time, holds a small share of that (the whole file read first held all of it)."""
    from dubplate.core.audio.features import analyse_samples, cached_analysis
    from dubplate.core.media import open_audio

    path = _noise_wav(tmp_path / "reel.wav", 60, channels=8, subtype="PCM_16")
    decoded_bytes = 60 * 48000 * 8 * 4
    analyse_samples(np.zeros(16000, np.float32))  # librosa's imports and caches, once a process
    tracemalloc.start()
    analysis = cached_analysis(open_audio(path), tmp_path / "cache")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert analysis.duration == pytest.approx(60.0, abs=1e-3)
    assert len(analysis.log_mel) == 6001
    assert peak < decoded_bytes / 4, f"{peak / 1e6:.1f} MB at most held"


def test_a_file_and_its_samples_in_memory_are_one_audio_to_the_cache(tmp_path, monkeypatch):
    """The analysis cache's key is the hash of the samples as one array (as it was before
    files were read a block at a time, so earlier caches still hold); the analysis of the
    file, read in blocks that fall anywhere, is that of its samples analysed whole."""
    import hashlib
    import json

    from dubplate.core.audio import features
    from dubplate.core.audio import phones as phone_module
    from dubplate.core.media import audio as audio_module
    from dubplate.core.media import open_audio

    path = _noise_wav(tmp_path / "noise.wav", 4, rate=44100)
    samples, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    old_key = hashlib.sha256(np.ascontiguousarray(samples))
    old_key.update(json.dumps([44100, features.ANALYSIS_VERSION]).encode())
    mono = soxr.resample(samples.mean(axis=1, dtype=np.float32), 44100, 16000, quality="HQ")
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 7001)
    monkeypatch.setattr(features, "MEL_CHUNK_FRAMES", 90)
    monkeypatch.setattr(phone_module, "CHUNK_SECONDS", 1.3)
    assert features._digest(open_audio(path)) == old_key.hexdigest()[:24]
    streamed = features.analyse(open_audio(path))
    at_once = features.analyse_samples(mono.astype(np.float32))
    np.testing.assert_array_equal(streamed.phones, at_once.phones)
    np.testing.assert_array_equal(streamed.log_mel, at_once.log_mel)


@pytest.mark.parametrize("suffix", [".wav", ".mka"])
def test_samples_that_are_not_numbers_are_refused_with_their_time(tmp_path, suffix):
    """Found as the samples are read, whole or a part (libsndfile or FFmpeg): the error names
    the file and the file's time of the first bad sample."""
    from dubplate.core.media import open_audio

    samples = np.zeros((48000, 1), np.float32)
    samples[30000] = np.nan
    path = tmp_path / f"bad{suffix}"
    if suffix == ".wav":
        soundfile.write(str(path), samples, 16000, subtype="FLOAT")
    else:  # float PCM in Matroska, read by FFmpeg
        _encode(path, samples[:, 0], 16000, "pcm_f32le", "flt")
    message = rf"bad\{suffix}: audio holds NaN or infinite samples, the first at 1\.875 s"
    with pytest.raises(DubplateError, match=message):
        load_audio(path)
    with pytest.raises(DubplateError, match=message):
        open_audio(path).part(1.5, 1.0).load()
