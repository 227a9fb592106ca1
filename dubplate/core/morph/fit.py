"""Building the actor's geometry from tracked footage, and fitting it to any tracked frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from dubplate.core.errors import DubplateError
from dubplate.core.morph.align import fit_similarity, generalised_procrustes
from dubplate.core.morph.model import ActorModel, lower_face_vertices
from dubplate.core.morph.uv import uv_layout
from dubplate.core.track.landmarks import FACE_BOX_PX, LIPS, MESH_VERTEX_COUNT, RIGID

log = logging.getLogger(__name__)

# A model needs the face in enough poses and mouth shapes: one second of footage at 25 fps.
MIN_FRAMES = 25
# Identity distances (px of a 256-px face box) above these are different people. On the shared
# clips' held-out tails, in windows of 25 frames, one person lies at most 1.02 from their model
# and others 1.24 or more. Under 25 frames tracking noise does not average out (8 frames: one
# person up to 1.42, others from 1.29), so a short plate is only refused when far off.
IDENTITY_THRESHOLD_PX = 1.15
SHORT_IDENTITY_THRESHOLD_PX = 1.6


@dataclass
class ActorFit:
    """Per-frame parameters of one piece of footage: pose, expression and lighting."""

    frames: np.ndarray  # (F,) frame numbers with a face
    scale: np.ndarray  # (F,)
    rotation: np.ndarray  # (F, 3, 3)
    translation: np.ndarray  # (F, 3)
    lower: np.ndarray  # (F, K_lower)
    upper: np.ndarray  # (F, K_upper)
    light: np.ndarray | None = None  # (F, 9, 3) SH coefficients per channel
    plate: dict = field(default_factory=dict)
    # (F,) the run of the track each frame is in (`FaceTrack.found_runs`): what is smoothed or
    # differenced over time stays within a run, never across a cut. None: all one run.
    runs: np.ndarray | None = None

    def select(self, rows: np.ndarray) -> ActorFit:
        """The fit of `rows` (indices or a mask over its frames) only."""
        light = None if self.light is None else self.light[rows]
        runs = None if self.runs is None else self.runs[rows]
        arrays = ("frames", "scale", "rotation", "translation", "lower", "upper")
        return replace(
            self, light=light, runs=runs, **{name: getattr(self, name)[rows] for name in arrays}
        )

    def spans(self) -> list[tuple[int, int]]:
        """(start, stop) rows of each run of frames the face was followed through."""
        if self.runs is None or len(self.runs) == 0:
            return [(0, len(self.frames))]
        edges = [0, *(np.flatnonzero(np.diff(self.runs)) + 1), len(self.runs)]
        return list(zip(edges[:-1], edges[1:], strict=True))

    def span_of_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(F,) first row and (F,) stop row of each row's run (`spans`)."""
        first, stop = np.zeros(len(self.frames), int), np.zeros(len(self.frames), int)
        for a, b in self.spans():
            first[a:b], stop[a:b] = a, b
        return first, stop

    def posed(self, model: ActorModel) -> np.ndarray:
        """(F, 468, 3) model vertices in plate pixels."""
        shapes = model.shape(self.lower, self.upper)
        return (
            self.scale[:, None, None] * shapes @ self.rotation.transpose(0, 2, 1)
            + self.translation[:, None]
        )


def mesh_points(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks[:, :MESH_VERTEX_COUNT], dtype=np.float64)


def build_geometry(footage_shapes: list[np.ndarray], lower_k: int, upper_k: int) -> ActorModel:
    """Neutral shape and expression bases from the tracked shapes of one or more footages of
    the same actor ((F_i, 468, 3) each, plate pixels)."""
    shapes = np.concatenate([mesh_points(s) for s in footage_shapes])
    if len(shapes) < MIN_FRAMES:
        raise DubplateError(
            f"{len(shapes)} frame(s) with a face: building an actor needs at least {MIN_FRAMES}"
        )
    for k, name in ((lower_k, "lower"), (upper_k, "upper")):
        if not 1 <= k < len(shapes):
            raise DubplateError(
                f"--{name}-basis {k}: must be between 1 and {len(shapes) - 1}"
                f" for {len(shapes)} frames"
            )
    _check_one_person(footage_shapes, lower_k, upper_k)
    model = _geometry(shapes, lower_k, upper_k)
    log.info(
        "morph: model from %d frames: %d lower-face and %d upper-face vertices, bases %d + %d",
        len(shapes),
        len(model.lower_vertices),
        MESH_VERTEX_COUNT - len(model.lower_vertices),
        lower_k,
        upper_k,
    )
    return model


def _geometry(shapes: np.ndarray, lower_k: int, upper_k: int) -> ActorModel:
    neutral, poses = generalised_procrustes(shapes, list(RIGID))
    residual = np.stack([p.invert(s) for p, s in zip(poses, shapes, strict=True)]) - neutral
    lower = lower_face_vertices(neutral)
    upper = np.setdiff1d(np.arange(MESH_VERTEX_COUNT), lower)
    return ActorModel(
        neutral=neutral.astype(np.float32),
        lower_basis=_basis(residual, lower, lower_k),
        upper_basis=_basis(residual, upper, upper_k),
        lower_vertices=lower,
        uv=uv_layout(neutral),
    )


def _basis(residual: np.ndarray, vertices: np.ndarray, k: int) -> np.ndarray:
    """The first k principal directions of the residuals on `vertices`, as full-mesh shapes."""
    part = residual[:, vertices].reshape(len(residual), -1)
    _, _, vt = np.linalg.svd(part - part.mean(axis=0), full_matrices=False)
    basis = np.zeros((k, MESH_VERTEX_COUNT, 3), np.float32)
    basis[:, vertices] = vt[:k].reshape(k, len(vertices), 3)
    return basis


def _check_one_person(footage_shapes: list[np.ndarray], lower_k: int, upper_k: int) -> None:
    """Every footage against a model of the first alone: one built on all would take the
    difference between two people into its expression bases."""
    first = mesh_points(footage_shapes[0])
    reference = _geometry(first, min(lower_k, len(first) - 1), min(upper_k, len(first) - 1))
    for index, shapes in enumerate(footage_shapes[1:], start=1):
        distance = identity_distance_px(reference, shapes)
        threshold = identity_threshold_px(len(shapes))
        log.info("morph: footage %d identity distance to footage 1: %.2f px", index + 1, distance)
        if distance > threshold:
            raise DubplateError(
                f"footage {index + 1}: identity distance {distance:.2f} px from footage 1"
                f" (threshold {threshold}): not the same person"
            )


def identity_distance_px(model: ActorModel, landmarks: np.ndarray) -> float:
    """How far tracked (F, 478, 3) frames' upper faces lie from the actor's, px of a 256-px face
    box: the RMS of their mean residual once each frame's pose (fitted on the upper face) and
    upper-face expression are taken out. A plain average shape of a short plate keeps its brows
    and blinks; the jaw and lips carry what was said, so they are left out."""
    upper = np.setdiff1d(np.arange(MESH_VERTEX_COUNT), model.lower_vertices)
    neutral = model.neutral.astype(np.float64)
    residuals = []
    for shape in mesh_points(landmarks):
        residual = fit_similarity(neutral[upper], shape[upper]).invert(shape) - neutral
        expression = np.tensordot(model.upper_coefficients(residual[None]), model.upper_basis, 1)
        residuals.append((residual - expression[0])[upper])
    mean = np.mean(residuals, axis=0)
    return float(np.sqrt((mean**2).sum(axis=1).mean()) * model.face_box_scale)


def identity_threshold_px(frames: int) -> float:
    return IDENTITY_THRESHOLD_PX if frames >= MIN_FRAMES else SHORT_IDENTITY_THRESHOLD_PX


def fit_frames(model: ActorModel, landmarks: np.ndarray, frames: np.ndarray) -> ActorFit:
    """Pose (from the rigid points) and expression coefficients for tracked (F, 478, 3) frames."""
    shapes = mesh_points(landmarks)
    rigid = list(RIGID)
    poses = [fit_similarity(model.neutral[rigid].astype(np.float64), s[rigid]) for s in shapes]
    residual = np.stack([p.invert(s) for p, s in zip(poses, shapes, strict=True)]) - model.neutral
    return ActorFit(
        frames=np.asarray(frames),
        scale=np.array([p.scale for p in poses]),
        rotation=np.stack([p.rotation for p in poses]),
        translation=np.stack([p.translation for p in poses]),
        lower=model.lower_coefficients(residual).astype(np.float32),
        upper=model.upper_coefficients(residual).astype(np.float32),
    )


def reprojection_px(model: ActorModel, fit: ActorFit, landmarks: np.ndarray) -> np.ndarray:
    """(F, 468) image-plane distance of the posed model to the track, px of a 256-px face box."""
    shapes = mesh_points(landmarks)
    error = np.linalg.norm(fit.posed(model)[..., :2] - shapes[..., :2], axis=-1)
    box = np.ptp(shapes[..., :2], axis=1).max(axis=-1)
    return error * (FACE_BOX_PX / box)[:, None]


def lip_error_px(errors: np.ndarray) -> float:
    return float(errors[:, list(LIPS)].mean())
