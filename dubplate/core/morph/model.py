"""The actor's morphable model on the MediaPipe topology: neutral shape, expression bases for
the lower face (driven by the dub) and the upper face (kept from the plate), UV and texture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubplate.core.track.landmarks import FACE_BOX_PX

# Subnasale: the point below the nose tip. The lower face is what lies below it in the actor's
# canonical frame: lips, jaw, chin and the cheeks beside them.
SUBNASALE = 2


def lower_face_vertices(neutral: np.ndarray) -> np.ndarray:
    return np.flatnonzero(neutral[:, 1] > neutral[SUBNASALE, 1])


@dataclass
class ActorModel:
    neutral: np.ndarray  # (468, 3) canonical frame: x right, y down, z away; unit rigid radius
    lower_basis: np.ndarray  # (K_lower, 468, 3), orthonormal, zero outside the lower face
    upper_basis: np.ndarray  # (K_upper, 468, 3), orthonormal, zero on the lower face
    lower_vertices: np.ndarray  # (N,) vertex indices of the lower face
    uv: np.ndarray  # (468, 2) in [0, 1]
    texture: np.ndarray | None = None  # (T, T, 3) linear RGB albedo

    @property
    def face_size(self) -> float:
        """Side of the neutral face's square box in model units (for px of a 256-px box)."""
        return float(np.ptp(self.neutral[:, :2], axis=0).max())

    @property
    def face_box_scale(self) -> float:
        """Factor from model units to px of a 256-px face box, the unit of every lip figure."""
        return FACE_BOX_PX / self.face_size

    def shape(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """(F, 468, 3) shapes for (F, K_lower) and (F, K_upper) coefficients."""
        return (
            self.neutral
            + np.tensordot(lower, self.lower_basis, axes=1)
            + np.tensordot(upper, self.upper_basis, axes=1)
        )

    def lower_coefficients(self, residual: np.ndarray) -> np.ndarray:
        return (
            residual.reshape(len(residual), -1)
            @ self.lower_basis.reshape(len(self.lower_basis), -1).T
        )

    def upper_coefficients(self, residual: np.ndarray) -> np.ndarray:
        return (
            residual.reshape(len(residual), -1)
            @ self.upper_basis.reshape(len(self.upper_basis), -1).T
        )
