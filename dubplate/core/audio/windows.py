"""A stream of samples cut into fixed windows as it arrives: each analysis works on windows of
the whole audio without the whole audio being held."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Windows:
    """Windows of `length` samples every `step` samples of a stream fed a block at a time; the
    first starts `lead` samples before the stream, in zeros."""

    def __init__(self, length: int, step: int, lead: int = 0):
        if not 0 < step <= length:
            raise ValueError(f"windows of {length} samples every {step}: none may be skipped")
        self.length, self.step = length, step
        self._pending = [np.zeros(lead, np.float32)]
        self._held = lead

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """(k, length) view of the windows `samples` completes (k may be 0)."""
        self._pending.append(samples)
        self._held += len(samples)
        if self._held < self.length:
            return np.zeros((0, self.length), np.float32)
        joined = np.concatenate(self._pending)
        count = 1 + (len(joined) - self.length) // self.step
        windows = sliding_window_view(joined, self.length)[:: self.step][:count]
        rest = joined[count * self.step :]
        self._pending, self._held = [rest], len(rest)
        return windows

    def rest(self) -> np.ndarray:
        """The samples from where the next window starts on: the tail no whole window holds."""
        return np.concatenate(self._pending)
