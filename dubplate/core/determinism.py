"""Training that gives the same network from the same seed, on CUDA as on the CPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

log = logging.getLogger(__name__)

# cuBLAS reuses its workspace across calls in an order that varies from run to run unless it is
# fixed in size; PyTorch refuses deterministic cuBLAS calls without it.
CUBLAS_WORKSPACE = ":4096:8"


def fix_cublas_workspace() -> None:
    """Before the process's first CUDA call: a workspace set later is not the one cuBLAS uses."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


@contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """torch's generators seeded and, on CUDA, its deterministic kernels chosen (cuDNN's
    autotuner off, which picks the fastest kernel by timing it) for the training inside; the
    process's own choices are restored after it, so a stage that needs no such care (the
    renderer's) keeps its speed; cuBLAS's workspace, once fixed, stays so. An operation with
    no deterministic CUDA kernel warns."""
    torch.manual_seed(seed)
    if not device.startswith("cuda"):
        yield
        return
    if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        if torch.cuda.is_initialized():
            log.warning(
                "CUDA started before CUBLAS_WORKSPACE_CONFIG was set: cuBLAS's sums may differ"
                " from run to run (set it to %s before the process starts)",
                CUBLAS_WORKSPACE,
            )
        else:
            fix_cublas_workspace()
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
