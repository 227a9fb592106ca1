"""The schemas every stage's manifest is checked against when written and read."""

import jsonschema
import pytest

from dubplate.core import manifest
from dubplate.core.errors import DubplateError

STAGES = (
    "a2e", "actor", "cover", "dub", "face_track", "occlusion", "plate", "plate_check", "renderer",
)  # fmt: skip


def test_every_stage_has_a_schema_that_is_itself_valid():
    """Each shipped schema parses as JSON and is a valid JSON Schema (2020-12): an edit that
    breaks one would otherwise surface only when that stage's manifest is next read."""
    schemas = manifest._schemas()
    assert set(STAGES) <= set(schemas)
    for body in schemas.values():
        jsonschema.Draft202012Validator.check_schema(body)


def test_a_manifest_against_its_schema_is_refused_naming_the_file_and_field():
    body = {
        **manifest.manifest_header("cover", 1),
        "weights": "cover.pt",
        "network": {"width": 24, "crop_px": 256},
        "training": {
            "steps": 1500,
            "frames": 100,
            "clean_flagged": 0.0,
            "fresh_covers_caught": 0.67,
            "seconds": 86.6,
            "seed": 0,
        },
    }
    manifest.validate("cover", body, "actors/x/cover.json")
    body["network"]["crop_px"] = "256"
    with pytest.raises(
        DubplateError, match=r"actors/x/cover\.json: invalid cover manifest at network/crop_px"
    ):
        manifest.validate("cover", body, "actors/x/cover.json")
