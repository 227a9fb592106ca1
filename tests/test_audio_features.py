"""Speaker-robust audio features: phones from PocketSphinx, CMVN log-mel, frame alignment."""

from fractions import Fraction

import numpy as np
import pytest

from dubplate.core.audio import features
from dubplate.core.audio import phones as phone_module
from dubplate.core.audio.features import (
    FEATURE_SIZE,
    MEL_HOP,
    analyse,
    analyse_samples,
    cached_analysis,
    frame_features,
)
from dubplate.core.audio.phones import PHONE_INDEX, decode_phones
from dubplate.core.errors import DubplateError
from dubplate.core.media import load_audio
from dubplate.core.media.audio import ANALYSIS_RATE


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
    # Frame 99 is 4.129 s in (99 x 1001/24000), not 4.125 (99/24): its sound is the 10 ms mel
    # frames centred within its own 1001/24000 s.
    centres = (np.arange(len(analysis.log_mel)) + 0.5) * MEL_HOP / ANALYSIS_RATE
    half = float(1 / fps) / 2
    heard = (centres >= 99 * 1001 / 24000 - half) & (centres < 99 * 1001 / 24000 + half)
    np.testing.assert_allclose(features.mel[99], analysis.log_mel[heard].mean(axis=0), rtol=1e-5)


def test_audio_shorter_than_the_frames(speech):
    analysis = analyse(speech)
    times = np.arange(200) / 25  # 8 s of frames, 5 s of audio
    with pytest.raises(DubplateError, match=r"audio is 5\.0\d s but the frames need 7\.9\d s"):
        frame_features(analysis, times, 0.04)
    padded = frame_features(analysis, times, 0.04, pad=True)
    assert padded.phones[-10:, PHONE_INDEX["SIL"]].min() > 0.99
    assert np.all(padded.mel[-10:] == 0)


def test_analysis_is_cached_per_file(speech, tmp_path, monkeypatch):
    first = cached_analysis(speech, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    with monkeypatch.context() as patch:  # read back, not analysed again
        patch.setattr(features, "analyse", lambda audio: pytest.fail("analysed again"))
        again = cached_analysis(speech, tmp_path)
    np.testing.assert_array_equal(first.phones, again.phones)
    np.testing.assert_array_equal(first.log_mel, again.log_mel)
