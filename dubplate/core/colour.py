"""Colour management through OpenColorIO, as built into OpenImageIO.

Plates arrive in many colourspaces (scene-linear ACEScg, camera log, display-referred video);
analysis and the networks work in one display-referred working space. `$OCIO` wins when set,
because every studio runs its own config; otherwise the built-in studio config, which has the
camera log spaces that OpenImageIO's default CG config lacks.
"""

from __future__ import annotations

import difflib
import logging
import os
from functools import cache

import numpy as np
import OpenImageIO as oiio

from dubplate.core.errors import DubplateError

log = logging.getLogger(__name__)

BUILTIN_CONFIG = "ocio://studio-config-latest"
# The working space's name differs between configs; the first one a config knows is used.
WORKING_SPACE_NAMES = ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "sRGB")


class ColourConfig:
    """Names and conversions of one OCIO config."""

    def __init__(self, config: str | None = None):
        self.source = config or os.environ.get("OCIO") or BUILTIN_CONFIG
        self._config = oiio.ColorConfig(self.source)
        # A config that fails to load falls back to a tiny built-in one, with an error set.
        message = self._config.geterror()
        if message or self._config.getNumColorSpaces() == 0:
            message = message or "no colourspaces"
            raise DubplateError(f"OCIO config {self.source}: cannot load ({message})")
        self._names = {}
        for name in self._config.getColorSpaceNames():
            self._names[name.lower()] = name
            for alias in self._config.getAliases(name):
                self._names.setdefault(alias.lower(), name)
        self.working_space = next(
            (self._names[n.lower()] for n in WORKING_SPACE_NAMES if n.lower() in self._names), None
        )
        if self.working_space is None:
            raise DubplateError(f"OCIO config {self.source}: has no sRGB working space")

    def resolve(self, name: str, where: str = "colourspace") -> str:
        """The config's own name for `name` (case-insensitive, aliases allowed)."""
        found = self._names.get(name.strip().lower())
        if found is None:
            close = difflib.get_close_matches(name.lower(), list(self._names), n=3, cutoff=0.4)
            hint = (
                f"; did you mean {', '.join(repr(self._names[c]) for c in close)}?" if close else ""
            )
            raise DubplateError(f"{where}: unknown colourspace {name!r} in {self.source}{hint}")
        return found

    def convert(self, pixels: np.ndarray, source: str, target: str) -> np.ndarray:
        """float32 RGB(A) pixels from `source` to `target`; alpha is passed through untouched."""
        if source == target:
            return np.asarray(pixels, dtype=np.float32)
        rgb = np.ascontiguousarray(pixels[..., :3], dtype=np.float32)
        converted = oiio.ImageBufAlgo.colorconvert(
            oiio.ImageBuf(rgb), source, target, False, "", "", self.source
        )
        if converted.has_error:
            raise DubplateError(f"colour conversion {source} -> {target}: {converted.geterror()}")
        out = converted.get_pixels(oiio.FLOAT).reshape(rgb.shape)
        if pixels.shape[-1] > 3:
            out = np.concatenate([out, np.asarray(pixels[..., 3:], dtype=np.float32)], axis=-1)
        return out

    def to_working_uint8(self, pixels: np.ndarray, source: str) -> np.ndarray:
        """RGB uint8 in the working display space, the form the face models take."""
        if pixels.dtype == np.uint8 and source == self.working_space:
            return pixels[..., :3]
        working = self.convert(pixels[..., :3], source, self.working_space)
        return (np.clip(working, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@cache
def default_config() -> ColourConfig:
    config = ColourConfig()
    log.info("colour: OCIO config %s, working space %r", config.source, config.working_space)
    return config
