"""The cover network on made-up faces: learnt from clean crops only, it tells a finger of the
face's own skin across the lips and a dark microphone head from the mouth, and takes no clean
frame it has not seen for covered; the covers it learns from hide the share of the mouth they
say."""

import cv2
import numpy as np
import pytest

from dubplate.core.errors import DubplateError
from dubplate.core.neural.cover import (
    COVERED_SHARE,
    INPUT_PX,
    CoverSettings,
    cut_view,
    random_cover,
    train_cover_net,
    view_of_mouths,
)

SIZE = 96
SKIN = np.array([0.78, 0.58, 0.48])
LIPS = np.array([0.62, 0.22, 0.26])
MOUTH_CENTRE = (48, 64)
MOUTH_AXES = (15, 7)


def face(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A made-up face crop (float 0-1) and its mouth mask: skin with a little texture and
    light, lips moved a pixel or two, opening a varying amount on a dark mouth."""
    texture = cv2.GaussianBlur(rng.normal(0, 0.04, (SIZE, SIZE)).astype(np.float32), (0, 0), 2)
    light = np.linspace(0.9, 1.1, SIZE)[None, :, None] * rng.uniform(0.9, 1.1)
    crop = np.clip((SKIN + texture[..., None]) * light, 0, 1).astype(np.float32)
    centre = tuple(int(c + rng.integers(-2, 3)) for c in MOUTH_CENTRE)
    mouth = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(mouth, centre, MOUTH_AXES, 0, 0, 360, 1, -1)
    crop[mouth > 0] = LIPS
    opening = int(rng.integers(0, 5))
    if opening:
        cv2.ellipse(crop, centre, (MOUTH_AXES[0] - 4, opening), 0, 0, 360, (0.1, 0.05, 0.05), -1)
    return crop, mouth.astype(bool)


def finger(crop: np.ndarray) -> np.ndarray:
    """An upright strip of the face's own skin (its forehead: the crop's top rows) across the
    lips."""
    covered = crop.copy()
    strip = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(strip, MOUTH_CENTRE, (4, 20), 10, 0, 360, 1, -1)
    forehead = np.roll(crop, 40, axis=0)
    covered[strip > 0] = forehead[strip > 0]
    return covered


def microphone(crop: np.ndarray) -> np.ndarray:
    covered = crop.copy()
    cv2.ellipse(covered, MOUTH_CENTRE, (12, 9), 0, 0, 360, (0.12, 0.12, 0.14), -1)
    return covered


def faces(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops, mouths = zip(*(face(rng) for _ in range(count)), strict=True)
    return np.stack(crops), np.stack(mouths)


@pytest.fixture(scope="module")
def network():
    crops, mouths = faces(40, seed=1)
    uint8 = np.round(crops * 255).astype(np.uint8)
    return train_cover_net(uint8, mouths, CoverSettings(steps=300))


def test_a_finger_or_a_microphone_over_the_lips_is_told_from_the_mouth(network):
    net, report = network
    unseen, _ = faces(20, seed=2)
    assert not net.covered(unseen).any()
    assert net.covered(np.stack([finger(c) for c in unseen])).all()
    assert net.covered(np.stack([microphone(c) for c in unseen])).all()
    # Its own check, on fresh covers of the crops it learnt from, some of them small, thin or
    # of a colour like what they cover.
    assert report["fresh_covers_caught"] >= 0.6 and report["clean_flagged"] <= 0.05
    assert report["frames"] == 40 and report["steps"] == 300


def test_the_view_is_centred_on_the_mouth_and_mirrors_past_the_crop():
    _, mouths = faces(10, seed=3)
    left, top, side = view_of_mouths(mouths) * SIZE
    centre = (left + side / 2, top + side / 2)
    assert np.abs(np.subtract(centre, MOUTH_CENTRE)).max() <= 1
    assert side == pytest.approx(2.2 * (2 * MOUTH_AXES[0] + 1), abs=2.5)
    ramp = np.tile(np.arange(SIZE, dtype=np.float32), (SIZE, 1))
    edge = cut_view(ramp, np.array([SIZE - 16, 0, 32]), 32, cv2.INTER_NEAREST)
    assert np.array_equal(edge[0, :16], ramp[0, -16:]) and np.array_equal(
        edge[0, 16:], ramp[0, ::-1][:16]
    )


def test_a_cover_hides_the_share_of_the_mouth_it_says():
    """On a white crop with a black pool to fill from: a pixel a cover turns more than half way
    to its fill is one it hides, so the share of the mouth so changed is at most the share the
    cover says, and that share itself where the fill is black; a thin strip blurred to less
    than half is not said to hide anything."""
    rng = np.random.default_rng(4)
    px = round(1.5 * INPUT_PX)
    margin = (px - INPUT_PX) / 2
    view = np.array([margin, margin, INPUT_PX])
    white = np.ones((px, px, 3), np.float32)
    pool = np.zeros((4, px, px, 3), np.uint8)
    mouth = np.zeros((px, px), bool)
    mouth[52:62, 32:64] = True
    shares, agreeing = [], 0
    for _ in range(80):
        covered, share = random_cover(white, mouth, view, pool, rng)
        hidden = ((1 - covered).max(axis=-1) > 0.5)[mouth].mean()
        assert hidden <= share + 1e-9
        agreeing += abs(hidden - share) <= 0.01
        shares.append(share)
    shares = np.array(shares)
    assert agreeing >= 20  # the black fills, and the darkest flat ones
    assert (shares >= COVERED_SHARE).mean() > 0.3 and (shares < 0.05).mean() > 0.1


def test_crops_without_a_mouth_are_refused():
    with pytest.raises(DubplateError, match="no crop shows a mouth"):
        view_of_mouths(np.zeros((3, 16, 16), bool))
