"""Speaker-robust audio features at the video's frame times: soft phone and viseme classes from
PocketSphinx, and log-mel normalised per utterance (CMVN), averaged over each frame's interval."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from scipy.ndimage import gaussian_filter1d

from dubplate.core.audio.phones import (
    PHONE_INDEX,
    PHONES,
    VISEMES,
    PhoneDecoder,
    phone_table,
)
from dubplate.core.audio.windows import Windows
from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.media.audio import ANALYSIS_RATE, BLOCK_FRAMES, Sound, analysis_blocks
from dubplate.core.stored import load_arrays

log = logging.getLogger(__name__)

MEL_BANDS = 80
MEL_WINDOW = 400  # 25 ms at 16 kHz
MEL_HOP = 160  # 10 ms
# Mel frames worked out at a time: librosa takes ~1.5 MB of working memory per second of them.
MEL_CHUNK_FRAMES = 1000
SOFT_EDGE_FRAMES = 0.5  # Gaussian sigma, in video frames, that softens phone boundaries
# A band's spread is taken as at least this share of the typical band's: above a band-limited
# recording's top (8 kHz audio holds nothing over 4 kHz) the bands barely move, and scaling them
# to unit spread would feed the network noise. Speech's bands spread 0.65-1.4 times the median.
BAND_SPREAD_FLOOR = 0.25
ANALYSIS_VERSION = 3
TIME_TOLERANCE_S = 1e-6  # float rounding of rational frame times, far under a sample


@dataclass
class AudioAnalysis:
    """What is computed once per audio file: phone segments and the 10 ms log-mel."""

    phones: np.ndarray  # (N, 3) phone index, start s, end s
    log_mel: np.ndarray  # (T, 80) CMVN-normalised, 10 ms hop
    duration: float

    @property
    def has_speech(self) -> bool:
        return bool((self.phones[:, 0] != PHONE_INDEX["SIL"]).any())

    def speech_between(self, start: float, end: float) -> bool:
        """Whether a phone other than silence is heard between `start` and `end` seconds."""
        spoken = self.phones[:, 0] != PHONE_INDEX["SIL"]
        return bool((spoken & (self.phones[:, 2] > start) & (self.phones[:, 1] < end)).any())


def analyse(sound: Sound) -> AudioAnalysis:
    return _analyse(analysis_blocks(sound))


def analyse_samples(samples: np.ndarray) -> AudioAnalysis:
    """Phones and CMVN log-mel of 16 kHz mono samples."""
    return _analyse(
        samples[start : start + BLOCK_FRAMES] for start in range(0, len(samples), BLOCK_FRAMES)
    )


def _analyse(blocks: Iterable[np.ndarray]) -> AudioAnalysis:
    """Phones and CMVN log-mel of 16 kHz mono samples that come a block at a time: nothing
    but the features grows with the audio."""
    phones, mel, loudness = PhoneDecoder(), LogMel(), Loudness()
    count = 0
    for block in blocks:
        for analysis in (phones, mel, loudness):
            analysis.feed(block)
        count += len(block)
    log_mel = mel.finish(count)
    # CMVN over the utterance: level, microphone and voice colour drop out, what is said stays.
    # In place: a long file's features are the one thing here that grows with it.
    spread = log_mel.std(axis=0)
    spread = np.maximum(spread, BAND_SPREAD_FLOOR * np.median(spread) + 1e-5)
    log_mel -= log_mel.mean(axis=0)
    log_mel /= spread
    return AudioAnalysis(
        phones=_gate_silence(phone_table(phones.finish()), loudness.finish()),
        log_mel=log_mel,
        duration=count / ANALYSIS_RATE,
    )


class LogMel:
    """(T, MEL_BANDS) float32 log-mel of a stream fed a block at a time: the frames librosa
    centres on every hop of the whole (zeros past either end), worked out MEL_CHUNK_FRAMES at a
    time, as a whole file's spectrogram takes four times the memory of its samples."""

    def __init__(self) -> None:
        # A chunk of frames covers its hops and half a window either side.
        self.chunks = Windows(
            MEL_CHUNK_FRAMES * MEL_HOP + MEL_WINDOW - MEL_HOP,
            MEL_CHUNK_FRAMES * MEL_HOP,
            lead=MEL_WINDOW // 2,
        )
        self.frames: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> None:
        self.frames.extend(_mel_frames(chunk) for chunk in self.chunks.feed(samples))

    def finish(self, count: int) -> np.ndarray:
        """The frames of a stream of `count` samples: 1 + count // MEL_HOP."""
        done = sum(len(frames) for frames in self.frames)
        left = 1 + count // MEL_HOP - done
        tail = np.zeros((left - 1) * MEL_HOP + MEL_WINDOW, np.float32)
        rest = self.chunks.rest()
        tail[: len(rest)] = rest
        return np.concatenate([*self.frames, _mel_frames(tail)])


def _mel_frames(samples: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=np.ascontiguousarray(samples),
        sr=ANALYSIS_RATE,
        n_fft=MEL_WINDOW,
        hop_length=MEL_HOP,
        n_mels=MEL_BANDS,
        center=False,
    )
    return np.log(mel + 1e-6).T.astype(np.float32)


class Loudness:
    """RMS of each whole 10 ms hop of a stream fed a block at a time."""

    def __init__(self) -> None:
        self.hops = Windows(MEL_HOP, MEL_HOP)
        self.rms: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> None:
        hops = self.hops.feed(samples)
        self.rms.append(np.sqrt(np.einsum("ij,ij->i", hops, hops) / MEL_HOP + 1e-12))

    def finish(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, np.float32), *self.rms])


# A phone quieter than this is silence, whatever the decoder heard in it (it hears phones in
# digital silence): -60 dBFS, or 30 dB under the loud parts of the audio.
SILENCE_DBFS = -60.0
SILENCE_BELOW_LOUD_DB = 30.0


def _gate_silence(table: np.ndarray, rms: np.ndarray) -> np.ndarray:
    """`table` with the phones quieter than the gate made silence; `rms` is per 10 ms hop."""
    per_second = ANALYSIS_RATE / MEL_HOP
    loud = np.percentile(rms, 95) if len(rms) else 0.0
    floor = max(10 ** (SILENCE_DBFS / 20), loud * 10 ** (-SILENCE_BELOW_LOUD_DB / 20))
    gated = table.copy()
    for row in gated:
        first = int(row[1] * per_second)
        last = max(int(row[2] * per_second), first + 1)
        if rms[first:last].size == 0 or rms[first:last].mean() < floor:
            row[0] = PHONE_INDEX["SIL"]
    return gated


def cached_analysis(sound: Sound, cache_dir: Path | None) -> AudioAnalysis:
    """`analyse`, cached under `cache_dir` (None: not cached) by the samples themselves: a
    movie's sound read aligned to its first frame and to its start are different audio, as is
    an edited file.
    A file is read twice where its analysis is not cached yet, once for the key and once to
    analyse; both a block at a time. A cache that cannot be written is passed over, and one
    that cannot be read is written again, with a warning."""
    if cache_dir is None:
        return analyse(sound)
    entry = Path(cache_dir) / f"{_digest(sound)}.npz"
    if entry.is_file():
        try:
            cached = load_arrays(entry, ("phones", "log_mel", "duration"))
            return AudioAnalysis(cached["phones"], cached["log_mel"], float(cached["duration"]))
        except DubplateError as error:
            log.warning("%s; the audio is analysed again", error)
    analysis = analyse(sound)
    try:
        with atomic_path(entry) as temp:
            np.savez(
                temp, phones=analysis.phones, log_mel=analysis.log_mel, duration=analysis.duration
            )
    except OSError as error:
        log.warning("%s: the audio analysis is not cached (%s)", cache_dir, error)
    return analysis


def _digest(sound: Sound) -> str:
    """SHA-256 of the samples as one (n, channels) float32 array, its rate, the analysis
    version and, for a surround mix, the one channel analysed (the same key whether the samples
    are read a block at a time or held whole)."""
    digest = hashlib.sha256()
    for block in sound.blocks():
        digest.update(np.ascontiguousarray(block))
    key = [sound.rate, ANALYSIS_VERSION]
    if sound.dialogue_channel is not None:
        key.append(f"channel {sound.dialogue_channel}")
    digest.update(json.dumps(key).encode())
    return digest.hexdigest()[:24]


@dataclass
class FrameFeatures:
    times: np.ndarray  # (F,) seconds into the audio
    phones: np.ndarray  # (F, 40) share of each phone in the frame, soft edges
    visemes: np.ndarray  # (F, 11)
    mel: np.ndarray  # (F, 80)

    def matrix(self) -> np.ndarray:
        return np.concatenate([self.phones, self.visemes, self.mel], axis=1).astype(np.float32)

    def rows(self, selection: slice) -> FrameFeatures:
        """The features of the frames in `selection`."""
        return FrameFeatures(
            self.times[selection],
            self.phones[selection],
            self.visemes[selection],
            self.mel[selection],
        )

    @property
    def speech(self) -> np.ndarray:
        """(F,) frames where speech (not silence) dominates."""
        return self.phones[:, PHONE_INDEX["SIL"]] < 0.5


FEATURE_SIZE = len(PHONES) + len(VISEMES) + MEL_BANDS
VISEME_COLUMNS = slice(len(PHONES), len(PHONES) + len(VISEMES))
MEL_COLUMNS = slice(len(PHONES) + len(VISEMES), FEATURE_SIZE)


def frame_features(
    analysis: AudioAnalysis, times: np.ndarray, frame_seconds: float, pad: bool = False
) -> FrameFeatures:
    """Features for video frames centred at `times` (seconds into the audio, offset applied)."""
    if not pad:
        require_audio_for(analysis, times, frame_seconds)
    starts, ends = times - frame_seconds / 2, times + frame_seconds / 2
    phones = np.zeros((len(times), len(PHONES)), np.float32)
    for index, start, end in analysis.phones:
        overlap = np.clip(np.minimum(ends, end) - np.maximum(starts, start), 0, None)
        phones[:, int(index)] += overlap / frame_seconds
    # Outside the audio (padding) is silence.
    phones[:, PHONE_INDEX["SIL"]] += np.clip(1 - phones.sum(axis=1), 0, None)
    phones = gaussian_filter1d(phones, SOFT_EDGE_FRAMES, axis=0, mode="nearest")
    visemes = np.stack(
        [phones[:, [PHONE_INDEX[p] for p in group]].sum(axis=1) for group in VISEMES.values()],
        axis=1,
    )
    return FrameFeatures(times, phones, visemes, _mel_per_frame(analysis.log_mel, starts, ends))


def heard_within(times: np.ndarray, duration: float) -> np.ndarray:
    """(F,) bool: which frames centred at `times` (seconds into the audio) have their sound in
    an audio of `duration` seconds."""
    return (times >= -TIME_TOLERANCE_S) & (times <= duration + TIME_TOLERANCE_S)


def require_audio_for(analysis: AudioAnalysis, times: np.ndarray, frame_seconds: float) -> None:
    """Refuse frames centred at `times` that the audio does not reach into (`--pad` allows
    them): a movie's sound often ends a few ms before its last frame does, and that frame is
    still heard (woman_seated's own audio ends 20 ms into its last frame)."""
    need = float(times[-1]) + frame_seconds / 2
    if need > analysis.duration + frame_seconds + TIME_TOLERANCE_S:
        raise DubplateError(
            f"audio is {analysis.duration:.2f} s but the frames need {need:.2f} s"
            " (use --pad to treat the rest as silence)"
        )
    if float(times[0]) < -frame_seconds / 2 - TIME_TOLERANCE_S:
        raise DubplateError(
            f"the first frame plays {-float(times[0]):.2f} s before the audio starts (is"
            " --audio-offset right? use --pad to treat the gap as silence)"
        )


def _mel_per_frame(log_mel: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean of the log-mel over each video frame's interval. Each 10 ms mel frame stands for
    the hop around its centre (librosa centres frame t on sample t x hop) and counts for the
    share of it the frame covers: at 25 fps a frame's edges fall on mel centres, and a float's
    last bit must not take a whole mel frame in or out; a frame shorter than the hop (over
    100 fps) gets the one or two it lies in. 0, the utterance mean, beyond the audio."""
    hop_seconds = MEL_HOP / ANALYSIS_RATE
    count = len(log_mel)
    cumulative = np.concatenate([np.zeros((1, MEL_BANDS)), np.cumsum(log_mel, axis=0)])

    def cells_to(seconds: np.ndarray) -> np.ndarray:
        return np.clip(seconds / hop_seconds + 0.5, 0, count)

    def integral_to(cells: np.ndarray) -> np.ndarray:
        whole = np.minimum(cells.astype(int), count - 1)
        return cumulative[whole] + (cells - whole)[:, None] * log_mel[whole]

    first, last = cells_to(starts), cells_to(ends)
    covered = last - first
    heard = covered > 1e-9
    mel = np.zeros((len(starts), MEL_BANDS))
    mel[heard] = (integral_to(last[heard]) - integral_to(first[heard])) / covered[heard, None]
    return mel.astype(np.float32)
