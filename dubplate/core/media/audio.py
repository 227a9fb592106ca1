"""Audio at any rate and channel count, with a 16 kHz mono copy for analysis."""

from __future__ import annotations

import logging
import re
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
    _refuse_truncated(path)
    return _checked(Audio(samples, int(rate), str(path)))


# libsndfile reads what a cut-short WAV or AIFF holds without complaint, but its log says the
# sample chunk's size in the header and what the file holds: "data : 96000 (should be 47978)".
_CHUNK_SIZE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = {0, 0xFFFFFFFF}  # what streaming writers put before they know the length


def _refuse_truncated(path: Path) -> None:
    for declared, held in _CHUNK_SIZE.findall(soundfile.info(str(path)).extra_info):
        declared, held = int(declared), int(held)
        if declared not in _UNKNOWN_SIZES and declared - held > 1:  # 1: a chunk's pad byte
            raise DubplateError(
                f"{path}: truncated: its header says {declared} bytes of samples, the file holds"
                f" {held}"
            )


def decode_audio_stream(path: str | Path, starts_at: Fraction | None = None) -> Audio | None:
    """The first audio stream of a media file, or None when it has none; its first sample is
    the one played at `starts_at` seconds on the file's clock (default: where the file starts,
    as players count), silence where the stream starts later. A movie's audio and video streams
    need not start together, and a plate times its frames from the first one."""
    first_time = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if starts_at is None:
                starts_at = Fraction(container.start_time or 0, av.time_base)
            # Planar float keeps every channel apart at its own rate: no conversion but the type.
            resampler = av.AudioResampler(format="fltp")
            chunks = []
            for frame in container.decode(stream):
                if first_time is None and frame.pts is not None:
                    first_time = Fraction(frame.pts) * frame.time_base
                for planar in resampler.resample(frame):
                    chunks.append(planar.to_ndarray())
            rate = stream.codec_context.sample_rate
    except av.error.FFmpegError as error:
        raise DubplateError(f"{path}: cannot decode audio ({error})") from error
    except ValueError as error:  # PyAV's resampler, fed a stream whose layout changes part way
        raise DubplateError(f"{path}: its audio changes format part way ({error})") from error
    if not chunks:
        raise DubplateError(f"{path}: audio stream holds no samples")
    if len({chunk.shape[0] for chunk in chunks}) > 1:
        raise DubplateError(f"{path}: its audio changes channel count part way")
    samples = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)
    audio = Audio(np.ascontiguousarray(samples), int(rate), str(path))
    if first_time is not None and first_time != starts_at:
        log.info(
            "%s: the audio stream starts %.1f ms %s %.3f s; aligned to it",
            path,
            abs(float(starts_at - first_time)) * 1000,
            "before" if first_time < starts_at else "after",
            float(starts_at),
        )
        audio = from_offset(audio, float(starts_at - first_time))
    return _checked(audio)


def from_offset(audio: Audio, offset: float) -> Audio:
    """The audio that plays from `offset` seconds into it: cut by a positive offset, led by
    silence for a negative one."""
    shift = int(round(offset * audio.rate))
    if shift >= 0:
        samples = audio.samples[shift:]
    else:
        silence = np.zeros((-shift, audio.channels), np.float32)
        samples = np.concatenate([silence, audio.samples])
    return Audio(samples, audio.rate, audio.source)


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
