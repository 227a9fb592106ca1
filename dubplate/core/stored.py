"""Reading back what a stage saved: a file missing or damaged (cut short by a lost node, copied
from another actor) is an error that names it, whatever the library reading it raised."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dubplate.core.errors import DubplateError

if TYPE_CHECKING:
    import torch

# What NumPy and PyTorch raise for a file that is missing, empty, cut short or of another shape.
DAMAGED = (
    OSError,
    EOFError,
    KeyError,
    ValueError,
    RuntimeError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)


def load_arrays(
    path: Path, names: Iterable[str], optional: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """The arrays `names` of the .npz at `path`, and those of `optional` it holds."""
    try:
        with np.load(path) as arrays:
            held = {name: arrays[name] for name in optional if name in arrays.files}
            return {**held, **{name: arrays[name] for name in names}}
    except DAMAGED as error:
        raise DubplateError(f"{path}: missing or damaged ({error})") from error


def load_weights(
    module: torch.nn.Module, path: Path, device: str = "cpu", remedy: str = ""
) -> torch.nn.Module:
    """`module` with the state dict saved at `path` (a file of another network's shape is damaged
    too); `remedy` is said after the damage."""
    import torch  # here: what reads only arrays (the audio and track caches) goes without it

    try:
        module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except DAMAGED as error:
        raise DubplateError(f"{path}: missing or damaged ({error}){remedy}") from error
    return module
