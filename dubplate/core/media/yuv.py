"""How a movie's YUV samples map to RGB, read from its stream and written back with it.

FFmpeg's fast YUV/RGB paths truncate: decoding and re-encoding a frame that way darkens it by
about a code value. Both directions here round (ACCURATE_RND) and interpolate chroma at full
resolution, so a round trip is unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED
BT709 = 1
# Matrices swscale knows, by their AVColorSpace number; an untagged stream decodes as swscale's
# default (BT.601), as FFmpeg's own tools do.
_MATRICES = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.SMPTE170M,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
}


@dataclass(frozen=True)
class YuvEncoding:
    """A stream's colour tags, as FFmpeg numbers them (AVColorSpace, AVColorRange, ...)."""

    colorspace: int = UNSPECIFIED
    color_range: int = 0  # unspecified, read as limited (MPEG) range
    primaries: int = UNSPECIFIED
    trc: int = UNSPECIFIED

    @classmethod
    def of_stream(cls, stream: av.VideoStream) -> YuvEncoding:
        context = stream.codec_context
        return cls(
            int(context.colorspace),
            int(context.color_range),
            int(context.color_primaries),
            int(context.color_trc),
        )

    def for_yuv_output(self, limited: bool) -> YuvEncoding:
        """This encoding as a YUV output can carry it: an RGB source (FFV1, gbrp) is encoded
        and tagged BT.709 rather than tagged with the RGB "matrix", and `limited` range where
        the container cannot say full range (MOV's colour atom has no range: ProRes)."""
        colorspace = self.colorspace
        if colorspace not in _MATRICES and colorspace != UNSPECIFIED:
            colorspace = BT709
        color_range = int(ColorRange.MPEG) if limited else self.color_range
        return replace(self, colorspace=colorspace, color_range=color_range)

    def describe(self) -> str:
        matrix = self._matrix().name
        tagged = "tagged" if self.colorspace in _MATRICES else "untagged, read as"
        return f"YUV {tagged} {matrix}, {self._range().name} range"

    def to_rgb(self, frame: av.VideoFrame, format: str) -> np.ndarray:
        """`frame` as full-range RGB of `format` (rgb24 or rgb48le)."""
        return frame.reformat(
            format=format,
            src_colorspace=self._matrix(),
            dst_colorspace=self._matrix(),
            src_color_range=self._range(),
            dst_color_range=ColorRange.JPEG,
            interpolation=ACCURATE,
        ).to_ndarray()

    def from_rgb(self, rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
        """RGB (H, W, 3; uint8, or uint16 for 16-bit) as a frame of `pix_fmt` in this encoding,
        tagged with it."""
        rgb_format = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(rgb, format=rgb_format).reformat(
            format=pix_fmt,
            src_colorspace=self._matrix(),
            dst_colorspace=self._matrix(),
            src_color_range=ColorRange.JPEG,
            dst_color_range=self._range(),
            interpolation=ACCURATE,
        )
        frame.colorspace, frame.color_range = self.colorspace, self.color_range
        frame.color_primaries, frame.color_trc = self.primaries, self.trc
        return frame

    def tag(self, stream: av.VideoStream) -> None:
        """Tags an output stream with this encoding, so players decode it as it was encoded."""
        context = stream.codec_context
        context.colorspace, context.color_range = self.colorspace, self.color_range
        self.tag_gamut(stream)

    def tag_gamut(self, stream: av.VideoStream) -> None:
        """Tags an output stream, RGB or YUV, with this encoding's primaries and transfer: a
        BT.2020 HLG source's lossless RGB dub is not shown as BT.709."""
        context = stream.codec_context
        context.color_primaries, context.color_trc = self.primaries, self.trc

    def _matrix(self) -> Colorspace:
        return _MATRICES.get(self.colorspace, Colorspace.ITU601)

    def _range(self) -> ColorRange:
        return ColorRange.JPEG if self.color_range == ColorRange.JPEG else ColorRange.MPEG
