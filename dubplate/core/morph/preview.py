"""A review movie of an actor's fit to a plate: plate | render | 50% blend, side by side."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from dubplate.core.media.movie_writer import write_movie
from dubplate.core.media.plate import Plate
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.appearance import (
    CROP_PX,
    LINEAR_SPACE,
    crop_regions,
    light_for_frames,
    renderer_for,
    to_screen,
)
from dubplate.core.morph.fit import fit_frames
from dubplate.core.track import FaceTrack

PANEL_LONG_SIDE = 640


def write_actor_preview(actor: Actor, plate: Plate, track: FaceTrack, path: Path) -> int:
    model = actor.model
    fit = fit_frames(model, track.landmarks[track.found], track.frames[track.found])
    light = torch.from_numpy(light_for_frames(plate, model, fit))
    posed = fit.posed(model)
    regions = crop_regions(posed)
    screen = torch.from_numpy(to_screen(posed, regions).astype(np.float32))
    renderer = renderer_for(model)
    texture = torch.from_numpy(model.texture).permute(2, 0, 1)[None]
    colour = plate.colour
    linear = colour.resolve(LINEAR_SPACE)
    scale = min(1.0, PANEL_LONG_SIDE / max(plate.info.width, plate.info.height))
    size = (round(plate.info.width * scale), round(plate.info.height * scale))
    row_of = {int(n): i for i, n in enumerate(fit.frames)}

    def frames():
        for number, pixels in plate.frames(track.frames):
            base = plate.analysis_view(pixels, size=size)
            render = np.zeros_like(base)
            mask = np.zeros(base.shape[:2], np.float32)
            row = row_of.get(int(number))
            if row is not None:
                with torch.no_grad():
                    out = renderer.render(
                        screen[row : row + 1], texture, light[row : row + 1], (CROP_PX, CROP_PX)
                    )
                rgb = colour.to_working_uint8(out.rgb[0].clamp(0, 1).numpy(), linear)
                _paste(render, mask, rgb, out.face_mask[0].numpy(), regions[row] * scale)
            blend = base * (1 - 0.5 * mask[..., None]) + render * 0.5 * mask[..., None]
            yield np.concatenate([base, render, blend.astype(np.uint8)], axis=1)

    return write_movie(path, frames(), plate.info.fps, audio=plate.audio_from(track.frames[0]))


def _paste(
    panel: np.ndarray, mask: np.ndarray, rgb: np.ndarray, covered: np.ndarray, region
) -> None:
    """Resize a crop render to its region of the panel and put it there, clipped to the panel."""
    x0, y0, x1, y1 = (int(round(v)) for v in region)
    side = max(x1 - x0, 1)
    image = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(covered.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    height, width = mask.shape
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 <= sx0 or sy1 <= sy0:
        return
    window = (slice(sy0, sy1), slice(sx0, sx1))
    source = (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))
    a = alpha[source][..., None]
    panel[window] = (panel[window] * (1 - a) + image[source] * a).astype(np.uint8)
    mask[window] = np.maximum(mask[window], alpha[source])
