"""Driving the actor's lower face from any audio: coefficients per frame, the mouth they make,
and a preview of the rendered face speaking it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from dubplate.core.a2e.expression import mouth_gap_px
from dubplate.core.a2e.network import A2E
from dubplate.core.a2e.train import PREDICTION_REACH, closing_weights, predict
from dubplate.core.audio.features import (
    TIME_TOLERANCE_S,
    AudioAnalysis,
    FrameFeatures,
    cached_analysis,
    frame_features,
    require_audio_for,
)
from dubplate.core.colour import default_config
from dubplate.core.errors import DubplateError
from dubplate.core.media.audio import Sound
from dubplate.core.media.movie_writer import write_movie
from dubplate.core.morph.actor import Actor
from dubplate.core.morph.appearance import (
    CROP_PX,
    LINEAR_SPACE,
    crop_regions,
    renderer_for,
    to_screen,
)
from dubplate.core.morph.model import ActorModel
from dubplate.core.qc.lipsync import LipSync, lip_sync

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    frames: np.ndarray  # (F,) frame numbers from 0
    times: np.ndarray  # (F,) seconds into the audio
    lower: np.ndarray  # (F, K)
    speech: bool
    analysis: AudioAnalysis
    features: FrameFeatures


def frame_numbers(
    analysis: AudioAnalysis, fps: Fraction, offset: float, frames: tuple[int, int] | None
) -> np.ndarray:
    """Frame numbers to drive: the requested range, or every whole frame the audio covers
    after the offset (audio time of frame n is n / fps + offset)."""
    if frames is None:
        count = int((analysis.duration - offset) * fps + TIME_TOLERANCE_S)
        if count < 1:
            raise DubplateError(f"--audio-offset {offset}: leaves no audio for a single frame")
        return np.arange(count)
    return np.arange(frames[0], frames[1] + 1)


@dataclass
class Driven:
    features: FrameFeatures  # of the driven frames
    lower: np.ndarray  # (F, K) lower-face coefficients
    closing: np.ndarray  # (F,) how far each frame is held shut for a /p b m/
    speech: bool  # whether any is heard at the frames driven


def drive_frames(
    network: A2E,
    analysis: AudioAnalysis,
    times: np.ndarray,
    frame_seconds: float,
    pad: bool = False,
    device: str = "cpu",
) -> Driven:
    """The lower face of frames centred at `times` (seconds into the audio). The network and
    the closing rule also hear the audio of the PREDICTION_REACH frames either side, where
    there is audio: a range cut from a longer shot, or a shot inside a longer dub, starts and
    ends its mouth as the whole would, not as if nothing were said past its ends."""
    if not pad:
        require_audio_for(analysis, times, frame_seconds)
    steps = np.arange(1, PREDICTION_REACH + 1) * frame_seconds
    before = float(times[0]) - steps[::-1]
    after = float(times[-1]) + steps
    before, after = before[before >= 0], after[after <= analysis.duration]
    context = frame_features(
        analysis, np.concatenate([before, times, after]), frame_seconds, pad=True
    )
    inner = slice(len(before), len(before) + len(times))
    # The network drives every frame of a file with speech in it, silent stretches too, so
    # that a shot dubbed in parts moves as the shot dubbed at once.
    lower = predict(network, context, analysis.has_speech, device)[inner]
    half = frame_seconds / 2
    speech = analysis.speech_between(float(times[0]) - half, float(times[-1]) + half)
    return Driven(context.rows(inner), lower, closing_weights(context)[inner], speech)


def drive(
    network: A2E,
    audio: Sound,
    fps: Fraction,
    offset: float = 0.0,
    frames: tuple[int, int] | None = None,
    pad: bool = False,
    cache_dir: Path | None = None,
    device: str = "cpu",
) -> Prediction:
    """Lower-face coefficients for frames of the audio, the network run on `device`; its
    analysis is cached per file in `cache_dir` when one is given."""
    analysis = cached_analysis(audio, cache_dir)
    numbers = frame_numbers(analysis, fps, offset, frames)
    times = numbers / float(fps) + offset
    try:
        driven = drive_frames(network, analysis, times, float(1 / fps), pad, device)
    except DubplateError as error:
        raise DubplateError(f"{audio.source}: {error}") from error
    if not analysis.has_speech:
        log.warning("a2e: no speech found in %s; the mouth stays at rest", audio.source)
    elif not driven.speech:
        log.warning("a2e: no speech heard in %s at the frames driven", audio.source)
    return Prediction(numbers, times, driven.lower, driven.speech, analysis, driven.features)


def prediction_lip_sync(model: ActorModel, prediction: Prediction, fps: Fraction) -> LipSync:
    gap = mouth_gap_px(model, prediction.lower)
    return lip_sync(gap, prediction.analysis, prediction.features, float(1 / fps))


def write_prediction_preview(
    actor: Actor, prediction: Prediction, audio: Sound, fps: Fraction, path: Path
) -> int:
    """The actor's textured face, front on under their median light, speaking the audio from
    the first predicted frame's time in it; its meshes made a batch of frames at a time, so
    they take a batch's memory, not the clip's."""
    model, fit = actor.model, actor.fits[0]
    middle = len(fit.frames) // 2
    count = len(prediction.lower)

    def posed(lower: np.ndarray) -> np.ndarray:
        """Posed as in the fit's middle frame, the upper face neutral."""
        shapes = model.shape(lower, np.zeros((len(lower), len(model.upper_basis)), np.float32))
        return fit.scale[middle] * shapes @ fit.rotation[middle].T + fit.translation[middle]

    # One crop for the whole clip: the head holds still and only the mouth moves.
    region = crop_regions(posed(np.median(prediction.lower, axis=0)[None]))
    light = torch.from_numpy(np.median(fit.light, axis=0))[None]
    texture = torch.from_numpy(model.texture).permute(2, 0, 1)[None]
    renderer = renderer_for(model)
    colour = default_config()
    linear = colour.resolve(LINEAR_SPACE)

    def frames():
        for start in range(0, count, 16):
            lower = prediction.lower[start : start + 16]
            screen = to_screen(posed(lower), np.repeat(region, len(lower), axis=0))
            batch = torch.from_numpy(screen.astype(np.float32))
            with torch.no_grad():
                out = renderer.render(
                    batch, texture, light.expand(len(batch), -1, -1), (CROP_PX, CROP_PX)
                )
            for rgb in out.rgb.clamp(0, 1).numpy():
                yield colour.to_working_uint8(rgb, linear)

    return write_movie(path, frames(), fps, audio=audio.part(float(prediction.times[0])))
