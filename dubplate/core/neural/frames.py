"""What the neural renderer sees for each frame, at its crop size: the real crop, the synthetic
lower face of the driven expression, and the hole cut where the lower face is replaced.

The hole does not follow the frame's own mouth: it is the hull of the lower face over the
actor's closed and most open mouths (plus the driven and real ones), so its outline never tells
the network where the real jaw was.

The actor's reference crops (most open and most closed mouth) come pulled onto each frame's
driven mouth along the mesh: every pixel the mesh covers takes the reference's pixel at the same
point of the surface, the mouth's inside the same point of the strip between the lips. So the
reference's teeth and lip lines arrive where this frame's mouth is, and the generator only
corrects what the mesh gets wrong.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dubplate.core.colour import WITHIN_WHITE, Highlights
from dubplate.core.composite.crop import CropTrack, cut_crop
from dubplate.core.composite.matte import grown_hull
from dubplate.core.media.plate import Plate
from dubplate.core.morph.appearance import LINEAR_SPACE, FaceCrops, renderer_for, solve_light
from dubplate.core.morph.fit import ActorFit
from dubplate.core.morph.model import ActorModel
from dubplate.core.neural.network import smooth_fill
from dubplate.core.neural.occlusion import ActorDifference
from dubplate.core.render.rasterizer import Fragments, interpolate
from dubplate.core.render.renderer import FaceRenderer
from dubplate.core.track.landmarks import (
    INNER_LIP_LOOP,
    MOUTH_CORNERS,
    OUTER_LIP_LOOP,
    UPPER_LIP_LOOP,
)

HOLE_DILATE = 0.06  # of the face's size: past the jaw line, so no real chin edge is left inside
# The replaced region spans this many half mouth-widths either side of the mouth's centre: lips
# and chin, while the cheeks, which the plate's own performance keeps, stay real.
MOUTH_SPAN = 1.4
RENDER_BATCH = 16
HALF_COVERED = 128  # of the hull's 255: a pixel is in the hole when the hull covers half of it
# A plate's light (9 smooth SH terms) is solved on crops shrunk this much, at a tenth of the time:
# its shading is off the full-size solve's by 0.1% (man_map) to 0.9% (woman_seated) of the mean.
LIGHT_SHRINK = 4


@dataclass
class FaceFrames:
    """Per-frame network inputs of a run of frames (rows of a fit), working display values."""

    rows: np.ndarray  # (F,) rows of the fit
    real: torch.Tensor  # (F, 3, N, N) uint8
    renders: torch.Tensor  # (F, 3, 3, N, N) uint8: lower-face renders of t-1, t, t+1
    hole: torch.Tensor  # (F, 1, N, N) bool
    lower_points: np.ndarray  # (F, P, 2) crop pixels (OpenCV centres) of every lower-face hull
    mouth_motion: np.ndarray  # (F, 2) crop pixels a frame that the driven mouth moves in the plate
    # (F, R, 3, N, N) uint8: the reference crops pulled onto each frame's driven mouth; None
    # when the maker was given no references (the frames that choose them).
    references: torch.Tensor | None = None

    def real_images(self) -> np.ndarray:
        """(F, N, N, 3) float32 0-1 real crops, as the compositor takes them."""
        return self.real.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255


@dataclass
class ReferenceCrops:
    """The actor's reference crops and where the mesh lies in each: the most open mouth, then
    the most closed."""

    pixels: torch.Tensor  # (R, 3, N, N) uint8 working display values
    screen: torch.Tensor  # (R, V, 2) float32 crop pixels (edge units) of the mesh's vertices


def mouth_region_vertices(model: ActorModel) -> np.ndarray:
    """Lower-face vertices within MOUTH_SPAN half mouth-widths of the mouth's centre line."""
    x = model.neutral[:, 0]
    left, right = x[MOUTH_CORNERS[0]], x[MOUTH_CORNERS[1]]
    centre, half = (left + right) / 2, abs(right - left) / 2
    lower = model.lower_vertices
    return lower[np.abs(x[lower] - centre) <= MOUTH_SPAN * half]


class FrameMaker:
    """Makes FaceFrames for one plate, fit and crop track; `lower` is the driven expression
    (the fit's own when None), `hole_lowers` the actor's extreme mouths, `references` the
    crops pulled onto each frame's mouth and `highlights` the renderer's view of brightness
    over white."""

    def __init__(
        self,
        plate: Plate,
        model: ActorModel,
        fit: ActorFit,
        crops: CropTrack,
        hole_lowers: np.ndarray,
        lower: np.ndarray | None = None,
        references: ReferenceCrops | None = None,
        highlights: Highlights = WITHIN_WHITE,
    ):
        self.plate, self.model, self.fit, self.crops = plate, model, fit, crops
        self.references, self.highlights = references, highlights
        self.renderer: FaceRenderer = renderer_for(model)
        self.texture = torch.from_numpy(model.texture).permute(2, 0, 1)[None]
        self.linear = plate.colour.resolve(LINEAR_SPACE)
        self.working = plate.colour.working_space
        driven = dataclasses.replace(fit, lower=fit.lower if lower is None else lower)
        driven_posed = driven.posed(model)
        real_posed = fit.posed(model)
        self.real_screen = crops.to_crop(real_posed).astype(np.float32)
        self.driven_screen = crops.to_crop(driven_posed).astype(np.float32)
        hull_screens = [self.real_screen, self.driven_screen]
        for extreme in hole_lowers:
            posed = dataclasses.replace(fit, lower=np.broadcast_to(extreme, fit.lower.shape))
            hull_screens.append(crops.to_crop(posed.posed(model)))
        region = mouth_region_vertices(model)
        self.lower_points = np.concatenate(
            [s[:, region, :2] - 0.5 for s in hull_screens], axis=1
        ).astype(np.float32)
        self.mouth_motion = _mouth_motion(driven_posed[:, region, :2], fit, crops)
        # The plate's own mouth, which the real crops' motion blur comes from.
        self.plate_mouth_motion = _mouth_motion(real_posed[:, region, :2], fit, crops)

    def make(self, rows: np.ndarray, pixels: list[np.ndarray]) -> FaceFrames:
        """Inputs for `rows`, given each row's plate frame."""
        return self.make_from_crops(rows, self.real_linear(rows, pixels))

    def make_from_crops(self, rows: np.ndarray, real_linear: np.ndarray) -> FaceFrames:
        """Inputs for `rows`, given their linear crops (`real_linear`)."""
        light = self.light(rows, real_linear)
        screen, fragments, index = self._rasterized(rows)
        pulled = None
        if self.references is not None:
            pulled = pull_references(
                fragments.select(index[:, 1]), self.renderer.faces, self.references
            )
        return FaceFrames(
            rows=rows,
            real=self._working_uint8(real_linear),
            renders=self._renders(light, screen, fragments, index),
            hole=torch.from_numpy(self.holes(rows))[:, None],
            lower_points=self.lower_points[rows],
            mouth_motion=self.mouth_motion[rows],
            references=pulled,
        )

    def real_crops(
        self, rows: np.ndarray, real_linear: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(F, N, N, 3) float32 0-1 real crops of `rows` (cut by `real_linear`), as `make` gives
        them, and (F, N, N) their holes, without the renders: what measuring the plate needs."""
        return self.real_display(real_linear), self.holes(rows)

    def real_display(self, real_linear: np.ndarray) -> np.ndarray:
        """(F, N, N, 3) float32 0-1 working display values of linear crops, as `make` gives them."""
        real = self._working_uint8(real_linear).permute(0, 2, 3, 1)
        return real.numpy().astype(np.float32) / 255

    def actor_difference(
        self, rows: np.ndarray, real_linear: np.ndarray, light: torch.Tensor
    ) -> ActorDifference:
        """How far each real crop of `rows` (cut by `real_linear`) is from the actor's albedo
        under the frame's light on its own fitted face: the largest channel's difference in
        working display values, over the lower face's skin and lips; and where the lips are."""
        size = (self.crops.size, self.crops.size)
        screen = torch.from_numpy(self.real_screen[rows])
        with torch.no_grad():
            out = self.renderer.render(screen, self.texture, light, size)
        cavity = out.fragments.face >= len(self.renderer.mesh_faces)
        skin = (out.lower_mask & ~cavity).numpy()
        drawn = self._working_uint8(out.rgb.clamp(0, 1).numpy()).numpy()
        real = self._working_uint8(real_linear).numpy()
        difference = np.abs(drawn.astype(np.float32) - real).max(axis=1) / 255
        values = np.where(skin, difference, np.nan).astype(np.float32)
        return ActorDifference(values, np.stack([self.lips(row) for row in rows]) & skin)

    def real_linear(self, rows: np.ndarray, pixels: list[np.ndarray]) -> np.ndarray:
        """(F, N, N, 3) linear crops of `rows` cut from each row's plate frame in `pixels`."""
        return np.stack(
            [
                self.plate.colour.convert(
                    cut_crop(frame, self.crops, row), self.plate.info.colourspace, self.linear
                )
                for row, frame in zip(rows, pixels, strict=True)
            ]
        )

    def light(self, rows: np.ndarray, real_linear: np.ndarray) -> torch.Tensor:
        """(F, 9, 3) SH light of `rows`: the fit's, or solved on their real crops."""
        if self.fit.light is not None:
            return torch.from_numpy(self.fit.light[rows])
        pixels = F.avg_pool2d(torch.from_numpy(real_linear).permute(0, 3, 1, 2), LIGHT_SHRINK)
        crops = FaceCrops(
            pixels=pixels.permute(0, 2, 3, 1).contiguous(),
            # Uniformly, so the normals the shading basis comes from stay as they are.
            screen=torch.from_numpy(self.real_screen[rows]) / LIGHT_SHRINK,
            regions=np.zeros((len(rows), 4), int),
        )
        with torch.no_grad():
            return solve_light(self.renderer, crops, self.texture[0])

    def _rasterized(self, rows: np.ndarray) -> tuple[torch.Tensor, Fragments, torch.Tensor]:
        """The driven geometries of frames t-1, t and t+1 of `rows` (screen vertices), each
        rasterised once, and (F, 3) the index of each row's three among them."""
        size = (self.crops.size, self.crops.size)
        first, stop = self.fit.span_of_rows()
        neighbours = np.clip(
            rows[:, None] + np.arange(-1, 2), first[rows, None], stop[rows, None] - 1
        )
        geometry, index = np.unique(neighbours, return_inverse=True)
        screen = torch.from_numpy(self.driven_screen[geometry])
        with torch.no_grad():
            fragments = Fragments.cat(
                [
                    self.renderer.rasterize(screen[start : start + RENDER_BATCH], size)
                    for start in range(0, len(screen), RENDER_BATCH)
                ]
            )
        return screen, fragments, torch.from_numpy(index.reshape(neighbours.shape))

    def _renders(
        self, light: torch.Tensor, screen: torch.Tensor, fragments: Fragments, index: torch.Tensor
    ) -> torch.Tensor:
        """(F, 3, 3, N, N) lower-face renders of frames t-1, t and t+1, all under frame t's
        light: only the geometry moves between them."""
        with torch.no_grad():
            renders = [
                self._shaded(screen[index[:, step]], fragments.select(index[:, step]), light)
                for step in range(3)
            ]
        return torch.stack(renders, dim=1)

    def _shaded(
        self, screen: torch.Tensor, fragments: Fragments, light: torch.Tensor
    ) -> torch.Tensor:
        size = (self.crops.size, self.crops.size)
        out = []
        for start in range(0, len(screen), RENDER_BATCH):
            part = slice(start, start + RENDER_BATCH)
            render = self.renderer.render(
                screen[part], self.texture, light[part], size, fragments.select(part)
            )
            # Without headroom, renders were learnt clipped at white channel by channel; with
            # it, the roll holds what the light makes over white, as in the real crops.
            ceiling = None if self.highlights.rolls else 1.0
            rgb = render.rgb.clamp(0, ceiling) * render.lower_mask[..., None]
            out.append(self._working_uint8(rgb.numpy()))
        return torch.cat(out)

    def _working_uint8(self, linear: np.ndarray) -> torch.Tensor:
        """(F, N, N, 3) linear to (F, 3, N, N) uint8 working display values, highlights rolled
        off as the renderer sees them."""
        rolled = self.highlights.roll(np.ascontiguousarray(linear))
        working = self.plate.colour.to_working_uint8(rolled, self.linear)
        return torch.from_numpy(np.ascontiguousarray(working)).permute(0, 3, 1, 2)

    def holes(self, rows: np.ndarray) -> np.ndarray:
        """(F, N, N) bool: where the lower face of `rows` is replaced."""
        dilate = HOLE_DILATE * self.crops.face_px
        return np.stack(
            [
                grown_hull(self.lower_points[row], self.crops.size, dilate) >= HALF_COVERED
                for row in rows
            ]
        )

    def lips(self, row: int) -> np.ndarray:
        """(N, N) bool: between the outer and the inner lip contours of the row's fitted face."""
        return self._lips(self.real_screen[row])

    def mouth(self, row: int) -> np.ndarray:
        """(N, N) bool: within the outer lip contour of the row's fitted face, opening and all."""
        return self._within(self.real_screen[row], OUTER_LIP_LOOP)

    def each_lip(self, row: int) -> np.ndarray:
        """(2, N, N) bool: the upper and the lower lip of the row's fitted face, `lips` split."""
        return self._each_lip(self.real_screen[row])

    def drawn_lips(self, row: int) -> np.ndarray:
        """(2, N, N) float32: where the comp shifts each lip's colour: the driven face's upper
        and lower lip, each whole at full weight, feathered outwards over a hundredth of the
        face (together never over 1). Feathered across its edge, a lip a few pixels thin kept
        a fraction of its shift: woman_flag_b's upper lip, dubbed by woman_flag_a's actor,
        stayed 3 L* lighter than the plate's (bench/cross_shot_bench.py)."""
        sigma = max(0.01 * self.crops.face_px, 0.5)
        lips = self._each_lip(self.driven_screen[row])
        # Each pixel off the lips takes the feather of the lip nearer it only: measured through
        # the other lip, the lower lip's would reach the skin above a thin upper lip.
        reach = np.stack(
            [
                cv2.distanceTransform((~lip).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
                for lip in lips
            ]
        )
        reach = np.minimum(reach, 8 * sigma)  # a lip with no pixels is "infinitely" far
        # A pixel's nearer lip takes it (halved where both are as near): a lip's own pixels
        # are 1 for it (no reach) and nothing for the other.
        nearer = reach == reach.min(axis=0)
        weights = np.exp(-0.5 * (reach / sigma) ** 2) * nearer / nearer.sum(axis=0)
        return weights.astype(np.float32)

    def _each_lip(self, screen: np.ndarray) -> np.ndarray:
        # Split from the lips as one, so the opening stays out: a shut mouth's inner contour
        # crosses itself by a fraction of a pixel, and each lip's own polygon takes the slit.
        lips = self._lips(screen)
        upper = lips & self._within(screen, UPPER_LIP_LOOP)
        return np.stack([upper, lips & ~upper])

    def _lips(self, screen: np.ndarray) -> np.ndarray:
        return self._within(screen, OUTER_LIP_LOOP) & ~self._within(screen, INNER_LIP_LOOP)

    def _within(self, screen: np.ndarray, loop: tuple[int, ...]) -> np.ndarray:
        points = screen[:, :2] - 0.5  # OpenCV pixel centres
        mask = np.zeros((self.crops.size, self.crops.size), np.uint8)
        cv2.fillPoly(mask, [np.round(points[list(loop)]).astype(np.int32)], 1)
        return mask.astype(bool)


def pull_references(
    fragments: Fragments, faces: torch.Tensor, references: ReferenceCrops
) -> torch.Tensor:
    """(B, R, 3, N, N) uint8: each reference crop moved onto each of the B rasterised meshes.
    A covered pixel takes the reference's pixel at the same barycentric point of the same
    triangle; uncovered pixels move as the covered ones within a quarter crop around them do
    (a smooth fill of the displacement)."""
    batch, height, width = fragments.face.shape
    count = len(references.pixels)
    where = references.screen.permute(1, 0, 2).reshape(1, -1, 2 * count)  # (1, V, R x 2)
    points = interpolate(fragments, faces, where.expand(batch, -1, -1))
    points = points.view(batch, height, width, count, 2).permute(0, 3, 4, 1, 2)
    columns = torch.arange(width, dtype=points.dtype) + 0.5
    rows = torch.arange(height, dtype=points.dtype)[:, None] + 0.5
    centres = torch.stack(torch.broadcast_tensors(columns, rows))  # (2, H, W): x, y
    covered = fragments.covered[:, None]  # (B, 1, H, W)
    moved = (points - centres).flatten(1, 2)  # (B, R x 2, H, W)
    moved = torch.where(covered, moved, smooth_fill(moved, covered.to(moved.dtype)))
    target = centres + moved.view(batch, count, 2, height, width)
    scale = torch.tensor([2 / width, 2 / height], dtype=points.dtype).view(2, 1, 1)
    grid = (target * scale - 1).flatten(0, 1).permute(0, 2, 3, 1)
    images = references.pixels.float().expand(batch, -1, -1, -1, -1).flatten(0, 1)
    # Bicubic, so the pulled teeth and lip lines keep the reference's detail.
    pulled = F.grid_sample(images, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return pulled.round().clamp(0, 255).to(torch.uint8).unflatten(0, (batch, count))


def _mouth_motion(mouth: np.ndarray, fit: ActorFit, crops: CropTrack) -> np.ndarray:
    """(F, 2) crop pixels a frame that the centre of the posed `mouth` (F, P, 2 plate pixels)
    moves in the plate, by central differences over frame numbers within each of the fit's
    runs (no motion across a cut; none in a run of one frame)."""
    centre = mouth.mean(axis=1)
    velocity = np.zeros((len(fit.frames), 2))
    for start, stop in fit.spans():
        if stop - start > 1:
            span = slice(start, stop)
            frames = np.asarray(fit.frames[span], float)
            velocity[span] = np.gradient(centre[span], frames, axis=0)
    return (velocity * crops.scale[:, None]).astype(np.float32)
