"""The face renderer: rasterise, texture through the UV layout, shade with SH light, and fill
the mouth opening with a dark cavity. Outputs RGB and the face and lower-face masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dubplate.core.render.rasterizer import Fragments, interpolate, rasterize
from dubplate.core.render.shading import sh_basis, vertex_normals

# Linear RGB of the mouth's inside: dark, slightly red, as it reads on camera.
CAVITY_RGB = (0.03, 0.012, 0.01)


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (B, H, W, 3) linear
    face_mask: torch.Tensor  # (B, H, W) bool: mesh or mouth cavity
    lower_mask: torch.Tensor  # (B, H, W) bool: lower-face triangles and the cavity
    fragments: Fragments


class FaceRenderer:
    """Renders one actor's mesh topology; screen-space vertices come from a camera."""

    def __init__(
        self,
        triangles: np.ndarray,
        uv: np.ndarray,
        lower_vertices: Sequence[int],
        cavity_loop: Sequence[int],
        device: torch.device | str = "cpu",
    ):
        mesh = torch.as_tensor(np.asarray(triangles), dtype=torch.long)
        # The inner-lip loop runs corner, upper lip, corner, lower lip back. A strip between its
        # upper and lower points covers the opening; a fan from one corner spilt over the lips
        # wherever the mouth's line curves.
        loop = list(cavity_loop)
        half = len(loop) // 2
        top, bottom = loop[1:half], loop[:half:-1]
        strip = [(loop[0], top[0], bottom[0]), (loop[half], bottom[-1], top[-1])]
        for i in range(len(top) - 1):
            strip += [(top[i], bottom[i], top[i + 1]), (top[i + 1], bottom[i], bottom[i + 1])]
        cavity = torch.tensor(strip)
        self.mesh_faces = mesh.to(device)
        self.faces = torch.cat([mesh, cavity]).to(device)
        lower = torch.zeros(int(mesh.max()) + 1, dtype=torch.bool)
        lower[list(lower_vertices)] = True
        lower_face = torch.cat([lower[mesh].all(dim=1), torch.ones(len(cavity), dtype=torch.bool)])
        self.lower_face = lower_face.to(device)
        self.uv = torch.as_tensor(uv, dtype=torch.float32, device=device)
        self.device = torch.device(device)

    def rasterize(self, screen: torch.Tensor, size: tuple[int, int]) -> Fragments:
        return rasterize(screen, self.faces, size)

    def vertex_basis(self, screen: torch.Tensor) -> torch.Tensor:
        """(B, V, 9) SH irradiance basis at each vertex. Irradiance under 2nd-order light is
        smooth, so shading the vertices and interpolating (Gouraud) matches per-pixel shading
        at a fraction of the cost."""
        return sh_basis(vertex_normals(screen, self.mesh_faces))

    def render(
        self,
        screen: torch.Tensor,
        texture: torch.Tensor,
        light: torch.Tensor | None,
        size: tuple[int, int],
        fragments: Fragments | None = None,
    ) -> RenderOutput:
        """(B, V, 3) screen vertices, (B or 1, 3, T, T) linear texture, (B, 9, 3) SH light
        (None: albedo only). `fragments` of `screen` already rasterised are reused: shading one
        geometry under several lights costs a fraction of rasterising it again."""
        batch = screen.shape[0]
        if fragments is None:
            fragments = self.rasterize(screen, size)
        attributes = [self.uv.expand(batch, -1, -1)]
        if light is not None:
            attributes.append(self.vertex_basis(screen) @ light)  # irradiance per vertex
        values = interpolate(fragments, self.faces, torch.cat(attributes, dim=-1))
        grid = values[..., :2] * 2 - 1
        rgb = F.grid_sample(
            texture.expand(batch, -1, -1, -1), grid, mode="bilinear", align_corners=False
        ).permute(0, 2, 3, 1)
        if light is not None:
            rgb = rgb * values[..., 2:]
        face = fragments.face
        covered = fragments.covered
        cavity = face >= len(self.mesh_faces)
        cavity_rgb = torch.tensor(CAVITY_RGB, dtype=rgb.dtype, device=rgb.device)
        rgb = torch.where(cavity[..., None], cavity_rgb, rgb * covered[..., None])
        lower = covered & self.lower_face[face.clamp(min=0)]
        return RenderOutput(rgb, covered, lower, fragments)
