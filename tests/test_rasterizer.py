"""The torch rasteriser against a NumPy reference, and its gradients."""

import numpy as np
import pytest
import torch

from dubplate.core.morph.triangles import TRIANGLES
from dubplate.core.render.rasterizer import interpolate, rasterize
from tests.reference_rasterizer import interpolate_reference, rasterize_reference

FACES = np.array(TRIANGLES)


def random_meshes(batch, size, triangles=50, seed=0):
    """Overlapping random triangles, each with its own vertices and depths, some off screen."""
    rng = np.random.default_rng(seed)
    screen = rng.uniform(-8, size + 8, (batch, 3 * triangles, 3))
    screen[..., 2] = rng.uniform(0, 10, (batch, 3 * triangles))
    return screen, np.arange(3 * triangles).reshape(triangles, 3)


def test_matches_the_numpy_reference_on_overlapping_triangles():
    screen, faces = random_meshes(2, 40)
    colours = np.random.default_rng(1).uniform(0, 1, (2, 150, 3))
    fragments = rasterize(torch.tensor(screen), torch.tensor(faces), (40, 48))
    image = interpolate(fragments, torch.tensor(faces), torch.tensor(colours)).numpy()
    for b in range(2):
        face, bary, depth = rasterize_reference(screen[b], faces, 40, 48)
        np.testing.assert_array_equal(fragments.face[b].numpy(), face)
        reference = interpolate_reference(face, bary, faces, colours[b])
        assert np.abs(image[b] - reference).max() < 1e-4
        assert np.isfinite(depth).sum() == fragments.covered[b].sum()


def test_face_mesh_render_matches_reference_in_float32():
    rng = np.random.default_rng(4)
    angle = np.linspace(0, 2 * np.pi, 468)
    screen = np.stack(
        [
            64 + 50 * np.cos(angle * 7) * rng.uniform(0.3, 1, 468),
            64 + 50 * np.sin(angle * 5) * rng.uniform(0.3, 1, 468),
            rng.uniform(0, 5, 468),
        ],
        axis=1,
    )[None].astype(np.float32)
    colours = rng.uniform(0, 1, (1, 468, 3)).astype(np.float32)
    fragments = rasterize(torch.tensor(screen), torch.tensor(FACES), (128, 128))
    image = interpolate(fragments, torch.tensor(FACES), torch.tensor(colours))[0].numpy()
    face, bary, _ = rasterize_reference(screen[0], FACES, 128, 128)
    reference = interpolate_reference(face, bary, FACES, colours[0].astype(np.float64))
    same = fragments.face[0].numpy() == face
    assert same.mean() > 0.999  # float32 vs float64 may flip a pixel lying on an edge
    assert np.abs(image - reference)[same].max() < 1e-4


def test_gradients_reach_the_vertex_attributes():
    screen, faces = random_meshes(1, 12, triangles=6, seed=2)
    colours = torch.rand(1, 18, 2, dtype=torch.float64, requires_grad=True)
    fragments = rasterize(torch.tensor(screen), torch.tensor(faces), (12, 12))
    interpolate(fragments, torch.tensor(faces), colours).sum().backward()
    used = np.unique(faces[fragments.face[fragments.covered].numpy()])
    assert len(used) > 3 and (colours.grad[0, used].abs().sum(dim=-1) > 0).all()
    assert torch.autograd.gradcheck(
        lambda c: interpolate(fragments, torch.tensor(faces), c), (colours,), eps=1e-6
    )


def test_empty_and_offscreen():
    screen = torch.tensor([[[-50.0, -50, 0], [-40, -50, 0], [-45, -40, 0]]])
    fragments = rasterize(screen, torch.tensor([[0, 1, 2]]), (16, 16))
    assert not fragments.covered.any()


@pytest.mark.parametrize("device", ["cuda"])
def test_cuda_matches_cpu(device):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    screen, faces = random_meshes(2, 40)
    cpu = rasterize(torch.tensor(screen), torch.tensor(faces), (40, 40))
    gpu = rasterize(
        torch.tensor(screen, device=device), torch.tensor(faces, device=device), (40, 40)
    )
    assert torch.equal(cpu.face, gpu.face.cpu())
