"""Audio at any rate and channel count, with a 16 kHz mono copy for analysis."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr

from dubplate.core.errors import DubplateError

log = logging.getLogger(__name__)

ANALYSIS_RATE = 16000


@dataclass(frozen=True)
class Audio:
    """Original samples, (n, channels) float32 at `rate`, kept for muxing back untouched."""

    samples: np.ndarray
    rate: int
    source: str

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration(self) -> Fraction:
        return Fraction(self.samples.shape[0], self.rate)

    @cached_property
    def analysis(self) -> np.ndarray:
        """Mono float32 at 16 kHz: channels averaged, then resampled (soxr, high quality)."""
        mono = self.samples.mean(axis=1, dtype=np.float32)
        if self.rate == ANALYSIS_RATE:
            return mono
        return soxr.resample(mono, self.rate, ANALYSIS_RATE, quality="HQ").astype(np.float32)


def load_audio(path: str | Path) -> Audio:
    """WAV, FLAC, AIFF and OGG through libsndfile; anything else (movies, MP3) through FFmpeg."""
    path = Path(path)
    if not path.is_file():
        raise DubplateError(f"{path}: audio file not found")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError:
        audio = decode_audio_stream(path)
        if audio is None:
            raise DubplateError(f"{path}: no audio stream") from None
        return audio
    return _checked(Audio(samples, int(rate), str(path)))


def decode_audio_stream(path: str | Path) -> Audio | None:
    """The first audio stream of a media file, or None when it has none."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            # Planar float keeps every channel apart at its own rate: no conversion but the type.
            resampler = av.AudioResampler(format="fltp")
            chunks = []
            for frame in container.decode(stream):
                for planar in resampler.resample(frame):
                    chunks.append(planar.to_ndarray())
            rate = stream.codec_context.sample_rate
    except av.error.FFmpegError as error:
        raise DubplateError(f"{path}: cannot decode audio ({error})") from error
    if not chunks:
        raise DubplateError(f"{path}: audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)
    return _checked(Audio(np.ascontiguousarray(samples), int(rate), str(path)))


def _checked(audio: Audio) -> Audio:
    if audio.samples.shape[0] == 0:
        raise DubplateError(f"{audio.source}: audio holds no samples")
    if not np.isfinite(audio.samples).all():
        raise DubplateError(f"{audio.source}: audio holds NaN or infinite samples")
    log.info(
        "audio: %s, %d Hz, %d channel(s), %.2f s",
        audio.source,
        audio.rate,
        audio.channels,
        float(audio.duration),
    )
    return audio
