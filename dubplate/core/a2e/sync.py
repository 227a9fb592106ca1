"""How far a footage's sound runs from its picture, so that A2E learns each sound against the
mouth that made it.

A2E pairs every footage frame with the audio at the frame's own time. A recording whose sound is
a few frames early or late (a camera's audio offset, a transfer, an edit) pairs each mouth with
another sound: the viseme prior, which reads one frame's sound, and the bilabial rule then time
the dub's mouth as wrongly. The offset is found as the one, within MAX_OFFSET_S, at which the
fitted mouth's inner-lip gap best follows the openness of the phones heard (the phone-sync of
`dubplate qc`), and A2E learns from the audio moved by it. The dub is taken as in sync: what is
learnt is the mouth of a sound, not the footage's offset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dubplate.core.a2e.expression import mouth_gap_px
from dubplate.core.a2e.train import Footage
from dubplate.core.audio.features import AudioAnalysis, frame_features, heard_within
from dubplate.core.morph.model import ActorModel
from dubplate.core.qc.lipsync import openness, phone_sync

# As far as a sound offset is looked for. On the shared clips (first 80%) the best phone-sync
# was 3 frames (120 ms) from as recorded on woman_flag_b (0.09 -> 0.38), 2 on man_office and 1
# on man_map; trained on the moved audio, A2E's held-out lower-face error fell from 3.02 to 2.45
# px, 1.67 to 1.36 and 2.07 to 2.01 (scratch, the a2e bench's measure). Not further: man_map's
# sound runs 520 ms late by its phones (phone-sync 0.15 -> 0.34) and its loudness, but A2E
# learnt with it so moved missed the held-out mouths that keep their sound (13 of 25) by 1.25
# times the mean expression's error (1.97 against 1.58 px; the driven gap spread 1.8 times the
# real one's), against 0.76 with the sound 40 ms late (the a2e bench, at f96ac11 and b95785b).
MAX_OFFSET_S = 0.2
# Under this phone-sync at the best offset the mouth follows its phones too little to time
# them by it (woman_seated: 0.04 at best), and the audio stays as recorded.
MIN_PHONE_SYNC = 0.2
# An offset must raise the phone-sync by this much over as recorded to be taken: a mouth leads
# its sound by a frame or so at each onset, and a few seconds' phone-sync moves by a few
# hundredths between neighbouring offsets. woman_flag_a's best, +40 ms (0.342 -> 0.367), cost her
# held-out lower-face error 0.05 px and her dub's mouth 0.22 px (bench/dub_bench.py at 200
# steps); man_office's -90 ms (0.35 -> 0.39) took 0.31 and 0.33 px off them.
MIN_SYNC_GAIN = 0.03
# With fewer seen frames than this much, a correlation near its best is common by chance.
MIN_SEEN_S = 2.0
# A stretch of footage where the mouth does not follow its sound teaches A2E wrong mouths: a laugh
# or a smile held over the words, another voice off screen. Each frame is judged by the
# phone-sync over LOCAL_SYNC_HALF_S either side of it, and not learnt from under
# LOCAL_SYNC_FLOOR. The actor of woman_seated_hd_20s smiles wide through 7-12 s of the first 16 s
# (phone-sync -0.24 to 0.06 over 3 s there, 0.3-0.5 elsewhere); with those frames left out, A2E
# missed the held-out mouths by 0.91 and 0.90 of the mean expression's error (two seeds),
# against 0.94 and 0.92, and the viseme prior alone by 0.94 against 1.00; the other shared clips
# lose no frame (the a2e bench's measure, scratch runs; 1 s either side: the prior 0.98; a floor
# of 0.1 left out frames of two more clips). Under the plate's held expression, as `dub` drives
# it, the same mouths missed by 2.76 px against 2.71 and 2.68: the smile had taught a wider mouth.
LOCAL_SYNC_HALF_S = 1.5
LOCAL_SYNC_FLOOR = 0.0
# A frame is judged only where its window holds this much seen mouth.
LOCAL_SEEN_S = 1.0


@dataclass(frozen=True)
class FootageSync:
    offset_s: float  # seconds into the audio, past a frame's own time, of the sound it shows
    best_offset_s: float  # where the phone-sync peaks; taken as `offset_s` only if clear enough
    phone_sync: float | None  # at `best_offset_s`; None: the mouth or its sound never varies
    phone_sync_as_recorded: float | None

    def as_dict(self) -> dict:
        return {k: None if v is None else round(v, 4) for k, v in asdict(self).items()}


def sync_offset(
    gap_px: np.ndarray, analysis: AudioAnalysis, times: np.ndarray, frame_seconds: float
) -> FootageSync:
    """The sound offset of frames at `times` (seconds into the audio) whose (F,) inner-lip gap
    (NaN: not seen) is `gap_px`, in whole frames of `frame_seconds` (a variable-rate footage's
    mean: its frames are timed exactly, its offset to the nearest mean frame)."""
    curve = openness(frame_features(analysis, times, frame_seconds, pad=True))
    as_recorded, _ = phone_sync(gap_px, curve, max_lag=0)
    best, lag = phone_sync(gap_px, curve, max_lag=int(MAX_OFFSET_S / frame_seconds + 1e-6))
    # The gap at frame t goes with the curve at frame t - lag: the sound `lag` frames earlier.
    best_offset = -lag * frame_seconds
    seen_s = np.isfinite(gap_px).sum() * frame_seconds
    clear = (
        seen_s >= MIN_SEEN_S
        and best is not None
        and as_recorded is not None
        and best >= MIN_PHONE_SYNC
        and best - as_recorded >= MIN_SYNC_GAIN
    )
    return FootageSync(best_offset if clear else 0.0, best_offset, best, as_recorded)


def unsynced_frames(
    gap_px: np.ndarray, analysis: AudioAnalysis, times: np.ndarray, frame_seconds: float
) -> np.ndarray:
    """(F,) bool: the frames at `times` (seconds into the audio, offset applied) around which,
    within LOCAL_SYNC_HALF_S, the (F,) inner-lip gap (NaN: not seen) follows the openness of
    the phones heard less than LOCAL_SYNC_FLOOR (its phone-sync). Not judged, so False: a
    frame whose window holds under LOCAL_SEEN_S of seen mouth, or a mouth or sound that does
    not vary there (a pause). The window is counted in frames of `frame_seconds` (a variable-rate
    footage's mean)."""
    curve = openness(frame_features(analysis, times, frame_seconds, pad=True))
    half = int(round(LOCAL_SYNC_HALF_S / frame_seconds))
    seen = np.isfinite(gap_px)
    unsynced = np.zeros(len(gap_px), bool)
    for frame in range(len(gap_px)):
        window = slice(max(0, frame - half), frame + half + 1)
        if seen[window].sum() * frame_seconds < LOCAL_SEEN_S:
            continue
        sync, _ = phone_sync(gap_px[window], curve[window], max_lag=0)
        unsynced[frame] = sync is not None and sync < LOCAL_SYNC_FLOOR
    return unsynced


def footage_sync(footage: Footage, analysis: AudioAnalysis, model: ActorModel) -> FootageSync:
    """The sound offset of an actor's footage, from its fitted mouth and `analysis` of its
    audio."""
    return sync_offset(fitted_gap(footage, model), analysis, footage.times, footage.frame_seconds)


def footage_unsynced(
    footage: Footage, analysis: AudioAnalysis, model: ActorModel, offset_s: float
) -> np.ndarray:
    """(F,) bool: the footage's frames whose fitted mouth does not follow its sound, heard
    `offset_s` late (`unsynced_frames`). Frames heard outside the audio are not judged and
    weigh in no window: their sound is padding."""
    times = footage.times + offset_s
    heard = heard_within(times, float(footage.audio.duration))
    gap = fitted_gap(footage, model)
    gap[~heard] = np.nan
    return unsynced_frames(gap, analysis, times, footage.frame_seconds) & heard


def fitted_gap(footage: Footage, model: ActorModel) -> np.ndarray:
    """(F,) the fitted mouth's inner-lip gap, px of a 256-px face box; NaN where masked."""
    gap = np.full(len(footage.mask), np.nan)
    gap[footage.mask] = mouth_gap_px(model, footage.targets[footage.mask])
    return gap
