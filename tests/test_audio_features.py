"""Speaker-robust audio features: phones from PocketSphinx, CMVN log-mel, frame alignment."""

import tracemalloc
from fractions import Fraction

import librosa
import numpy as np
import pytest
import soundfile
import soxr

from dubplate.core.a2e.predict import frame_numbers
from dubplate.core.audio import features
from dubplate.core.audio import phones as phone_module
from dubplate.core.audio.features import (
    FEATURE_SIZE,
    MEL_HOP,
    AudioAnalysis,
    analyse,
    analyse_samples,
    cached_analysis,
    frame_features,
)
from dubplate.core.audio.phones import PHONE_INDEX, decode_phones
from dubplate.core.errors import DubplateError
from dubplate.core.media import load_audio
from dubplate.core.media.audio import ANALYSIS_RATE, Audio
from tests.fixtures import write_wav


@pytest.fixture(scope="module")
def speech(shared_data):
    return load_audio(shared_data / "audio" / "en_speech_5s.wav")


def test_speech_decodes_to_ordered_phone_segments(speech):
    analysis = analyse(speech)
    assert analysis.has_speech
    starts, ends = analysis.phones[:, 1], analysis.phones[:, 2]
    assert np.all(np.diff(starts) > 0) and np.all(ends > starts)
    assert ends[-1] == pytest.approx(analysis.duration, abs=0.05)
    spoken = {int(i) for i in analysis.phones[:, 0]} - {PHONE_INDEX["SIL"]}
    assert len(spoken) > 10  # five seconds of English use many phones
    # CMVN: every mel band has zero mean and unit variance over the utterance.
    np.testing.assert_allclose(analysis.log_mel.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(analysis.log_mel.std(axis=0), 1, atol=1e-2)


def test_long_audio_is_decoded_in_chunks(speech, monkeypatch):
    monkeypatch.setattr(phone_module, "CHUNK_SECONDS", 2.0)
    utterances = []
    made = phone_module.decoder

    class Counting:
        """The decoder, counting the utterances it is given."""

        def __init__(self):
            self.engine = made()

        def start_utt(self):
            utterances.append(1)
            self.engine.start_utt()

        def __getattr__(self, name):
            return getattr(self.engine, name)

    monkeypatch.setattr(phone_module, "decoder", Counting)
    samples = speech.analysis
    segments = decode_phones(samples)
    assert len(utterances) == 3  # 5 s in utterances of at most 2 s
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    assert segments[-1].end == pytest.approx(len(samples) / ANALYSIS_RATE, abs=0.05)
    assert any(2.0 <= s.start < 4.0 for s in segments)


def test_long_audio_log_mel_is_worked_out_a_chunk_at_a_time(speech, monkeypatch):
    """In chunks of 5 s of mel frames, fed in blocks that do not fall on them, one or two
    minutes of speech: the frames librosa gives for the whole (to float rounding, over every
    chunk boundary), in memory that does not grow with the audio beyond the frames themselves."""
    monkeypatch.setattr(features, "MEL_CHUNK_FRAMES", 500)
    minute = np.tile(speech.analysis, 12)
    working = []
    for samples in (minute, np.tile(minute, 2)):
        tracemalloc.start()
        log_mel = features.LogMel()
        for start in range(0, len(samples), 12345):
            log_mel.feed(samples[start : start + 12345])
        chunked = log_mel.finish(len(samples))
        working.append(tracemalloc.get_traced_memory()[1] - 2 * chunked.nbytes)
        tracemalloc.stop()
    whole = librosa.feature.melspectrogram(
        y=samples, sr=ANALYSIS_RATE, n_fft=400, hop_length=MEL_HOP, n_mels=80
    )
    np.testing.assert_allclose(chunked, np.log(whole + 1e-6).T, atol=1e-5)
    assert working[1] < 1.1 * working[0]
    assert working[0] < 4e6  # a whole minute's spectrogram alone is 10 MB


def test_silence_has_no_speech():
    rng = np.random.default_rng(0)
    analysis = analyse_samples((rng.normal(0, 1e-4, 3 * ANALYSIS_RATE)).astype(np.float32))
    assert not analysis.has_speech


def test_frame_features_at_exact_rational_times(speech):
    analysis = analyse(speech)
    fps = Fraction(24000, 1001)
    times = np.arange(100) / float(fps)
    features = frame_features(analysis, times, float(1 / fps))
    assert features.matrix().shape == (100, FEATURE_SIZE)
    np.testing.assert_allclose(features.phones.sum(axis=1), 1.0, atol=0.02)
    assert features.speech.mean() > 0.5
    # Frame 99 is 4.129 s in (99 x 1001/24000), not 4.125 (99/24): its sound is the log-mel
    # over its own 1001/24000 s, each 10 ms mel frame holding for 5 ms either side of its centre.
    seconds = 99 * 1001 / 24000 + np.linspace(-0.5, 0.5, 2001)[:-1] * float(1 / fps)
    heard = analysis.log_mel[np.rint(seconds * ANALYSIS_RATE / MEL_HOP).astype(int)]
    np.testing.assert_allclose(features.mel[99], heard.mean(axis=0), atol=0.01)


def test_a_click_is_heard_in_the_frame_it_falls_in():
    """librosa centres mel frame t on sample t x hop: a click at 1.000 s peaks in mel frame 100,
    and in the video frame around 1.000 s, at 24 and at 120 fps (frames shorter than the hop)."""
    samples = np.random.default_rng(0).normal(0, 1e-3, 2 * ANALYSIS_RATE).astype(np.float32)
    samples[ANALYSIS_RATE] = 0.9
    analysis = analyse_samples(samples)
    assert int(np.argmax(analysis.log_mel.sum(axis=1))) == 100
    for fps in (24, 120):  # at 120, frame 120 spans 0.996-1.004 s: 1.000 s in, 1.005 s out
        mel = frame_features(analysis, np.arange(2 * fps) / fps, 1 / fps).mel
        assert int(np.argmax(mel.sum(axis=1))) == fps
        assert (np.abs(mel[1:-1]).sum(axis=1) > 0).all()  # no frame between two mel centres


def test_a_band_limited_recording_does_not_turn_its_empty_bands_into_noise(speech):
    """8 kHz audio holds nothing over 4 kHz: those bands stay near the utterance mean instead
    of being scaled to unit spread, while the bands it holds are normalised as before."""
    narrow = soxr.resample(soxr.resample(speech.analysis, ANALYSIS_RATE, 8000), 8000, ANALYSIS_RATE)
    full, band_limited = (
        analyse_samples(samples.astype(np.float32)).log_mel for samples in (speech.analysis, narrow)
    )
    top = slice(64, 80)  # over 4.3 kHz
    assert band_limited[:, top].std(axis=0).max() < 0.1
    np.testing.assert_allclose(full.std(axis=0), 1.0, atol=1e-3)
    assert np.corrcoef(full[:, 20], band_limited[:, 20])[0, 1] > 0.95


def test_a_last_utterance_too_short_to_decode_is_silence(speech, monkeypatch):
    """A chunk of a few decoder frames (30.02 s of audio, in utterances of 30 s) decodes to no
    segments, not a crash."""
    samples = speech.analysis[: 3 * ANALYSIS_RATE + 200]
    monkeypatch.setattr(phone_module, "CHUNK_SECONDS", 1.0)
    segments = decode_phones(samples)
    assert segments[-1].end <= 3.0 + 1e-6
    assert decode_phones(np.zeros(200, np.float32)) == []


def test_frames_are_heard_where_the_audio_reaches_into_them():
    """4.00 s of audio at 25 fps reaches into frame 100 (3.98-4.02 s), not 101 (4.02-4.06 s); at
    30000/1001 fps 0.5005 s of it is 15 whole frames, not 14 by float rounding."""
    analysis = AudioAnalysis(np.zeros((0, 3)), np.zeros((401, 80), np.float32), 4.0)
    frame_features(analysis, np.arange(101) / 25, 0.04)
    with pytest.raises(DubplateError, match=r"audio is 4\.00 s but the frames need 4\.06 s"):
        frame_features(analysis, np.arange(102) / 25, 0.04)
    short = AudioAnalysis(np.zeros((0, 3)), np.zeros((51, 80), np.float32), 0.5005)
    assert len(frame_numbers(short, Fraction(30000, 1001), 0.0, None)) == 15


def test_audio_shorter_than_the_frames(speech):
    analysis = analyse(speech)
    times = np.arange(200) / 25  # 8 s of frames, 5 s of audio
    with pytest.raises(DubplateError, match=r"audio is 5\.0\d s but the frames need 7\.9\d s"):
        frame_features(analysis, times, 0.04)
    padded = frame_features(analysis, times, 0.04, pad=True)
    assert padded.phones[-10:, PHONE_INDEX["SIL"]].min() > 0.99
    assert np.all(padded.mel[-10:] == 0)


def _printmaster(speech, dialogue: int, channels: int = 6) -> np.ndarray:
    """Loud tones and noise (music and effects) in every channel but `dialogue`, the speech."""
    voice = speech.samples.mean(axis=1)
    rng = np.random.default_rng(0)
    seconds = np.arange(len(voice)) / speech.rate
    music = 0.3 * np.sin(2 * np.pi * 330 * seconds) + rng.normal(0, 0.1, len(voice))
    mix = np.repeat(music[:, None], channels, axis=1).astype(np.float32)
    mix[:, dialogue] = voice
    return mix


def test_a_surround_mix_is_heard_by_its_centre_channel(speech, tmp_path, caplog):
    """Dialogue in the centre of a 5.1 WAV (its channel mask says where), music and effects in
    the other five: A2E hears the dialogue alone, as it hears the dialogue stem; averaged, the
    mix's phones would be others."""
    mix = _printmaster(speech, dialogue=2)
    path = tmp_path / "printmaster.wav"
    soundfile.write(str(path), mix, speech.rate, format="WAVEX")
    with caplog.at_level("INFO"):
        surround = load_audio(path)
    assert "printmaster.wav: 6 channels (FL FR FC LFE BL BR): the centre, channel 3" in caplog.text
    heard = analyse(surround)
    stem = analyse(Audio(surround.samples[:, 2:3], speech.rate, "stem"))
    np.testing.assert_array_equal(heard.phones, stem.phones)
    np.testing.assert_allclose(heard.log_mel, stem.log_mel, atol=1e-4)
    averaged = analyse(Audio(mix.mean(axis=1, keepdims=True), speech.rate, "averaged"))
    assert not np.array_equal(averaged.phones, stem.phones)
    # Cached, it is the centre's analysis too, apart from the same samples' averaged one.
    cache = tmp_path / "cache"
    unlabelled = Audio(surround.samples, speech.rate, "same samples, no layout")
    assert cached_analysis(unlabelled, cache).phones.tolist() == averaged.phones.tolist()
    assert cached_analysis(surround, cache).phones.tolist() == stem.phones.tolist()
    assert len(list(cache.glob("*.npz"))) == 2


def test_channels_without_a_declared_centre_are_averaged(speech, tmp_path, caplog):
    """Six channels with no channel mask: a field recorder's tracks as well as a mix, so nothing
    is guessed and every channel is heard."""
    path = write_wav(tmp_path / "recorder.wav", _printmaster(speech, dialogue=2), speech.rate)
    with caplog.at_level("INFO"):
        tracks = load_audio(path)
    assert tracks.dialogue_channel is None
    assert "recorder.wav: 6 channels and no centre among them" in caplog.text


@pytest.mark.parametrize("channels", [6, 8])
def test_a_surround_ogg_is_heard_by_its_centre_in_vorbis_order(tmp_path, channels, caplog):
    """Vorbis orders 5.1 and 7.1 with the centre second (L C R ...), which libsndfile hands on
    as it is: FFmpeg decodes it, naming its centre. Each channel written carries its own level:
    the centre's is 0.2. Clicks make Vorbis switch block sizes, which moves its frames' stamps
    back and forth: no gap, and every sample is read."""
    seconds = np.arange(48000 * 2) / 48000
    tone = 0.8 * np.sin(2 * np.pi * 440 * seconds)
    tone[::12000] = 1.0
    levels = 0.1 * np.arange(1, channels + 1)
    path = tmp_path / "mix.ogg"
    soundfile.write(str(path), (tone[:, None] * levels).astype(np.float32), 48000)
    with caplog.at_level("WARNING"):
        mix = load_audio(path)
    assert mix.samples.shape == (len(tone), channels) and "jump" not in caplog.text
    centre = mix.samples[1000:-1000, mix.dialogue_channel]
    assert np.percentile(np.abs(centre), 99) == pytest.approx(0.8 * 0.2, abs=0.02)


def test_channels_that_cancel_are_heard_by_the_first(speech, caplog):
    """One channel the other inverted: averaged, the voice is silence and no phone is heard."""
    voice = speech.samples.mean(axis=1)
    inverted = Audio(np.stack([voice, -voice], axis=1), speech.rate, "inverted.wav")
    with caplog.at_level("WARNING"):
        heard = analyse(inverted)
    np.testing.assert_array_equal(heard.phones, analyse(speech).phones)
    assert "inverted.wav: its channels cancel when averaged" in caplog.text
    caplog.clear()
    hiss = np.random.default_rng(0).normal(0, 1e-5, len(voice)).astype(np.float32)  # -100 dBFS
    with caplog.at_level("WARNING"):
        analyse(Audio(np.stack([hiss, -hiss], axis=1), speech.rate, "quiet.wav"))
    assert "cancel" not in caplog.text  # silence either way


def test_the_cache_tells_the_same_file_read_two_ways_apart(speech, tmp_path, caplog):
    """A movie's sound aligned to its first frame is other audio than from its start: the cache
    is keyed by the samples, not the file. An unwritable cache is passed over."""
    first = cached_analysis(speech, tmp_path)
    later = cached_analysis(speech.part(0.5), tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert later.duration == pytest.approx(first.duration - 0.5, abs=1e-3)
    blocked = tmp_path / "not_a_dir"
    blocked.write_text("")
    again = cached_analysis(speech, blocked)
    np.testing.assert_array_equal(again.log_mel, first.log_mel)
    assert "not_a_dir: the audio analysis is not cached" in caplog.text


def test_analysis_is_cached_per_file(speech, tmp_path, monkeypatch):
    first = cached_analysis(speech, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    with monkeypatch.context() as patch:  # read back, not analysed again
        patch.setattr(features, "analyse", lambda audio: pytest.fail("analysed again"))
        again = cached_analysis(speech, tmp_path)
    np.testing.assert_array_equal(first.phones, again.phones)
    np.testing.assert_array_equal(first.log_mel, again.log_mel)


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut short", b"not an archive"])
def test_a_damaged_cached_analysis_is_made_again(speech, tmp_path, caplog, damage):
    first = cached_analysis(speech, tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(damage)
    again = cached_analysis(speech, tmp_path)
    assert f"{entry}: missing or damaged" in caplog.text
    np.testing.assert_array_equal(again.log_mel, first.log_mel)
    with np.load(entry) as cached:  # written anew
        np.testing.assert_array_equal(cached["phones"], first.phones)
