"""Audio-to-expression figures on the shared footage and dubs (issue 4), into bench/RESULTS.md.

    .venv/bin/python bench/a2e_bench.py [--no-write]

For each footage clip: the actor is built and A2E (a bag of networks) trained on the first 80%
of the frames (the last 20% of those held out to choose each network's steps and gain, then
learnt from too), then
1. with the clip's own audio on the held-out last 20% (moved by the sound offset A2E found in
   the first 80% and learnt with; scored where that sound was recorded): lower-face landmark
   error of the predicted mesh (pose and upper face from the track) against the track, px of
   a 256-px face box, beside the mean-expression baseline (the first 80%'s mean fitted lower
   face, covered mouths left out) and the errors that perfect predictors of the inner-lip gap,
   and of the gap and the mouth's width, would leave (how much of the lower face opening, and
   spreading or rounding, explain), and that of the tail's own mean expression (how far the
   held expression drifts from the footage's, which no audio says);
2. with every dub in ../shared/data/audio: phone-sync and bilabial closure of the predicted
   mouth, against the real footage's phone-sync with its own audio;
3. training time, scaled to 20 s of footage.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from results import FOOTAGE, SHARED, arguments, provenance, publish, start

from dubplate.core.a2e.expression import mouth_gap_px, mouth_opening_of, with_plate_expression
from dubplate.core.a2e.predict import drive, prediction_lip_sync
from dubplate.core.a2e.store import load_a2e, train_actor_a2e
from dubplate.core.a2e.train import closing_weights, predict
from dubplate.core.audio.features import analyse, frame_features, heard_within
from dubplate.core.media import load_audio, open_plate
from dubplate.core.morph.actor import Actor, build_actor
from dubplate.core.morph.fit import fit_frames
from dubplate.core.neural.covered import covered_footage_frames, uncovered_fits
from dubplate.core.qc.lipsync import track_lip_sync
from dubplate.core.track import track_plate
from dubplate.core.track.landmarks import FACE_BOX_PX, face_size, mouth_width

TRAIN_SHARE = 0.8


def lower_face_error_px(actor: Actor, track, rows: np.ndarray, lower: np.ndarray) -> float:
    """Mean 2D distance of the lower-face vertices of the driven mesh (pose and upper face
    fitted to the real frames) to the tracked ones, px of a 256-px face box."""
    model = actor.model
    landmarks = track.landmarks[rows]
    fit = fit_frames(model, landmarks, track.frames[rows])
    driven = replace(fit, lower=lower.astype(np.float32)).posed(model)
    vertices = model.lower_vertices
    error = np.linalg.norm(driven[:, vertices, :2] - landmarks[:, vertices, :2], axis=-1)
    scale = FACE_BOX_PX / face_size(landmarks)
    return float((error * scale[:, None]).mean())


def mouth_axes(model, lower: np.ndarray) -> np.ndarray:
    """(F, 2) inner-lip gap and mouth width of the driven face (upper face at neutral)."""
    upper = np.zeros((len(lower), len(model.upper_basis)), np.float32)
    return np.stack([mouth_gap_px(model, lower), mouth_width(model.shape(lower, upper))], axis=1)


def mouth_oracle(train_axes, train_lower, true_axes) -> np.ndarray:
    """What a perfect predictor of the mouth's `true_axes` (F, A: the held-out frames' gap, or
    gap and width) would drive: the training frames' least-squares plane of coefficients on
    their axes, read at the true ones. Its error is how far those axes, the most the audio
    says of the mouth, can take the lower face."""
    centre = train_axes.mean(axis=0)
    slopes = np.linalg.lstsq(
        train_axes - centre, train_lower - train_lower.mean(axis=0), rcond=None
    )[0]
    return train_lower.mean(axis=0) + (true_axes - centre) @ slopes


def gap_spread(model, driven: np.ndarray, tracked: np.ndarray) -> float:
    """Standard deviation of the driven mouth's inner-lip gap over that of the tracked one:
    under 1, the driven mouth opens and closes less than the real one did."""
    return float(mouth_gap_px(model, driven).std() / mouth_gap_px(model, tracked).std())


def clip_row(clip: Path, dubs: list[Path], workdir: Path) -> dict:
    plate = open_plate(clip)
    numbers = list(plate.select())
    cut = int(len(numbers) * TRAIN_SHARE)
    track = track_plate(plate, numbers)
    train_track = track.head(cut)
    actor_dir = workdir / clip.stem
    build_actor(clip.stem, [(plate, train_track)]).save(actor_dir)
    started = time.perf_counter()
    report = train_actor_a2e(actor_dir, last_frame=numbers[cut - 1])
    seconds = time.perf_counter() - started
    actor = Actor.load(actor_dir)
    network, manifest = load_a2e(actor_dir)
    (sync,) = manifest["training"]["footage_sync"]

    frame_seconds = float(1 / plate.info.fps)
    own = analyse(plate.audio())
    # Driven over every frame with a face, as `dub` drives a shot; scored on the held-out tail,
    # where the sound it is heard with was recorded (A2E learns from no other frames either).
    found = np.flatnonzero(track.found)
    # The clip's sound, moved by the offset A2E found in its first 80% and learnt with.
    heard_at = track.times[found] + sync["offset_s"]
    heard = heard_within(heard_at, own.duration)
    in_tail = (found >= cut) & heard
    tail = found[in_tail]
    features = frame_features(own, heard_at, frame_seconds, pad=True)
    predicted = predict(network, features, own.has_speech)
    # The mean expression of all the footage A2E learnt from: the first 80%, less covered mouths.
    (learnt_from,) = uncovered_fits(actor, covered_footage_frames(actor_dir))
    baseline = np.repeat(learnt_from.lower.mean(axis=0)[None], len(found), axis=0)
    plate_lower = fit_frames(actor.model, track.landmarks[found], track.frames[found]).lower
    opening = mouth_opening_of(actor.model, actor.fits)

    speech, closing = features.speech, closing_weights(features)

    def with_expression(lower):
        kept, _ = with_plate_expression(
            lower, plate_lower, actor.model, opening, speech, closing, frame_seconds
        )
        return kept[in_tail]

    train_axes = mouth_axes(actor.model, learnt_from.lower)
    true_axes = mouth_axes(actor.model, plate_lower[in_tail])
    gap_oracle = mouth_oracle(train_axes[:, :1], learnt_from.lower, true_axes[:, :1])
    shape_oracle = mouth_oracle(train_axes, learnt_from.lower, true_axes)
    tail_mean = np.repeat(plate_lower[in_tail].mean(axis=0)[None], len(tail), axis=0)

    real = track_lip_sync(track, own, track.times, frame_seconds)
    dub_figures = {}
    for dub in dubs:
        prediction = drive(network, load_audio(dub), plate.info.fps)
        dub_figures[dub.stem] = prediction_lip_sync(actor.model, prediction, plate.info.fps)
    footage_seconds = cut * frame_seconds
    row = {
        "clip": clip.name,
        "tail_frames": len(tail),
        "tail_unheard": int(((found >= cut) & ~heard).sum()),
        "train_s": footage_seconds,
        "sync": sync,
        "error": lower_face_error_px(actor, track, tail, predicted[in_tail]),
        "baseline": lower_face_error_px(actor, track, tail, baseline[in_tail]),
        "error_expression": lower_face_error_px(actor, track, tail, with_expression(predicted)),
        "baseline_expression": lower_face_error_px(actor, track, tail, with_expression(baseline)),
        "oracle": lower_face_error_px(actor, track, tail, gap_oracle),
        "shape_oracle": lower_face_error_px(actor, track, tail, shape_oracle),
        "tail_mean": lower_face_error_px(actor, track, tail, tail_mean),
        # How far the driven mouth opens and closes against the tracked one's, over the tail.
        "gap_spread": gap_spread(actor.model, predicted[in_tail], plate_lower[in_tail]),
        "gap_spread_expression": gap_spread(
            actor.model, with_expression(predicted), plate_lower[in_tail]
        ),
        "real_sync": real.phone_sync,
        "real_closure": real.bilabial_closure,
        "dubs": dub_figures,
        "train_seconds": seconds,
        "per_20s": seconds * 20 / footage_seconds,
        "steps": [run["steps"] for run in report["runs"]],
    }
    print(clip.name, {k: v for k, v in row.items() if k != "dubs"}, file=sys.stderr)
    return row


def markdown(rows: list[dict], dubs: list[Path]) -> str:
    lines = [
        "## Audio to expression (issue 4): `bench/a2e_bench.py`",
        "",
        provenance(),
        "",
        "Own audio, held-out last 20%: lower-face landmark error of the driven mesh vs the "
        "track (px of a 256-px face box), beside the mean-expression baseline (the mean fitted "
        "lower face of the first 80%'s frames whose mouth is not covered). Training: first "
        "80% of the clip, CPU, three networks bagged, each from its own seed with 8 augmented "
        "voices of its own plus the original, each training window losing two runs of up to 8 "
        "mel bands, and the stretches where the mouth does not follow its sound (phone-sync "
        "under 0 over 1.5 s either side) left out; its last 20% held out to choose each network's "
        "steps and gain, then each trained again on all of it. "
        "Sound offset: how far past each frame's time its sound was taken "
        "to be in the first 80% (`core/a2e/sync.py`): where the fitted mouth's phone-sync "
        "peaks, if clearly over as recorded; A2E learnt with the sound moved by it, and the "
        "tail is driven with it. Scored: the held-out frames whose sound, so moved, is in "
        "the recording (left out: those it moves past the audio's end or before its start, "
        "which A2E does not learn from either).",
        "",
        "| clip | training footage | sound offset (best: phone-sync as recorded -> there) "
        "| held-out frames scored (left out) | A2E error "
        "| mean-expression error | ratio | train time | per 20 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['train_s']:.1f} s | {1000 * r['sync']['offset_s']:+.0f} ms "
            f"(best {1000 * r['sync']['best_offset_s']:+.0f} ms: "
            f"{r['sync']['phone_sync_as_recorded']:.2f} -> {r['sync']['phone_sync']:.2f}) | "
            f"{r['tail_frames']} ({r['tail_unheard']}) | "
            f"{r['error']:.2f} | {r['baseline']:.2f} | "
            f"{r['error'] / r['baseline']:.2f} | {r['train_seconds']:.0f} s | "
            f"{r['per_20s']:.0f} s |"
        )
    lines += [
        "",
        "What the mouth's shape can explain, the same error and its ratio to the mean "
        "expression's: a perfect predictor of the inner-lip gap (lip-gap oracle), and of the gap "
        "and the mouth's width (gap and width oracle), each the training frames' least-squares "
        "plane of coefficients on them read at each held-out frame's true ones; and the "
        "held-out tail's own mean fitted lower face, how far the actor's held expression there "
        "drifts from the footage's (a smile, a narrower mouth), which no audio says.",
        "",
        "| clip | A2E | lip-gap oracle | gap and width oracle | the tail's own mean |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = " | ".join(
            f"{r[k]:.2f} ({r[k] / r['baseline']:.2f})"
            for k in ("error", "oracle", "shape_oracle", "tail_mean")
        )
        lines.append(f"| {r['clip']} | {cells} |")
    lines += [
        "",
        "The same, with the plate's held expression kept under the driven mouth, as `dub` drives "
        "a shot (`core/a2e/expression.py`): the slow part (Gaussian of 0.5 s) of the fitted "
        "plate's departure from the drive, less its mouth opening, is added to it, and where "
        "the audio pauses and the plate's mouth is held still or shut the mouth is the "
        "plate's. Beside it, the same over the mean expression's opening, which says what the "
        "audio adds. The plate here is the clip itself, so its held expression is the truth's. "
        "Gap spread: the standard deviation of the driven mouth's inner-lip gap over the held-out "
        "tail, over the tracked mouth's (under 1: it opens and closes less than the real one).",
        "",
        "| clip | A2E + plate expression | mean + plate expression | ratio to the mean "
        "expression's error | ratio to the mean + plate expression's | gap spread: A2E "
        "| A2E + plate expression |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['error_expression']:.2f} | {r['baseline_expression']:.2f} | "
            f"{r['error_expression'] / r['baseline']:.2f} | "
            f"{r['error_expression'] / r['baseline_expression']:.2f} | "
            f"{r['gap_spread']:.2f} | {r['gap_spread_expression']:.2f} |"
        )
    header = " | ".join(d.stem for d in dubs)
    lines += [
        "",
        "Phone-sync (Spearman of the inner-lip gap with the phone openness curve, best lag "
        "+-2 frames) of the mouth driven by each dub, and of the real footage with its own audio; "
        "then bilabial closure (share of /p b m/ segments with the lips closed) for the dubs.",
        "",
        f"| clip | real footage | {header} | mean of dubs / real |",
        "| --- | --- | " + " | ".join("---" for _ in dubs) + " | --- |",
    ]
    ratios = []
    for r in rows:
        syncs = [r["dubs"][d.stem].phone_sync for d in dubs]
        ratio = np.mean(syncs) / r["real_sync"]
        ratios.append(ratio)
        cells = " | ".join(f"{s:.2f}" for s in syncs)
        lines.append(f"| {r['clip']} | {r['real_sync']:.2f} | {cells} | {ratio:.2f} |")
    lines += [
        "",
        f"| bilabial closure | real | {header} | mean |",
        "| --- | --- | " + " | ".join("---" for _ in dubs) + " | --- |",
    ]
    closures = []
    for r in rows:
        values = [r["dubs"][d.stem].bilabial_closure for d in dubs]
        known = [v for v in values if v is not None]
        closures += known
        cells = " | ".join("n/a" if v is None else f"{v:.2f}" for v in values)
        real = "n/a" if r["real_closure"] is None else f"{r['real_closure']:.2f}"
        lines.append(f"| {r['clip']} | {real} | {cells} | {np.mean(known):.2f} |")
    mean_sync = np.mean([np.mean([r["dubs"][d.stem].phone_sync for d in dubs]) for r in rows])
    mean_real = np.mean([r["real_sync"] for r in rows])
    lines += [
        "",
        f"Averaged over clips: phone-sync with the dubs {mean_sync:.3f} vs real footage "
        f"{mean_real:.3f} (ratio {mean_sync / mean_real:.2f}); bilabial closure with the dubs "
        f"{np.mean(closures):.2f}; lower-face error ratio to the baseline "
        f"{np.mean([r['error'] / r['baseline'] for r in rows]):.2f} (lip-gap oracle "
        f"{np.mean([r['oracle'] / r['baseline'] for r in rows]):.2f}, gap and width oracle "
        f"{np.mean([r['shape_oracle'] / r['baseline'] for r in rows]):.2f}), mean error "
        f"{np.mean([r['error'] for r in rows]):.2f} px; with the plate's held expression, "
        f"ratio {np.mean([r['error_expression'] / r['baseline'] for r in rows]):.2f}, mean error "
        f"{np.mean([r['error_expression'] for r in rows]):.2f} px.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--clips", nargs="*", help="footage file names (default: all)")
    args = start(parser)
    clips = sorted(FOOTAGE.glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if c.name in args.clips]
    dubs = sorted((SHARED / "audio").glob("*.wav"))
    with tempfile.TemporaryDirectory(prefix="dubplate-a2e-") as workdir:
        rows = [clip_row(clip, dubs, Path(workdir)) for clip in clips]
    publish("a2e_bench", markdown(rows, dubs), args)


if __name__ == "__main__":
    main()
