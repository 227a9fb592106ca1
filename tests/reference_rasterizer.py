"""A plain NumPy rasteriser, triangle by triangle, as the reference for the torch one."""

import numpy as np


def rasterize_reference(screen: np.ndarray, faces: np.ndarray, height: int, width: int):
    """(face, bary, depth) images for one (V, 3) mesh, same conventions as the torch version."""
    face = np.full((height, width), -1, np.int64)
    bary = np.zeros((height, width, 3))
    depth = np.full((height, width), np.inf)
    for index, triangle in enumerate(faces):
        a, b, c = screen[triangle].astype(np.float64)
        area = _edge(a, b, c[0], c[1])
        if abs(area) <= 1e-12:
            continue
        x0 = max(int(np.ceil(min(a[0], b[0], c[0]) - 0.5)), 0)
        x1 = min(int(np.floor(max(a[0], b[0], c[0]) - 0.5)), width - 1)
        y0 = max(int(np.ceil(min(a[1], b[1], c[1]) - 0.5)), 0)
        y1 = min(int(np.floor(max(a[1], b[1], c[1]) - 0.5)), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        y, x = np.mgrid[y0 : y1 + 1, x0 : x1 + 1] + 0.5
        w = np.stack([_edge(b, c, x, y), _edge(c, a, x, y), _edge(a, b, x, y)], axis=-1) / area
        z = w @ np.array([a[2], b[2], c[2]])
        window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        # Strict: on equal depth the earlier triangle keeps the pixel.
        nearer = (w >= 0).all(axis=-1) & (z < depth[window])
        face[window][nearer], bary[window][nearer], depth[window][nearer] = (
            index,
            w[nearer],
            z[nearer],
        )
    return face, bary, depth


def interpolate_reference(face, bary, faces, attributes):
    out = np.zeros((*face.shape, attributes.shape[-1]))
    rows, columns = np.nonzero(face >= 0)
    corners = attributes[faces[face[rows, columns]]]  # (N, 3, C)
    out[rows, columns] = (bary[rows, columns, :, None] * corners).sum(axis=1)
    return out


def _edge(a, b, x, y):
    return (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
