"""Z-buffer rasterisation of triangle meshes in screen space, batched and vectorised in torch.

Conventions: screen x, y are pixels with pixel (row i, column j) sampled at (j + 0.5, i + 0.5);
z grows away from the camera, so the smallest z is seen; a pixel on a shared edge belongs to
the nearer triangle, and on equal depth to the lower triangle index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Candidate (triangle, pixel) pairs evaluated at once; bounds the rasteriser's memory.
CANDIDATES_PER_CHUNK = 1 << 23


@dataclass
class Fragments:
    """Per pixel: the visible triangle (-1 for none), its barycentric weights and depth."""

    face: torch.Tensor  # (B, H, W) long
    bary: torch.Tensor  # (B, H, W, 3)
    depth: torch.Tensor  # (B, H, W), +inf where empty

    @property
    def covered(self) -> torch.Tensor:
        return self.face >= 0

    def select(self, index: torch.Tensor | slice) -> Fragments:
        """The fragments of the images at `index` of the batch."""
        return Fragments(self.face[index], self.bary[index], self.depth[index])

    @classmethod
    def cat(cls, parts: list[Fragments]) -> Fragments:
        return cls(*(torch.cat([getattr(p, n) for p in parts]) for n in ("face", "bary", "depth")))


def rasterize(screen: torch.Tensor, faces: torch.Tensor, size: tuple[int, int]) -> Fragments:
    """Rasterise (B, V, 3) screen-space vertices with (F, 3) triangles into an image of `size`
    (height, width). Each triangle tests only the pixels of its own bounding box."""
    height, width = size
    batch = screen.shape[0]
    device, dtype = screen.device, screen.dtype
    triangles = screen[:, faces]  # (B, F, 3, 3)
    depth = torch.full((batch * height * width,), float("inf"), device=device, dtype=dtype)
    winner = torch.full((batch * height * width,), -1, device=device, dtype=torch.long)
    bary_out = torch.zeros(batch * height * width, 3, device=device, dtype=dtype)
    candidates = list(_candidates(triangles, height, width))
    for pixel, _, _, z in candidates:
        depth.scatter_reduce_(0, pixel, z, reduce="amin")
    # Among equally near triangles the lowest index wins: keep the largest (last - index).
    last = faces.shape[0] - 1
    for pixel, face, _, z in candidates:
        nearest = z <= depth[pixel]
        winner.scatter_reduce_(0, pixel[nearest], last - face[nearest], reduce="amax")
    for pixel, face, bary, z in candidates:
        chosen = (z <= depth[pixel]) & (last - face == winner[pixel])
        bary_out[pixel[chosen]] = bary[chosen]
    face_out = torch.where(winner >= 0, last - winner, winner)
    return Fragments(
        face=face_out.view(batch, height, width),
        bary=bary_out.view(batch, height, width, 3),
        depth=depth.view(batch, height, width),
    )


def _candidates(triangles: torch.Tensor, height: int, width: int):
    """(pixel index, triangle index, barycentrics, depth) of every pixel centre inside a
    triangle, in chunks of triangles so that bounding-box grids stay within memory."""
    batch, count = triangles.shape[:2]
    xy = triangles[..., :2]
    low = torch.ceil(xy.amin(dim=2) - 0.5).clamp(min=0)
    high = torch.floor(xy.amax(dim=2) - 0.5)
    high = torch.minimum(high, torch.tensor([width - 1, height - 1], device=xy.device))
    extent = (high - low + 1).clamp(min=0).long()  # (B, F, 2): columns, rows
    if extent.numel() == 0 or int(extent.max()) == 0:
        return
    # Triangles of similar size share a chunk, whose grid is the largest box in it: a chunk
    # closes when its box would grow past twice its first one, or past the memory bound.
    order = torch.argsort(extent.prod(dim=-1).amax(dim=0))
    start = 0
    while start < count:
        stop = start + 1
        box = extent[:, order[start:stop]].amax(dim=(0, 1))
        first_area = max(int(box.prod()), 1)
        while stop < count:
            grown = torch.maximum(box, extent[:, order[stop]].amax(dim=0))
            area = int(grown.prod())
            if area > 4 * first_area or batch * (stop + 1 - start) * area > CANDIDATES_PER_CHUNK:
                break
            box, stop = grown, stop + 1
        chunk = order[start:stop]
        yield from _inside(
            triangles[:, chunk], low[:, chunk], extent[:, chunk], box, chunk, height, width
        )
        start = stop


def _inside(triangles, low, extent, box, face_index, height, width):
    batch, count = triangles.shape[:2]
    columns, rows = int(box[0]), int(box[1])
    if columns == 0 or rows == 0:
        return
    dx = torch.arange(columns, device=triangles.device)
    dy = torch.arange(rows, device=triangles.device)
    px = low[..., 0, None, None] + dx[None, None, None, :]  # (B, F, 1, W)
    py = low[..., 1, None, None] + dy[None, None, :, None]  # (B, F, H, 1)
    in_box = (dx[None, None, None, :] < extent[..., 0, None, None]) & (
        dy[None, None, :, None] < extent[..., 1, None, None]
    )
    cx, cy = px + 0.5, py + 0.5
    v = [triangles[:, :, k, None, None, :] for k in range(3)]  # (B, F, 1, 1, 3)
    area = _edge(v[0], v[1], v[2][..., 0], v[2][..., 1])
    edges = [_edge(v[1], v[2], cx, cy), _edge(v[2], v[0], cx, cy), _edge(v[0], v[1], cx, cy)]
    # Inside: every edge function has the sign of the area (either winding is drawn).
    sign = torch.sign(area)
    inside = in_box & (area.abs() > 1e-12)
    for edge in edges:
        inside &= edge * sign >= 0
    b, f, i, j = torch.nonzero(inside, as_tuple=True)
    bary = torch.stack([edge[b, f, i, j] for edge in edges], dim=-1) / area[b, f, 0, 0, None]
    z = (bary * triangles[b, f, :, 2]).sum(dim=-1)
    pixel = (b * height + py[b, f, i, 0].long()) * width + px[b, f, 0, j].long()
    yield pixel, face_index[f], bary, z


def _edge(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Twice the signed area of (a, b, p): which side of edge a->b the point p lies on."""
    return (b[..., 0] - a[..., 0]) * (y - a[..., 1]) - (b[..., 1] - a[..., 1]) * (x - a[..., 0])


def interpolate(
    fragments: Fragments, faces: torch.Tensor, attributes: torch.Tensor
) -> torch.Tensor:
    """(B, V, C) vertex attributes at every pixel, (B, H, W, C); zero where nothing is drawn.
    Differentiable in the attributes."""
    batch, height, width = fragments.face.shape
    per_face = attributes[:, faces]  # (B, F, 3, C)
    face = fragments.face.clamp(min=0).view(batch, -1)
    corners = torch.gather(
        per_face, 1, face[..., None, None].expand(-1, -1, 3, per_face.shape[-1])
    )  # (B, H*W, 3, C)
    values = (fragments.bary.view(batch, -1, 3, 1) * corners).sum(dim=2)
    values = values * fragments.covered.view(batch, -1, 1)
    return values.view(batch, height, width, -1)
