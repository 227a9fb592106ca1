"""The actor's morphable face: alignment, geometry, identity, lighting, storage."""

import json

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dubplate.core.a2e.expression import mouth_opening_of
from dubplate.core.a2e.store import mouth_prior
from dubplate.core.audio.phones import VISEMES
from dubplate.core.errors import DubplateError
from dubplate.core.morph.actor import Actor, build_actor
from dubplate.core.morph.align import fit_similarity
from dubplate.core.morph.appearance import (
    FaceCrops,
    crop_regions,
    renderer_for,
    solve_light,
    to_screen,
)
from dubplate.core.morph.fit import build_geometry, fit_frames, lip_error_px, reprojection_px
from dubplate.core.track import track_plate
from dubplate.core.track.landmarks import INNER_LIP_LOOP, mouth_opening, mouth_width
from tests.fixtures import ArrayPlate, footage_frames

FRAMES = 30


def tracked(name, count=FRAMES, start=0):
    plate = ArrayPlate(footage_frames(name, count, start), name=name)
    return plate, track_plate(plate, range(count))


@pytest.fixture(scope="module")
def woman_b(shared_data):
    return tracked("woman_flag_b_8s.mp4")


@pytest.fixture(scope="module")
def woman_actor(woman_b):
    return build_actor("woman", [woman_b], lower_k=8, upper_k=4, texture_px=64)


def test_similarity_recovers_a_known_pose():
    rng = np.random.default_rng(0)
    model = rng.normal(size=(40, 3))
    rotation = Rotation.from_euler("xyz", [5, -20, 8], degrees=True).as_matrix()
    observed = 3.5 * model @ rotation.T + [100, 50, 7]
    pose = fit_similarity(model, observed)
    assert pose.scale == pytest.approx(3.5)
    np.testing.assert_allclose(pose.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(pose.apply(model), observed, atol=1e-9)


def test_model_reprojects_onto_the_track(woman_b):
    _, track = woman_b
    shapes = track.landmarks[track.found]
    model = build_geometry([shapes], 8, 4)
    fit = fit_frames(model, shapes, track.frames)
    errors = reprojection_px(model, fit, shapes)
    assert errors.mean() < 1.0 and lip_error_px(errors) < 0.8
    # The lower-face basis moves only the lower face, and the lips are in it.
    moved = np.abs(model.lower_basis).sum(axis=(0, 2)) > 0
    assert set(np.flatnonzero(moved)) == set(model.lower_vertices)
    assert {13, 14, 61, 291} <= set(model.lower_vertices) and 10 not in model.lower_vertices


def test_too_few_frames_and_too_large_a_basis(woman_b):
    _, track = woman_b
    with pytest.raises(DubplateError, match="10 frame.* needs at least 25"):
        build_geometry([track.landmarks[:10]], 4, 2)
    with pytest.raises(DubplateError, match="--lower-basis 40: must be between 1 and 29"):
        build_geometry([track.landmarks], 40, 4)


def test_footage_of_another_person_is_refused(woman_b, shared_data):
    _, other = tracked("man_map_5s.mp4")
    with pytest.raises(DubplateError, match=r"footage 2: identity distance \d+\.\d+ px"):
        build_geometry([woman_b[1].landmarks, other.landmarks], 4, 2)
    _, same_person = tracked("woman_flag_a_5s.mp4")
    model = build_geometry([woman_b[1].landmarks, same_person.landmarks], 4, 2)
    assert model.lower_basis.shape == (4, 468, 3)


def test_light_is_recovered_from_a_render(woman_actor):
    """Render the model under a known SH light; the light solved from the render shades the
    face the same way."""
    model, fit = woman_actor.model, woman_actor.fits[0]
    renderer = renderer_for(model)
    posed = fit.posed(model)[:2]
    screen = torch.from_numpy(to_screen(posed, crop_regions(posed), 128).astype(np.float32))
    texture = torch.full((3, 64, 64), 0.5)
    light = torch.zeros(2, 9, 3)
    light[:, 0] = torch.tensor([0.9, 0.8, 0.7])
    light[:, 2] = -0.3  # brighter where the normal points to the camera
    light[:, 3] = 0.15
    rendered = renderer.render(screen, texture[None], light, (128, 128))
    crops = FaceCrops(pixels=rendered.rgb, screen=screen, regions=np.zeros((2, 4)))
    solved = solve_light(renderer, crops, texture)
    # Seen from one side, the 9 terms are not all separable; the shading they give is.
    again = renderer.render(screen, texture[None], solved, (128, 128))
    mesh = rendered.face_mask & (rendered.fragments.face < len(renderer.mesh_faces))
    error = (again.rgb - rendered.rgb).abs()[mesh]
    assert error.max() < 0.02 and error.mean() < 0.003
    flat = (rendered.rgb[mesh] - rendered.rgb[mesh].mean(dim=0)).abs().mean()
    assert flat > 10 * error.mean()  # the light really shades: a flat fit would be far off


def test_render_masks_and_mouth_cavity(woman_actor):
    model, fit = woman_actor.model, woman_actor.fits[0]
    posed = fit.posed(model)[:1]
    screen = torch.from_numpy(to_screen(posed, crop_regions(posed), 128).astype(np.float32))
    texture = torch.from_numpy(model.texture).permute(2, 0, 1)[None]
    out = renderer_for(model).render(screen, texture, torch.from_numpy(fit.light[:1]), (128, 128))
    assert out.lower_mask.any() and not (out.lower_mask & ~out.face_mask).any()
    assert out.face_mask.sum() > 2 * out.lower_mask.sum() > 0
    cavity = out.fragments.face >= len(renderer_for(model).mesh_faces)
    assert (out.rgb[cavity] < 0.05).all()


def test_mouth_cavity_covers_the_opening_between_the_lips_and_nothing_else(woman_actor):
    model, fit = woman_actor.model, woman_actor.fits[0]
    posed = fit.posed(model)[:1]
    screen = torch.from_numpy(to_screen(posed, crop_regions(posed), 256).astype(np.float32))
    renderer = renderer_for(model)
    loop = list(INNER_LIP_LOOP)
    top, bottom = loop[1 : len(loop) // 2], loop[: len(loop) // 2 : -1]
    # A slit that follows the curve of the upper lip: a fan from one corner spills out of it.
    slit = screen.clone()
    slit[:, bottom, :2] = slit[:, top, :2] + torch.tensor([0.0, 4.0])
    cavity = (renderer.rasterize(slit, (256, 256)).face[0] >= len(renderer.mesh_faces)).numpy()
    outline = slit[0, loop, :2].numpy()
    rows, columns = np.nonzero(cavity)
    outside = [
        cv2.pointPolygonTest(outline, (float(x) + 0.5, float(y) + 0.5), True)
        for y, x in zip(rows, columns, strict=True)
    ]
    assert len(outside) > 0.8 * cv2.contourArea(outline)
    assert min(outside) > -0.5  # every cavity pixel's centre is inside the opening


def test_actor_figures_and_round_trip(woman_actor, tmp_path):
    figures = woman_actor.figures
    assert figures["reprojection_px"] < 1.0 and figures["mouth_reprojection_px"] < 0.8
    assert figures["photometric_error"] < figures["photometric_error_flat"]
    assert woman_actor.fits[0].light.shape == (FRAMES, 9, 3)
    path = woman_actor.save(tmp_path / "woman")
    loaded = Actor.load(path)
    np.testing.assert_array_equal(loaded.model.lower_basis, woman_actor.model.lower_basis)
    np.testing.assert_allclose(loaded.model.texture, woman_actor.model.texture, rtol=1e-3)  # half
    np.testing.assert_array_equal(loaded.fits[0].lower, woman_actor.fits[0].lower)
    np.testing.assert_array_equal(loaded.fits[0].runs, np.zeros(FRAMES))  # one run: no cut
    with pytest.raises(DubplateError, match="already exists"):
        woman_actor.save(path)
    # An actor built before runs were kept loads as one run.
    with np.load(path / "fit_0.npz") as arrays:
        kept = {name: arrays[name] for name in arrays.files if name != "runs"}
    np.savez(path / "fit_0.npz", **kept)
    assert Actor.load(path).fits[0].runs is None


def test_damaged_actor_directories(woman_actor, tmp_path):
    path = woman_actor.save(tmp_path / "woman")
    manifest = json.loads((path / "actor.json").read_text())
    manifest["format_version"] = 99
    (path / "actor.json").write_text(json.dumps(manifest))
    with pytest.raises(DubplateError, match="actor format 99, this dubplate reads 1"):
        Actor.load(path)
    manifest["format_version"] = 1
    (path / "actor.json").write_text(json.dumps(manifest))
    (path / "fit_0.npz").unlink()
    with pytest.raises(DubplateError, match=r"fit_0\.npz: missing or damaged"):
        Actor.load(path)


def test_phonetic_mouths_span_the_actors_own_opening(woman_actor):
    """Open vowels open the mouth to the actor's 95th-percentile inner-lip gap, bilabials shut
    it to the 5th, and the rest lie between in phonetic order."""
    model = woman_actor.model
    fit = woman_actor.fits[0]
    upper = np.zeros((len(VISEMES), len(model.upper_basis)), np.float32)
    mouths = mouth_prior(model, woman_actor.fits).visemes.astype(np.float32)
    gap = dict(zip(VISEMES, mouth_opening(model.shape(mouths, upper)), strict=True))
    footage = mouth_opening(model.shape(fit.lower, fit.upper))
    shut, wide = np.percentile(footage, [5, 95])
    assert (wide - shut) * model.face_box_scale > 7  # px: the footage speaks, a real range
    assert gap["open_vowel"] == pytest.approx(wide, abs=0.1 * (wide - shut))
    assert gap["bilabial"] == pytest.approx(shut, abs=0.1 * (wide - shut))
    order = ["bilabial", "silence", "alveolar", "close_vowel", "mid_vowel", "open_vowel"]
    assert [gap[v] for v in order] == sorted(gap[v] for v in order)
    # Rounded vowels narrow the mouth, /iy/ draws its corners apart, by about half the actor's
    # range of width either side of the consonants' (which neither round nor spread it).
    width = dict(zip(VISEMES, mouth_width(model.shape(mouths, upper)), strict=True))
    narrow, broad = np.percentile(mouth_width(model.shape(fit.lower, fit.upper)), [5, 95])
    half = (broad - narrow) / 2
    assert width["alveolar"] - width["rounded"] == pytest.approx(half, rel=0.3)
    assert width["close_vowel"] - width["alveolar"] == pytest.approx(half / 2, rel=0.3)


def test_an_expression_kept_from_the_plate_leaves_the_lips_as_open_as_they_were(woman_actor):
    """Any change of the lower face, its opening taken out, moves the lips but not the gap
    between them: the dub alone decides how open the mouth is."""
    model, fit = woman_actor.model, woman_actor.fits[0]
    opening = mouth_opening_of(model, woman_actor.fits)
    rng = np.random.default_rng(0)
    change = rng.normal(size=fit.lower.shape) * fit.lower.std(axis=0)
    kept = opening.without_opening(change)

    def gap_px(lower):
        return mouth_opening(model.shape(lower, fit.upper)) * model.face_box_scale

    def lips_moved_px(lower):
        shapes = model.shape(lower, fit.upper) - model.shape(fit.lower, fit.upper)
        return np.linalg.norm(shapes[:, INNER_LIP_LOOP, :2], axis=-1).mean() * model.face_box_scale

    is_open = gap_px(fit.lower) > 3
    assert is_open.sum() > 5
    before = gap_px(fit.lower)[is_open]
    assert np.abs(gap_px(fit.lower + change)[is_open] - before).mean() > 2
    assert np.abs(gap_px(fit.lower + kept)[is_open] - before).max() < 0.2
    assert lips_moved_px(fit.lower + kept).mean() > 2
