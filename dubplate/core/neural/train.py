"""Training the neural renderer on the actor's own footage, with checkpoints that resume.

Each step draws a batch of frames, shifts, scales and colour-jitters it (the same geometry for
every input channel and the target), and updates the discriminator and then the generator.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path
from dubplate.core.neural.losses import lsgan, masked_l1, ms_ssim
from dubplate.core.neural.network import (
    FORMAT_VERSION,
    INPUT_CHANNELS,
    REFERENCES,
    RENDER_AT_T,
    Discriminator,
    Generator,
)
from dubplate.core.progress import Progress
from dubplate.core.stored import DAMAGED

log = logging.getLogger(__name__)

# Speech holds the mouth half open most of the time; closed lips (p, b, m) and wide vowels are
# rare, and a renderer that draws frames alike learns them last. Half the draws are spread
# evenly over these bins of mouth opening.
OPENING_BINS = 6
BALANCED_SHARE = 0.5


@dataclass(frozen=True)
class RendererSettings:
    size: int = 256
    steps: int = 2000
    batch: int = 4
    learning_rate: float = 2e-4
    mouth_weight: float = 4.0  # extra L1 weight inside the hole, where the mouth is drawn
    ssim_weight: float = 1.0
    adversarial_weight: float = 0.05
    shift: float = 0.03  # of the crop side
    zoom: float = 0.05
    colour_jitter: float = 0.08
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self):
        # The U-Net halves the crop six times and normalises what is left: at least 2x2.
        if self.size < 128 or self.size % 64:
            raise DubplateError(f"--size {self.size}: must be a multiple of 64, at least 128")
        if self.steps < 1:
            raise DubplateError(f"--steps {self.steps}: must be at least 1")


@dataclass
class TrainingSet:
    """Every training frame's inputs at one crop size (uint8 and bool tensors)."""

    real: torch.Tensor  # (F, 3, N, N)
    renders: torch.Tensor  # (F, 3, 3, N, N)
    hole: torch.Tensor  # (F, 1, N, N)
    # (F, 2, 3, N, N): the most open mouth, then the most closed, pulled onto each frame's mouth
    references: torch.Tensor
    opening: np.ndarray  # (F,) mouth opening of each frame, for drawing them balanced
    mouth_motion: np.ndarray  # (F, 2) crop px a frame each mouth moves, for the shutter's measure

    def __len__(self) -> int:
        return len(self.real)


def generator_input(
    real: torch.Tensor, renders: torch.Tensor, hole: torch.Tensor, references: torch.Tensor
) -> torch.Tensor:
    """(B, 19, N, N) float input from uint8 crops: masked real, hole, three renders, the two
    references (B, 2, 3, N, N) pulled onto each frame's mouth."""
    hole = hole.float()
    masked = real.float() / 255 * (1 - hole)
    flat_renders = renders.flatten(1, 2).float() / 255
    flat_references = references.flatten(1, 2).float() / 255
    return torch.cat([masked, hole, flat_renders, flat_references], dim=1)


@torch.no_grad()
def draw(
    generator: Generator,
    real: torch.Tensor,
    renders: torch.Tensor,
    hole: torch.Tensor,
    references: torch.Tensor,
    device: str,
    bfloat16: bool = False,
) -> np.ndarray:
    """(B, N, N, 3) float32 crops the generator draws from a batch of uint8 inputs; with
    `bfloat16`, its U-Net and head in bfloat16 (`Generator.forward` keeps the warp in float32)."""
    inputs = generator_input(real, renders, hole, references).to(device)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bfloat16):
        drawn = generator(inputs)
    return drawn.float().permute(0, 2, 3, 1).cpu().numpy()


def bfloat16_is_faster(device: str) -> bool:
    """Whether the generator is known to draw faster in bfloat16 on `device`: on a CPU that
    computes it in hardware (AVX512-BF16 or AMX-BF16), 1.7 times as fast (2 cores, a batch of 8
    at 256 px). Not on a GPU, where it has not been measured."""
    if torch.device(device).type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def train_renderer(
    data: TrainingSet,
    settings: RendererSettings,
    device: str,
    checkpoint: Path,
) -> tuple[Generator, dict]:
    """Train (resuming from `checkpoint` when it holds a run of the same settings) and return
    the generator and a report."""
    torch.manual_seed(settings.seed)
    generator, discriminator = Generator().to(device), Discriminator().to(device)
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(generator.parameters(), settings.learning_rate, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), settings.learning_rate, betas=betas)
    modules = {"generator": generator, "discriminator": discriminator, "opt_g": opt_g}
    modules["opt_d"] = opt_d
    start = _resume(checkpoint, modules, settings, device)
    rng = np.random.default_rng([settings.seed, start])
    progress = Progress("renderer", settings.steps - start, unit="steps")
    began, losses = time.monotonic(), []
    chances = draw_chances(data.opening)
    for step in range(start, settings.steps):
        rows = rng.choice(len(data), settings.batch, replace=len(data) < settings.batch, p=chances)
        inputs, target, hole = _batch(data, rows, settings, rng, device)
        fake = generator(inputs)
        render = inputs[:, RENDER_AT_T]
        opt_d.zero_grad(set_to_none=True)
        loss_d = 0.5 * (
            lsgan(discriminator(render, target), True)
            + lsgan(discriminator(render, fake.detach()), False)
        )
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        weight = 1 + settings.mouth_weight * hole
        # The discriminator only passes the gradient on to the generator's output: its own
        # weights' gradients would be thrown away (skipping them saves 4% of the step).
        discriminator.requires_grad_(False)
        loss_g = (
            masked_l1(fake, target, weight)
            + settings.ssim_weight * (1 - ms_ssim(fake, target)).mean()
            + settings.adversarial_weight * lsgan(discriminator(render, fake), True)
        )
        loss_g.backward()
        discriminator.requires_grad_(True)
        opt_g.step()
        losses.append(loss_g.item())
        progress.advance()
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            _save(checkpoint, modules, settings, step + 1)
            log.info("renderer: step %d, generator loss %.4f", step + 1, np.mean(losses[-50:]))
    seconds = time.monotonic() - began
    report = {
        "steps": settings.steps,
        "resumed_from": start,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(1, settings.steps - start), 3),
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "train_frames": len(data),
        "device": device,
    }
    return generator.eval(), report


def draw_chances(opening: np.ndarray) -> np.ndarray:
    """(F,) chance of drawing each frame: half alike, half alike per bin of mouth opening."""
    edges = np.linspace(opening.min(), opening.max(), OPENING_BINS + 1)[1:-1]
    bins = np.digitize(opening, edges)
    counts = np.bincount(bins, minlength=OPENING_BINS)
    balanced = 1 / (counts[bins] * np.count_nonzero(counts))
    return (1 - BALANCED_SHARE) / len(opening) + BALANCED_SHARE * balanced


def _batch(
    data: TrainingSet,
    rows: np.ndarray,
    settings: RendererSettings,
    rng: np.random.Generator,
    device: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    index = torch.from_numpy(rows)
    real = data.real[index].to(device)
    hole = data.hole[index].to(device)
    renders, references = data.renders[index].to(device), data.references[index].to(device)
    inputs = generator_input(real, renders, hole, references)
    stacked = torch.cat([inputs, real.float() / 255], dim=1)
    stacked = _jitter_geometry(stacked, settings, rng)
    stacked = _jitter_colour(stacked, settings, rng)
    inputs, target = stacked[:, :INPUT_CHANNELS], stacked[:, INPUT_CHANNELS:]
    return inputs, target, (inputs[:, 3:4] > 0.5).float()


def _jitter_geometry(
    stacked: torch.Tensor, settings: RendererSettings, rng: np.random.Generator
) -> torch.Tensor:
    """One random shift and zoom per sample, applied alike to every channel. Bicubic: bilinear
    resampling left the targets' mouths at 0.70 of the crops' Laplacian variance (bicubic 0.93),
    and the generator learnt to draw that blur."""
    count = len(stacked)
    zoom = 1 + rng.uniform(-settings.zoom, settings.zoom, count)
    shift = rng.uniform(-settings.shift, settings.shift, (count, 2)) * 2
    theta = np.zeros((count, 2, 3), np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(torch.from_numpy(theta).to(stacked.device), stacked.shape, False)
    moved = F.grid_sample(stacked, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return moved.clamp(0, 1)  # bicubic overshoots at edges


# Channels that are photographs of the actor: masked real, references and target. The renders
# keep their colour, so the network learns to take colour from the photographs.
_PHOTO_CHANNELS = [0, 1, 2, *range(REFERENCES.start, REFERENCES.stop)]
_PHOTO_CHANNELS += range(INPUT_CHANNELS, INPUT_CHANNELS + 3)


def _jitter_colour(
    stacked: torch.Tensor, settings: RendererSettings, rng: np.random.Generator
) -> torch.Tensor:
    count = len(stacked)
    gain = 1 + rng.uniform(-settings.colour_jitter, settings.colour_jitter, (count, 3))
    gain = np.tile(gain, len(_PHOTO_CHANNELS) // 3).astype(np.float32)
    gain = torch.from_numpy(gain).to(stacked.device)
    out = stacked.clone()
    out[:, _PHOTO_CHANNELS] = (stacked[:, _PHOTO_CHANNELS] * gain[..., None, None]).clamp(0, 1)
    return out


def _save(path: Path, modules: dict, settings: RendererSettings, step: int) -> None:
    state = {name: module.state_dict() for name, module in modules.items()}
    state["step"] = step
    state["settings"] = asdict(settings)
    state["format_version"] = FORMAT_VERSION
    with atomic_path(path) as temp:
        torch.save(state, temp)


def _resume(path: Path, modules: dict, settings: RendererSettings, device: str) -> int:
    if not path.exists():
        return 0
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except DAMAGED as error:
        raise DubplateError(
            f"{path}: damaged checkpoint ({error}); delete it to start over"
        ) from error
    if state.get("format_version") != FORMAT_VERSION:
        raise DubplateError(
            f"{path}: checkpoint of renderer format {state.get('format_version')} (this dubplate"
            f" trains format {FORMAT_VERSION}); delete it to start over"
        )
    if state.get("settings") != asdict(settings):
        raise DubplateError(
            f"{path}: checkpoint of other settings ({state.get('settings')}); delete it to start"
            " over"
        )
    try:
        for name, module in modules.items():
            module.load_state_dict(state[name])
    except (KeyError, RuntimeError) as error:
        raise DubplateError(
            f"{path}: checkpoint of another renderer version ({error}); delete it to start over"
        ) from error
    log.info("renderer: resuming at step %d of %d from %s", state["step"], settings.steps, path)
    return int(state["step"])
