"""The plate's own expression under the dub: what the actor feels is kept, what they say is the
dub's.

A2E hears words, not moods: left to itself it drives the lower face of someone who neither
smiles nor frowns, under an upper face that still does. So the driven face takes the slow part
of how the plate's lower face differs from it (a smile, a pout, a lopsided mouth held over a
phrase), less whatever of that would open or close the lips: how open the mouth is stays the
dub's, and a /p b m/ the A2E closed stays closed. Where the dub pauses and the plate's mouth is
held still or shut, neither speaks: there the mouth is the plate's own, as the actor held it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

from dubplate.core.morph.model import ActorModel
from dubplate.core.track.landmarks import LOWER_LIP_INNER, UPPER_LIP_INNER, mouth_opening

# Half gain at 0.37 Hz: a held expression passes, words (about 2 Hz) and syllables (3-6 Hz) do
# not. When it was chosen, on the shared clips' held-out tails (own audio), 0.5 s left the lower
# face 0.71 of the mean expression's error (bench/a2e_bench.py; 0.91 from the audio alone), and
# 1 s 0.77 in a one-off run of the same measure.
EXPRESSION_SIGMA_S = 0.5
# A pause in the dub fades in over this much at each end, so that the A2E's own closing after a
# word and opening before one stay the dub's, and a pause shorter than about twice it stays all
# the dub's.
PAUSE_EDGE_S = 0.1
# The plate's mouth is held when its inner-lip gap (px of a 256-px face box) ranges over less
# than the first figure within HELD_REACH_S either side, and moves as speech does from the
# second: speech opens and closes the lips within a syllable (about 0.2 s). Over the speech
# frames of the first 80% of the five shared clips, 9 in 10 range over 2.8-8.4 px or more.
HELD_REACH_S = 0.2
HELD_RANGE_PX = (1.5, 3.0)
# Lips shut (inner-lip gap under the first figure, px of a 256-px face box, none of it over the
# second) for SHUT_REACH_S either side are shut at rest: speech's /p b m/ closures last 50-100 ms.
# A mouth that closes into a pause and opens out of it ranges too far to count as held, yet is
# shut between: on the shared clips' held-out tails this took the lower face's error with the
# plate's expression from 2.14 to 2.05 px (woman_flag_a 3.22 to 2.96, woman_seated 2.95 to 2.78,
# the others within 0.03; bench/a2e_bench.py).
SHUT_REACH_S = 0.1
SHUT_GAP_PX = (2.0, 4.0)


@dataclass(frozen=True)
class MouthOpening:
    """How the actor's lower-face coefficients (K,) open the mouth."""

    gradient: np.ndarray  # inner-lip gap gained per unit of each coefficient, at the mean face
    direction: np.ndarray  # the coefficients' mean change per unit of gap over the footage

    def without_opening(self, offsets: np.ndarray) -> np.ndarray:
        """(F, K) `offsets` moved along `direction` until they leave the gap as it was: an
        oblique projection, so the rest of the expression is untouched."""
        opens = offsets @ self.gradient / float(self.gradient @ self.direction)
        return offsets - opens[:, None] * self.direction


def articulated(
    lower: np.ndarray, rest: np.ndarray, opening: MouthOpening, gain: float
) -> np.ndarray:
    """(F, K) `lower` faces with their mouth opened `gain` times as far past the `rest` (closed)
    mouth, along the actor's own `opening` direction: the rest of the expression, and a mouth
    at or past closed, are left as they are. A2E learns from a few seconds of footage to open
    the mouth less than the actor does; an artist may want more of it."""
    opens = (lower - rest) @ opening.gradient / float(opening.gradient @ opening.direction)
    more = (gain - 1.0) * np.clip(opens, 0.0, None)
    return (lower + more[:, None] * opening.direction).astype(lower.dtype)


def opening_direction(lower: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """(K,) least-squares line of (F, K) coefficients on their (F,) inner-lip gap: the way this
    actor's mouth moves as it opens."""
    centred = gap - gap.mean()
    spread = float(centred @ centred)
    if spread <= 0:
        return np.zeros(lower.shape[1], lower.dtype)
    return centred @ (lower - lower.mean(axis=0)) / spread


def mouth_gap_px(model: ActorModel, lower: np.ndarray) -> np.ndarray:
    """Inner-lip gap of the driven face in px of a 256-px face box (upper face at neutral)."""
    shapes = model.shape(lower, np.zeros((len(lower), len(model.upper_basis)), np.float32))
    return mouth_opening(shapes) * model.face_box_scale


def footage_mouths(model: ActorModel, fits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every fitted frame's (F, K) lower and (F, K_upper) upper coefficients and (F,)
    inner-lip gap."""
    lower = np.concatenate([f.lower for f in fits])
    upper = np.concatenate([f.upper for f in fits])
    return lower, upper, mouth_opening(model.shape(lower, upper))


def mouth_opening_of(model: ActorModel, fits) -> MouthOpening:
    """The opening of the actor's mouth, from their fitted footage."""
    lower, upper, gap = footage_mouths(model, fits)
    mean_face = model.shape(lower.mean(axis=0)[None], upper.mean(axis=0)[None])[0]
    # The gap is the length of the inner lips' 2D separation: its gradient is that
    # separation's unit vector dotted with how each coefficient moves the two points apart.
    separation = mean_face[LOWER_LIP_INNER, :2] - mean_face[UPPER_LIP_INNER, :2]
    unit = separation / max(float(np.linalg.norm(separation)), 1e-12)
    basis = model.lower_basis
    gradient = (basis[:, LOWER_LIP_INNER, :2] - basis[:, UPPER_LIP_INNER, :2]) @ unit
    direction = opening_direction(lower, gap)
    if float(gradient @ direction) <= 1e-6 * float(gradient @ gradient):
        # Footage whose mouth never opened says nothing of how it opens: the smallest change
        # of coefficients that opens it stands in.
        direction = gradient / max(float(gradient @ gradient), 1e-12)
    return MouthOpening(gradient.astype(np.float64), direction.astype(np.float64))


def keep_plate_expression(
    driven: np.ndarray, plate: np.ndarray, opening: MouthOpening, frame_seconds: float
) -> np.ndarray:
    """(F, K) `driven` lower face plus the slow part of the `plate`'s (F, K, consecutive frames
    of the plate) departure from it, that part's mouth opening left out."""
    if len(driven) == 0:
        return driven
    # The window's mean over the frames there are: at a shot's ends, replicating the last frame
    # would hand its mouth, mid-word, the weight of the half-window past it.
    sigma = EXPRESSION_SIGMA_S / frame_seconds
    offsets = (plate - driven).astype(np.float64)
    weights = gaussian_filter1d(np.ones(len(offsets)), sigma, mode="constant")
    slow = gaussian_filter1d(offsets, sigma, axis=0, mode="constant") / weights[:, None]
    return (driven + opening.without_opening(slow)).astype(driven.dtype)


def held_weights(gap: np.ndarray, frame_seconds: float) -> np.ndarray:
    """(F,) 1 where the (F,) inner-lip gap is held still, 0 where it moves as speech does."""
    size = _window(HELD_REACH_S, frame_seconds)
    spread = maximum_filter1d(gap, size, mode="nearest") - minimum_filter1d(
        gap, size, mode="nearest"
    )
    still, moving = HELD_RANGE_PX
    return np.clip((moving - spread) / (moving - still), 0.0, 1.0)


def shut_weights(gap: np.ndarray, frame_seconds: float) -> np.ndarray:
    """(F,) 1 where the (F,) inner-lip gap stays shut over SHUT_REACH_S either side, 0 where it
    opens within it."""
    widest = maximum_filter1d(gap, _window(SHUT_REACH_S, frame_seconds), mode="nearest")
    shut, open_ = SHUT_GAP_PX
    return np.clip((open_ - widest) / (open_ - shut), 0.0, 1.0)


def _window(reach_s: float, frame_seconds: float) -> int:
    """Frames in a window reaching `reach_s` either side of its middle, at least one a side."""
    return 2 * max(1, round(reach_s / frame_seconds)) + 1


def pause_weights(speech: np.ndarray, closing: np.ndarray, frame_seconds: float) -> np.ndarray:
    """(F,) 1 inside the dub's pauses (`speech` False), fading to 0 at their edges; 0 where the
    lips are held shut for a coming /p b m/ (`closing`)."""
    silence = gaussian_filter1d((~speech).astype(np.float64), PAUSE_EDGE_S / frame_seconds)
    return np.clip(2 * silence - 1, 0.0, 1.0) * (1 - closing)


def keep_plate_pauses(
    driven: np.ndarray,
    plate: np.ndarray,
    model: ActorModel,
    speech: np.ndarray,
    closing: np.ndarray,
    frame_seconds: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(F, K) `driven`, drawn to the `plate`'s own lower face where the dub pauses and the
    plate's mouth is held (a smile with the lips apart) or shut: nobody speaks there, so what
    the mouth does is the actor's. `speech` and `closing` are the dub's, per frame. Also (F,)
    how far each frame was drawn."""
    gap = mouth_gap_px(model, plate)
    weight = pause_weights(speech, closing, frame_seconds)
    weight *= np.maximum(held_weights(gap, frame_seconds), shut_weights(gap, frame_seconds))
    return (driven + weight[:, None] * (plate - driven)).astype(driven.dtype), weight


def bridge_covered(plate: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(F, K) `plate` lower face with its `covered` frames ((F,) bool) drawn straight across
    from the uncovered frames either side. What the tracker guessed under a hand is no
    expression of the actor's: left in, it pulls the held expression of the second around it
    (8 frames under a dark object moved that of the other frames of man_map's last second by
    3.8 px of a 256-px face on average; bridged, by 0.5), and its lip gap decides whether the
    mouth beside it is held or shut in the dub's pauses."""
    if not covered.any() or covered.all():
        return plate
    frames = np.arange(len(plate))
    seen = ~covered
    columns = [np.interp(frames, frames[seen], column[seen]) for column in plate.T]
    return np.stack(columns, axis=1).astype(plate.dtype)


def with_plate_expression(
    driven: np.ndarray,
    plate: np.ndarray,
    model: ActorModel,
    opening: MouthOpening,
    speech: np.ndarray,
    closing: np.ndarray,
    frame_seconds: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The drive as `dub` takes it from A2E: `keep_plate_expression`, then `keep_plate_pauses`."""
    kept = keep_plate_expression(driven, plate, opening, frame_seconds)
    return keep_plate_pauses(kept, plate, model, speech, closing, frame_seconds)
