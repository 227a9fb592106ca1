"""Face tracking on real footage, composed into larger, multi-face and faceless frames."""

import cv2
import numpy as np
import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.media import open_plate
from dubplate.core.track import FaceTrack, TargetHint, track_plate
from dubplate.core.track.cache import cached_track
from dubplate.core.track.tracker import FaceTracker
from tests.fixtures import ArrayPlate, footage_frames, write_movie

FRAMES = 6


@pytest.fixture(scope="module")
def man(shared_data):
    return footage_frames("man_map_5s.mp4", FRAMES, start=40)


@pytest.fixture(scope="module")
def man_track(man):
    return track_plate(ArrayPlate(man), range(FRAMES))


def on_canvas(frames, size, placements):
    """Grey canvases with each frame list pasted at (x, y) with a scale."""
    width, height = size
    canvases = []
    for i in range(FRAMES):
        canvas = np.full((height, width, 3), 90, np.uint8)
        for source, (x, y, scale) in placements:
            image = cv2.resize(source[i], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
        canvases.append(canvas)
    return canvases


def test_every_frame_tracked_with_478_points(man_track):
    assert man_track.found.all()
    assert man_track.landmarks.shape == (FRAMES, 478, 3)
    assert (man_track.confidence > 0.5).all()
    # The mesh sits on the face the detector found.
    x0, y0, x1, y1 = np.nanmedian(man_track.boxes, axis=0)
    centre = np.median(man_track.landmarks[:, :468, :2], axis=(0, 1))
    assert x0 < centre[0] < x1 and y0 < centre[1] < y1


def test_small_face_in_a_large_frame_tracks_to_the_same_pixels(man, man_track):
    """Detect on tiles of a downscaled copy, mesh on a full-resolution crop: the face at 1/4
    scale (about 85 px) in a 2400x1800 frame, too small for a whole-frame detection, lands
    within half a pixel of the close-up's landmarks scaled down."""
    small = on_canvas([man], (2400, 1800), [(man, (1500, 900, 0.25))])
    track = track_plate(ArrayPlate(small), range(FRAMES))
    assert track.found.all()
    scaled_reference = man_track.raw_landmarks[:, :, :2] * 0.25 + (1500, 900)
    error_px = np.linalg.norm(track.raw_landmarks[:, :, :2] - scaled_reference, axis=-1)
    assert error_px.mean() < 0.5


def test_largest_face_is_the_default_and_a_point_picks_another(man):
    woman = footage_frames("woman_flag_a_5s.mp4", FRAMES, start=40)
    frames = on_canvas([man, woman], (1500, 800), [(man, (0, 0, 0.9)), (woman, (1000, 300, 0.7))])
    plate = ArrayPlate(frames)
    default = track_plate(plate, range(FRAMES))
    assert default.found.all() and default.settings["target"]["reason"].startswith("largest of 2")
    assert (np.nanmax(default.landmarks[..., 0], axis=1) < 800).all()
    picked = track_plate(plate, range(FRAMES), TargetHint(point=(1200, 500), frame=3))
    assert picked.found.all()
    assert (np.nanmin(picked.landmarks[..., 0], axis=1) > 1000).all()
    with pytest.raises(DubplateError, match=r"frame 2: no face at point \(10, 790\)"):
        track_plate(plate, range(FRAMES), TargetHint(point=(10, 790), frame=2))


def test_known_looks_pick_the_actor_among_faces_from_another_shot_of_them(
    man, tmp_path, monkeypatch
):
    """Looks kept from one shot of the woman (woman_flag_b) pick her face, the smaller, beside
    the man's in another shot (woman_flag_a); a third person's looks are near neither face, so
    the largest is taken and the reason says so. Where no face of the first frame can be meshed
    to compare, the pick waits for the next frame rather than take the largest unseen, and the
    first frame is tracked back from it."""
    woman = footage_frames("woman_flag_a_5s.mp4", FRAMES, start=40)
    frames = on_canvas([man, woman], (1500, 800), [(man, (0, 0, 0.9)), (woman, (1000, 300, 0.7))])
    plate = ArrayPlate(frames)
    shot = footage_frames("woman_flag_b_8s.mp4", FRAMES, start=0)
    hers = track_plate(ArrayPlate(shot), range(FRAMES))
    hers.save(tmp_path)
    known = FaceTrack.load(tmp_path).target_looks()
    assert known.digest() == hers.target_looks().digest() and len(known.samples) == FRAMES
    picked = track_plate(plate, range(FRAMES), known=known)
    assert picked.found.all()
    assert picked.settings["target"]["reason"].startswith(
        "nearest the actor's look of 2 face(s) meshed"
    )
    assert (np.nanmin(picked.landmarks[..., 0], axis=1) > 1000).all()
    stranger = footage_frames("man_office_6s.mp4", FRAMES, start=0)
    theirs = track_plate(ArrayPlate(stranger), range(FRAMES)).target_looks()
    largest = track_plate(plate, range(FRAMES), known=theirs)
    reason = largest.settings["target"]["reason"]
    assert reason.startswith("largest of 2 face(s), none within 0.16 of the actor's look"), reason
    assert largest.settings["target"]["frame"] == 0 and largest.found.all()
    assert (np.nanmax(largest.landmarks[..., 0], axis=1) < 800).all()
    sighting = FaceTracker.sighting
    calls = []

    def blind_at_first(self, *args):
        calls.append(1)
        return None if len(calls) <= 2 else sighting(self, *args)

    monkeypatch.setattr(FaceTracker, "sighting", blind_at_first)
    waited = track_plate(plate, range(FRAMES), known=known)
    assert waited.settings["target"]["frame"] == 1 and waited.found.all()
    assert (np.nanmin(waited.landmarks[..., 0], axis=1) > 1000).all()
    # Without looks to compare, the largest face waits for a frame where it meshes too.
    calls.clear()
    calls.append(1)
    largest_later = track_plate(plate, range(FRAMES))
    assert largest_later.settings["target"]["frame"] == 1 and largest_later.found.all()
    assert largest_later.settings["target"]["reason"] == "largest of 2 face(s)"
    # Looks near neither face fall back to the first frame where one meshed, tracked back.
    calls.clear()
    fallen_back = track_plate(plate, range(FRAMES), known=theirs)
    assert fallen_back.settings["target"]["frame"] == 1 and fallen_back.found.all()
    assert fallen_back.settings["target"]["reason"].startswith("largest of 2 face(s), none")
    assert (np.nanmax(fallen_back.landmarks[..., 0], axis=1) < 800).all()


def test_a_shot_opening_on_someone_else_alone_waits_for_the_actor(man):
    """Three frames of the man alone, then a cut to the woman beside him: her looks from another
    shot (woman_flag_b) pick her on the first frame she is in, not the man who opens the shot;
    the frames before the pick are tracked back from it and hold no one (he is not her)."""
    woman = footage_frames("woman_flag_a_5s.mp4", FRAMES, start=40)
    both = on_canvas([man, woman], (1500, 800), [(man, (0, 0, 0.9)), (woman, (1000, 300, 0.7))])
    alone = on_canvas([man], (1500, 800), [(man, (200, 0, 0.9))])
    plate = ArrayPlate(alone[:3] + both[3:])
    hers = track_plate(ArrayPlate(footage_frames("woman_flag_b_8s.mp4", FRAMES)), range(FRAMES))
    picked = track_plate(plate, range(FRAMES), known=hers.target_looks())
    target = picked.settings["target"]
    assert target["frame"] == 3 and target["faces"] == 2, target
    assert target["reason"].startswith("nearest the actor's look of 2 face(s) meshed")
    assert picked.found.tolist() == [False] * 3 + [True] * 3
    assert (np.nanmin(picked.landmarks[3:, :, 0], axis=1) > 1000).all()
    # Without her looks the man who opens the shot is the largest face, and is kept.
    opened = track_plate(plate, range(FRAMES))
    assert opened.settings["target"]["frame"] == 0
    assert (np.nanmax(opened.landmarks[opened.found][..., 0], axis=1) < 1000).all()


def test_a_track_made_without_looks_serves_looks_only_where_no_other_face_was_passed(
    man, tmp_path, monkeypatch, caplog
):
    """The actor's own footage, tracked before the actor had looks, is not tracked again for a
    dub with them: one face was all there was to pick, and it is the actor's. Someone else's
    looks would wait for a face like theirs, so they are tracked afresh; and so are looks where
    a second face stood on a frame the pick waited through (the larger one not meshed there):
    they might have picked that other face."""
    woman = footage_frames("woman_flag_a_5s.mp4", FRAMES, start=40)
    hers = track_plate(ArrayPlate(woman), range(FRAMES)).target_looks()
    his = track_plate(ArrayPlate(man), range(FRAMES)).target_looks()
    alone = on_canvas([man], (1000, 600), [(man, (0, 0, 0.6))])
    alone = open_plate(write_movie(tmp_path / "alone.mp4", alone))
    cached_track(alone, range(FRAMES), tmp_path / "alone")
    with caplog.at_level("INFO"):
        served = cached_track(alone, range(FRAMES), tmp_path / "alone", known=his)
    assert "like the actor's" in caplog.text and served.settings["target"]["faces"] == 1
    assert served.settings["target"]["reason"].startswith("nearest the actor's look of 1 face")
    assert len(list((tmp_path / "alone").iterdir())) == 1
    stranger = cached_track(alone, range(FRAMES), tmp_path / "alone", known=hers)
    assert "none within" in stranger.settings["target"]["reason"]
    assert len(list((tmp_path / "alone").iterdir())) == 2

    both = on_canvas([man, woman], (1500, 800), [(man, (0, 0, 0.9)), (woman, (1000, 300, 0.7))])
    frames = both[:1] + on_canvas([man], (1500, 800), [(man, (0, 0, 0.9))])[1:]
    plate = open_plate(write_movie(tmp_path / "both.mp4", frames))
    sighting = FaceTracker.sighting
    calls = []

    def man_unmeshed_at_first(self, plate, pixels, face):
        calls.append(1)
        return None if len(calls) == 1 else sighting(self, plate, pixels, face)

    monkeypatch.setattr(FaceTracker, "sighting", man_unmeshed_at_first)
    waited = cached_track(plate, range(FRAMES), tmp_path / "both")
    assert waited.settings["target"]["frame"] == 1 and waited.settings["target"]["faces"] == 2
    calls.clear()
    calls.append(1)  # the man meshes now: looks pick the woman on frame 0
    looked = cached_track(plate, range(FRAMES), tmp_path / "both", known=hers)
    assert looked.settings["target"]["frame"] == 0
    assert np.nanmin(looked.landmarks[0, :, 0]) > 1000
    assert len(list((tmp_path / "both").iterdir())) == 2


def side_by_side(frames, x):
    """Each 844-px frame at half size, `x` px from the left of an 844x422 grey canvas."""
    return [
        np.pad(cv2.resize(f, (422, 422)), ((0, 0), (x, 422 - x), (0, 0)), constant_values=90)
        for f in frames
    ]


def test_another_person_where_the_target_was_is_refused_and_the_target_found_again(man):
    """A cut from the man to the woman at the same place, then back to the man elsewhere: the
    woman's frames are gaps, not a track that jumps to her, and the man is found again by his
    look where overlap alone would not look."""
    woman = [cv2.resize(f, (844, 844)) for f in footage_frames("woman_flag_a_5s.mp4", 3, start=40)]
    frames = side_by_side(man[:3], 0) + side_by_side(woman, 0) + side_by_side(man[3:], 400)
    track = track_plate(ArrayPlate(frames), range(9))
    assert track.frames_without_face == [3, 4, 5]
    target = track.settings["target"]
    assert sorted(target["refused"]) == ["3", "4", "5"]
    assert min(target["refused"].values()) > target["unlike"]
    assert target["found_again"] == [6]
    assert (np.nanmin(track.landmarks[6:, :, 0], axis=1) > 400).all()


def test_a_cut_to_the_target_elsewhere_is_not_smoothed_across(man, tmp_path):
    """The man jumps 400 px between frames 2 and 3: each side is smoothed on its own, so the
    frames beside the cut stay on their own raw landmarks (1.5 px off when smoothed across).
    Picked on the last frame, the track runs back into the cut from the other side, and the
    run still begins on frame 3."""
    plate = ArrayPlate(side_by_side(man[:3], 0) + side_by_side(man[3:], 400))
    track = track_plate(plate, range(6))
    assert track.found.all() and track.settings["target"]["found_again"] == [3]
    assert track.cuts == [3] and track.found_spans() == [(0, 3), (3, 6)]
    track.save(tmp_path)
    assert FaceTrack.load(tmp_path).cuts == [3]  # for the crops and expression dub smooths
    beside_cut = track.landmarks[2:4, :, :2] - track.raw_landmarks[2:4, :, :2]
    assert np.abs(beside_cut).max() < 1.0
    point = tuple(float(v) for v in np.median(track.landmarks[5, :, :2], axis=0))
    back = track_plate(plate, range(6), TargetHint(point=point, frame=5))
    assert back.found.all() and back.settings["target"]["found_again"] == [2]
    assert back.cuts == [3]


def test_a_cut_to_the_target_in_the_same_place_is_found_by_the_picture(man):
    """The man stays where he was but the shot around him changes (another background): his
    box overlaps, so he is followed, and the picture's change marks the cut, which the
    smoothing does not cross."""
    frames = side_by_side(man, 0)
    for frame in frames[3:]:
        frame[:, 422:] = (20, 40, 160)
    track = track_plate(ArrayPlate(frames), range(6))
    assert track.found.all() and track.settings["target"]["found_again"] == []
    assert track.cuts == [3] and track.found_spans() == [(0, 3), (3, 6)]


def test_a_tilted_head_is_meshed_upright(man, man_track):
    """The frames turned 45 degrees: the mesh runs on a crop turned back upright by the
    detector's eye line, and lands 1.0 px (mean, on a 305-px face) from the upright track
    turned with them; meshed as it stands, 4.3 px."""
    turn = cv2.getRotationMatrix2D((422, 422), 45, 1.0)
    frames = [cv2.warpAffine(f, turn, (844, 844), borderValue=(90, 90, 90)) for f in man[:2]]
    track = track_plate(ArrayPlate(frames), range(2))
    truth = man_track.raw_landmarks[:2, :, :2] @ turn[:, :2].T + turn[:, 2]
    error_px = np.linalg.norm(track.raw_landmarks[:, :, :2] - truth, axis=-1)
    assert error_px.mean() < 2.0


def test_a_face_that_fills_the_frame_is_tracked(man, man_track):
    """An extreme close-up: the frames cut to the face's box and enlarged to 512 px. The
    detector finds it only inside a black border; the lips land within 2.5 px (1.4 measured, on
    a 512-px face) of the close-up's, cut and enlarged the same."""
    x0, y0, side = 217, 284, 340
    frames = [cv2.resize(f[y0 : y0 + side, x0 : x0 + side], (512, 512)) for f in man[:3]]
    track = track_plate(ArrayPlate(frames), range(3))
    assert track.found.all()
    truth = (man_track.raw_landmarks[:3, :, :2] - (x0, y0)) * 512 / side
    lips = [13, 14, 61, 291]
    error_px = np.linalg.norm(track.raw_landmarks[:, lips, :2] - truth[:, lips], axis=-1)
    assert error_px.mean() < 2.5


def test_frames_without_the_face_are_flagged_not_filled(man):
    frames = list(man)
    frames[0] = frames[2] = np.full_like(frames[2], 128)
    track = track_plate(ArrayPlate(frames), range(FRAMES))
    assert track.frames_without_face == [0, 2]
    assert track.cuts == [] and track.found_spans() == [(0, 1), (1, 4)]  # rows of found frames
    assert np.isnan(track.landmarks[2]).all() and track.confidence[2] == 0
    assert not np.isnan(track.landmarks[[1, 3, 4, 5]]).any()
    # The target was picked where a face was first found, and its box is that frame's.
    assert track.settings["target"]["frame"] == 1


def test_a_plate_without_any_face_is_an_error():
    ramp = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    with pytest.raises(DubplateError, match=r"empty: no face found in any of the 3 frame"):
        track_plate(ArrayPlate([ramp] * 3, name="empty"), range(3))


def test_track_saves_and_loads(man_track, tmp_path):
    man_track.save(tmp_path)
    loaded = FaceTrack.load(tmp_path)
    np.testing.assert_array_equal(loaded.landmarks, man_track.landmarks)
    np.testing.assert_array_equal(loaded.found, man_track.found)
    assert loaded.plate == man_track.plate
    (tmp_path / "track.npz").unlink()
    with pytest.raises(DubplateError, match="track.npz: missing or damaged"):
        FaceTrack.load(tmp_path)


def test_a_damaged_cached_track_is_tracked_again(man, tmp_path, caplog):
    plate = open_plate(write_movie(tmp_path / "man.mp4", man))
    first = cached_track(plate, range(FRAMES), tmp_path / "cache")
    (arrays,) = (tmp_path / "cache").rglob("track.npz")
    arrays.write_bytes(b"PK\x03\x04 cut short")
    again = cached_track(plate, range(FRAMES), tmp_path / "cache")
    assert f"{arrays}: missing or damaged" in caplog.text
    assert "the track is made again" in caplog.text
    np.testing.assert_array_equal(again.landmarks, first.landmarks)
    np.testing.assert_array_equal(FaceTrack.load(arrays.parent).landmarks, first.landmarks)
