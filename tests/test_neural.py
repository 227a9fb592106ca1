"""The neural renderer: its losses, and training that learns, checkpoints and resumes."""

import math

import cv2
import numpy as np
import pytest
import torch

from dubplate.core.composite.match import motion_blurred
from dubplate.core.errors import DubplateError
from dubplate.core.neural import train as neural_train
from dubplate.core.neural.finish import AMOUNTS, matched_amount, measure_finish, stiller_half
from dubplate.core.neural.frames import ReferenceCrops, pull_references
from dubplate.core.neural.losses import C1, ms_ssim, ssim
from dubplate.core.neural.network import (
    FLOW_RANGE,
    FLOWS,
    INPUT_CHANNELS,
    REFERENCE_COUNT,
    SHARES,
    Generator,
    _box,
    _Up,
    _UpsampledConv,
    _warp,
)
from dubplate.core.neural.train import (
    RendererSettings,
    TrainingSet,
    _jitter_geometry,
    draw_chances,
    generator_input,
    train_renderer,
)
from dubplate.core.render.rasterizer import rasterize

SIZE = 128


def test_ssim_of_flat_images_is_their_luminance_term():
    a, b = torch.full((1, 3, 32, 32), 0.5), torch.full((1, 3, 32, 32), 0.6)
    expected = (2 * 0.5 * 0.6 + C1) / (0.5**2 + 0.6**2 + C1)
    assert float(ssim(a, b)) == pytest.approx(expected, rel=1e-3)  # float32 window sums
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_falls_with_noise_and_blur():
    torch.manual_seed(0)
    image = torch.rand(1, 3, SIZE, SIZE)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(image, 3, 1, 1)
    assert float(ms_ssim(image, image)) == pytest.approx(1.0, abs=1e-5)
    assert float(ms_ssim(image, noisy)) < 0.9
    assert float(ms_ssim(image, blurred)) < 0.9


def test_generator_keeps_the_crop_outside_an_empty_hole_at_start():
    torch.manual_seed(0)
    crop = torch.rand(1, 3, SIZE, SIZE) * 0.8 + 0.1
    inputs = torch.cat([crop, torch.zeros(1, INPUT_CHANNELS - 3, SIZE, SIZE)], dim=1)
    with torch.no_grad():
        out = Generator()(inputs)
    # The untrained head adds a small correction on the crop's logit, not a new picture.
    assert float((out - crop).abs().mean()) < 0.1


def test_upsampled_conv_is_a_3x3_convolution_of_the_nearest_upsampled_input():
    torch.manual_seed(0)
    conv = _UpsampledConv(5, 7)
    image = torch.rand(2, 5, 6, 9)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.interpolate(image, scale_factor=2, mode="nearest"),
        conv.weight,
        padding=1,
    )
    out = conv(torch.nn.functional.pad(image, (1, 1, 1, 1)))
    assert out.shape == expected.shape == (2, 7, 12, 18)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_up_layers_load_renderers_trained_with_the_upsample_layer():
    """Renderers of format 7 were trained with nn.Upsample before the convolution: their
    weights load into the up layer as they are and give the same output."""
    torch.manual_seed(0)
    trained = torch.nn.Sequential(
        torch.nn.Upsample(scale_factor=2, mode="nearest"),
        torch.nn.Conv2d(6, 4, 3, padding=1, bias=False),
        torch.nn.InstanceNorm2d(4, affine=True),
        torch.nn.ReLU(),
    )
    torch.nn.init.normal_(trained[2].weight)
    up = _Up(6, 4)
    up.block.load_state_dict(trained.state_dict(), strict=True)
    image, skip = torch.rand(2, 6, 5, 7), torch.rand(2, 3, 10, 14)
    torch.testing.assert_close(up(image, skip), torch.cat([trained(image), skip], dim=1))


def test_box_mean_counts_only_the_pixels_inside_the_image():
    torch.manual_seed(0)
    image = torch.rand(1, 2, 10, 13)
    expected = torch.nn.functional.avg_pool2d(image, 5, 1, 2, count_include_pad=False)
    torch.testing.assert_close(_box(image, 5), expected)
    corner = image[0, :, :3, :3].mean(dim=(1, 2))  # a corner's window holds 3x3 pixels
    torch.testing.assert_close(_box(image, 5)[0, :, 0, 0], corner)


def _every_frame(references: torch.Tensor, frames: int) -> torch.Tensor:
    """(frames, R, 3, N, N): the same references for every frame, as a still mesh pulls them."""
    return references[None].expand(frames, -1, -1, -1, -1)


def mouth_world(frames=12, seed=0):
    """A face-coloured crop whose 'mouth' is a dark bar as tall as the render says."""
    rng = np.random.default_rng(seed)
    skin = np.array([200, 150, 130], np.uint8).reshape(1, 3, 1, 1)
    real = np.broadcast_to(skin, (frames, 3, SIZE, SIZE)).copy()
    renders = np.zeros((frames, 3, 3, SIZE, SIZE), np.uint8)
    hole = np.zeros((frames, 1, SIZE, SIZE), bool)
    hole[:, :, 64:112, 32:96] = True
    heights = rng.integers(2, 20, frames)
    for f, height in enumerate(heights):
        real[f, :, 88 - height // 2 : 88 + height // 2, 48:80] = 40
        renders[f, :, :, 88 - height // 2 : 88 + height // 2, 48:80] = 255
    return TrainingSet(
        real=torch.from_numpy(real),
        renders=torch.from_numpy(renders),
        hole=torch.from_numpy(hole),
        references=_every_frame(
            torch.from_numpy(real[[np.argmax(heights), np.argmin(heights)]]), frames
        ),
        opening=heights.astype(np.float32),
        mouth_motion=np.zeros((frames, 2), np.float32),
    )


def hole_error(generator, data):
    with torch.no_grad():
        out = generator(generator_input(data.real, data.renders, data.hole, data.references))
    target = data.real.float() / 255
    return float(((out - target).abs() * data.hole).sum() / (data.hole.sum() * 3))


def test_training_draws_the_mouth_the_render_asks_for(tmp_path):
    data = mouth_world()
    torch.manual_seed(0)
    before = hole_error(Generator().eval(), data)
    settings = RendererSettings(size=SIZE, steps=40, batch=2, checkpoint_every=40)
    generator, report = train_renderer(data, settings, "cpu", tmp_path / "renderer.ckpt")
    assert report["steps"] == 40 and report["train_frames"] == len(data)
    assert hole_error(generator, data) < 0.5 * before


def test_both_networks_update_every_weight_at_every_step(tmp_path):
    """The discriminator is frozen while the generator's loss passes through it: it must come
    back to learning for its own step."""
    checkpoint = tmp_path / "renderer.ckpt"
    settings = RendererSettings(size=SIZE, steps=3, batch=2, checkpoint_every=3)
    train_renderer(mouth_world(frames=4), settings, "cpu", checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    for network, optimiser in (("generator", "opt_g"), ("discriminator", "opt_d")):
        weights = [k for k in state[network] if k.endswith(("weight", "bias"))]
        steps = [int(s["step"]) for s in state[optimiser]["state"].values()]
        assert steps == [3] * len(weights), network


def test_training_resumes_from_its_checkpoint_and_refuses_other_settings(tmp_path, monkeypatch):
    """A run stopped at its third step goes on from the checkpoint of its second."""
    data = mouth_world(frames=4)
    checkpoint = tmp_path / "renderer.ckpt"
    settings = RendererSettings(size=SIZE, steps=4, batch=2, checkpoint_every=2)
    steps = 0

    def stopped_at_the_third_step(*args):
        nonlocal steps
        steps += 1
        if steps == 3:
            raise KeyboardInterrupt
        return ms_ssim(*args)

    with monkeypatch.context() as patch:
        patch.setattr(neural_train, "ms_ssim", stopped_at_the_third_step)
        with pytest.raises(KeyboardInterrupt):
            train_renderer(data, settings, "cpu", checkpoint)
    half_way = torch.load(checkpoint, weights_only=True)
    assert half_way["step"] == 2
    _, report = train_renderer(data, settings, "cpu", checkpoint)
    assert report["resumed_from"] == 2
    done = torch.load(checkpoint, weights_only=True)
    assert done["step"] == 4
    trained = half_way["generator"].items()
    assert any(not torch.equal(done["generator"][k], before) for k, before in trained)
    other = RendererSettings(size=SIZE, steps=6, batch=2, checkpoint_every=2)
    with pytest.raises(DubplateError, match="renderer.ckpt: checkpoint of other settings"):
        train_renderer(data, other, "cpu", checkpoint)


def test_a_checkpoint_of_another_renderer_format_is_refused(tmp_path):
    """A format-7 run stopped half way has the same settings and weights' shapes; resumed, it
    would go on training on inputs it was not trained on."""
    data = mouth_world(frames=4)
    checkpoint = tmp_path / "renderer.ckpt"
    settings = RendererSettings(size=SIZE, steps=2, batch=2, checkpoint_every=2)
    train_renderer(data, settings, "cpu", checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    del state["format_version"]  # as format 7 wrote them
    torch.save(state, checkpoint)
    with pytest.raises(DubplateError, match="renderer.ckpt: checkpoint of renderer format None"):
        train_renderer(data, settings, "cpu", checkpoint)


def test_a_checkpoint_of_an_older_generator_is_refused_by_name(tmp_path):
    data = mouth_world(frames=4)
    checkpoint = tmp_path / "renderer.ckpt"
    settings = RendererSettings(size=SIZE, steps=2, batch=2, checkpoint_every=2)
    train_renderer(data, settings, "cpu", checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    warp = state["generator"]["warp.weight"]
    state["generator"]["warp.weight"] = warp[:3]  # the shape of the generator of format 6
    torch.save(state, checkpoint)
    with pytest.raises(DubplateError, match="renderer.ckpt: checkpoint of another renderer"):
        train_renderer(data, settings, "cpu", checkpoint)


@pytest.mark.parametrize("size", [64, 200])
def test_crop_sizes_the_network_cannot_take_are_refused(size):
    with pytest.raises(DubplateError, match=f"--size {size}"):
        RendererSettings(size=size)


def test_rare_mouth_shapes_are_drawn_far_above_their_share():
    """Speech is mostly half-open mouths: 5% closed and 5% wide frames must not be learnt last."""
    opening = np.concatenate([np.zeros(5), np.full(90, 0.5), np.ones(5)])
    chances = draw_chances(opening)
    assert chances.sum() == pytest.approx(1)
    closed, wide = chances[:5].sum(), chances[-5:].sum()
    assert closed == pytest.approx(0.5 * 0.05 + 0.5 / 3) and wide == pytest.approx(closed)
    assert chances[5:95].sum() < 0.65
    np.testing.assert_allclose(draw_chances(np.full(10, 0.3)), 0.1)


def _laplacian_variance(images: torch.Tensor) -> float:
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(images.shape[1], 1, 3, 3)
    return float(torch.nn.functional.conv2d(images, kernel, groups=images.shape[1]).var())


def test_shift_and_zoom_augmentation_keeps_the_targets_sharp():
    # Texture up to the crop's Nyquist, as grain and teeth edges: bilinear resampling kept 0.45
    # of its Laplacian variance, bicubic 0.70 (0.70 and 0.93 on man_map's mouths).
    texture = torch.from_numpy(
        np.random.default_rng(3).uniform(0, 1, (8, INPUT_CHANNELS + 3, 96, 96))
    )
    texture = torch.nn.functional.avg_pool2d(texture.float(), 3, 1, 1)
    moved = _jitter_geometry(texture, RendererSettings(), np.random.default_rng(0))
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert _laplacian_variance(moved[inner]) > 0.6 * _laplacian_variance(texture[inner])


@pytest.mark.parametrize("axis", [0, 1])
def test_flow_of_one_pixel_moves_the_reference_by_one_pixel(axis):
    image = torch.rand(1, 3, 24, 32)  # not square: a swapped height and width would show
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, axis] = 2 / image.shape[3 - axis]  # grid_sample's -1..1 spans the whole side
    moved = _warp(image, flow).movedim(3 - axis, -1)
    torch.testing.assert_close(moved[..., :-2], image.movedim(3 - axis, -1)[..., 1:-1])


@pytest.mark.parametrize("chosen", range(REFERENCE_COUNT))
def test_generator_pulls_each_reference_into_the_hole_by_its_own_flow(chosen):
    """Two crops, each with its own references: each is filled from its own chosen reference,
    moved by that reference's flow, so a mix-up of batch and reference order shows."""
    generator = Generator().eval()
    step = (2 / SIZE) / FLOW_RANGE  # one pixel to the right
    bias = torch.zeros(SHARES.stop)
    bias[FLOWS.start + 2 * chosen] = math.atanh(step)
    bias[SHARES.start + 1 + chosen] = (
        20.0  # all of the hole from the chosen one, none from the fill
    )
    with torch.no_grad():
        generator.warp.bias.copy_(bias)
        generator.head[-1].weight.zero_()
        generator.head[-1].bias.zero_()
        references = torch.rand(2, 3 * REFERENCE_COUNT, SIZE, SIZE) * 0.8 + 0.1
        hole = torch.zeros(2, 1, SIZE, SIZE)
        hole[..., 32:96, 32:96] = 1
        inputs = torch.cat([torch.zeros(2, 3, SIZE, SIZE), hole, torch.zeros(2, 9, SIZE, SIZE)], 1)
        out = generator(torch.cat([inputs, references], dim=1))
    inside = (..., slice(34, 94), slice(34, 94))
    reference = references[:, 3 * chosen : 3 * chosen + 3]
    torch.testing.assert_close(out[inside], reference[..., 1:][inside], atol=1e-3, rtol=0)


def _texture(rng: np.random.Generator) -> torch.Tensor:
    """(1, 3, SIZE, SIZE) uint8 grain up to the crop's Nyquist, as teeth edges and lip lines."""
    noise = torch.from_numpy(rng.integers(60, 200, (1, 3, SIZE, SIZE)).astype(np.float32))
    return torch.nn.functional.avg_pool2d(noise, 3, 1, 1).round().to(torch.uint8)


def _detail_kept(out: torch.Tensor, target: torch.Tensor, inside: tuple) -> tuple[float, float]:
    """Laplacian variance of `out` over the target's, and their high-pass correlation."""
    sharpness = _laplacian_variance(out[inside]) / _laplacian_variance(target[inside])
    detail = torch.stack([_high_pass(out)[inside].flatten(), _high_pass(target)[inside].flatten()])
    return sharpness, float(torch.corrcoef(detail)[0, 1])


def test_training_learns_the_flow_that_keeps_the_reference_detail(tmp_path):
    """Grain and teeth the half-resolution features cannot carry come from the reference's own
    pixels: a textured face, its references 2 px off, is drawn back with its texture in place."""
    texture = _texture(np.random.default_rng(5))
    frames = 6
    hole = torch.zeros(frames, 1, SIZE, SIZE, dtype=torch.bool)
    hole[:, :, 64:112, 32:96] = True
    data = TrainingSet(
        real=texture.expand(frames, -1, -1, -1).clone(),
        renders=torch.zeros(frames, 3, 3, SIZE, SIZE, dtype=torch.uint8),
        hole=hole,
        references=_every_frame(
            texture.roll(2, dims=-1).expand(REFERENCE_COUNT, -1, -1, -1), frames
        ),
        opening=np.arange(frames, dtype=np.float32),
        mouth_motion=np.zeros((frames, 2), np.float32),
    )
    settings = RendererSettings(size=SIZE, steps=30, batch=2, checkpoint_every=30)
    generator, _ = train_renderer(data, settings, "cpu", tmp_path / "renderer.ckpt")
    with torch.no_grad():
        out = generator(generator_input(data.real, data.renders, data.hole, data.references))
    inside = (slice(None), slice(None), slice(68, 108), slice(36, 92))
    # Untrained: 0.25 of the texture's Laplacian variance, high-pass correlation 0.05; drawing
    # the whole hole, as the generator of format 4 did: 0.000.
    sharpness, correlation = _detail_kept(out, data.real.float() / 255, inside)
    assert sharpness > 0.45 and correlation > 0.9


def test_closed_lips_are_pulled_from_the_closed_mouth_reference(tmp_path):
    """Closed lips are rare in speech; with the open mouth as its only reference, the generator
    drew them as a slit with teeth above. Here the closed frames' lips exist only in the closed
    reference, and training draws them back from it."""
    rng = np.random.default_rng(7)
    skin, open_lips, closed_lips = _texture(rng), _texture(rng), _texture(rng)
    frames = 8
    hole = torch.zeros(frames, 1, SIZE, SIZE, dtype=torch.bool)
    hole[:, :, 64:112, 32:96] = True
    closed = torch.arange(frames) % 2 == 1
    real = torch.where(hole, torch.where(closed[:, None, None, None], closed_lips, open_lips), skin)
    renders = torch.zeros(frames, 3, 3, SIZE, SIZE, dtype=torch.uint8)
    renders[~closed, :, :, 80:96, 48:80] = 255  # the open render's cavity
    data = TrainingSet(
        real=real,
        renders=renders,
        hole=hole,
        references=_every_frame(real[[0, 1]].roll(2, dims=-1), frames),
        opening=(~closed).float().numpy(),
        mouth_motion=np.zeros((frames, 2), np.float32),
    )
    settings = RendererSettings(size=SIZE, steps=60, batch=2, checkpoint_every=60)
    generator, _ = train_renderer(data, settings, "cpu", tmp_path / "renderer.ckpt")
    inside = (slice(None), slice(None), slice(68, 108), slice(36, 92))

    def drawn(rows: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return generator(generator_input(real[rows], renders[rows], hole[rows], references))

    for rows in closed, ~closed:  # each mouth from its own reference, as the render asks
        sharpness, correlation = _detail_kept(
            drawn(rows, data.references[rows]), real[rows] / 255, inside
        )
        # Measured: sharpness 0.50 and 0.69, correlation 0.91 and 0.99. At 40 steps the open
        # frames' sharpness was 0.44 on one CPU and 0.37 on another: too close to the bar.
        assert sharpness > 0.4 and correlation > 0.85
    # The closed lips come from the closed reference: with the open one in its place, they are
    # lost.
    without = drawn(closed, data.references[closed][:, [0, 0]])
    assert _detail_kept(without, real[closed] / 255, inside)[1] < 0.3


def _high_pass(images: torch.Tensor) -> torch.Tensor:
    return images - torch.nn.functional.avg_pool2d(images, 5, 1, 2)


def test_references_are_pulled_onto_the_frame_along_the_mesh():
    """Each reference's pixel at a point of the surface lands where the frame's mesh has that
    point: here a square whose place differs per reference, so a mix-up of references or of x
    and y shows. Inside the square and in the 4-px ring around it that it does not cover (the
    smooth fill) the pull is the shift."""
    rng = np.random.default_rng(3)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    corners = torch.tensor([[32.0, 32], [96, 32], [96, 96], [32, 96]])
    shifts = torch.tensor([[5.0, 3], [-4, 2]])
    pixels = torch.from_numpy(rng.integers(0, 256, (2, 3, SIZE, SIZE), dtype=np.uint8))
    references = ReferenceCrops(pixels=pixels, screen=corners + shifts[:, None])
    frame = torch.cat([corners, torch.zeros(4, 1)], dim=1)[None]
    fragments = rasterize(frame, faces, (SIZE, SIZE))
    pulled = pull_references(fragments, faces, references)
    assert pulled.shape == (1, 2, 3, SIZE, SIZE) and pulled.dtype == torch.uint8
    inside = (slice(28, 100), slice(28, 100))
    for k, (dx, dy) in enumerate(shifts.int().tolist()):
        moved = pixels[k, :, 28 + dy : 100 + dy, 28 + dx : 100 + dx]
        torch.testing.assert_close(pulled[0, k][(slice(None), *inside)], moved)


class _CopiesFirstReference(torch.nn.Module):
    """A stand-in generator that draws each frame's first pulled reference back unchanged."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        first = INPUT_CHANNELS - 3 * REFERENCE_COUNT
        return inputs[:, first : first + 3]


def _moving_mouths(drawn_blurred: bool, drawn_soft: float = 0.0, frames: int = 16) -> TrainingSet:
    """Half the frames' mouths still, half moving 8 crop px a frame; the real frames show that
    motion through a 180-degree shutter. The drawn mouths (the first reference, which the
    stand-in generator copies) are blurred the same way or left sharp of motion, and softened
    by a Gaussian of `drawn_soft` crop px as a generator's drawing is."""
    rng = np.random.default_rng(3)
    blocks = rng.uniform(0.2, 0.8, (SIZE // 4, SIZE // 4, 3)).astype(np.float32)
    texture = cv2.resize(blocks, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    hole = np.zeros((SIZE, SIZE), bool)
    hole[64:112, 32:96] = True
    motion = np.zeros((frames, 2), np.float32)
    motion[frames // 2 :, 0] = 8.0
    real = np.stack([motion_blurred(texture, m * 0.5, hole) for m in motion])
    as_uint8 = lambda images: torch.from_numpy(  # noqa: E731
        np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)
    ).permute(0, 3, 1, 2)
    drawn = real if drawn_blurred else np.repeat(texture[None], frames, axis=0)
    if drawn_soft:
        drawn = np.stack([cv2.GaussianBlur(d, (0, 0), drawn_soft) for d in drawn])
    references = torch.stack([as_uint8(drawn), as_uint8(drawn)], dim=1)
    return TrainingSet(
        real=as_uint8(real),
        renders=torch.zeros(frames, 3, 3, SIZE, SIZE, dtype=torch.uint8),
        hole=torch.from_numpy(np.repeat(hole[None, None], frames, axis=0)),
        references=references,
        opening=np.zeros(frames, np.float32),
        mouth_motion=motion,
    )


@pytest.mark.parametrize(("drawn_blurred", "angle"), [(False, 180.0), (True, 0.0)])
def test_the_shutter_smears_only_the_motion_blur_the_generator_did_not_draw(drawn_blurred, angle):
    data = _moving_mouths(drawn_blurred)
    sharpen, shutter = measure_finish(_CopiesFirstReference(), data, "cpu")
    assert sharpen.amount == 0.0  # drawn as sharp as the footage: nothing to add
    assert shutter.footage_ratio < 0.8  # the real moving mouths are the softer
    assert shutter.angle == angle
    assert shutter.drawn_ratios[360.0] < shutter.drawn_ratios[0.0]


def test_soft_drawn_mouths_are_sharpened_until_the_still_ones_match_the_footage():
    data = _moving_mouths(drawn_blurred=False, drawn_soft=1.0)
    sharpen, shutter = measure_finish(_CopiesFirstReference(), data, "cpu")
    assert sharpen.drawn_to_footage[0.0] < 0.7  # the stand-in draws softer than the footage
    assert sharpen.amount > 0
    assert sharpen.drawn_to_footage[sharpen.amount] == pytest.approx(1.0, abs=0.1)
    assert list(sharpen.drawn_to_footage) == list(AMOUNTS)  # the build records the whole curve
    assert shutter.angle == 180.0  # the motion blur is still the camera's, measured after


def test_the_plates_drawn_still_mouths_are_sharpened_until_they_match_the_same_frames_real_ones():
    data = _moving_mouths(drawn_blurred=False, drawn_soft=1.0)
    as_float = lambda images: images.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255  # noqa: E731
    still = stiller_half(data.mouth_motion)
    assert not np.hypot(*data.mouth_motion[still].T).any()  # the still half, and only it
    assert len(still) == len(data) // 2
    real, drawn = as_float(data.real[still]), as_float(data.references[still, 0])
    holes = data.hole[still, 0].numpy()
    amount, ratios = matched_amount(drawn, real, holes)
    assert ratios[0.0] < 0.7  # the stand-in draws softer than the real mouths
    assert amount > 0
    assert ratios[amount] == pytest.approx(1.0, abs=0.1)
    # Real mouths as soft as the drawn ones need none; a plate softer than the first, less;
    # softer than the drawn ones, the drawn detail is taken away until they match.
    blurred = lambda images, sigma: np.stack(  # noqa: E731
        [cv2.GaussianBlur(i, (0, 0), sigma) for i in images]
    )
    assert matched_amount(drawn, blurred(real, 1.0), holes)[0] == 0.0
    assert 0 < matched_amount(drawn, blurred(real, 0.6), holes)[0] < amount
    softened, ratios = matched_amount(drawn, blurred(real, 1.5), holes, whole_curve=True)
    assert -1 < softened < 0 and ratios[0.0] > 1.5
    assert ratios[softened] == pytest.approx(1.0, abs=0.1)
    assert matched_amount(drawn, blurred(real, 1.5), holes)[0] == softened  # stopped past 1
    # Softer still, all the drawn detail is taken away: the most the finish softens.
    most, tried = matched_amount(drawn, blurred(real, 2.0), holes)
    assert most == -1.0 and 0.0 in tried  # the unfinished mouths' ratio, which dub logs
    # Drawn and real are the same frames, so how much contrast the mouths hold does not move it,
    # only how much softer the drawn ones are: the same frames at half the contrast.
    halved = lambda images: 0.5 + 0.5 * (images - 0.5)  # noqa: E731
    assert matched_amount(halved(drawn), halved(real), holes)[0] == amount
