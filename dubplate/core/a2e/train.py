"""Training the actor's A2E network on their own footage: its audio, in many voices, against the
lower-face coefficients fitted to its frames."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from dubplate.core.a2e.augment import DRY, Voice, random_voice
from dubplate.core.a2e.network import A2E, FRAMES_EACH_SIDE, bag
from dubplate.core.audio.features import (
    FEATURE_SIZE,
    MEL_COLUMNS,
    VISEME_COLUMNS,
    FrameFeatures,
    analyse_samples,
    frame_features,
    heard_within,
)
from dubplate.core.audio.phones import VISEMES
from dubplate.core.determinism import seeded
from dubplate.core.errors import DubplateError
from dubplate.core.media.audio import Audio
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
    # Trained again on every frame, the held-out tail included, for the steps it chose.
    refit: bool = True
    # Networks bagged, each from its own seed: its voices, batches and held-out choices.
    runs: int = 3


DEFAULT_SETTINGS = TrainSettings()
BILABIAL = list(VISEMES).index("bilabial")


@dataclass
class Sequence:
    features: np.ndarray  # (F, D)
    targets: np.ndarray  # (F, K), zero where masked
    mask: np.ndarray  # (F,) frames with a fitted face whose mouth is not covered


@dataclass(frozen=True)
class Footage:
    """A footage's frames from its first fitted one to the last trained on, with its sound."""

    audio: Audio
    times: np.ndarray  # (F,) seconds from the plate's first frame
    frame_seconds: float
    targets: np.ndarray  # (F, K) fitted lower-face coefficients, zero where masked
    mask: np.ndarray  # (F,) frames with a fitted face whose mouth is not covered


def footage_frames(
    plate: Plate, fit: ActorFit, last_frame: int | None = None, covered: Collection[int] = ()
) -> Footage:
    """The footage's frames from the first fitted one to `last_frame` (default: the last);
    frames without a face or whose mouth is `covered` are masked, not dropped, so that time
    stays continuous."""
    audio = plate.audio()
    if audio is None:
        raise DubplateError(
            f"{plate.info.source}: no audio; A2E learns from the actor's own voice (give an image"
            " sequence its sound with --footage-audio)"
        )
    last = int(fit.frames[-1]) if last_frame is None else last_frame
    numbers = [n for n in plate.info.frames if int(fit.frames[0]) <= n <= last]
    times = np.array([float(plate.time_of(n)) for n in numbers])
    frame_seconds = float(1 / plate.info.fps)
    row = {int(n): i for i, n in enumerate(fit.frames)}
    hidden = set(covered)
    mask = np.array([n in row and n not in hidden for n in numbers])
    targets = np.zeros((len(numbers), fit.lower.shape[1]), np.float32)
    targets[mask] = fit.lower[[row[n] for n, seen in zip(numbers, mask, strict=True) if seen]]
    return Footage(audio, times, frame_seconds, targets, mask)


def footage_sequences(
    footage: Footage, voices: list[Voice], rng: np.random.Generator, audio_offset: float = 0.0
) -> list[Sequence]:
    """The footage as one sequence per voice, each frame heard `audio_offset` seconds later in
    its audio than its own time. Frames heard past either end of the audio are masked: a mouth
    is not taught as the mouth of silence because its sound was not recorded."""
    times = footage.times + audio_offset
    duration = float(footage.audio.duration)
    heard = heard_within(times, duration)
    if not heard.all():
        log.warning(
            "%s: %d of the footage's %d frames are heard outside its audio (%.2f s, offset %+.3f"
            " s); A2E does not learn from them",
            footage.audio.source,
            int((~heard).sum()),
            len(times),
            duration,
            audio_offset,
        )
    mask = footage.mask & heard
    sequences = []
    for voice in voices:
        analysis = analyse_samples(voice.apply(footage.audio.analysis, rng))
        analysis.log_mel = voice.warp_mel(analysis.log_mel)
        features = frame_features(
            analysis, times / voice.tempo, footage.frame_seconds / voice.tempo, pad=True
        )
        sequences.append(Sequence(features.matrix(), footage.targets, mask))
    return sequences


def run_seeds(settings: TrainSettings) -> list[int]:
    """Each bagged run's seed: apart for every `settings.seed` (seed 1 shares no run of seed 0)."""
    if settings.runs < 1:
        raise ValueError(f"TrainSettings.runs is {settings.runs}: at least one network is trained")
    return [settings.seed * settings.runs + run for run in range(settings.runs)]


def voices_for(settings: TrainSettings) -> list[Voice]:
    """The original voice, then `settings.voices` augmented ones for each run, drawn from the
    run's seed (`train_bag` hands each run its own)."""
    voices = [DRY]
    for seed in run_seeds(settings):
        rng = np.random.default_rng(seed)
        voices += [random_voice(rng) for _ in range(settings.voices)]
    return voices


@dataclass
class MouthPrior:
    """What an actor's fitted footage says of their mouth before any audio is heard."""

    rest: np.ndarray  # (K,) the closed mouth
    visemes: np.ndarray  # (visemes, K) each viseme's mouth by phonetics, at the actor's scale


def train(
    sequences: list[list[Sequence]],
    mouth: MouthPrior,
    settings: TrainSettings = DEFAULT_SETTINGS,
    device: str = "cpu",
) -> tuple[A2E, dict]:
    """`sequences[footage][voice]`, voice 0 the original. Each footage's tail is held out (the
    original voice only) for early stopping and the gain; with `settings.refit`, the network
    returned is then trained afresh on every frame, tail included, for the steps the held-out
    tail chose, and given the gain found for the first network (the refit one has nothing left
    to calibrate it on). The report's validation figures are the first network's."""
    started = time.perf_counter()
    train_parts, held_out = _split(sequences, settings.validation_share)
    network, steps, best_step = _fit(train_parts, held_out, mouth, settings, device)
    network.gain.fill_(_calibrated_gain(network, held_out, device))
    predictors = {
        "validation_loss": network.coefficients,
        "validation_loss_viseme_prior": network.prior,
        "validation_loss_mean_expression": lambda f: network.target_mean.expand(*f.shape[:-1], -1),
    }
    report = {
        "steps": steps,
        "best_step": best_step,
        "gain": round(float(network.gain[0]), 3),
        **{k: round(_loss(network, held_out, device, p), 5) for k, p in predictors.items()},
        "train_frames": int(sum(voices[0].mask.sum() for voices in train_parts)),
        "validation_frames": int(sum(s.mask.sum() for s in held_out)),
        "voices": len(sequences[0]),
    }
    if settings.refit:
        report["refit_frames"] = int(sum(voices[0].mask.sum() for voices in sequences))
        log.info(
            "train-a2e: trained again on all %d frames, the held-out tail included, for the %d"
            " steps it chose (gain %.3f)",
            report["refit_frames"],
            best_step,
            report["gain"],
        )
        gain = network.gain.clone()
        refit = replace(settings, steps=best_step)
        network, _, _ = _fit(sequences, [], mouth, refit, device, "train-a2e (every frame)")
        network.gain.copy_(gain)
    report["seconds"] = round(time.perf_counter() - started, 1)
    log.info("train-a2e: %s", report)
    return network.eval(), report


def train_bag(
    sequences: list[list[Sequence]],
    mouth: MouthPrior,
    settings: TrainSettings = DEFAULT_SETTINGS,
    device: str = "cpu",
) -> tuple[A2E, dict]:
    """`settings.runs` networks bagged (`network.bag`), each `train`ed from its own seed
    (`run_seeds`) on the original voice and its own augmented ones (`voices_for`'s order).
    A few seconds of footage leave one network's held-out choices of steps and gain to chance:
    on man_map's held-out fifth, seed 0's network missed by 2.03 px of a 256-px face and three
    seeds' bagged by 1.55 (scratch run of bench/a2e_bench.py's measure). The report's
    validation loss is the runs' mean."""
    started = time.perf_counter()
    seeds = run_seeds(settings)
    wanted = 1 + settings.runs * settings.voices
    if any(len(voices) != wanted for voices in sequences):
        raise ValueError(f"train_bag: each footage needs {wanted} voices (`voices_for`)")
    networks, runs = [], []
    for run, seed in enumerate(seeds):
        own = slice(1 + run * settings.voices, 1 + (run + 1) * settings.voices)
        voices = [footage[:1] + footage[own] for footage in sequences]
        log.info("train-a2e: run %d of %d (seed %d)", run + 1, settings.runs, seed)
        network, report = train(voices, mouth, replace(settings, seed=seed), device)
        networks.append(network)
        runs.append({"seed": seed, **{k: report[k] for k in RUN_FIGURES}})
    report = {
        **{k: v for k, v in report.items() if k not in RUN_FIGURES},  # alike for every run
        "runs": runs,
        "validation_loss": round(float(np.mean([r["validation_loss"] for r in runs])), 5),
        "voices": len(sequences[0]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return bag(networks), report


# Each run's own figures in a bag's report; the rest are the same for every run.
RUN_FIGURES = ("steps", "best_step", "gain", "validation_loss", "seconds")


def _fit(
    train_parts: list[list[Sequence]],
    held_out: list[Sequence],
    mouth: MouthPrior,
    settings: TrainSettings,
    device: str,
    label: str = "train-a2e",
) -> tuple[A2E, int, int]:
    """The network trained on `train_parts` for `settings.steps`, or until the `held_out`
    tails stop improving (then the best one on them); its steps taken and best step."""
    with seeded(settings.seed, device):
        rng = np.random.default_rng(settings.seed)
        masking = np.random.default_rng([settings.seed, MASKING_STREAM])
        originals = [voices[0] for voices in train_parts]
        every_target = np.concatenate([s.targets[s.mask] for s in originals])
        coefficients = every_target.shape[1]
        network = A2E(FEATURE_SIZE, coefficients).to(device)
        network.target_mean.copy_(torch.from_numpy(every_target.mean(axis=0)))
        network.target_std.copy_(torch.from_numpy(every_target.std(axis=0) + 1e-6))
        network.rest.copy_(torch.from_numpy(mouth.rest.astype(np.float32)))
        network.viseme_map.copy_(torch.from_numpy(fit_viseme_map(originals, mouth.visemes)))
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        flat = [s for voices in train_parts for s in voices]
        best = (float("inf"), settings.steps, None)
        progress = Progress(label, settings.steps, unit="steps", every_s=5)
        stale = step = 0
        for step in range(1, settings.steps + 1):
            features, targets, mask = _batch(flat, settings, rng, masking, device)
            network.train()
            prior = network.prior(features)
            # Each member learns on its own; their mean is the prediction.
            loss = sum(
                _coefficient_error(prior + output * network.target_std, targets, mask, network)
                for output in network.member_outputs(features)
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            progress.advance()
            if held_out and step % settings.eval_every == 0:
                validation = _loss(network, held_out, device, network.coefficients)
                if not math.isfinite(validation):
                    raise DubplateError(
                        f"{label}: the held-out loss is {validation} at step {step}: a fitted"
                        " coefficient or audio feature that is not a number, or training that"
                        " diverged; nothing was saved"
                    )
                if validation < best[0] - 1e-4:
                    best, stale = (validation, step, copy.deepcopy(network.state_dict())), 0
                else:
                    stale += 1
                    if stale >= settings.patience:
                        log.info("train-a2e: early stop at step %d (best %d)", step, best[1])
                        break
        if best[2] is not None:
            network.load_state_dict(best[2])
        return network, step, best[1]


# Frames of a viseme it takes for the footage to weigh as much as phonetics in its mouth
# (a sweep of the prior alone over 3-1000 on the shared clips' held-out tails: 10 and 30 best,
# 3 followed the footage's noise, 1000 ignored the actor).
VISEME_RIDGE = 10.0


def fit_viseme_map(
    sequences: list[Sequence], phonetic: np.ndarray, ridge: float = VISEME_RIDGE
) -> np.ndarray:
    """(visemes, K): the mouth each viseme, silence included, makes on this actor. Least
    squares of the fitted coefficients on the viseme shares (which sum to one per frame) over
    the sequences' masked frames, drawn towards the phonetic mouths by `ridge`: a few seconds
    of footage hold a viseme in a handful of frames, and its mean there is mostly noise.
    This is the network's prior: fitted in closed form, it keeps the mouth following the
    sounds where the network's held-out gain finds too little learnt to trust."""
    visemes = np.concatenate([s.features[s.mask][:, VISEME_COLUMNS] for s in sequences])
    targets = np.concatenate([s.targets[s.mask] for s in sequences])
    penalty = ridge * np.eye(visemes.shape[1])
    return np.linalg.solve(
        visemes.T @ visemes + penalty, visemes.T @ targets + penalty @ phonetic
    ).astype(np.float32)


@torch.no_grad()
def _calibrated_gain(network: A2E, held_out: list[Sequence], device: str) -> float:
    """The factor in [0, 1] on the network's departure from the prior that fits the held-out
    frames best (least squares in coefficient space, which is vertex space: the bases are
    orthonormal): a few seconds of footage may teach little, and a network that has learnt
    little should say little."""
    network.eval()
    numerator = denominator = 0.0
    for sequence in held_out:
        features, targets, mask = _tensors(sequence, device)
        departure = network(features[None])[0] * network.target_std
        wanted = targets - network.prior(features)
        numerator += float((departure * wanted)[mask].sum())
        denominator += float((departure * departure)[mask].sum())
    return min(max(numerator / denominator, 0.0), 1.0) if denominator > 0 else 0.0


def held_out_start(frames: int, share: float) -> int:
    """The first frame of a footage's tail held out for validation: its last `share`."""
    return int(round(frames * (1 - share)))


def _split(sequences, share):
    train_parts, held_out = [], []
    for voices in sequences:
        frames = len(voices[0].mask)
        cut = held_out_start(frames, share)
        if cut < 8 or frames - cut < 4:
            raise DubplateError(f"{frames} frame(s) of footage: too few to train and validate A2E")
        train_parts.append(
            [Sequence(s.features[:cut], s.targets[:cut], s.mask[:cut]) for s in voices]
        )
        original = voices[0]
        held_out.append(
            Sequence(original.features[cut:], original.targets[cut:], original.mask[cut:])
        )
    trained_on = any(voices[0].mask.any() for voices in train_parts)
    if not trained_on or not any(sequence.mask.any() for sequence in held_out):
        raise DubplateError(
            "no frame with a face whose mouth is uncovered in the footage's training part or in"
            " its held-out tail: too few to train and validate A2E"
        )
    return train_parts, held_out


# Bands of each training window's log-mel masked to the utterance's mean (SpecAugment's frequency
# masks): a few seconds of one voice let the network lean on a few bands of it, which another
# voice does not have. MEL_MASKS masks of up to MEL_MASK_BANDS bands each took the shared clips'
# held-out lower-face error from 0.761 to 0.757 and 0.758 to 0.755 of the mean expression's
# (two seeds, which differ from each other by 0.003-0.005: a small gain, measured twice;
# scratch runs of bench/a2e_bench.py's measure).
MEL_MASKS = 2
MEL_MASK_BANDS = 8
MASKING_STREAM = 1  # the masks' own random stream beside the seed's, so batches stay as drawn


def _batch(flat, settings, rng, masking, device):
    features, targets, masks = [], [], []
    length = min(settings.window, min(len(s.mask) for s in flat))
    for _ in range(settings.batch):
        sequence = flat[rng.integers(len(flat))]
        start = rng.integers(0, len(sequence.mask) - length + 1)
        window = slice(start, start + length)
        features.append(_masked_mel(sequence.features[window], masking))
        targets.append(sequence.targets[window])
        masks.append(sequence.mask[window])
    return tuple(torch.from_numpy(np.stack(a)).to(device) for a in (features, targets, masks))


def _masked_mel(features: np.ndarray, masking: np.random.Generator) -> np.ndarray:
    """A copy of (F, FEATURE_SIZE) `features` with MEL_MASKS random runs of mel bands at 0."""
    masked = features.copy()
    mel = masked[:, MEL_COLUMNS]
    for _ in range(MEL_MASKS):
        width = masking.integers(0, MEL_MASK_BANDS + 1)
        first = masking.integers(0, mel.shape[1] - width + 1)
        mel[:, first : first + width] = 0.0
    return masked


def _tensors(sequence: Sequence, device: str):
    return tuple(
        torch.from_numpy(a).to(device) for a in (sequence.features, sequence.targets, sequence.mask)
    )


def _coefficient_error(prediction, targets, mask, network):
    """Squared error in coefficient space, which is vertex space (the bases are orthonormal),
    so the few components that carry the mouth count most; relative to the targets' total
    variance."""
    return ((prediction - targets) ** 2)[mask].sum(dim=-1).mean() / (network.target_std**2).sum()


@torch.no_grad()
def _loss(network, held_out, device, predictor) -> float:
    """`_coefficient_error` over the held-out tails of `predictor` (features -> coefficients)."""
    network.eval()
    total, count = 0.0, 0
    for sequence in held_out:
        if not sequence.mask.any():  # a tail all covered or without a face says nothing
            continue
        features, targets, mask = _tensors(sequence, device)
        prediction = predictor(features[None])[0]
        total += float(_coefficient_error(prediction, targets, mask, network)) * int(mask.sum())
        count += int(mask.sum())
    return total / max(count, 1)


# The fitted mouth A2E learns from is tracked through a smoothing filter; the network's frames,
# each from its own window of phones, jitter about it. A Gaussian of one frame took the shared
# clips' held-out lower-face error from 0.785 to 0.771 of the mean expression's (scratch run,
# three bagged seeds).
SMOOTHING_FRAMES = 1.0
SMOOTHING_RADIUS = 4
# Frames of audio either side of a frame that its predicted mouth depends on.
PREDICTION_REACH = FRAMES_EACH_SIDE + SMOOTHING_RADIUS


@torch.no_grad()
def predict(network: A2E, features: FrameFeatures, speech: bool, device: str = "cpu") -> np.ndarray:
    """(F, K) lower-face coefficients; the actor's rest mouth throughout when there is no speech.

    The network's output is smoothed over `SMOOTHING_FRAMES`; then bilabials are enforced:
    /p b m/ cannot be made with open lips in any language, and a few seconds of footage hold
    too few of them for the network to learn that reliably, so frames are drawn towards the
    rest (closed) mouth by `closing_weights`.
    """
    network.eval()
    rest = network.rest.cpu().numpy()
    if not speech:
        return np.repeat(rest[None], len(features.times), axis=0)
    matrix = torch.from_numpy(features.matrix())[None].to(device)
    lower = gaussian_filter1d(
        network.coefficients(matrix)[0].cpu().numpy(),
        SMOOTHING_FRAMES,
        axis=0,
        mode="nearest",
        radius=SMOOTHING_RADIUS,
    )
    closing = closing_weights(features)[:, None]
    return lower + closing * (rest - lower)


def closing_weights(features: FrameFeatures) -> np.ndarray:
    """(F,) how far each frame is drawn to the closed mouth: its bilabial share; and in a
    silence before speech that starts with a bilabial, that bilabial's, over the frames from
    which the network hears it coming. Trained on a few seconds of footage, the network opens
    the mouth that early for the vowel after the /p b m/ (man_office's "P AY" after a pause:
    9-11 px of a 256-px face open in the silence), where a speaker keeps the lips shut."""
    bilabial = np.clip((features.visemes[:, BILABIAL] - 0.2) / 0.5, 0.0, 1.0)
    closing = bilabial.copy()
    speech = features.speech
    coming, frames_before = 0.0, 0
    for frame in range(len(closing) - 1, -1, -1):
        if speech[frame]:
            coming, frames_before = bilabial[frame], 0
            continue
        frames_before += 1
        if frames_before <= FRAMES_EACH_SIDE:
            closing[frame] = max(closing[frame], coming)
    return closing
