"""Small plates made on the fly: EXR files with chosen windows and layers, movies, audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import scipy.signal
import soundfile

from dubplate.core.media import load_audio
from dubplate.core.media.audio import ANALYSIS_RATE
from dubplate.core.media.plate import Plate, PlateInfo

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_exr(
    path: Path,
    pixels: np.ndarray,
    sample_type: str = "half",
    data_origin: tuple[int, int] = (0, 0),
    display: tuple[int, int, int, int] | None = None,
    channels: tuple[str, ...] | None = None,
    attributes: dict | None = None,
) -> Path:
    """Write `pixels` as the data window at `data_origin`; `display` is (x, y, width, height)."""
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, sample_type)
    spec.x, spec.y = data_origin
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = display or (
        *data_origin,
        width,
        height,
    )
    if channels:
        spec.channelnames = channels
    spec.attribute("compression", "zip")
    for name, (type_name, value) in (attributes or {}).items():
        spec.attribute(name, oiio.TypeDesc(type_name), value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, dtype=np.float32)), out.geterror()
    out.close()
    return path


def write_movie(
    path: Path,
    frames: list[np.ndarray],
    fps: Fraction = Fraction(25),
    times: list[Fraction] | None = None,
    audio: tuple[np.ndarray, int] | None = None,
    audio_start: float = 0.0,
    encoder: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    timecode: str | None = None,
) -> Path:
    """A movie (H.264 CRF 10 by default) of RGB frames, uint8 or uint16; `times` (seconds)
    makes a variable-rate one (or, evenly spaced, a movie whose video starts late). The audio
    stream starts at `audio_start` s; `timecode` is the first frame's."""
    with av.open(str(path), "w") as container:
        if timecode:
            container.metadata["timecode"] = timecode
        video = container.add_stream(encoder, rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = pix_fmt
        video.options = {"crf": "10"} if options is None else options
        if times is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=audio[1])
            sound.layout = "stereo"
        for i, rgb in enumerate(frames):
            rgb_format = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
            frame = av.VideoFrame.from_ndarray(rgb, format=rgb_format)
            if times is not None:
                frame.pts = int(times[i] * 1000)
                frame.time_base = Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples, rate = audio
            delay = round(audio_start * rate)
            for start in range(0, len(samples), 1024):
                chunk = np.ascontiguousarray(samples[start : start + 1024].T, dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
                frame.pts = delay + start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def audio_start_s(movie: Path, source: Path, reach_s: float = 3.0) -> float:
    """Where in `source`'s sound `movie`'s sound starts (seconds, within `reach_s`): the lag at
    which their first two seconds correlate best."""
    played = load_audio(movie).analysis[: 2 * ANALYSIS_RATE]
    heard = load_audio(source).analysis[: int(reach_s * ANALYSIS_RATE) + len(played)]
    score = scipy.signal.correlate(heard, played, mode="valid", method="fft")
    return int(np.argmax(score)) / ANALYSIS_RATE


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    soundfile.write(str(path), samples, rate)
    return path


def numbered_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Flat grey frames whose level encodes their index, so decoded order can be checked."""
    width, height = size
    return [np.full((height, width, 3), 10 + 12 * i, np.uint8) for i in range(count)]


class ArrayPlate(Plate):
    """A plate held in memory, for tracking tests on composed frames."""

    def __init__(
        self, frames: list[np.ndarray], fps: Fraction = Fraction(25), name: str = "arrays"
    ):
        super().__init__()
        self._frames = frames
        height, width = frames[0].shape[:2]
        self.info = PlateInfo(
            source=name,
            kind="movie",
            frames=tuple(range(len(frames))),
            fps=fps,
            width=width,
            height=height,
            channels=("R", "G", "B"),
            colourspace=self.colour.working_space,
        )

    def _decode(self, number: int) -> np.ndarray:
        return self._frames[number]


def footage_frames(name: str, count: int, start: int = 0) -> list[np.ndarray]:
    """The first `count` decoded frames of a shared footage clip, from `start`."""
    frames = []
    with av.open(str(SHARED_DATA / "footage" / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames
