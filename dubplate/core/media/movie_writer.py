"""Writing movies through FFmpeg (PyAV), with the audio muxed in; a file appears only when whole."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.media.audio import Sound, resampled_blocks
from dubplate.core.media.yuv import YuvEncoding

log = logging.getLogger(__name__)

AUDIO_CHUNK = 1024
VARIABLE_RATE_TIME_BASE = Fraction(1, 90000)  # MPEG's clock: any frame rate's times to 11 us


@dataclass(frozen=True)
class AudioCodec:
    encoder: str
    sample_format: str  # s32 holds 24-bit PCM
    max_rate: int = 384000
    # The speaker layouts its stream carries by name in its container; None: any.
    named: tuple[str, ...] | None = None
    # Its container stores no layout: the stream is read back with the codec's own for its
    # count of channels, whatever it was tagged with (FLAC in MP4).
    fixed: dict[int, str] | None = None


# The layouts FFmpeg's AAC in MP4 is read back with by name (PyAV 18.1, tried one by one); others
# (5.1(side), 7.1(wide)) come back as a count of channels, which players map by guess.
AAC = AudioCodec(
    "aac",
    "fltp",
    max_rate=96000,
    named=("mono", "stereo", "2.1", "3.0", "3.0(back)", "4.0", "quad", "5.0", "5.1", "7.1"),
)
PCM = AudioCodec("pcm_s24le", "s32")
FLAC = AudioCodec("flac", "s32")
# FFmpeg's ALAC encoder takes these layouts only.
ALAC = AudioCodec(
    "alac",
    "s32p",
    named=("mono", "stereo", "3.0", "4.0", "5.0", "5.1", "6.1(back)", "7.1(wide)"),
)
# In MP4, FLAC's own channel order for its count, whatever the stream is tagged with.
FLAC_IN_MP4 = AudioCodec(
    "flac",
    "s32",
    fixed={
        1: "mono",
        2: "stereo",
        3: "3.0",
        4: "quad",
        5: "5.0(side)",
        6: "5.1(side)",
        7: "6.1",
        8: "7.1",
    },
)
# FFmpeg's channel orders for a count of channels; a 6-channel WAV's own order is that of 5.1.
CHANNEL_LAYOUTS = {
    1: "mono",
    2: "stereo",
    3: "3.0",
    4: "quad",
    5: "5.0",
    6: "5.1",
    7: "6.1",
    8: "7.1",
}


@dataclass(frozen=True)
class VideoCodec:
    """An FFmpeg encoder set up for one kind of output, and the frames it takes."""

    encoder: str
    pix_fmt: str
    suffix: str
    label: str  # what logs and manifests call it
    options: dict[str, str] = field(default_factory=dict)
    limited_range: bool = False  # YUV always in limited range (the container cannot tag full)
    # The dub's sound: AAC beside a review codec; beside a master, lossless, as editorial and
    # the mix stage take it (PCM in MOV, ALAC in MP4, FLAC in Matroska).
    audio: AudioCodec = field(default_factory=lambda: AAC)

    @property
    def deep(self) -> bool:
        """Takes uint16 RGB (more than 8 bits a sample) rather than uint8."""
        return self.pix_fmt.endswith(("10le", "48le"))

    @property
    def rgb(self) -> bool:
        """Stores RGB as given, so it decodes to the very values written."""
        return self.pix_fmt.startswith("rgb")


# x264 CRF 18 is visually lossless for review. On woman_seated (1080p) preset fast takes a
# quarter less CPU than medium, with the same error against the source (0.56 code values) and
# files within a tenth of the size.
REVIEW = VideoCodec(
    "libx264", "yuv420p", ".mp4", "H.264 CRF 18, 4:2:0", {"crf": "18", "preset": "fast"}
)
# x264's RGB encoder at QP 0: the frames decode to the very RGB values given (YUV, even 4:4:4,
# would round them). At QP 0 the preset changes only file size and speed, never a pixel:
# ultrafast encodes 1080p about four times faster than medium for files about a third larger.
LOSSLESS = VideoCodec(
    "libx264rgb",
    "rgb24",
    ".mp4",
    "H.264 RGB, lossless",
    {"qp": "0", "preset": "ultrafast"},
    audio=ALAC,
)
# Plates of more than 8 bits (ProRes, DNxHR, 10-bit H.264/HEVC) come back as ProRes at 10 bits,
# what editorial takes, with full chroma where the source has it; lossless is FFV1 (Matroska,
# its archival home) storing the decoded 16-bit RGB itself. 4:2:2 goes through FFmpeg's
# prores_aw encoder, not prores_ks: on a 1080p portrait frame it encodes 2.7x as fast (73
# against 197 ms) at the same fidelity (PSNR 58.5 against 57.9 dB), 8% larger.
DEEP_REVIEW = VideoCodec(
    "prores_aw",
    "yuv422p10le",
    ".mov",
    "ProRes 422 HQ",
    {"profile": "3"},
    limited_range=True,
    audio=PCM,
)
DEEP_REVIEW_FULL_CHROMA = VideoCodec(
    "prores_ks",  # prores_aw refuses 4:4:4 frames of an odd size
    "yuv444p10le",
    ".mov",
    "ProRes 4444",
    {"profile": "4"},
    limited_range=True,
    audio=PCM,
)
DEEP_LOSSLESS = VideoCodec(
    "ffv1",
    "rgb48le",
    ".mkv",
    "FFV1 16-bit RGB, lossless",
    {"level": "3"},
    audio=FLAC,
)


def muxed_audio_codec(codec: VideoCodec, channels: int, layout: str | None = None) -> AudioCodec:
    """The codec `codec`'s movie carries a dub sound of `channels` (`layout`: the speakers its
    file declares) with. Beside lossless H.264, ALAC where it takes the layout; else FLAC where
    MP4's FLAC order is the layout; else as the count decides (ALAC for mono, stereo, 3.0, 5.0
    and 5.1, FLAC for the rest)."""
    if codec.audio is not ALAC:
        return codec.audio
    usual = CHANNEL_LAYOUTS.get(channels)
    if (layout or usual) in ALAC.named:
        return ALAC
    if layout is not None and layout == FLAC_IN_MP4.fixed.get(channels):
        return FLAC_IN_MP4
    return ALAC if usual in ALAC.named else FLAC_IN_MP4


def muxed_layout(codec: AudioCodec, channels: int, layout: str | None) -> str | None:
    """The speakers a movie's dub sound is tagged with and read back as: those the dub file
    declares, so an LCRS or side-surround mix plays on its own speakers, where the codec carries
    them; else the count's usual layout (the codec's own where it has one)."""
    if codec.fixed is not None:
        return codec.fixed.get(channels)
    if layout is None or (codec.named is not None and layout not in codec.named):
        return CHANNEL_LAYOUTS.get(channels)
    return layout


def output_codec(deep: bool, lossless: bool, full_chroma: bool = False) -> VideoCodec:
    """The codec a plate's dub is written with: its bit depth kept, lossless when asked."""
    if not deep:
        return LOSSLESS if lossless else REVIEW
    if lossless:
        return DEEP_LOSSLESS
    return DEEP_REVIEW_FULL_CHROMA if full_chroma else DEEP_REVIEW


def write_movie(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: Fraction,
    audio: Sound | None = None,
    codec: VideoCodec = REVIEW,
    yuv: YuvEncoding | None = None,
    timecode: str | None = None,
    times: Sequence[Fraction] | None = None,
    pixel_aspect: Fraction | None = None,
) -> int:
    """Encode RGB frames (all one size; uint16 for a deep codec, else uint8) with `codec`;
    returns the number of frames written. YUV codecs encode in `yuv`'s encoding (the source's,
    so the movie decodes as the source does), untagged BT.601 by default; RGB ones keep its
    primaries and transfer. `pixel_aspect` (an anamorphic source's) is the frames' shape on
    screen: width over height of a pixel. `timecode`, the first
    frame's, goes into a timecode track (MOV, MP4) or tag (Matroska). `times`, each frame's
    seconds from the first, makes a variable-rate movie: a phone's take shows each frame when
    it was shot, as the sound it was dubbed to plays."""
    yuv = (yuv or YuvEncoding()).for_yuv_output(codec.limited_range)
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise DubplateError(f"{path}: no frames to write")
    rgb_format = "rgb48le" if codec.deep else "rgb24"
    written = 0
    with atomic_path(path) as temp:
        try:
            with av.open(str(temp), mode="w") as container:
                if timecode:
                    container.metadata["timecode"] = timecode
                # Every stream must exist before the first packet is muxed.
                height, width = _encodable_size(first.shape[:2], codec, path)
                video = container.add_stream(_encoder(codec, width), rate=fps)
                video.options = dict(codec.options)
                if times is not None:
                    video.codec_context.time_base = VARIABLE_RATE_TIME_BASE
                video.pix_fmt = codec.pix_fmt
                video.height, video.width = height, width
                if codec.rgb:
                    yuv.tag_gamut(video)
                else:
                    yuv.tag(video)
                if pixel_aspect is not None:
                    video.codec_context.sample_aspect_ratio = pixel_aspect
                sound = None
                if audio is not None:
                    audio_codec = muxed_audio_codec(codec, audio.channels, audio.layout)
                    rate = _muxed_rate(audio, audio_codec)
                    sound = _audio_stream(
                        container, rate, audio.channels, audio_codec, audio.layout
                    )

                def encode(rgb: np.ndarray, index: int) -> None:
                    rgb = np.ascontiguousarray(
                        _sample_type(rgb, codec, path)[: video.height, : video.width]
                    )
                    frame = (
                        av.VideoFrame.from_ndarray(rgb, format=rgb_format)
                        if codec.rgb
                        else yuv.from_rgb(rgb, video.pix_fmt)
                    )
                    if times is not None:
                        frame.time_base = VARIABLE_RATE_TIME_BASE
                        frame.pts = round(times[index] / VARIABLE_RATE_TIME_BASE)
                    container.mux(video.encode(frame))

                # A frame is encoded in the background while the next is made: a 1080p frame's
                # YUV conversion and ProRes encode take as long as the dub's making it. One
                # encode in flight keeps the muxing in order and at most two frames held.
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="movie-encode") as coder:
                    pending = None
                    for rgb in itertools.chain([first], frames):
                        if pending is not None:
                            pending.result()
                        pending = coder.submit(encode, rgb, written)
                        written += 1
                    if pending is not None:
                        pending.result()
                container.mux(video.encode())
                if sound is not None:
                    last = times[written - 1] if times is not None else Fraction(written - 1) / fps
                    _mux_audio(container, sound, audio, last + 1 / fps)
        except av.error.FFmpegError as error:
            raise DubplateError(f"{path}: cannot write movie ({error})") from error
        if pixel_aspect is not None:
            _check_pixel_aspect(temp, path, pixel_aspect)
    log.debug(
        "wrote %s (%d frames, %s fps, %s%s)",
        path,
        written,
        fps,
        codec.label,
        ", with audio" if audio else "",
    )
    return written


def _sample_type(rgb: np.ndarray, codec: VideoCodec, path: Path) -> np.ndarray:
    expected = np.uint16 if codec.deep else np.uint8
    if rgb.dtype != expected:
        raise DubplateError(
            f"{path}: {codec.label} takes {np.dtype(expected).name} RGB frames, not {rgb.dtype}"
        )
    return rgb


def _muxed_rate(audio: Sound, codec: AudioCodec) -> int:
    """The rate `codec` carries `audio` at: its own; over the codec's top rate, 48 kHz; at a
    rate it does not take (AAC's list has no pulled-down 47952 or 44056 Hz), the nearest it
    does. Every channel is kept."""
    if audio.channels not in CHANNEL_LAYOUTS:
        raise DubplateError(
            f"{audio.source}: {audio.channels} channels; a dub is muxed with at most"
            f" {max(CHANNEL_LAYOUTS)} (mix it down first)"
        )
    rates = av.Codec(codec.encoder, "w").audio_rates
    if audio.rate > codec.max_rate:
        rate, why = 48000, "is over what"
    elif rates and audio.rate not in rates:
        rate, why = min(rates, key=lambda r: abs(r - audio.rate)), "is not a rate"
    else:
        return audio.rate
    log.warning(
        "%s: %d Hz %s %s takes; muxed at %d Hz", audio.source, audio.rate, why, codec.encoder, rate
    )
    return rate


def _audio_stream(
    container: av.container.OutputContainer,
    rate: int,
    channels: int,
    codec: AudioCodec,
    layout: str | None,
) -> av.AudioStream:
    stream = container.add_stream(codec.encoder, rate=rate)
    stream.layout = muxed_layout(codec, channels, layout)
    if layout is not None and stream.layout.name != layout:
        log.info(
            "movie: %s sound tagged %s, as %s names it", layout, stream.layout.name, codec.encoder
        )
    stream.format = codec.sample_format
    return stream


def _mux_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    audio: Sound,
    duration: Fraction,
) -> None:
    """`audio`'s first `duration` seconds, at the stream's rate, read and encoded a block at
    a time; audio that ends sooner (a dub padded with --pad) is followed by silence, so the
    sound runs as long as the picture."""
    rate = stream.codec_context.sample_rate
    left = int(duration * rate)
    written = 0
    for block in itertools.chain(
        resampled_blocks(audio.blocks(), audio.rate, rate, "VHQ"),
        _silence(audio.channels),
    ):
        block = block[:left]
        for start in range(0, len(block), AUDIO_CHUNK):
            # Packed: PyAV gives 8 planar channels (7.1) 9 planes, and fails on them.
            chunk = np.ascontiguousarray(block[start : start + AUDIO_CHUNK]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=stream.layout.name)
            frame.sample_rate = rate
            frame.pts = written + start
            frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
        written, left = written + len(block), left - len(block)
        if left <= 0:
            break
    container.mux(stream.encode())


def _silence(channels: int) -> Iterator[np.ndarray]:
    block = np.zeros((AUDIO_CHUNK, channels), np.float32)
    while True:
        yield block


def _check_pixel_aspect(written: Path, path: Path, pixel_aspect: Fraction) -> None:
    """Say where the file does not carry the pixel aspect it was given: Matroska takes it from
    the stream, which PyAV cannot set, and only x264 also stores it in its own bitstream (FFV1
    does not)."""
    with av.open(str(written)) as container:
        kept = container.streams.video[0].sample_aspect_ratio
    if kept != pixel_aspect:
        log.warning(
            "%s: its pixels are %s as wide as high, which this file cannot say: it plays"
            " squeezed until its pixel aspect is set to %s where it is taken in",
            path,
            pixel_aspect,
            pixel_aspect,
        )


def _encoder(codec: VideoCodec, width: int) -> str:
    """prores_aw refuses frames of an odd width; prores_ks takes them, at a third of its speed."""
    return "prores_ks" if codec.encoder == "prores_aw" and width % 2 else codec.encoder


def _encodable_size(shape: tuple[int, int], codec: VideoCodec, path: Path) -> tuple[int, int]:
    """(height, width) of the frames as `codec` stores them: 4:2:0 chroma needs even sizes, so a
    row or column is dropped there (with a warning); every other codec keeps them all."""
    height, width = shape
    if "420" not in codec.pix_fmt or (height % 2 == 0 and width % 2 == 0):
        return height, width
    even = (height - height % 2, width - width % 2)
    log.warning(
        "%s: %dx%d frames are written %dx%d: %s needs even sizes (--lossless keeps every pixel)",
        path,
        width,
        height,
        even[1],
        even[0],
        codec.label,
    )
    return even
