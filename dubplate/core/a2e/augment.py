"""Voice augmentation: the same words in other voices and rooms, so that the A2E network learns
what is said rather than who says it."""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy.signal import fftconvolve

from dubplate.core.media.audio import ANALYSIS_RATE


@dataclass(frozen=True)
class Voice:
    """One augmentation: applied to 16 kHz audio, and (formant) to its log-mel."""

    pitch_semitones: float
    tempo: float  # > 1: faster; frame times scale by 1 / tempo
    formant: float  # spectral-envelope warp of the mel axis
    snr_db: float
    reverb_s: float  # RT60; 0 for a dry voice

    def apply(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = samples
        if self.pitch_semitones:
            out = librosa.effects.pitch_shift(out, sr=ANALYSIS_RATE, n_steps=self.pitch_semitones)
        if self.tempo != 1.0:
            out = librosa.effects.time_stretch(out, rate=self.tempo)
        if self.reverb_s > 0:
            out = _reverberate(out, self.reverb_s, rng)
        power = float(np.mean(out**2)) + 1e-12
        out = out + rng.normal(0, np.sqrt(power / 10 ** (self.snr_db / 10)), out.shape)
        return out.astype(np.float32)

    def warp_mel(self, log_mel: np.ndarray) -> np.ndarray:
        """Shift the spectral envelope: band b takes the value of band b / formant."""
        if self.formant == 1.0:
            return log_mel
        bands = np.arange(log_mel.shape[1])
        source = np.clip(bands / self.formant, 0, bands[-1])
        return np.stack([np.interp(source, bands, frame) for frame in log_mel]).astype(np.float32)


DRY = Voice(0.0, 1.0, 1.0, 60.0, 0.0)


def random_voice(rng: np.random.Generator) -> Voice:
    return Voice(
        pitch_semitones=float(rng.uniform(-5, 5)),
        tempo=float(rng.uniform(0.85, 1.15)),
        formant=float(rng.uniform(0.88, 1.12)),
        snr_db=float(rng.uniform(12, 35)),
        reverb_s=float(rng.choice([0.0, rng.uniform(0.15, 0.6)])),
    )


def _reverberate(samples: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise (60 dB down after rt60), mixed in."""
    length = int(rt60 * ANALYSIS_RATE)
    t = np.arange(length) / ANALYSIS_RATE
    response = rng.normal(0, 1, length) * 10 ** (-3 * t / rt60)
    response[0] = 1.0
    wet = fftconvolve(samples, response / np.abs(response).sum() * 4, mode="full")[: len(samples)]
    return 0.6 * samples + 0.4 * wet
