"""Colour conversion through OCIO: names, aliases, round trips, $OCIO."""

import numpy as np
import pytest

from dubplate.core.colour import BUILTIN_CONFIG, ColourConfig
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


def test_through_working_clips_only_what_the_working_space_cannot_hold(colour):
    rng = np.random.default_rng(2)
    skin = rng.uniform(0.05, 0.8, (8, 8, 1)) * (1 + rng.uniform(-0.1, 0.1, (8, 8, 3)))
    linear = skin.astype(np.float32)
    linear[0, 0] = 4.0  # a highlight two stops over the working space's white
    linear[0, 1] = (0.5, 0.02, 0.0)  # an ACEScg red outside Rec.709's gamut
    shown = colour.through_working(linear, "ACEScg")
    np.testing.assert_array_equal(shown[1:], linear[1:])  # held: untouched, bit for bit
    np.testing.assert_allclose(shown[0, 0], 1.0, atol=1e-3)  # grey stays grey, at white
    back = colour.convert(shown[:1, :2], "ACEScg", colour.working_space)
    assert back.min() > -1e-4 and back.max() < 1 + 1e-4
    assert not np.allclose(shown[0, 1], linear[0, 1], atol=1e-3)
    held = np.ascontiguousarray(linear[1:])
    assert colour.through_working(held, "ACEScg") is held  # all held: no copy to compare
