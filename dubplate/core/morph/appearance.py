"""The actor's appearance: a UV albedo atlas unwrapped from many frames, and per-frame
2nd-order SH lighting solved by least squares against the observed face."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dubplate.core.colour import default_config
from dubplate.core.media.plate import Plate
from dubplate.core.morph.fit import ActorFit
from dubplate.core.morph.model import ActorModel
from dubplate.core.morph.triangles import TRIANGLES
from dubplate.core.progress import Progress
from dubplate.core.render.rasterizer import interpolate, rasterize
from dubplate.core.render.renderer import FaceRenderer
from dubplate.core.render.shading import SH_COEFFICIENTS, ambient_only, sh_basis, vertex_normals
from dubplate.core.track.landmarks import INNER_LIP_LOOP

CROP_PX = 256
LINEAR_SPACE = "Linear Rec.709 (sRGB)"  # where albedo times irradiance holds
CROP_MARGIN = 1.3  # crop side over the face's extent
RIDGE = 1e-4  # keeps the SH solve stable on frames that show little of the face
LIGHT_BATCH = 32  # keeps the SH solve stable on frames that show little of the face


@dataclass
class FaceCrops:
    """Square crops around the face: linear RGB pixels and the model's screen-space vertices."""

    pixels: torch.Tensor  # (B, C, C, 3) linear
    screen: torch.Tensor  # (B, 468, 3)
    regions: np.ndarray  # (B, 4) x0, y0, x1, y1 in plate pixels


def crop_regions(posed: np.ndarray) -> np.ndarray:
    """(F, 4) integer square regions around each frame's posed vertices."""
    low, high = posed[..., :2].min(axis=1), posed[..., :2].max(axis=1)
    centre, side = (low + high) / 2, CROP_MARGIN * (high - low).max(axis=1)
    x0, y0 = np.round(centre[:, 0] - side / 2), np.round(centre[:, 1] - side / 2)
    side = np.round(side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1).astype(int)


def to_screen(posed: np.ndarray, regions: np.ndarray, size: int = CROP_PX) -> np.ndarray:
    scale = size / (regions[:, 2] - regions[:, 0])
    screen = posed.copy()
    screen[..., 0] = (posed[..., 0] - regions[:, None, 0]) * scale[:, None]
    screen[..., 1] = (posed[..., 1] - regions[:, None, 1]) * scale[:, None]
    screen[..., 2] = posed[..., 2] * scale[:, None]
    return screen


def load_crops(plate: Plate, model: ActorModel, fit: ActorFit, rows: np.ndarray) -> FaceCrops:
    """Crops of the given rows of a fit, read from the plate, in linear Rec.709."""
    posed = fit.posed(model)[rows]
    regions = crop_regions(posed)
    linear = plate.colour.resolve(LINEAR_SPACE)
    pixels = []
    numbers = [int(n) for n in fit.frames[rows]]
    for (_, frame), region in zip(plate.frames(numbers), regions, strict=True):
        rgb = plate.analysis_view(frame, tuple(region), (CROP_PX, CROP_PX))
        working = rgb.astype(np.float32) / 255
        pixels.append(plate.colour.convert(working, plate.colour.working_space, linear))
    return FaceCrops(
        pixels=torch.from_numpy(np.stack(pixels)),
        screen=torch.from_numpy(to_screen(posed, regions).astype(np.float32)),
        regions=regions,
    )


def renderer_for(model: ActorModel, device: str = "cpu") -> FaceRenderer:
    return FaceRenderer(np.array(TRIANGLES), model.uv, model.lower_vertices, INNER_LIP_LOOP, device)


def unwrap_texture(
    renderer: FaceRenderer, crops: FaceCrops, size: int, light: torch.Tensor | None = None
) -> torch.Tensor:
    """(3, T, T) atlas: each texel's colour in every crop, weighted by how squarely that crop
    sees it; divided by its irradiance under `light` (B, 9, 3) when given, so the atlas holds
    albedo. Everything is looked up per texel, so nothing off the face leaks in."""
    batch = crops.screen.shape[0]
    faces = renderer.mesh_faces
    uv_screen = torch.cat([renderer.uv * size, torch.zeros_like(renderer.uv[:, :1])], dim=1)
    layout = rasterize(uv_screen[None], faces, (size, size))
    # Per texel: where it lands in each crop, how squarely the surface faces the camera there,
    # and the light it receives.
    facing = -vertex_normals(crops.screen, faces)[..., 2:3]
    attributes = [crops.screen[..., :2], facing]
    if light is not None:
        attributes.append(renderer.vertex_basis(crops.screen) @ light)
    attributes = torch.cat(attributes, dim=-1)
    per_texel = torch.stack(
        [interpolate(layout, faces, attributes[b : b + 1])[0] for b in range(batch)]
    )  # (B, T, T, 3 or 6)
    crop_px = crops.pixels.shape[1]
    grid = per_texel[..., :2] / crop_px * 2 - 1
    colour = F.grid_sample(crops.pixels.permute(0, 3, 1, 2), grid, align_corners=False)
    if light is not None:
        colour = colour / per_texel[..., 3:].permute(0, 3, 1, 2).clamp(min=1e-2)
    weight = per_texel[..., 2].clamp(min=0) ** 2 * layout.covered.float()
    return (colour * weight[:, None]).sum(dim=0) / weight.sum(dim=0).clamp(min=1e-6)


def solve_light(renderer: FaceRenderer, crops: FaceCrops, texture: torch.Tensor) -> torch.Tensor:
    """Per-frame (B, 9, 3) SH light, least squares over the mesh pixels (not the mouth
    cavity) of each crop."""
    size = crops.pixels.shape[1:3]
    plain = renderer.render(crops.screen, texture[None], None, size)
    mesh_pixels = plain.face_mask & (plain.fragments.face < len(renderer.mesh_faces))
    basis = interpolate(plain.fragments, renderer.faces, renderer.vertex_basis(crops.screen))
    lights = []
    for b in range(crops.screen.shape[0]):
        mask = mesh_pixels[b]
        per_channel = []
        for c in range(3):
            design = basis[b][mask] * plain.rgb[b][mask][:, c : c + 1]
            target = crops.pixels[b][mask][:, c]
            gram = design.T @ design + RIDGE * len(design) * torch.eye(SH_COEFFICIENTS)
            per_channel.append(torch.linalg.solve(gram, design.T @ target))
        lights.append(torch.stack(per_channel, dim=1))
    return torch.stack(lights)


def photometric_error(
    renderer: FaceRenderer, crops: FaceCrops, texture: torch.Tensor, light: torch.Tensor
) -> float:
    """Mean absolute difference between render and crop over the mesh pixels, in working
    display values (0-1), where a difference reads as it looks."""
    size = crops.pixels.shape[1:3]
    out = renderer.render(crops.screen, texture[None], light, size)
    mask = (out.face_mask & (out.fragments.face < len(renderer.mesh_faces))).numpy()
    colour = default_config()
    linear = colour.resolve(LINEAR_SPACE)
    render = colour.convert(out.rgb.clamp(0, 1).numpy(), linear, colour.working_space)
    observed = colour.convert(crops.pixels.numpy(), linear, colour.working_space)
    return float(np.abs(render - observed)[mask].mean())


@dataclass
class Appearance:
    texture: np.ndarray  # (T, T, 3) linear albedo
    light: np.ndarray  # (B, 9, 3) for the crops it was fitted on
    error_sh: float
    error_flat: float


def fit_appearance(model: ActorModel, crops: FaceCrops, texture_px: int = 256) -> Appearance:
    """Albedo and light, separated the way 3DMM fits start: light is first solved against a
    uniform albedo (the face's mean colour), so the SH terms take all the shading the normals
    can explain; the atlas of the crops divided by that shading is the albedo; light is solved
    again against it. The flat baseline lights the same albedo with the order-0 (ambient) term
    alone, refitted per frame."""
    renderer = renderer_for(model)
    with torch.no_grad():
        observed = unwrap_texture(renderer, crops, texture_px)
        covered = observed.sum(dim=0) > 0
        uniform = torch.zeros_like(observed)
        uniform[:, covered] = observed[:, covered].mean(dim=1, keepdim=True)
        texture = unwrap_texture(renderer, crops, texture_px, solve_light(renderer, crops, uniform))
        light = solve_light(renderer, crops, texture)
        flat = _solve_ambient(renderer, crops, texture)
        return Appearance(
            texture=texture.permute(1, 2, 0).numpy().astype(np.float32),
            light=light.numpy().astype(np.float32),
            error_sh=photometric_error(renderer, crops, texture, light),
            error_flat=photometric_error(renderer, crops, texture, flat),
        )


def _solve_ambient(renderer: FaceRenderer, crops: FaceCrops, texture: torch.Tensor) -> torch.Tensor:
    """Best order-0 light per frame and channel: a gain on the albedo."""
    size = crops.pixels.shape[1:3]
    plain = renderer.render(crops.screen, texture[None], None, size)
    mask = (plain.face_mask & (plain.fragments.face < len(renderer.mesh_faces)))[..., None]
    albedo, observed = plain.rgb * mask, crops.pixels * mask
    gain = (albedo * observed).sum(dim=(1, 2)) / (albedo * albedo).sum(dim=(1, 2)).clamp(min=1e-9)
    light = torch.zeros(len(gain), SH_COEFFICIENTS, 3)
    light[:, 0] = gain / sh_basis(torch.tensor([0.0, 0.0, -1.0]))[0]
    return ambient_only(light)


def light_for_frames(plate: Plate, model: ActorModel, fit: ActorFit) -> np.ndarray:
    """(F, 9, 3) SH light of every frame of a fit under the actor's albedo, in batches."""
    renderer = renderer_for(model)
    texture = torch.from_numpy(model.texture).permute(2, 0, 1)
    progress = Progress(f"light {Path(plate.info.source).name}", len(fit.frames))
    lights = []
    for start in range(0, len(fit.frames), LIGHT_BATCH):
        rows = np.arange(start, min(start + LIGHT_BATCH, len(fit.frames)))
        with torch.no_grad():
            light = solve_light(renderer, load_crops(plate, model, fit, rows), texture)
        lights.append(light.numpy().astype(np.float32))
        progress.advance(len(rows))
    return np.concatenate(lights)
