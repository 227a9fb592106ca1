"""Runs of consecutive chosen frames: the stretches a per-frame mask is made of."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def runs(chosen: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in the (F,) `chosen`, stop exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], chosen.astype(np.int8), [0]])))
    return [(int(start), int(stop)) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def split_runs(chosen: np.ndarray, breaks: Iterable[int] = ()) -> list[tuple[int, int]]:
    """`runs` of `chosen`, a run also ending before each row in `breaks` (where a shot cuts)."""
    spans, breaks = [], sorted(breaks)
    for start, stop in runs(chosen):
        for at in breaks:
            if start < at < stop:
                spans.append((start, at))
                start = at
        spans.append((start, stop))
    return spans
