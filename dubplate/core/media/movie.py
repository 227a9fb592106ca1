"""Movie plates through FFmpeg (PyAV): H.264, HEVC, MPEG-4 part 2 and more, at any frame rate."""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubplate.core.errors import DubplateError
from dubplate.core.media.audio import Audio, decode_audio_stream
from dubplate.core.media.plate import DEFAULT_CACHE_BYTES, Plate, PlateInfo
from dubplate.core.media.timing import as_rate, timecode_after
from dubplate.core.media.yuv import YuvEncoding

log = logging.getLogger(__name__)


class MoviePlate(Plate):
    """Frames are numbered from 0 in presentation order; values are the decoded RGB code values."""

    EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".mxf", ".webm", ".mts"})

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.suffix.lower() in cls.EXTENSIONS

    def __init__(
        self,
        path: str | Path,
        colourspace: str | None = None,
        layer: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        super().__init__(cache_bytes)
        self.path = Path(path)
        if layer is not None:
            raise DubplateError(f"{self.path}: --layer applies to EXR plates, not movies")
        if not self.path.is_file():
            raise DubplateError(f"{self.path}: movie file not found")
        self._container = self._open()
        self._stream = self._container.streams.video[0]
        self.yuv = YuvEncoding.of_stream(self._stream)
        self.deep, self.full_chroma = self._sample_format()
        self._pts, keyframe_dts = self._index_packets()
        self._index_of_pts = {pts: i for i, pts in enumerate(self._pts)}
        self._keyframes = sorted(self._index_of_pts[pts] for pts in keyframe_dts)
        self._keyframe_dts = {self._index_of_pts[pts]: dts for pts, dts in keyframe_dts.items()}
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._decoder_lock = threading.Lock()
        self._next_index = 0
        self._quarter_turns = self._display_quarter_turns()
        self.pixel_aspect = self._pixel_aspect()
        self.info = self._describe(colourspace)

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError) as error:
            raise DubplateError(f"{self.path}: cannot open movie ({error})") from error
        if not container.streams.video:
            container.close()
            raise DubplateError(f"{self.path}: no video stream")
        return container

    def _sample_format(self) -> tuple[bool, bool]:
        """Whether samples carry more than 8 bits, and whether chroma is at full resolution."""
        name = self._stream.codec_context.pix_fmt
        if name is None:
            raise DubplateError(f"{self.path}: the video stream's pixel format is unknown")
        components = av.VideoFormat(name, 64, 64).components
        deep = any(component.bits > 8 for component in components)
        full_chroma = all(component.width == 64 for component in components)
        if any(component.is_alpha for component in components):
            log.warning(
                "%s: its alpha channel (%s) is not read; the plate and its dub are RGB",
                self.path,
                name,
            )
        return deep, full_chroma

    def _index_packets(self) -> tuple[list[int], dict[int, int]]:
        """Presentation timestamps of every frame, and each keyframe's decode timestamp (its
        presentation one where the file gives none), from the demuxer alone (no decoding)."""
        pts, keyframes = [], {}
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is not None and packet.size > 0:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keyframes[packet.pts] = packet.pts if packet.dts is None else packet.dts
        except av.error.FFmpegError as error:
            raise DubplateError(
                f"{self.path}: unreadable after {len(pts)} frames ({error})"
            ) from error
        if not pts:
            raise DubplateError(f"{self.path}: no video frames")
        pts.sort()
        self._container.seek(pts[0], stream=self._stream, backward=True)
        return pts, keyframes

    def _display_quarter_turns(self) -> int:
        """Counter-clockwise quarter turns the movie is shown with (a phone's portrait take is
        stored on its side with a display matrix): its frames are read upright, as players show
        them, and its dub is written upright."""
        self._seek(self._keyframe_decode_time(0))  # exact at frame 0, whatever the demuxer
        try:
            first = next(self._decoder, None)
        except av.error.FFmpegError as error:
            raise DubplateError(f"{self.path}: frame 0: cannot decode ({error})") from error
        self._decoder = None
        degrees = first.rotation if first is not None else 0
        if degrees % 90:
            log.warning("%s: shown turned %d degrees; read as stored", self.path, degrees)
            return 0
        if degrees:
            log.info("%s: shown turned %d degrees; read upright", self.path, degrees)
        return degrees // 90 % 4

    def _pixel_aspect(self) -> Fraction | None:
        """Width over height of a pixel on screen, as read upright, where not square (an
        anamorphic or HDV source's, written back with its dub); None for square pixels."""
        shape = self._stream.sample_aspect_ratio  # the container's (MOV's pasp), else the codec's
        if not shape or shape == 1:
            return None
        aspect = Fraction(shape.numerator, shape.denominator)
        upright = 1 / aspect if self._quarter_turns % 2 else aspect
        log.info("%s: pixels %s as wide as high on screen", self.path, upright)
        return upright

    def _describe(self, colourspace: str | None) -> PlateInfo:
        stream = self._stream
        base = stream.time_base
        times = tuple(Fraction(p - self._pts[0]) * base for p in self._pts)
        rate = as_rate(stream.average_rate or stream.guessed_rate, f"{self.path}: frame rate")
        steps = np.diff(np.asarray(self._pts, dtype=np.int64))
        variable = steps.size > 1 and int(steps.max() - steps.min()) > 1
        if variable:
            log.info(
                "%s: variable frame rate (%.3f-%.3f fps, mean %s); frames are timed by their"
                " own timestamps",
                self.path,
                1 / float(steps.max() * base),
                1 / float(steps.min() * base),
                rate,
            )
        space = self.colour.resolve(colourspace) if colourspace else self.colour.working_space
        log.info(
            "%s: colourspace %r%s; %s; %s",
            self.path,
            space,
            "" if colourspace else " (movie default)",
            self.yuv.describe(),
            "more than 8 bits a sample, read as 16-bit RGB" if self.deep else "8-bit",
        )
        timecode = self._valid_timecode(
            _timecode(stream.metadata) or _timecode(self._container.metadata), rate
        )
        return PlateInfo(
            source=str(self.path.absolute()),  # manifests must resolve from any directory
            kind="movie",
            frames=tuple(range(len(self._pts))),
            fps=rate,
            **_shown_size(stream.codec_context, self._quarter_turns),
            channels=("R", "G", "B"),
            colourspace=space,
            timecode=timecode,
            frame_times=times if variable else (),
        )

    def _valid_timecode(self, timecode: str | None, rate: Fraction) -> str | None:
        """The movie's timecode, or None (with a warning) where it cannot be counted on."""
        if timecode is None:
            return None
        try:
            timecode_after(timecode, 0, rate)
        except DubplateError as error:
            log.warning("%s: %s; the timecode is not carried", self.path, error)
            return None
        return timecode

    def _own_audio(self) -> Audio | None:
        """The movie's audio from its first frame's time on."""
        return decode_audio_stream(self.path, Fraction(self._pts[0]) * self._stream.time_base)

    def close(self) -> None:
        with self._decoder_lock:
            self._decoder = None
            self._container.close()

    def _decode(self, number: int) -> np.ndarray:
        with self._decoder_lock:  # one decoder state: seeks and reads must not interleave
            return self._decode_locked(number)

    def _decode_locked(self, number: int) -> np.ndarray:
        sought = self._must_seek(number)
        if sought:
            self._seek(self._pts[number])
        rgb = self._decode_on_to(number)
        if rgb is None and sought:
            # MPEG-TS and MPEG-PS seek by decode time: sought by a presentation time, they land
            # a keyframe late where B-frames follow it. Other demuxers seek by presentation
            # time, and by the earlier decode time would go a keyframe further back.
            self._seek(self._keyframe_decode_time(number))
            rgb = self._decode_on_to(number)
        if rgb is None:
            self._decoder = None
            raise DubplateError(
                f"{self.path}: frame {number} of {len(self._pts)} could not be decoded"
                f" ({self._why_undecodable()})"
            )
        return rgb

    def _why_undecodable(self) -> str:
        """H.264 in AVI keeps no presentation times: where B-frames reorder it, its frames
        cannot be put in display order. Otherwise, most likely a damaged file."""
        context = self._stream.codec_context
        if self._container.format.name == "avi" and context.name == "h264" and context.has_b_frames:
            return (
                "H.264 with B-frames in AVI, which keeps no presentation times, cannot be put in"
                " order; give the shot as MOV, MXF or MKV, or as an image sequence"
            )
        return "truncated or corrupt file?"

    def _decode_on_to(self, number: int) -> np.ndarray | None:
        """Frame `number`, decoded on from where the decoder is; None where the decoder passes
        it or ends first."""
        target = self._pts[number]
        try:
            for frame in self._decoder:
                index = self._index_of_pts.get(frame.pts)
                if index is None or frame.pts < target:
                    continue
                self._next_index = index + 1
                return self._to_rgb(frame) if index == number else None
        except av.error.FFmpegError as error:
            raise DubplateError(f"{self.path}: frame {number}: cannot decode ({error})") from error
        return None

    def _must_seek(self, number: int) -> bool:
        """Whether reaching frame `number` takes a seek: it is behind the decoder, or a keyframe
        lies past the decoder and at or before it. Otherwise decoding on is never slower than the
        seek, which would go back to a keyframe at or before the decoder's place (frames a few
        apart in a long-GOP movie were each decoded from their keyframe again)."""
        if self._decoder is None or number < self._next_index:
            return True
        last_keyframe = bisect.bisect_right(self._keyframes, number) - 1
        return last_keyframe >= 0 and self._keyframes[last_keyframe] > self._next_index

    def _keyframe_decode_time(self, number: int) -> int:
        """The decode timestamp of the keyframe at or before frame `number` (`_index_packets`)."""
        keyframe = bisect.bisect_right(self._keyframes, number) - 1
        return self._keyframe_dts[self._keyframes[keyframe]] if keyframe >= 0 else self._pts[number]

    def _seek(self, timestamp: int) -> None:
        """To the keyframe at or before `timestamp` (of the video stream's time base)."""
        self._container.seek(timestamp, stream=self._stream, backward=True)
        self._decoder = self._container.decode(self._stream)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """uint8 RGB for 8-bit sources; uint16 (16-bit RGB) when the source carries more bits."""
        rgb = self.yuv.to_rgb(frame, "rgb48le" if self.deep else "rgb24")
        if self._quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, self._quarter_turns))
        return rgb


def _shown_size(codec_context, quarter_turns: int) -> dict[str, int]:
    width, height = codec_context.width, codec_context.height
    if quarter_turns % 2:
        width, height = height, width
    return {"width": width, "height": height}


def _timecode(metadata: dict[str, str]) -> str | None:
    """A stream's or container's timecode: MOV and MP4 name it `timecode`, Matroska `TIMECODE`."""
    return next((value for key, value in metadata.items() if key.lower() == "timecode"), None)
