"""The per-actor neural renderer: a pix2pix-style U-Net generator and a PatchGAN discriminator.

Generator input, per frame t (all crops of one size, working display values 0-1):
the real crop with the lower face masked out (3), the mask (1), the synthetic lower-face renders
of t-1, t and t+1 (9) and two reference crops of the actor, the mouth at its most open (teeth)
and at its most closed (the lips pressed together), each already pulled onto frame t's mouth
along the face mesh (6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# What a trained generator expects of its inputs: a renderer or checkpoint of another format is
# refused. 2: crops frame the lower face (CROP_SIDE), not the whole head; 3: the hole is the
# matte's anti-aliased hull, so the network sees a slightly different outline; 4: crops are shrunk
# with less blur (crop.antialias_sigma), so a renderer of 3 would draw softer than its crops; 5:
# the generator pulls the reference into the hole by a learnt flow (its `warp` layer); 6: the
# renders' mouth cavity is a strip between the lips, where 5 learnt a fan that spilt over curved
# lips; 7: a second reference crop, the most closed mouth, which the generator pulls closed lips
# from; 8: the references come pulled onto each frame's mouth along the mesh (renderer.npz keeps
# where the mesh lies in each), and the learnt flow only corrects that.
FORMAT_VERSION = 8
# Channels per level, from full resolution down; the deepest level sees 1/64 of the crop.
WIDTHS = (32, 64, 128, 192, 256, 256)
HEAD_WIDTH = 16
RENDER_AT_T = slice(7, 10)  # input channels of the render of frame t
REFERENCE_COUNT = 2  # the actor's most open mouth, then the most closed
REFERENCES = slice(13, 13 + 3 * REFERENCE_COUNT)  # input channels of the reference crops
INPUT_CHANNELS = REFERENCES.stop
# Output channels of the generator's `warp` layer: a flow (x, y) per reference, then the shares
# of the hole that the smooth fill and each reference take.
FLOWS = slice(0, 2 * REFERENCE_COUNT)
SHARES = slice(2 * REFERENCE_COUNT, 3 * REFERENCE_COUNT + 1)
# Largest pull of a reference pixel beyond where the mesh put it, in half crop widths (32 px at
# 256): bounded, so that no pixel is fetched from across the face while the flow is untrained.
FLOW_RANGE = 0.25


def _down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


# Rows (and columns) of a 3x3 kernel over an image upsampled 2x nearest, folded onto the two
# input rows they see: output row 2i reads input rows i-1 and i, row 2i+1 rows i and i+1.
_PHASE_FOLD = torch.tensor([[[1.0, 0, 0], [0, 1, 1]], [[1.0, 1, 0], [0, 0, 1]]])


class _UpsampledConv(nn.Conv2d):
    """A 3x3 convolution of its input upsampled 2x nearest (the input comes padded by 1), done
    as four 2x2 convolutions at the input's resolution, one per output phase: the same result
    without the upsampled tensor, at 4/9 of the multiply-adds."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, bias=False)
        # A buffer moves with the module: no copy to the GPU at every call. Not in the
        # state_dict, whose keys stay those of the plain convolution.
        self.register_buffer("fold", _PHASE_FOLD.clone(), persistent=False)

    def forward(self, padded: torch.Tensor) -> torch.Tensor:
        kernels = torch.einsum("apk,bql,ockl->abocpq", self.fold, self.fold, self.weight)
        height, width = padded.shape[-2] - 2, padded.shape[-1] - 2
        rows = [
            torch.stack(
                [
                    F.conv2d(padded[..., a : a + height + 1, b : b + width + 1], kernels[a, b])
                    for b in range(2)
                ],
                dim=-1,
            )
            for a in range(2)
        ]
        # (B, C, H, 2, W, 2): each input pixel's 2x2 outputs, interleaved into rows and columns.
        return torch.stack(rows, dim=-3).flatten(-4, -3).flatten(-2, -1)


class _Up(nn.Module):
    """Nearest upsampling then a 3x3 convolution: no checkerboard artefacts, which a transposed
    convolution leaves in flat skin."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ZeroPad2d(1),
            _UpsampledConv(cin, cout),
            nn.InstanceNorm2d(cout, affine=True),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.block(x), skip], dim=1)


class Generator(nn.Module):
    """U-Net whose output is a correction on top of the real crop, its hole filled with the
    reference crops' pixels, which come pulled onto this frame's mouth along the mesh and which
    its own flow moves further where the mesh is wrong, blended with a smooth fill of the skin
    around the hole. From the first step the output is a plausible face, and the network's
    capacity goes to drawing the mouth the renders ask for. The pulled pixels carry the detail
    (teeth, lip lines, grain) its half-resolution features cannot: at 200 steps the dubbed
    mouths keep 0.56-0.92 of the real frames' sharpness, against 0.37-0.67 when its own flow had
    to learn the whole move (dub_bench). The closed-mouth reference is there because closed lips
    are rare in speech: with only the open one, the generator drew them as a dark slit with the
    reference's teeth above it."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.widths = widths
        self.downs = nn.ModuleList(
            [_down(INPUT_CHANNELS, widths[0], norm=False)]
            + [_down(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        ups = []
        for level in range(len(widths) - 1, 0, -1):
            cin = widths[level] if level == len(widths) - 1 else 2 * widths[level]
            ups.append(_Up(cin, widths[level - 1]))
        self.ups = nn.ModuleList(ups)
        # FLOWS that move each reference further than the mesh pulled it, and SHARES of the
        # hole. Zero at the start: the references as pulled, a third each with the fill.
        self.warp = nn.Conv2d(2 * widths[0], SHARES.stop, 3, padding=1)
        nn.init.zeros_(self.warp.weight)
        nn.init.zeros_(self.warp.bias)
        # Narrowed before the full-resolution layers, which cost the most per channel.
        self.head = nn.Sequential(
            nn.Conv2d(2 * widths[0], HEAD_WIDTH, 1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(HEAD_WIDTH, HEAD_WIDTH, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(HEAD_WIDTH, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up in self.ups:
            h = up(h, skips.pop())
        masked, hole = x[:, :3], x[:, 3:4]
        # In float32 under autocast: bfloat16's tanh near the flow's range steps by 1/8 px.
        with torch.autocast(x.device.type, enabled=False):
            warped = self.warp(h.float())
            fields = F.interpolate(warped, scale_factor=2, mode="bilinear", align_corners=False)
        size = x.shape[-2:]
        flows = FLOW_RANGE * torch.tanh(fields[:, FLOWS])
        # Every reference warped in one call, as a batch of B x REFERENCE_COUNT images.
        pulled = _warp(x[:, REFERENCES].reshape(-1, 3, *size), flows.reshape(-1, 2, *size))
        sources = torch.cat(
            [smooth_fill(masked, 1 - hole).unsqueeze(1), pulled.unflatten(0, (len(x), -1))], dim=1
        )
        shares = torch.softmax(fields[:, SHARES], dim=1).unsqueeze(2)
        blended = (sources * shares).sum(1)
        base = masked + hole * blended
        return torch.sigmoid(self.head(h) + _logit(base))


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` sampled at each pixel plus (B, 2, H, W) `flow` in grid_sample's -1..1 units;
    bicubic, so the pulled pixels keep the reference's detail."""
    identity = torch.eye(2, 3, dtype=image.dtype, device=image.device).expand(len(image), 2, 3)
    grid = F.affine_grid(identity, list(image.shape), align_corners=False)
    moved = grid + flow.permute(0, 2, 3, 1)
    sampled = F.grid_sample(
        image, moved, mode="bicubic", padding_mode="border", align_corners=False
    )
    return sampled.clamp(0, 1)


def smooth_fill(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Normalised convolution: each pixel the mean of the known pixels in a box half the crop
    wide, taken at a quarter of the resolution, where it is cheap."""
    small_image, small_known = F.avg_pool2d(image * known, 4), F.avg_pool2d(known, 4)
    width = small_image.shape[-1] // 2 | 1
    fill = _box(small_image, width) / _box(small_known, width).clamp(min=1e-4)
    return F.interpolate(fill, size=image.shape[-2:], mode="bilinear", align_corners=False)


def _box(image: torch.Tensor, width: int) -> torch.Tensor:
    """Mean over a `width`-wide square of the pixels inside the image, as a row pass then a
    column pass: 2 x width reads a pixel instead of width squared."""
    padding = width // 2
    rows = F.avg_pool2d(image, (1, width), 1, (0, padding), count_include_pad=False)
    return F.avg_pool2d(rows, (width, 1), 1, (padding, 0), count_include_pad=False)


def _logit(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.02, 0.98)
    return torch.log(x / (1 - x))


class Discriminator(nn.Module):
    """70x70-style PatchGAN over (render at t, face crop): it judges whether each patch of the
    crop is a real photograph of the actor that matches the render's mouth."""

    def __init__(self, base: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            _down(6, base, norm=False),
            _down(base, 2 * base),
            _down(2 * base, 4 * base),
            nn.Conv2d(4 * base, 8 * base, 4, padding=1, bias=False),
            nn.InstanceNorm2d(8 * base, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(8 * base, 1, 4, padding=1),
        )

    def forward(self, render: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([render, face], dim=1))
