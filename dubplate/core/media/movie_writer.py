"""Writing movies through FFmpeg (PyAV), with the audio muxed in; a file appears only when whole."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.media.audio import Audio
from dubplate.core.media.yuv import YuvEncoding

log = logging.getLogger(__name__)

# x264 CRF 18 is visually lossless for review. Lossless is x264's RGB encoder at QP 0: the
# frames decode to the very RGB values given (YUV, even 4:4:4, would round them).
REVIEW_CRF = 18
LOSSLESS_CRF = 0
# On woman_seated (1080p) CRF 18 at "fast" takes a quarter less CPU than at "medium", with the
# same error against the source (0.56 code values) and files within a tenth of the size.
REVIEW_PRESET = "fast"
# At QP 0 the preset changes only file size and speed, never a pixel: ultrafast encodes 1080p
# about four times faster than medium for files about a third larger.
LOSSLESS_PRESET = "ultrafast"
AUDIO_CHUNK = 1024


def write_movie(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: Fraction,
    audio: Audio | None = None,
    crf: int = REVIEW_CRF,
    yuv: YuvEncoding | None = None,
) -> int:
    """Encode uint8 RGB frames (all one size) as H.264; returns the number of frames written.
    Review movies are 4:2:0 YUV in `yuv`'s encoding (the source's, so they decode as it does);
    untagged BT.601 by default."""
    yuv = yuv or YuvEncoding()
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise DubplateError(f"{path}: no frames to write")
    written = 0
    with atomic_path(path) as temp:
        try:
            with av.open(str(temp), mode="w") as container:
                # Every stream must exist before the first packet is muxed.
                lossless = crf == LOSSLESS_CRF
                video = container.add_stream("libx264rgb" if lossless else "libx264", rate=fps)
                video.options = (
                    {"qp": "0", "preset": LOSSLESS_PRESET}
                    if lossless
                    else {"crf": str(crf), "preset": REVIEW_PRESET}
                )
                video.pix_fmt = "rgb24" if lossless else "yuv420p"
                video.height, video.width = _even(first.shape[0]), _even(first.shape[1])
                if not lossless:
                    yuv.tag(video)
                sound = _audio_stream(container, audio) if audio is not None else None
                for rgb in itertools.chain([first], frames):
                    rgb = np.ascontiguousarray(rgb[: video.height, : video.width])
                    frame = (
                        av.VideoFrame.from_ndarray(rgb, format="rgb24")
                        if lossless
                        else yuv.from_rgb(rgb, video.pix_fmt)
                    )
                    container.mux(video.encode(frame))
                    written += 1
                container.mux(video.encode())
                if sound is not None:
                    _mux_audio(container, sound, audio, Fraction(written) / fps)
        except av.error.FFmpegError as error:
            raise DubplateError(f"{path}: cannot write movie ({error})") from error
    log.debug("wrote %s (%d frames, %s fps%s)", path, written, fps, ", with audio" if audio else "")
    return written


def _audio_stream(container: av.container.OutputContainer, audio: Audio) -> av.AudioStream:
    stream = container.add_stream("aac", rate=audio.rate)
    stream.layout = "mono" if audio.channels == 1 else "stereo"
    return stream


def _mux_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    audio: Audio,
    duration: Fraction,
) -> None:
    channels = stream.layout.nb_channels
    samples = audio.samples[: int(duration * audio.rate), :channels]
    for start in range(0, samples.shape[0], AUDIO_CHUNK):
        chunk = np.ascontiguousarray(samples[start : start + AUDIO_CHUNK].T)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate = audio.rate
        frame.pts = start
        frame.time_base = Fraction(1, audio.rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def _even(value: int) -> int:
    """4:2:0 chroma needs even sizes."""
    return value - value % 2
