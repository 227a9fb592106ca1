"""Training the actor's A2E network on their own footage: its audio, in many voices, against the
lower-face coefficients fitted to its frames."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from dubplate.core.a2e.augment import DRY, Voice, random_voice
from dubplate.core.a2e.network import A2E
from dubplate.core.audio.features import (
    FEATURE_SIZE,
    FrameFeatures,
    analyse_samples,
    frame_features,
)
from dubplate.core.audio.phones import VISEMES
from dubplate.core.errors import DubplateError
from dubplate.core.media.plate import Plate
from dubplate.core.morph.fit import ActorFit
from dubplate.core.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    voices: int = 8  # augmented copies of the footage's audio, besides the original
    steps: int = 1500
    window: int = 64  # frames per training example
    batch: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 0.1
    eval_every: int = 50
    patience: int = 6  # evaluations without improvement before stopping
    validation_share: float = 0.2  # the footage's tail, held out
    seed: int = 0


DEFAULT_SETTINGS = TrainSettings()
BILABIAL = list(VISEMES).index("bilabial")


@dataclass
class Sequence:
    features: np.ndarray  # (F, D)
    targets: np.ndarray  # (F, K), zero where masked
    mask: np.ndarray  # (F,) frames with a fitted face


def footage_sequences(
    plate: Plate,
    fit: ActorFit,
    voices: list[Voice],
    rng: np.random.Generator,
    last_frame: int | None,
) -> list[Sequence]:
    """The footage's frames from the first fitted one to `last_frame` (default: the last),
    as one sequence per voice; frames without a face are masked, not dropped, so that time
    stays continuous."""
    audio = plate.audio()
    if audio is None:
        raise DubplateError(f"{plate.info.source}: no audio; A2E learns from the actor's own voice")
    last = int(fit.frames[-1]) if last_frame is None else last_frame
    numbers = [n for n in plate.info.frames if int(fit.frames[0]) <= n <= last]
    times = np.array([float(plate.time_of(n)) for n in numbers])
    frame_seconds = float(1 / plate.info.fps)
    row = {int(n): i for i, n in enumerate(fit.frames)}
    mask = np.array([n in row for n in numbers])
    targets = np.zeros((len(numbers), fit.lower.shape[1]), np.float32)
    targets[mask] = fit.lower[[row[n] for n in numbers if n in row]]
    sequences = []
    for voice in voices:
        analysis = analyse_samples(voice.apply(audio.analysis, rng))
        analysis.log_mel = voice.warp_mel(analysis.log_mel)
        features = frame_features(
            analysis, times / voice.tempo, frame_seconds / voice.tempo, pad=True
        )
        sequences.append(Sequence(features.matrix(), targets, mask))
    return sequences


def voices_for(settings: TrainSettings, rng: np.random.Generator) -> list[Voice]:
    return [DRY] + [random_voice(rng) for _ in range(settings.voices)]


def train(
    sequences: list[list[Sequence]],
    rest: np.ndarray,
    settings: TrainSettings = DEFAULT_SETTINGS,
    device: str = "cpu",
) -> tuple[A2E, dict]:
    """`sequences[footage][voice]`, voice 0 the original. Each footage's tail is held out (the
    original voice only) for early stopping; the best network on it is returned."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    train_parts, held_out = _split(sequences, settings.validation_share)
    every_target = np.concatenate([s.targets[s.mask] for s in (v[0] for v in train_parts)])
    coefficients = every_target.shape[1]
    network = A2E(FEATURE_SIZE, coefficients).to(device)
    network.target_mean.copy_(torch.from_numpy(every_target.mean(axis=0)))
    network.target_std.copy_(torch.from_numpy(every_target.std(axis=0) + 1e-6))
    network.rest.copy_(torch.from_numpy(rest.astype(np.float32)))
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    flat = [s for voices in train_parts for s in voices]
    best = (float("inf"), 0, copy.deepcopy(network.state_dict()))
    started = time.perf_counter()
    progress = Progress("train-a2e", settings.steps, unit="steps", every_s=5)
    stale = step = 0
    for step in range(1, settings.steps + 1):
        features, targets, mask = _batch(flat, settings, rng, network, device)
        network.train()
        # Each member learns on its own; their mean is the prediction.
        outputs = network.member_outputs(features)
        loss = sum(_masked_mse(o, targets, mask, network.target_std**2) for o in outputs)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        progress.advance()
        if step % settings.eval_every == 0:
            validation = _loss(network, held_out, device)
            if validation < best[0] - 1e-4:
                best, stale = (validation, step, copy.deepcopy(network.state_dict())), 0
            else:
                stale += 1
                if stale >= settings.patience:
                    log.info("train-a2e: early stop at step %d (best %d)", step, best[1])
                    break
    network.load_state_dict(best[2])
    network.gain.fill_(_calibrated_gain(network, held_out, device))
    baseline = _loss(None, held_out, device, network)
    report = {
        "steps": step,
        "best_step": best[1],
        "seconds": round(time.perf_counter() - started, 1),
        "validation_loss": round(_loss(network, held_out, device), 5),
        "gain": round(float(network.gain), 3),
        "validation_loss_mean_expression": round(baseline, 5),
        "train_frames": int(sum(s.mask.sum() for s in (v[0] for v in train_parts))),
        "validation_frames": int(sum(s.mask.sum() for s in held_out)),
        "voices": len(sequences[0]),
    }
    log.info("train-a2e: %s", report)
    return network.eval(), report


@torch.no_grad()
def _calibrated_gain(network: A2E, held_out: list[Sequence], device: str) -> float:
    """The factor in [0, 1] on the network's departure from the mean expression that fits the
    held-out frames best (least squares, variance-weighted): a few seconds of footage may teach
    little, and a network that has learnt little should say little."""
    network.eval()
    weights = network.target_std**2
    numerator = denominator = 0.0
    for sequence in held_out:
        target = (
            torch.from_numpy(sequence.targets).to(device) - network.target_mean
        ) / network.target_std
        output = network(torch.from_numpy(sequence.features)[None].to(device))[0]
        mask = torch.from_numpy(sequence.mask).to(device)
        numerator += float((output * target * weights)[mask].sum())
        denominator += float((output * output * weights)[mask].sum())
    return min(max(numerator / denominator, 0.0), 1.0) if denominator > 0 else 0.0


def _split(sequences, share):
    train_parts, held_out = [], []
    for voices in sequences:
        frames = len(voices[0].mask)
        cut = int(round(frames * (1 - share)))
        if cut < 8 or frames - cut < 4:
            raise DubplateError(f"{frames} frame(s) of footage: too few to train and validate A2E")
        train_parts.append(
            [Sequence(s.features[:cut], s.targets[:cut], s.mask[:cut]) for s in voices]
        )
        original = voices[0]
        held_out.append(
            Sequence(original.features[cut:], original.targets[cut:], original.mask[cut:])
        )
    return train_parts, held_out


def _batch(flat, settings, rng, network, device):
    features, targets, masks = [], [], []
    length = min(settings.window, min(len(s.mask) for s in flat))
    for _ in range(settings.batch):
        sequence = flat[rng.integers(len(flat))]
        start = rng.integers(0, len(sequence.mask) - length + 1)
        window = slice(start, start + length)
        features.append(sequence.features[window])
        targets.append(sequence.targets[window])
        masks.append(sequence.mask[window])
    normalised = (
        torch.from_numpy(np.stack(targets)).to(device) - network.target_mean
    ) / network.target_std
    return (
        torch.from_numpy(np.stack(features)).to(device),
        normalised,
        torch.from_numpy(np.stack(masks)).to(device),
    )


def _masked_mse(prediction, targets, mask, weights):
    """MSE weighted by each coefficient's variance: the error in vertex space (the bases are
    orthonormal), so the few components that carry the mouth count most."""
    return (((prediction - targets) ** 2) * weights)[mask].sum(dim=-1).mean() / weights.sum()


@torch.no_grad()
def _loss(network, held_out, device, reference=None):
    """Variance-weighted MSE on the held-out tails; with no network, of the training mean
    (the mean-expression baseline)."""
    norm = reference or network
    total, count = 0.0, 0
    for sequence in held_out:
        targets = (
            torch.from_numpy(sequence.targets).to(device) - norm.target_mean
        ) / norm.target_std
        mask = torch.from_numpy(sequence.mask).to(device)
        if network is None:
            prediction = torch.zeros_like(targets)
        else:
            network.eval()
            features = torch.from_numpy(sequence.features)[None].to(device)
            prediction = network.gain * network(features)[0]
        total += float(_masked_mse(prediction, targets, mask, norm.target_std**2)) * int(mask.sum())
        count += int(mask.sum())
    return total / max(count, 1)


@torch.no_grad()
def predict(network: A2E, features: FrameFeatures, speech: bool, device: str = "cpu") -> np.ndarray:
    """(F, K) lower-face coefficients; the actor's rest mouth throughout when there is no speech.

    Bilabials are enforced: /p b m/ cannot be made with open lips in any language, and a few
    seconds of footage hold too few of them for the network to learn that reliably, so frames
    are drawn towards the rest (closed) mouth by their bilabial share.
    """
    network.eval()
    rest = network.rest.cpu().numpy()
    if not speech:
        return np.repeat(rest[None], len(features.times), axis=0)
    matrix = torch.from_numpy(features.matrix())[None].to(device)
    lower = network.coefficients(matrix)[0].cpu().numpy()
    closing = np.clip((features.visemes[:, BILABIAL] - 0.2) / 0.5, 0.0, 1.0)[:, None]
    return lower + closing * (rest - lower)
