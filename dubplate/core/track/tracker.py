"""Track one target face through a plate: detect, choose, mesh on a crop, smooth."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import cv2
import fileseq
import numpy as np

from dubplate.core.errors import DubplateError
from dubplate.core.media.plate import Plate
from dubplate.core.progress import Progress
from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.landmarks import LANDMARK_COUNT, MESH_VERTEX_COUNT
from dubplate.core.track.likeness import UNLIKE, Likeness, Looks, look_of
from dubplate.core.track.mediapipe_face import MEDIAPIPE_VERSION, Detection, FaceDetector, FaceMesh
from dubplate.core.track.smoothing import OneEuro, smooth_track

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackSettings:
    # The full-range detector sees 192x192 whatever it is given: a larger copy only costs time.
    detect_long_side: int = 256  # the detector's copy of the frame (or window), long side px
    mesh_crop_px: int = 256  # the mesh's crop; its own input is 192 px, so this loses nothing
    crop_scale: float = 2.0  # crop side over detection box side: room for chin, brow, rotation
    min_score: float = 0.5
    upright_over_deg: float = 15.0  # a face tilted further is turned upright for the mesh
    unlike: float = UNLIKE  # look distance over which a face is not the target (track/likeness)
    smoothing: OneEuro = field(default_factory=OneEuro)

    def manifest(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "smoothing"}


DEFAULT_SETTINGS = TrackSettings()


@dataclass(frozen=True)
class TargetHint:
    """The user's choice of face: a point on it or a box around it, on a frame (default: first)."""

    point: tuple[float, float] | None = None
    box: tuple[float, float, float, float] | None = None
    frame: int | None = None

    def describe(self) -> str:
        where = f"point {self.point}" if self.point else f"box {self.box}"
        return f"{where} on frame {self.frame}"

    def manifest(self) -> dict:
        return {
            "point": self.point and list(self.point),
            "box": self.box and list(self.box),
            "frame": self.frame,
        }


@dataclass(frozen=True)
class Sighting:
    """A face's landmarks in plate pixels and its look (see `likeness.look_of`)."""

    face: Detection
    points: np.ndarray
    look: np.ndarray


@dataclass(frozen=True)
class _Frame:
    """A frame as the target is looked for in it."""

    number: int
    pixels: np.ndarray
    plate: Plate
    tracker: FaceTracker

    def all_faces(self) -> list[Detection]:
        return self.tracker.find_all(self.plate, self.pixels)

    def faces_near(self, last: Detection) -> list[Detection]:
        return self.tracker.find_near(self.plate, self.pixels, last)

    def sighting(self, face: Detection) -> Sighting | None:
        return self.tracker.sighting(self.plate, self.pixels, face)

    def meshed_largest(self, faces: list[Detection]) -> list[Sighting]:
        """The largest MAX_CANDIDATES of `faces` that the mesh takes, largest first: the faces a
        target is looked for among by its look."""
        largest = sorted(faces, key=lambda d: -d.size)[:MAX_CANDIDATES]
        return [s for s in map(self.sighting, largest) if s]


class Target:
    """The face being tracked: picked once, followed from frame to frame by overlap and kept by
    its look (track/likeness). A face where the target was that does not look like it is refused,
    and the target is looked for among all faces of the frame: a cut or someone stepping into its
    place must leave a gap, never a track that jumps to another person. Without a hint, the face
    picked is the one nearest the `known` looks (the actor's), on the first frame where one is
    near enough (a shot may open on someone else); where none ever is, or with no looks known,
    the largest of the first frame that has a face to mesh."""

    def __init__(self, hint: TargetHint | None, unlike: float, known: Looks | None = None):
        self.hint = hint
        self.unlike = unlike
        self.known = known
        self.anchor: Detection | None = None
        self.anchor_frame: int | None = None  # where it was picked: the first with a face
        self.faces = 0  # the most faces found on a frame up to the pick (cache.py reads it)
        self.last: Detection | None = None
        self.reason = ""
        self.likeness: Likeness | None = None
        self.refused: dict[int, float] = {}  # frame -> look distance of the face refused there
        self.found_again: list[int] = []  # frames where it was found by its look, not followed
        # With known looks: the first frame's largest meshed face, the count meshed there and
        # `faces` then, taken by `pick_fallback` where no face on any frame looks like the actor.
        self.fallback: tuple[int, Sighting, int, int] | None = None

    def find(self, frame: _Frame) -> Sighting | None:
        if self.anchor is None:
            sighting = self._first(frame)
            return self._seen(sighting) if sighting else None
        face = _follow(self.last, frame.faces_near(self.last))
        if face is None:
            return self._look_for(frame)
        sighting = frame.sighting(face)
        if sighting is None:
            self.last = face
            return None
        distance = self.likeness.distance(sighting.look) if self.likeness else 0.0
        if distance > self.unlike:
            self.refused[frame.number] = distance
            return self._look_for(frame, besides=face)
        self.last = face
        return self._seen(sighting)

    def restart_from_anchor(self) -> None:
        self.last = self.anchor
        if self.likeness is not None:
            self.likeness.restart()

    def _seen(self, sighting: Sighting) -> Sighting:
        if self.likeness is None:
            self.likeness = Likeness(sighting.points, sighting.look)
        else:
            self.likeness.remember(sighting.look)
        return sighting

    def _look_for(self, frame: _Frame, besides: Detection | None = None) -> Sighting | None:
        """The target among all faces of the frame but the one just refused (`besides`)."""
        if self.likeness is None:
            return None
        faces = [
            face
            for face in frame.all_faces()
            if besides is None or _iou(face.box, besides.box) < 0.3
        ]
        sightings = frame.meshed_largest(faces)
        if not sightings:
            return None
        distances = [self.likeness.distance(s.look) for s in sightings]
        best = int(np.argmin(distances))
        if distances[best] > self.unlike:
            return None
        face = sightings[best].face
        # Where the window around it missed a face that is still where it was, it is followed.
        if _follow(self.last, [face]) is None:
            self.found_again.append(frame.number)
            log.info(
                "track: the target found again on frame %d at (%.0f, %.0f) by its look (%.2f)",
                frame.number,
                *face.centre,
                distances[best],
            )
        self.last = face
        return self._seen(sightings[best])

    def pick_fallback(self) -> tuple[int, Sighting] | None:
        """Where the known looks were near no face on any frame: the largest face meshed on the
        first frame where any was (its frame and sighting). The frames it waited through after
        that are not counted in `faces`: the pick is that frame's."""
        if self.fallback is None:
            return None
        number, sighting, meshed, self.faces = self.fallback
        self.reason = (
            f"largest of {meshed} face(s), none within {self.unlike} of the actor's look on any"
            " frame"
        )
        self._pick(number, sighting.face, sighting)
        return number, self._seen(sighting)

    def _first(self, frame: _Frame) -> Sighting | None:
        detections = frame.all_faces()
        self.faces = max(self.faces, len(detections))  # waited frames count too
        if not detections:
            if self.hint is not None:
                raise DubplateError(
                    f"frame {frame.number}: no face found to pick ({self.hint.describe()})"
                )
            return None
        if self.hint is not None:
            chosen = _hinted(self.hint, detections, frame.number)
            self.reason = f"picked by {self.hint.describe()}"
            sighting = frame.sighting(chosen)
        else:
            sighting = self._unhinted(frame, detections)
            if sighting is None:
                return None
            chosen = sighting.face
        self._pick(frame.number, chosen, sighting)
        return sighting

    def _pick(self, number: int, chosen: Detection, sighting: Sighting | None) -> None:
        self.anchor = self.last = chosen
        self.anchor_frame = int(number)
        if sighting is not None and self.known is not None and self.hint is None:
            self.reason += f", look {self.known.distance(sighting.look):.2f} from the actor's"
        log.info(
            "target: face at (%.0f, %.0f), %.0f px, score %.2f on frame %d (%s)",
            *chosen.centre,
            chosen.size,
            chosen.score,
            number,
            self.reason,
        )

    def _unhinted(self, frame: _Frame, detections: list[Detection]) -> Sighting | None:
        """The face to pick, or None to wait for a later frame: a target with no look taken
        could not be found again once lost, so the pick waits for a frame where it meshes."""
        if self.known is not None:
            return self._by_look(frame, detections)
        self.reason = f"largest of {len(detections)} face(s)"
        sighting = frame.sighting(max(detections, key=lambda d: d.size))
        if sighting is None:
            log.info("track: frame %d: the largest face is not meshed; picked later", frame.number)
        return sighting

    def _by_look(self, frame: _Frame, detections: list[Detection]) -> Sighting | None:
        """The meshed face nearest the known looks, if within `unlike`; else None, and the
        first such frame's largest meshed face is kept as the fallback."""
        sightings = frame.meshed_largest(detections)
        if not sightings:
            log.info("track: frame %d: no face meshed to compare; picked later", frame.number)
            return None
        distances = [self.known.distance(s.look) for s in sightings]
        best = int(np.argmin(distances))
        if distances[best] <= self.unlike:
            self.reason = f"nearest the actor's look of {len(sightings)} face(s) meshed"
            return sightings[best]
        if self.fallback is None:
            self.fallback = (frame.number, sightings[0], len(sightings), self.faces)
            log.info(
                "track: frame %d: no face within %.2f of the actor's look (nearest %.2f); the pick"
                " waits for one",
                frame.number,
                self.unlike,
                distances[best],
            )
        return None

    def manifest(self) -> dict:
        return {
            "reason": self.reason,
            "frame": self.anchor_frame,
            "faces": self.faces,
            "box": [round(float(v), 2) for v in self.anchor.box],
            "unlike": self.unlike,
            "refused": {str(n): round(d, 3) for n, d in sorted(self.refused.items())},
            "found_again": sorted(self.found_again),
        }


def _hinted(hint: TargetHint, detections: list[Detection], number: int) -> Detection:
    if hint.point is not None:
        px, py = hint.point
        inside = [
            d for d in detections if d.box[0] <= px <= d.box[2] and d.box[1] <= py <= d.box[3]
        ]
        if inside:
            return min(inside, key=lambda d: d.size)
    else:
        best = max(detections, key=lambda d: _iou(d.box, hint.box))
        if _iou(best.box, hint.box) > 0.1:
            return best
    boxes = ", ".join(
        f"({d.box[0]:.0f}, {d.box[1]:.0f})-({d.box[2]:.0f}, {d.box[3]:.0f})" for d in detections
    )
    raise DubplateError(f"frame {number}: no face at {hint.describe()} (faces: {boxes})")


def _follow(last: Detection, detections: list[Detection]) -> Detection | None:
    if not detections:
        return None
    best = max(detections, key=lambda d: _iou(d.box, last.box))
    if _iou(best.box, last.box) >= 0.3:
        return best
    # A fast move can break the overlap: accept a face of similar size close to the last one.
    near = min(detections, key=lambda d: np.hypot(*np.subtract(d.centre, last.centre)))
    distance = np.hypot(*np.subtract(near.centre, last.centre))
    if distance < 0.5 * last.size and 2 / 3 < near.size / last.size < 1.5:
        return near
    return None


def _tile_starts(length: int, side: int) -> list[int]:
    """Starts of tiles overlapping by half, the last one flush with the far edge."""
    starts = list(range(0, max(length - side, 0) + 1, max(side // 2, 1)))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def _without_duplicates(detections: list[Detection]) -> list[Detection]:
    """One detection per face: the best-scoring of those that mostly cover each other (a face
    seen whole and again, perhaps cut, in overlapping tiles)."""
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        if all(_overlap_of_smaller(detection.box, k.box) < 0.5 for k in kept):
            kept.append(detection)
    return kept


def _overlap_of_smaller(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


MAX_CANDIDATES = 8  # faces meshed, largest first, when looking for a lost target
# A shot cut, by the mean change of a frame's 32x32 HSV thumbnail from the one before (0-255):
# the shared clips' frames change by at most 15 within a shot, and at least 53 from one clip to
# another (the same woman in two crops included). PySceneDetect measures the same, but its
# package needs the non-contrib OpenCV, a second cv2 beside mediapipe's.
CUT_CHANGE = 30.0
THUMBNAIL_PX = 32


def thumbnail(plate: Plate, pixels: np.ndarray) -> np.ndarray:
    """(32, 32, 3) uint8 HSV of the whole frame, from a strided sample (a 4K frame is not
    converted whole for it)."""
    step = max(1, min(pixels.shape[:2]) // (2 * THUMBNAIL_PX))
    rgb = plate.analysis_view(pixels[::step, ::step], None, (THUMBNAIL_PX, THUMBNAIL_PX))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)


def picture_cuts(thumbnails: np.ndarray) -> list[int]:
    """Rows whose frame's picture changes from the row before's as a cut does."""
    change = np.abs(np.diff(thumbnails.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    return [int(i) + 1 for i in np.flatnonzero(change > CUT_CHANGE)]


class FaceTracker:
    """Landmarks of one chosen face per frame, at the plate's full resolution."""

    def __init__(self, settings: TrackSettings = DEFAULT_SETTINGS):
        self.settings = settings
        self.detector = FaceDetector(settings.min_score)
        self.mesh = FaceMesh(settings.min_score)

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *_: object) -> None:
        self.detector.close()
        self.mesh.close()

    def find_all(self, plate: Plate, pixels: np.ndarray) -> list[Detection]:
        """Every face: on the whole frame; on the frame inside a black border, because a face
        that fills the frame (an extreme close-up) is past the detector's reach, or found as a
        smaller false one; and on overlapping half-frame tiles when the frame is large, because
        a small face shrinks below its reach on a whole-frame copy."""
        height, width = pixels.shape[:2]
        found = self._detect(plate, pixels, (0, 0, width, height))
        border_x, border_y = width // 4, height // 4
        found += self._detect(
            plate, pixels, (-border_x, -border_y, width + border_x, height + border_y)
        )
        if max(height, width) > 1.5 * self.settings.detect_long_side:
            side = min(height, width) // 2
            for y0 in _tile_starts(height, side):
                for x0 in _tile_starts(width, side):
                    found += self._detect(plate, pixels, (x0, y0, x0 + side, y0 + side))
        return _without_duplicates(found)

    def find_near(self, plate: Plate, pixels: np.ndarray, last: Detection) -> list[Detection]:
        """Faces in a window three times the target's size around where it was last seen (a
        target not there is looked for in the whole frame, by `Target`)."""
        cx, cy = last.centre
        half = 1.5 * last.size
        window = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
        return self._detect(plate, pixels, window)

    def _detect(
        self, plate: Plate, pixels: np.ndarray, window: tuple[int, int, int, int]
    ) -> list[Detection]:
        x0, y0, x1, y1 = window
        scale = min(1.0, self.settings.detect_long_side / max(x1 - x0, y1 - y0))
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        image = plate.analysis_view(pixels, window, size)
        return [d.shifted(x0, y0) for d in self.detector(image, size[0] / (x1 - x0))]

    def sighting(self, plate: Plate, pixels: np.ndarray, face: Detection) -> Sighting | None:
        """The mesh of a detected face, on a crop around it at the mesh's own resolution."""
        side = int(round(self.settings.crop_scale * face.size))
        cx, cy = face.centre
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        crop_px = self.settings.mesh_crop_px
        crop = plate.analysis_view(pixels, (x0, y0, x0 + side, y0 + side), (crop_px, crop_px))
        # The mesh is precise on an upright face only: a tilted head is turned upright first.
        turned = abs(face.roll) > self.settings.upright_over_deg
        if turned:
            upright = cv2.getRotationMatrix2D((crop_px / 2, crop_px / 2), face.roll, 1.0)
            crop = cv2.warpAffine(
                crop, upright, (crop_px, crop_px), borderMode=cv2.BORDER_REPLICATE
            )
        points = self.mesh(crop)
        if points is None:
            return None
        look = look_of(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), points)
        if turned:
            back = cv2.invertAffineTransform(upright)
            points[:, :2] = points[:, :2] @ back[:, :2].T + back[:, 2]
        points *= side / crop_px
        points[:, 0] += x0
        points[:, 1] += y0
        # The mesh must sit on the chosen face, not on a neighbour inside the crop.
        bx0, by0, bx1, by1 = face.box
        mx, my = np.median(points[:, :2], axis=0)
        if not (bx0 <= mx <= bx1 and by0 <= my <= by1):
            return None
        return Sighting(face, points, look)


def track_plate(
    plate: Plate,
    numbers: Sequence[int],
    target: TargetHint | None = None,
    settings: TrackSettings = DEFAULT_SETTINGS,
    known: Looks | None = None,
) -> FaceTrack:
    """Track the target face over the given frames of a plate (see `Plate.select`): the face
    `target` picks, else the one that looks like `known` (the actor's looks), else the largest."""
    numbers = list(numbers)
    count = len(numbers)
    start = 0
    if target is not None:
        frame = numbers[0] if target.frame is None else target.frame
        if frame not in numbers:
            raise DubplateError(f"--target-frame {frame}: not among the frames being tracked")
        target, start = replace(target, frame=frame), numbers.index(frame)
    twice = [n for n, times in Counter(numbers).items() if times > 1]
    if twice:
        raise DubplateError(f"{plate.info.source}: frames asked for twice: {twice}")
    chosen = Target(target, settings.unlike, known)
    with FaceTracker(settings) as tracker:
        passes = _Passes(plate, numbers, chosen, tracker)
        passes.follow(numbers[start:])
        fallback = chosen.pick_fallback() if chosen.anchor is None else None
        if fallback is not None:
            # Each frame waited through was searched whole and its faces meshed: the price of
            # a plate where no face looks like the actor (refused by `dub`'s identity check).
            log.warning(
                "track: no face looks like the actor's on any frame: the largest on frame %d"
                " taken, and the frames after it tracked again",
                fallback[0],
            )
            row = passes.row_of[fallback[0]]
            passes.record(row, fallback[1])
            passes.follow(numbers[row + 1 :])
        # Then from the pick backwards, so the target is followed from where it was picked.
        if chosen.anchor is not None:
            chosen.restart_from_anchor()
            passes.follow(numbers[: passes.row_of[chosen.anchor_frame]][::-1], backwards=True)
    found = ~np.isnan(passes.raw[:, 0, 0])
    if not found.any():
        raise DubplateError(f"{plate.info.source}: no face found in any of the {count} frame(s)")
    times = np.array([float(plate.time_of(n)) for n in numbers])
    _log_gaps(numbers, found, chosen)
    breaks = passes.breaks | set(picture_cuts(passes.thumbnails))
    # A cut between two found frames (the picture's, or the target jumping): nothing smooths
    # over it.
    cuts = sorted(int(numbers[i]) for i in breaks if 0 < i < count and found[i - 1] and found[i])
    if cuts:
        log.info("track: cuts at frames %s: smoothed on each side apart", fileseq.FrameSet(cuts))
    return FaceTrack(
        frames=np.asarray(numbers, np.int64),
        landmarks=smooth_track(passes.raw, found, times, settings.smoothing, breaks).astype(
            np.float32
        ),
        raw_landmarks=passes.raw,
        boxes=passes.boxes,
        confidence=passes.confidence,
        found=found,
        times=times,
        plate=plate.info.manifest(),
        settings={
            "tool": {"mediapipe": MEDIAPIPE_VERSION},
            "target": chosen.manifest(),
            "cuts": cuts,
            "smoothing": settings.smoothing.manifest(),
            "detection": settings.manifest(),
            "nonfinite_pixels": {str(n): c for n, c in sorted(plate.nonfinite.items())},
        },
        looks=passes.looks,
    )


class _Passes:
    """The rows a track's passes over the plate fill in: forward from the first frame tracked (a
    hint's), again from a fallback pick, and back from the pick."""

    def __init__(self, plate: Plate, numbers: Sequence[int], chosen: Target, tracker: FaceTracker):
        self.plate, self.chosen, self.tracker = plate, chosen, tracker
        self.row_of = {n: i for i, n in enumerate(numbers)}
        count = len(numbers)
        self.raw = np.full((count, LANDMARK_COUNT, 3), np.nan, np.float32)
        self.boxes = np.full((count, 4), np.nan, np.float32)
        self.confidence = np.zeros(count, np.float32)
        self.looks = np.full((count, MESH_VERTEX_COUNT), np.nan, np.float32)
        self.thumbnails = np.zeros((count, THUMBNAIL_PX, THUMBNAIL_PX, 3), np.uint8)
        self.breaks: set[int] = set()  # rows that begin a smoothing run: the target found anew
        self.visited = np.zeros(count, bool)
        self.progress = Progress("track", count)

    def follow(self, order: Sequence[int], backwards: bool = False) -> None:
        rows = [self.row_of[n] for n in order]
        self.progress.extend(int(self.visited[rows].sum()))  # frames passed over again
        self.visited[rows] = True
        for number, pixels in self.plate.frames(order):
            i = self.row_of[number]
            self.thumbnails[i] = thumbnail(self.plate, pixels)
            sighting = self.chosen.find(_Frame(int(number), pixels, self.plate, self.tracker))
            if sighting is not None:
                self.record(i, sighting)
                if self.chosen.found_again and self.chosen.found_again[-1] == number:
                    self.breaks.add(i + 1 if backwards else i)  # on the side just left
            self.progress.advance()

    def record(self, i: int, sighting: Sighting) -> None:
        self.raw[i], self.boxes[i] = sighting.points, sighting.face.box
        self.confidence[i], self.looks[i] = sighting.face.score, sighting.look


def _log_gaps(numbers: Sequence[int], found: np.ndarray, chosen: Target) -> None:
    refused = chosen.refused
    missing = [n for n, ok in zip(numbers, found, strict=True) if not ok]
    log.info("track: target face in %d/%d frames", int(found.sum()), len(numbers))
    if refused:
        log.warning(
            "track: the face where the target was does not look like it on frames %s (look"
            " distance %.2f-%.2f, over %.2f: another person, or the target's eyes covered):"
            " not taken for it",
            fileseq.FrameSet(sorted(refused)),
            min(refused.values()),
            max(refused.values()),
            chosen.unlike,
        )
    if missing:
        log.warning(
            "track: no target face on frames %s (flagged, not filled)", fileseq.FrameSet(missing)
        )
