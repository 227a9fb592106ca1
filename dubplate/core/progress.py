"""Progress lines for long work: done/total, rate and ETA, at most one line a second."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("dubplate.progress")


class Progress:
    def __init__(self, task: str, total: int, unit: str = "frames", every_s: float = 1.0):
        self.task, self.total, self.unit, self.every_s = task, total, unit, every_s
        self.done = 0
        self.started = self.last_report = time.perf_counter()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def extend(self, count: int) -> None:
        """More work found to do: a further pass over frames."""
        self.total += count

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last_report >= self.every_s or self.done == self.total:
            self.last_report = now
            self._report()

    def _report(self) -> None:
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        log.info(
            "%s: %d/%d %s (%.0f%%), %.1f %s/s, ETA %s",
            self.task,
            self.done,
            self.total,
            self.unit,
            100.0 * self.done / max(self.total, 1),
            rate,
            self.unit,
            _clock(eta),
        )


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
