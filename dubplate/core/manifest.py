"""JSON manifests that describe every stage result, validated against `dubplate/schemas`."""

from __future__ import annotations

import datetime
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import referencing

import dubplate
from dubplate.core.errors import DubplateError
from dubplate.core.files import atomic_path


def manifest_header(kind: str, version: int) -> dict[str, Any]:
    """What every manifest opens with: its kind and format, the tool that wrote it, and when."""
    return {
        "kind": kind,
        "format_version": version,
        "tool": {"name": "dubplate", "version": dubplate.__version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    """Every schema shipped in `dubplate/schemas`, by kind (its file name)."""
    found = {}
    for entry in resources.files("dubplate.schemas").iterdir():
        if entry.name.endswith(".schema.json"):
            found[entry.name.removesuffix(".schema.json")] = json.loads(entry.read_text())
    return found


@cache
def _registry() -> referencing.Registry:
    """Lets one schema `$ref` another by its `$id`."""
    return referencing.Registry().with_resources(
        (body["$id"], referencing.Resource.from_contents(body)) for body in _schemas().values()
    )


def validate(kind: str, body: dict[str, Any], where: str) -> None:
    validator = jsonschema.Draft202012Validator(_schemas()[kind], registry=_registry())
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is not None:
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise DubplateError(f"{where}: invalid {kind} manifest at {field}: {error.message}")


def write_manifest(path: Path, kind: str, body: dict[str, Any]) -> Path:
    validate(kind, body, str(path))
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(body, indent=2) + "\n")
    return path


def read_manifest(path: Path, kind: str) -> dict[str, Any]:
    body = _read_json(path)
    validate(kind, body, str(path))
    return body


def read_versioned_manifest(path: Path, kind: str, version: int, redo: str) -> dict[str, Any]:
    """A manifest of this dubplate's format version; another version says what to `redo`
    (checked first: another format may not match this one's schema)."""
    body = _read_json(path)
    found = body.get("format_version") if isinstance(body, dict) else None
    if found != version:
        raise DubplateError(f"{path}: {kind} format {found}, this dubplate reads {version}; {redo}")
    validate(kind, body, str(path))
    return body


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise DubplateError(f"{path}: manifest not found") from error
    except json.JSONDecodeError as error:
        raise DubplateError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno})"
        ) from error


def read_actor_stage_manifest(directory: Path, kind: str, version: int) -> dict[str, Any]:
    """A trained stage of an actor (`kind`.json); one of another format says how to retrain it."""
    name = f"{kind}.json"
    redo = f"delete {name} and run `dubplate actor build` again to train it anew"
    return read_versioned_manifest(Path(directory) / name, kind, version, redo)
