"""Colour management through OpenColorIO.

Plates arrive in many colourspaces (scene-linear ACEScg, camera log, display-referred video);
analysis and the networks work in one display-referred working space. `$OCIO` wins when set,
because every studio runs its own config; otherwise the built-in studio config, which has the
camera log spaces that a CG config lacks. CPU processors are built once per pair of spaces:
OpenImageIO's Python colorconvert reloads a named config on every call (80 ms a call here), so
the conversions go through PyOpenColorIO directly.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from functools import cache

import numpy as np
import PyOpenColorIO as ocio

from dubplate.core.errors import DubplateError

log = logging.getLogger(__name__)

BUILTIN_CONFIG = "ocio://studio-config-latest"
# The working space's name differs between configs; the first one a config knows is used.
WORKING_SPACE_NAMES = ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "sRGB")
# Every working space above is Rec.709 under the sRGB curve; these are its linear luminance
# weights, and the curve is OCIO's own exponent-with-linear form of it.
REC709_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)
SRGB_CURVE = ocio.ExponentWithLinearTransform(gamma=[2.4] * 3 + [1.0], offset=[0.055] * 3 + [0.0])
# Linear light at or under this is never rolled off (`Highlights`): the view of a face over
# white changes only in its brightest part, where the uint8 view then spends a quarter of its
# codes (sRGB 0.5 is code 188) on what would otherwise all be white.
HIGHLIGHT_KNEE = 0.5


@dataclass(frozen=True)
class Highlights:
    """How the face models' view holds an actor's brightness over the working space's white.
    In linear Rec.709, a pixel whose brightest channel m is over `knee` is scaled, all channels
    alike (hue kept), to k + (1 - k) (t / (t + a)) ((D + a) / D), where t = m - k and D = peak - k:
    a smooth curve through the knee (slope 1 there, for a = (1 - k) D / (peak - 1)) that puts
    `peak` on white. The models learn and draw in that view, and what they draw is unrolled
    back. A peak of 1 rolls nothing: over-white pixels are darkened to white (`ColourConfig`)."""

    peak: float = 1.0
    knee: float = HIGHLIGHT_KNEE

    def __post_init__(self) -> None:
        if not (np.isfinite(self.peak) and self.peak >= 1.0 and 0.0 < self.knee < 1.0):
            raise DubplateError(
                f"highlights: peak {self.peak} and knee {self.knee}: the peak must be at least 1"
                " and the knee between 0 and 1"
            )

    @property
    def rolls(self) -> bool:
        return self.peak > 1.0

    def roll(self, linear: np.ndarray) -> np.ndarray:
        """(..., 3) linear Rec.709 as the view holds it: brought within the gamut first
        (`within_gamut`, as the working space would), so that `unroll` gives back the colour
        `ColourConfig.through_working` says the view holds; then [0, peak] onto [0, 1]."""
        if not self.rolls:
            return linear
        linear = within_gamut(linear)
        brightest = channel_max(linear)
        over = np.maximum(brightest - self.knee, 0.0)
        share = over / (over + self._bend)
        return self._rescaled(linear, brightest, self.knee + (1 - self.knee) * share / self._top)

    def unroll(self, linear: np.ndarray) -> np.ndarray:
        """The inverse of `roll`, for what the models draw (at most white, which becomes the
        peak)."""
        if not self.rolls:
            return linear
        brightest = channel_max(linear)
        over = np.maximum(brightest - self.knee, 0.0) / (1 - self.knee)
        share = np.minimum(over * self._top, self._top)
        return self._rescaled(linear, brightest, self.knee + self._bend * share / (1 - share))

    @property
    def _bend(self) -> float:  # a
        return (1 - self.knee) * (self.peak - self.knee) / (self.peak - 1)

    @property
    def _top(self) -> float:  # D / (D + a): the share the peak reaches
        reach = self.peak - self.knee
        return reach / (reach + self._bend)

    def _rescaled(
        self, linear: np.ndarray, brightest: np.ndarray, brightest_to: np.ndarray
    ) -> np.ndarray:
        """`linear` with each pixel over the knee scaled so its `brightest` channel (..., 1) is
        `brightest_to`; the rest as they are, to the bit."""
        over = brightest > self.knee
        factor = np.where(over, brightest_to / np.where(over, brightest, 1.0), 1.0)
        return (linear * factor).astype(np.float32, copy=False)


# The view without headroom: what is over white is darkened to it.
WITHIN_WHITE = Highlights()


def within_gamut(linear: np.ndarray) -> np.ndarray:
    """(..., 3) linear Rec.709 with each colour outside its gamut moved towards its own grey
    until no channel is negative, luminance kept; the rest as they are, to the bit (`linear`
    itself where none is outside)."""
    lowest = channel_min(linear)
    if not (lowest < 0).any():
        return linear
    luminance = np.maximum(linear @ REC709_LUMINANCE, 0.0)[..., None]
    saturation = luminance / np.maximum(luminance - lowest, 1e-12)
    return np.where(lowest < 0, luminance + saturation * (linear - luminance), linear)


class ColourConfig:
    """Names and conversions of one OCIO config."""

    def __init__(self, config: str | None = None):
        self.source = config or os.environ.get("OCIO") or BUILTIN_CONFIG
        try:
            self._config = ocio.Config.CreateFromFile(self.source)
        except (ocio.Exception, ocio.ExceptionMissingFile) as error:
            raise DubplateError(f"OCIO config {self.source}: cannot load ({error})") from error
        self._processors: dict[tuple[str, str], ocio.CPUProcessor] = {}
        self.working_space = next(
            (self._known(name) for name in WORKING_SPACE_NAMES if self._known(name)), None
        )
        if self.working_space is None:
            raise DubplateError(f"OCIO config {self.source}: has no sRGB working space")
        self._decode_srgb = self._config.getProcessor(SRGB_CURVE).getDefaultCPUProcessor()
        self._encode_srgb = self._config.getProcessor(
            SRGB_CURVE, ocio.TRANSFORM_DIR_INVERSE
        ).getDefaultCPUProcessor()

    @property
    def identity(self) -> str:
        """OCIO's cache ID of the config: it changes with what the config does, not its path."""
        return self._config.getCacheID()

    def _known(self, name: str) -> str | None:
        space = self._config.getColorSpace(name.strip())
        return space.getName() if space is not None else None

    def knows(self, name: str) -> bool:
        """Whether `name` is a colourspace, alias or role of this config."""
        return self._known(name) is not None

    def resolve(self, name: str) -> str:
        """The config's own name for `name` (case-insensitive; aliases and roles allowed)."""
        found = self._known(name)
        if found is None:
            spellings = {}
            for space in self._config.getColorSpaces():
                for spelling in (space.getName(), *space.getAliases()):
                    spellings[spelling.lower()] = space.getName()
            close = difflib.get_close_matches(name.lower(), list(spellings), n=3, cutoff=0.4)
            names = dict.fromkeys(spellings[c] for c in close)
            hint = f"; did you mean {', '.join(repr(n) for n in names)}?" if names else ""
            raise DubplateError(f"unknown colourspace {name!r} in {self.source}{hint}")
        return found

    def convert(self, pixels: np.ndarray, source: str, target: str) -> np.ndarray:
        """float32 RGB(A) pixels from `source` to `target`; alpha is passed through untouched."""
        out = np.array(pixels[..., :3], dtype=np.float32, order="C")
        if source != target:
            self._processor(source, target).applyRGB(out)
        if pixels.shape[-1] > 3:
            out = np.concatenate([out, np.asarray(pixels[..., 3:], dtype=np.float32)], axis=-1)
        return out

    def through_working(self, pixels: np.ndarray, space: str, peak: float = 1.0) -> np.ndarray:
        """float32 RGB `pixels` in `space` as the working space holds them: those outside its
        0-1 range brought inside it as `to_working_uint8` does and converted back, the rest as
        they are (a round trip through OCIO is float-approximate); `pixels` itself when it holds
        them all. What this takes away (brightness over its white, saturation outside its gamut)
        no crop made for the face models can show. With a `peak` over 1, the view's white is
        that linear brightness (`Highlights`): bringing a colour in range scales in linear
        light, so the rolled-off view holds what this one holds of the pixels 1 / `peak` times
        as bright, scaled back."""
        working = self.convert(pixels, space, self.working_space)
        if peak != 1.0:
            working = self._scaled_linear(working, 1 / peak)
        outside = _outside_unit_range(working)
        if outside is None:
            return pixels
        held = self._into_range(working[outside])
        if peak != 1.0:
            held = self._scaled_linear(held, peak)
        shown = np.array(pixels[..., :3], dtype=np.float32)
        shown[outside] = self.convert(held, self.working_space, space)
        return shown

    def _scaled_linear(self, working: np.ndarray, factor: float) -> np.ndarray:
        """Working values `factor` times as bright in linear light."""
        values = np.ascontiguousarray(working, dtype=np.float32)
        self._decode_srgb.applyRGB(values)
        values *= np.float32(factor)
        self._encode_srgb.applyRGB(values)
        return values

    def to_working_uint8(self, pixels: np.ndarray, source: str) -> np.ndarray:
        """RGB uint8 in the working display space, the form the face models take. Values the
        working space cannot hold keep their hue (`_into_range`): clipped channel by channel,
        an HDR plate's bright skin, red over white, would turn cyan."""
        if pixels.dtype == np.uint8 and source == self.working_space:
            return pixels[..., :3]
        working = self.convert(pixels[..., :3], source, self.working_space)
        outside = _outside_unit_range(working)
        if outside is not None:
            working[outside] = self._into_range(working[outside])
        return (np.clip(working, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def _into_range(self, working: np.ndarray) -> np.ndarray:
        """(K, 3) working values outside 0-1, inside it with their hue: in linear light, a colour
        outside the gamut goes towards its own grey until no channel is negative (luminance
        kept), then one over white is darkened, all channels by the same factor."""
        linear = np.ascontiguousarray(working, dtype=np.float32)
        self._decode_srgb.applyRGB(linear)
        linear = within_gamut(linear)
        linear /= np.maximum(linear.max(axis=1, keepdims=True), 1.0)
        held = np.ascontiguousarray(linear, dtype=np.float32)
        self._encode_srgb.applyRGB(held)
        return np.clip(held, 0.0, 1.0)

    def _processor(self, source: str, target: str) -> ocio.CPUProcessor:
        key = (source, target)
        if key not in self._processors:
            try:
                processor = self._config.getProcessor(source, target)
            except ocio.Exception as error:
                raise DubplateError(f"colour conversion {source} -> {target}: {error}") from error
            self._processors[key] = processor.getDefaultCPUProcessor()
        return self._processors[key]


def _outside_unit_range(working: np.ndarray) -> np.ndarray | None:
    """(...) bool: the pixels of `working` with a channel outside 0-1; None when there are none
    (most plates, most frames: one min and max settle it)."""
    if working.min() >= 0 and working.max() <= 1:
        return None
    return ((channel_max(working) > 1) | (channel_min(working) < 0))[..., 0]


# Channel by channel: numpy's reductions over a last axis of 3 cost four times as much.
def channel_max(pixels: np.ndarray) -> np.ndarray:
    """(..., 1) the brightest of each (..., 3) pixel's channels."""
    return np.maximum(np.maximum(pixels[..., 0:1], pixels[..., 1:2]), pixels[..., 2:3])


def channel_min(pixels: np.ndarray) -> np.ndarray:
    """(..., 1) the least of each (..., 3) pixel's channels."""
    return np.minimum(np.minimum(pixels[..., 0:1], pixels[..., 1:2]), pixels[..., 2:3])


@cache
def default_config() -> ColourConfig:
    config = ColourConfig()
    log.info("colour: OCIO config %s, working space %r", config.source, config.working_space)
    return config
