"""Audio at any rate and channel count: samples in memory (`Audio`) or a file read a block at a
time (`AudioFile`), with a 16 kHz mono stream of either for analysis."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import soundfile
import soxr

from dubplate.core.errors import DubplateError

log = logging.getLogger(__name__)

ANALYSIS_RATE = 16000
BLOCK_FRAMES = 1 << 16  # samples of each channel in a block: 1.4 s at 48 kHz
# A file that decodes this much shorter than its header says is cut short (both must be
# exceeded): beyond an encoder's delay and padding (AAC decodes 20 ms over its declared length
# here), and beyond what a length guessed from an MP3's size without a frame count may miss.
TRUNCATED_BY_S = 0.25
TRUNCATED_BY_SHARE = 0.02
# libsndfile's frame count for a file whose header does not know it (a FLAC written to a pipe).
UNKNOWN_FRAMES = 2**63 - 1
# Containers whose header states the length they were written with (Matroska's segment
# duration, an MP4's movie header), where FFmpeg would otherwise estimate it.
STATED_LENGTH_FORMATS = ("matroska", "mov")


class Sound(Protocol):
    """What analysing and muxing audio need of it: its samples a block at a time, in order."""

    @property
    def source(self) -> str: ...

    @property
    def rate(self) -> int: ...

    @property
    def channels(self) -> int: ...

    @property
    def dialogue_channel(self) -> int | None:
        """The one channel analysis hears: a surround mix's centre, where its dialogue is;
        None: every channel, averaged."""
        ...

    @property
    def layout(self) -> str | None:
        """FFmpeg's name for the speakers the file declares its channels for ("4.0" for LCRS,
        "5.1(side)"); None where it only counts them."""
        ...

    def blocks(self) -> Iterator[np.ndarray]:
        """(n, channels) float32 blocks, C-contiguous, from the first sample to the last."""
        ...

    def part(self, start: float, seconds: float | None = None) -> Sound:
        """The sound that plays from `start` seconds into this one, for `seconds` at most:
        cut by a positive start, led by silence for a negative one."""
        ...


@dataclass(frozen=True)
class Audio:
    """Original samples, (n, channels) float32 at `rate`, kept for muxing back untouched."""

    samples: np.ndarray
    rate: int
    source: str
    dialogue_channel: int | None = None
    layout: str | None = None

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration(self) -> Fraction:
        return Fraction(self.samples.shape[0], self.rate)

    def blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.samples.shape[0], BLOCK_FRAMES):
            yield self.samples[start : start + BLOCK_FRAMES]

    def part(self, start: float, seconds: float | None = None) -> Audio:
        shift = round(start * self.rate)
        count = None if seconds is None else max(round(seconds * self.rate), 0)
        if shift >= 0:
            samples = self.samples[shift:][:count]
        else:
            silence = np.zeros((-shift, self.channels), np.float32)
            samples = np.concatenate([silence, self.samples])[:count]
        return dataclasses.replace(self, samples=samples)

    @cached_property
    def analysis(self) -> np.ndarray:
        """Mono float32 at 16 kHz (`analysis_blocks`, joined)."""
        return np.concatenate([np.zeros(0, np.float32), *analysis_blocks(self)])


@dataclass(frozen=True)
class AudioFile:
    """An audio file, or a media file's default audio stream, read a block at a time when its
    samples are needed: a reel's dub track is gigabytes of float samples (2.8 GB for two hours
    at 48 kHz stereo), and a shot uses seconds of it. `open_audio` makes one."""

    path: Path
    rate: int
    channels: int
    dialogue_channel: int | None = None
    # FFmpeg's index of the audio stream read (`_audio_stream`); libsndfile's files have one.
    stream: int = 0
    # Where FFmpeg decodes it: the file's time its first sample plays at (players count from
    # the file's start; a plate from its first frame). None: libsndfile reads it.
    aligned_to: Fraction | None = None
    lead: int = 0  # samples of silence before the file's
    skip: int = 0  # samples of the file left out at its start
    length: int | None = None  # samples in all, silence included; None: to the file's end
    layout: str | None = None  # see `Sound.layout`

    @property
    def source(self) -> str:
        return str(self.path)

    def blocks(self) -> Iterator[np.ndarray]:
        remaining = self.length
        for block in self._unlimited_blocks():
            if remaining is not None:
                block, remaining = block[:remaining], remaining - len(block)
            if len(block):
                yield block
            if remaining is not None and remaining <= 0:
                return

    def _unlimited_blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.lead, BLOCK_FRAMES):
            yield np.zeros((min(BLOCK_FRAMES, self.lead - start), self.channels), np.float32)
        if self.aligned_to is None:
            yield from _libsndfile_blocks(self.path, self.skip)
        else:
            yield from _ffmpeg_blocks(
                self.path, self.stream, self.aligned_to, self.skip, self.channels
            )

    def part(self, start: float, seconds: float | None = None) -> AudioFile:
        shift = round(start * self.rate)
        lead = max(self.lead - shift, 0)
        skip = self.skip + max(shift - self.lead, 0)
        length = None if self.length is None else max(self.length - shift, 0)
        if seconds is not None:
            wanted = max(round(seconds * self.rate), 0)
            length = wanted if length is None else min(length, wanted)
        return dataclasses.replace(self, lead=lead, skip=skip, length=length)

    def load(self) -> Audio:
        """Every sample, in memory."""
        blocks = list(self.blocks())
        samples = np.concatenate(blocks) if blocks else np.zeros((0, self.channels), np.float32)
        return Audio(samples, self.rate, self.source, self.dialogue_channel, self.layout)


def analysis_blocks(sound: Sound) -> Iterator[np.ndarray]:
    """`sound` as mono float32 at 16 kHz, a block at a time: its channels averaged, or a surround
    mix's centre taken (`dialogue_channel`), then resampled (soxr, high quality)."""
    centre = sound.dialogue_channel
    if centre is None:
        mono = _averaged(sound)
    else:
        mono = (np.ascontiguousarray(block[:, centre]) for block in sound.blocks())
    return resampled_blocks(mono, sound.rate, ANALYSIS_RATE, "HQ")


# Averaged channels this much quieter than the channels themselves cancel: one is the other
# inverted (a mastering fault), and their mean is silence where the voice is. Under the floor
# (-80 dBFS), a block is silence either way.
CANCELLED_POWER = 0.01
CANCELLED_FLOOR = 1e-8


def _averaged(sound: Sound) -> Iterator[np.ndarray]:
    """Each block's channels averaged; the first channel alone for a block where they cancel."""
    warned = False
    for block in sound.blocks():
        mono = block.mean(axis=1, dtype=np.float32)
        if block.shape[1] > 1 and _cancelled(block, mono):
            if not warned:
                log.warning(
                    "%s: its channels cancel when averaged (one inverted?); the first is heard"
                    " alone where they do",
                    sound.source,
                )
                warned = True
            mono = np.ascontiguousarray(block[:, 0])
        yield mono


def _cancelled(block: np.ndarray, mono: np.ndarray) -> bool:
    """Whether `block`'s channels cancel in their average `mono` (float32 squares, summed in
    float64: no float64 copy of the block)."""
    power = float(np.mean(np.square(block), dtype=np.float64))
    return power > CANCELLED_FLOOR and np.mean(np.square(mono), dtype=np.float64) < (
        CANCELLED_POWER * power
    )


def resampled_blocks(
    blocks: Iterable[np.ndarray], rate: int, to_rate: int, quality: str
) -> Iterator[np.ndarray]:
    """float32 `blocks` ((n,) mono or (n, channels)) at `rate`, resampled to `to_rate` by soxr
    as a stream: the samples resampling the whole at once would give, to the bit."""
    blocks = iter(blocks)
    first = next(blocks, None)
    if first is None:
        return
    if rate == to_rate:
        yield first
        yield from blocks
        return
    channels = 1 if first.ndim == 1 else first.shape[1]
    resampler = soxr.ResampleStream(rate, to_rate, channels, "float32", quality=quality)
    for block in itertools.chain([first], blocks):
        yield resampler.resample_chunk(block)
    yield resampler.resample_chunk(np.zeros_like(first[:0]), last=True)


def open_audio(path: str | Path) -> AudioFile:
    """What libsndfile reads (WAV, FLAC, AIFF, OGG, and MP3 from its 1.1) through it; anything
    else (movies, Matroska) through FFmpeg.
    Only the header is read here; the samples are checked as they are read."""
    path = Path(path)
    if not path.is_file():
        raise DubplateError(f"{path}: audio file not found")
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError:
        return _ffmpeg_audio(path)
    if _LENGTH_GUESSED.search(info.extra_info):
        log.info(
            "%s: an MP3 without a Xing or VBRI header, whose length libsndfile guesses from its"
            " first frame and stops reading at; decoded to its end by FFmpeg",
            path,
        )
        return _ffmpeg_audio(path)
    _refuse_truncated(path, info.extra_info)
    if info.frames == 0:
        raise DubplateError(f"{path}: audio holds no samples")
    if info.channels > 2 and info.format == "OGG":
        log.info(
            "%s: %d channels in Ogg, which libsndfile gives in Vorbis's order; decoded by FFmpeg,"
            " in the order its layout names",
            path,
            info.channels,
        )
        return _ffmpeg_audio(path)
    _log_opened(path, info.samplerate, info.channels, info.duration)
    # libsndfile keeps a WAV's, FLAC's or AIFF's own order, which is the one FFmpeg names.
    layout, names = _speakers(path) if info.channels > 2 else (None, [])
    centre = _dialogue_channel(path, names, info.channels)
    return AudioFile(path, int(info.samplerate), int(info.channels), centre, layout=layout)


# libsndfile's log of an MP3 without a Xing or VBRI header (which give its frame count): it
# then takes the file for constant bitrate at its first frame's, and a variable-bitrate file
# (6 s of speech read as 2.4) ends where that guess does.
_LENGTH_GUESSED = re.compile(r"^\s*bitrate mode\s*:\s*constant\s*$", re.MULTILINE)


def _speakers(path: Path) -> tuple[str | None, list[str]]:
    """The layout (`_declared`) and channel names of the file's header as FFmpeg reads it (a
    WAV's channel mask, a format's fixed order)."""
    try:
        with av.open(str(path)) as container:
            return _declared(container.streams.audio[0].layout)
    except (av.error.FFmpegError, IndexError):
        return None, []


def _declared(layout: av.AudioLayout) -> tuple[str | None, list[str]]:
    """The layout's name where it names the speakers of more than two channels in an order
    FFmpeg names (None: each channel is "NONE", or mono or stereo, a Lt/Rt downmix included,
    which their count says), and its channels' names."""
    names = [channel.name for channel in layout.channels]
    if len(names) <= 2 or "NONE" in names:
        return None, names
    try:
        named = av.AudioLayout(layout.name)
    except (ValueError, UnicodeDecodeError):  # a custom order, which FFmpeg only counts
        return None, names
    return (layout.name if [c.name for c in named.channels] == names else None), names


def _dialogue_channel(path: Path, names: list[str], channels: int) -> int | None:
    """The front centre of a file of more than two channels whose layout names one: where a mix
    carries its dialogue, apart from the music and effects that the others would add to what
    A2E hears. Channels without a declared layout (a field recorder's, or a WAV without a
    channel mask) are averaged."""
    if channels <= 2:
        return None
    if "FC" in names:
        centre = names.index("FC")
        log.info(
            "audio: %s: %d channels (%s): the centre, channel %d, is analysed: a mix carries its"
            " dialogue there",
            path,
            channels,
            " ".join(names),
            centre + 1,
        )
        return centre
    log.info(
        "audio: %s: %d channels and no centre among them (%s); averaged for analysis",
        path,
        channels,
        " ".join(names) or "no layout",
    )
    return None


def _audio_stream(container: av.container.InputContainer, path: Path):
    """The audio stream a player plays: the one marked default, else the first; which one is
    said where there are several (a guide track beside the mix, another language)."""
    streams = container.streams.audio
    marked = [s for s in streams if s.disposition & av.stream.Disposition.default]
    chosen = marked[0] if marked else streams[0]
    if len(streams) > 1:
        log.info(
            "%s: %d audio streams; reading stream %d (%s%s)",
            path,
            len(streams),
            chosen.index,
            chosen.metadata.get("title") or chosen.metadata.get("language") or "untitled",
            ", marked default" if marked else ", the first: none is marked default",
        )
    return chosen


def _ffmpeg_audio(path: Path) -> AudioFile:
    audio = open_audio_stream(path)
    if audio is None:
        raise DubplateError(f"{path}: no audio stream")
    return audio


def load_audio(path: str | Path) -> Audio:
    """The whole of an audio file in memory (`open_audio`, read)."""
    return open_audio(path).load()


def open_audio_stream(path: str | Path, starts_at: Fraction | None = None) -> AudioFile | None:
    """A media file's audio stream (`_audio_stream`: the default one), or None when it has
    none; its first sample is the one played at `starts_at` seconds on the file's clock
    (default: where the file starts, as players count), silence where the stream starts later.
    A movie's audio and video streams need not start together, and a plate times its frames
    from the first one."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = _audio_stream(container, path)
            if starts_at is None:
                starts_at = Fraction(container.start_time or 0, av.time_base)
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            seconds = float(container.duration or 0) / av.time_base
            layout, names = _declared(stream.layout)
            index = stream.index
    except av.error.FFmpegError as error:
        raise DubplateError(f"{path}: cannot decode audio ({error})") from error
    if not rate or not channels:
        raise DubplateError(f"{path}: its audio stream gives no sample rate or channel count")
    _log_opened(path, rate, channels, seconds)
    centre = _dialogue_channel(path, names, channels)
    return AudioFile(
        path, int(rate), int(channels), centre, index, aligned_to=starts_at, layout=layout
    )


def decode_audio_stream(path: str | Path, starts_at: Fraction | None = None) -> Audio | None:
    """`open_audio_stream`, read whole into memory."""
    stream = open_audio_stream(path, starts_at)
    if stream is None:
        return None
    audio = stream.load()
    if audio.samples.shape[0] == 0:
        raise DubplateError(
            f"{path}: its audio holds no samples from {float(stream.aligned_to):.3f} s on"
        )
    return audio


def _log_opened(path: Path, rate: int, channels: int, seconds: float) -> None:
    log.info("audio: %s, %d Hz, %d channel(s), %.2f s", path, rate, channels, seconds)


# libsndfile reads what a cut-short WAV or AIFF holds without complaint, but its log says the
# sample chunk's size in the header and what the file holds: "data : 96000 (should be 47978)".
_CHUNK_SIZE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = {0, 0xFFFFFFFF}  # what streaming writers put before they know the length


def _refuse_truncated(path: Path, header_log: str) -> None:
    for declared, held in _CHUNK_SIZE.findall(header_log):
        declared, held = int(declared), int(held)
        if declared not in _UNKNOWN_SIZES and declared - held > 1:  # 1: a chunk's pad byte
            raise DubplateError(
                f"{path}: truncated: its header says {declared} bytes of samples, the file holds"
                f" {held}"
            )


def _libsndfile_blocks(path: Path, skip: int) -> Iterator[np.ndarray]:
    try:
        with soundfile.SoundFile(str(path)) as file:
            if skip >= file.frames:
                return
            file.seek(skip)
            while True:
                block = file.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not len(block):
                    break
                yield _finite(block, path, file.tell() - len(block), file.samplerate)
            if file.frames < UNKNOWN_FRAMES:
                _refuse_short(path, file.frames / file.samplerate, file.tell() / file.samplerate)
    except soundfile.LibsndfileError as error:
        raise DubplateError(f"{path}: cannot read audio ({error})") from error


def _ffmpeg_blocks(
    path: Path, stream_index: int, aligned_to: Fraction, skip: int, channels: int
) -> Iterator[np.ndarray]:
    """Decoded blocks of the audio stream from `aligned_to` on, `skip` samples left out: a
    stream that starts before `aligned_to` is cut, one that starts after it is led by silence.
    FFmpeg seeks to packets, not samples, so what is skipped is decoded and dropped. A gap in
    the stream's timestamps (a camera's dropout, packets lost in a capture) is filled with
    silence, with a warning: joined end to end, what follows would run ahead of the picture."""
    pending: list[np.ndarray] = []
    decoded = held = 0  # decoded: samples of the stream's clock from its first, gaps filled
    starts = None  # the file's time of the stream's first sample, in samples
    gaps: list[tuple[float, float]] = []

    def take(samples: np.ndarray) -> None:
        nonlocal skip, held
        if skip < 0:
            pending.append(np.zeros((-skip, channels), np.float32))
            held, skip = held - skip, 0
        dropped = min(skip, len(samples))
        skip -= dropped
        pending.append(samples[dropped:])
        held += len(samples) - dropped

    try:
        with av.open(str(path)) as container:
            stream = container.streams[stream_index]
            rate = stream.codec_context.sample_rate
            declared = _declared_seconds(container)
            # Packed float, no conversion but the type (PyAV reads 8 planar channels as 9
            # planes, and crashes on them).
            resampler = av.AudioResampler(format="flt")
            # Vorbis's decoder stamps its frames up to a block's overlap off as its block size
            # changes (448 samples, back and forth, at every transient): no gap.
            stamps_kept = stream.codec_context.name != "vorbis"
            for frame in container.decode(stream):
                if frame.pts is not None:
                    time = Fraction(frame.pts) * frame.time_base
                    if starts is None:
                        skip += _alignment_shift(path, time, aligned_to, rate)
                        starts = round(time * rate)
                    gap = round(time * rate) - (starts + decoded)
                    if stamps_kept and gap > CLOCK_JUMP_S * rate:
                        gaps.append(((starts + decoded) / rate, gap / rate))
                        take(np.zeros((gap, channels), np.float32))
                        decoded += gap
                for packed in resampler.resample(frame):
                    if len(packed.layout.channels) != channels:
                        raise DubplateError(f"{path}: its audio changes channel count part way")
                    interleaved = packed.to_ndarray().reshape(-1, channels)
                    samples = _finite(interleaved, path, (starts or 0) + decoded, rate)
                    decoded += len(samples)
                    take(samples)
                if held >= BLOCK_FRAMES:
                    yield np.concatenate(pending)
                    pending, held = [], 0
    except av.error.FFmpegError as error:
        raise DubplateError(f"{path}: cannot decode audio ({error})") from error
    except ValueError as error:  # PyAV's resampler, fed a stream whose layout changes part way
        raise DubplateError(f"{path}: its audio changes format part way ({error})") from error
    if decoded == 0:
        raise DubplateError(f"{path}: audio stream holds no samples")
    _log_gaps(path, gaps)
    if declared is not None:
        _refuse_short(path, declared, (max(starts or 0, 0) + decoded) / rate)
    if held:
        yield np.concatenate(pending)


# A jump in an audio stream's timestamps this small is their rounding (Matroska's are whole
# milliseconds), not a gap: a fifth of a frame at 25 fps.
CLOCK_JUMP_S = 0.008


def _log_gaps(path: Path, gaps: list[tuple[float, float]]) -> None:
    for at, seconds in gaps[:3]:
        log.warning(
            "%s: the audio's timestamps jump %+.3f s at %.3f s (a dropout, or lost packets);"
            " filled with silence, so that what follows keeps to its time",
            path,
            seconds,
            at,
        )
    if len(gaps) > 3:
        log.warning("%s: %d gaps in the audio's timestamps in all", path, len(gaps))


def _refuse_short(path: Path, declared: float, held: float) -> None:
    """Refuse a file that decodes to `held` seconds where its header says `declared`: a copy cut
    short, which decoders read as far as it goes."""
    if declared - held > max(TRUNCATED_BY_S, TRUNCATED_BY_SHARE * declared):
        raise DubplateError(
            f"{path}: truncated: its header says {declared:.2f} s of audio, the file holds"
            f" {held:.2f} s"
        )


def _declared_seconds(container: av.container.InputContainer) -> float | None:
    """Where a file's one stream, its audio, ends by its header (Matroska's segment duration, an
    MP4's movie header, both from the file's time 0), which FFmpeg decodes short without
    complaint where the file was cut; None where the length is FFmpeg's estimate, or where
    another stream (video, another track, cover art) may be what the length is of."""
    stated = container.format.name.split(",")[0] in STATED_LENGTH_FORMATS
    if not stated or len(container.streams) != 1 or not container.duration:
        return None
    return container.duration / av.time_base


def _alignment_shift(path: Path, first_time: Fraction, aligned_to: Fraction, rate: int) -> int:
    """Samples to leave out (negative: silence to put first) so that the stream starts at
    `aligned_to` where its first sample plays at `first_time`."""
    if first_time != aligned_to:
        log.info(
            "%s: the audio stream starts %.1f ms %s %.3f s; aligned to it",
            path,
            abs(float(aligned_to - first_time)) * 1000,
            "before" if first_time < aligned_to else "after",
            float(aligned_to),
        )
    return round(float(aligned_to - first_time) * rate)


def _finite(block: np.ndarray, path: Path, first: int, rate: int) -> np.ndarray:
    """`block`, whose first sample is the file's `first`, as C-contiguous float32; refused
    where a sample is not a number, with the file's time of the first such."""
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        seconds = (first + int(np.argmin(finite))) / rate
        raise DubplateError(
            f"{path}: audio holds NaN or infinite samples, the first at {seconds:.3f} s"
        )
    return np.ascontiguousarray(block, dtype=np.float32)
