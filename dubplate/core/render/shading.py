"""Lambertian shading under 2nd-order spherical-harmonic lighting (Ramamoorthi & Hanrahan 2001)."""

from __future__ import annotations

import math

import torch

# Y_lm normalisation constants times the clamped-cosine convolution weights (pi, 2pi/3, pi/4):
# irradiance is then sum_k light_k * basis_k(normal).
_C0 = math.pi * 0.282095
_C1 = 2 * math.pi / 3 * 0.488603
_C2 = math.pi / 4 * 1.092548
_C3 = math.pi / 4 * 0.315392
_C4 = math.pi / 4 * 0.546274
SH_COEFFICIENTS = 9


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit normals -> (..., 9) irradiance basis."""
    x, y, z = normals.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, _C0),
            _C1 * y,
            _C1 * z,
            _C1 * x,
            _C2 * x * y,
            _C2 * y * z,
            _C3 * (3 * z * z - 1),
            _C2 * x * z,
            _C4 * (x * x - y * y),
        ],
        dim=-1,
    )


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit normals of (B, V, 3) vertices, pointing out of the face (towards the
    camera, negative z) for triangles wound as in `dubplate.core.morph.triangles`."""
    a, b, c = (vertices[:, faces[:, k]] for k in range(3))
    face_normals = torch.cross(c - a, b - a, dim=-1)
    normals = torch.zeros_like(vertices)
    normals.index_add_(1, faces.reshape(-1), face_normals.repeat_interleave(3, dim=1))
    return torch.nn.functional.normalize(normals, dim=-1)


def ambient_only(light: torch.Tensor) -> torch.Tensor:
    """The same lighting with only its constant (order 0) term: flat, direction-free light."""
    flat = torch.zeros_like(light)
    flat[..., 0, :] = light[..., 0, :]
    return flat
