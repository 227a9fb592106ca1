"""Colour conversion through OCIO: names, aliases, round trips, $OCIO."""

import numpy as np
import pytest

from dubplate.core.colour import BUILTIN_CONFIG, WITHIN_WHITE, ColourConfig, Highlights
from dubplate.core.errors import DubplateError


@pytest.fixture(scope="module")
def colour():
    return ColourConfig(BUILTIN_CONFIG)


def test_names_and_aliases_resolve(colour):
    assert colour.resolve("acescg") == "ACEScg"
    assert colour.resolve("lin_rec709") == "Linear Rec.709 (sRGB)"
    assert colour.resolve("ARRI LogC4") == "ARRI LogC4"
    assert colour.working_space == "sRGB Encoded Rec.709 (sRGB)"


def test_unknown_name_is_an_error_with_suggestions(colour):
    with pytest.raises(DubplateError, match="unknown colourspace 'LogC4'.*'ARRI LogC4'"):
        colour.resolve("LogC4")


def test_round_trip_through_working_space(colour):
    linear = np.random.default_rng(1).uniform(0.0, 0.9, (16, 16, 3)).astype(np.float32)
    working = colour.convert(linear, "ACEScg", colour.working_space)
    back = colour.convert(working, colour.working_space, "ACEScg")
    np.testing.assert_allclose(back, linear, atol=1e-4)  # OCIO CPU ops are float-approximate


def test_mid_grey_and_alpha(colour):
    grey = np.array([[[0.18, 0.18, 0.18, 0.5]]], np.float32)
    out = colour.convert(grey, "ACEScg", colour.working_space)
    np.testing.assert_allclose(out[0, 0, :3], 0.4613, atol=1e-3)  # sRGB encoding of 0.18
    assert out[0, 0, 3] == 0.5


def test_ocio_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")
    assert ColourConfig().source == "ocio://cg-config-latest"


def test_unloadable_config(tmp_path):
    with pytest.raises(DubplateError, match="missing.ocio: cannot load"):
        ColourConfig(str(tmp_path / "missing.ocio"))


def test_through_working_changes_only_what_the_working_space_cannot_hold(colour):
    rng = np.random.default_rng(2)
    skin = rng.uniform(0.05, 0.8, (8, 8, 1)) * (1 + rng.uniform(-0.1, 0.1, (8, 8, 3)))
    linear = skin.astype(np.float32)
    linear[0, 0] = 4.0  # a highlight two stops over the working space's white
    linear[0, 1] = (0.5, 0.02, 0.0)  # an ACEScg red outside Rec.709's gamut
    linear[0, 2] = (3.0, 1.2, 0.6)  # skin a stop and more over white, red the brightest
    shown = colour.through_working(linear, "ACEScg")
    np.testing.assert_array_equal(shown[1:], linear[1:])  # held: untouched, bit for bit
    np.testing.assert_array_equal(shown[0, 3:], linear[0, 3:])
    np.testing.assert_allclose(shown[0, 0], 1.0, atol=1e-3)  # grey stays grey, at white
    back = colour.convert(shown[:1, :3], "ACEScg", colour.working_space)
    assert back.min() > -1e-4 and back.max() < 1 + 1e-4
    # The bright skin keeps its hue, only darker: clipped channel by channel it went grey-cyan.
    np.testing.assert_allclose(shown[0, 2] / shown[0, 2, 0], linear[0, 2] / 3.0, atol=1e-3)
    assert shown[0, 2, 0] < 3.0
    # The red outside the gamut keeps its luminance and stays red, less saturated.
    rec709 = colour.convert(shown[:1, 1:2], "ACEScg", "Linear Rec.709 (sRGB)")[0, 0]
    source = colour.convert(linear[:1, 1:2], "ACEScg", "Linear Rec.709 (sRGB)")[0, 0]
    luminance = np.array([0.2126, 0.7152, 0.0722], np.float32)
    np.testing.assert_allclose(rec709 @ luminance, source @ luminance, rtol=1e-3)
    assert rec709.min() >= -1e-5 and rec709[0] > 2 * max(rec709[1], rec709[2])
    held = np.ascontiguousarray(linear[1:])
    assert colour.through_working(held, "ACEScg") is held  # all held: no copy to compare


def test_working_uint8_keeps_the_hue_of_values_over_white(colour):
    skin = np.array([[[3.0, 1.2, 0.6], [0.3, 0.12, 0.06]]], np.float32)  # ACEScg, 10x apart
    bright, dim = colour.to_working_uint8(skin, "ACEScg")[0].astype(np.float32) / 255
    assert bright.max() == 1.0 and dim.max() < 1.0
    linear = colour.convert(np.stack([bright, dim])[None], colour.working_space, "ACEScg")[0]
    np.testing.assert_allclose(linear[0] / linear[0, 0], linear[1] / linear[1, 0], atol=0.02)


def test_highlights_roll_off_only_what_is_over_the_knee_and_unroll_back():
    highlights = Highlights(peak=6.0)
    rng = np.random.default_rng(3)
    hue = rng.uniform(0.2, 1.0, (500, 3)).astype(np.float32)
    brightest = rng.uniform(0.0, 6.0, (500, 1)).astype(np.float32)
    linear = hue / hue.max(axis=1, keepdims=True) * brightest
    rolled = highlights.roll(linear)
    under = linear.max(axis=1) <= highlights.knee
    np.testing.assert_array_equal(rolled[under], linear[under])  # to the bit
    np.testing.assert_allclose(
        rolled / rolled.max(axis=1, keepdims=True), hue / hue.max(axis=1, keepdims=True), rtol=1e-5
    )
    order = np.argsort(linear.max(axis=1))
    assert (np.diff(rolled.max(axis=1)[order]) >= 0).all() and rolled.max() <= 1.0
    np.testing.assert_allclose(highlights.unroll(rolled), linear, rtol=1e-4, atol=1e-6)
    peak = highlights.roll(np.array([[6.0, 3.0, 1.5]], np.float32))
    np.testing.assert_allclose(peak, [[1.0, 0.5, 0.25]], rtol=1e-5)
    # What is drawn at white, or past it, is the peak.
    np.testing.assert_allclose(
        highlights.unroll(np.array([[1.0, 1.0, 1.0], [1.2, 0.0, 0.0]])),
        [[6.0] * 3, [6.0, 0, 0]],
        rtol=1e-5,
    )
    assert WITHIN_WHITE.roll(linear) is linear and WITHIN_WHITE.unroll(linear) is linear
    with pytest.raises(DubplateError, match="peak 0.5"):
        Highlights(peak=0.5)


def test_through_working_with_headroom_holds_what_is_under_the_peak(colour):
    linear = np.array([[[3.0, 1.2, 0.6], [0.3, 0.1, 0.05], [8.0, 4.0, 2.0]]], np.float32)
    rec709 = colour.convert(linear, "ACEScg", "Linear Rec.709 (sRGB)")
    peak = float(rec709[0, 0].max()) * 1.01
    shown = colour.through_working(linear, "ACEScg", peak)
    np.testing.assert_array_equal(shown[0, :2], linear[0, :2])
    # Past the peak, the hue is kept at the peak's brightness.
    past = colour.convert(shown[:, 2:], "ACEScg", "Linear Rec.709 (sRGB)")[0, 0]
    np.testing.assert_allclose(past.max(), peak, rtol=1e-3)
    np.testing.assert_allclose(past / past.max(), rec709[0, 2] / rec709[0, 2].max(), atol=1e-3)
    held = np.ascontiguousarray(linear[:, :2])
    assert colour.through_working(held, "ACEScg", peak) is held
    # A bright colour outside Rec.709 is held as the renderer's view gives it back.
    wide = np.array([[[1.2, 0.6, -0.15]]], np.float32)
    highlights = Highlights(peak=1.75)
    acescg = colour.convert(wide, "Linear Rec.709 (sRGB)", "ACEScg")
    shown = colour.through_working(acescg, "ACEScg", highlights.peak)
    back = colour.convert(shown, "ACEScg", "Linear Rec.709 (sRGB)")
    np.testing.assert_allclose(back, highlights.unroll(highlights.roll(wide)), atol=2e-3)
