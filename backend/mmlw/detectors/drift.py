"""Page-Hinkley test for a lasting upward shift in a stream (pure, serialisable).

MMLW feeds it one value per scored reading: ``log(score / threshold)``, clipped, so a
regime change that makes every reading look anomalous to the champion accumulates fast,
while a fault episode of tens of readings does not: the statistic grows by
``x - mean - delta`` per reading and must exceed ``threshold`` above its running minimum.
The position of that minimum (the last observation before the change) estimates where
the change began.

>>> import numpy as np
>>> ph = PageHinkley(delta=0.5, threshold=50.0, min_n=100)
>>> rng = np.random.default_rng(0)
>>> ph.update(rng.normal(0.0, 0.3, 500), np.arange(500))
False
>>> ph.update(rng.normal(2.0, 0.3, 100), np.arange(500, 600))
True
>>> 495 <= ph.change_at <= 505
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["PageHinkley"]


@dataclass
class PageHinkley:
    delta: float = 0.5
    threshold: float = 800.0
    min_n: int = 200
    n: int = 0
    mean: float = 0.0
    cumsum: float = 0.0
    min_cumsum: float = 0.0
    change_at: int | None = None

    def update(self, values: np.ndarray, positions: np.ndarray) -> bool:
        """Add observations (``positions``: e.g. timestamps, same length); True once the
        shift is detected. ``change_at`` is then the position where it began."""
        values, positions = self._checked(values, positions)
        if not len(values):
            return False
        counts, means, stats, lowest, new_low = self._trace(values)
        if len(new_low):
            self.change_at = int(positions[new_low[-1]])
        elif self.change_at is None:
            self.change_at = int(positions[0])
        detected = bool(self._alarms(counts, stats, lowest).any())
        self.n, self.mean = int(counts[-1]), float(means[-1])
        self.cumsum, self.min_cumsum = float(stats[-1]), float(lowest[-1])
        return detected

    def locate(self, values: np.ndarray, positions: np.ndarray) -> int | None:
        """Where the change began as this test would place it when it first detects it,
        given these observations in order; None if they never set it off. Leaves the test
        unchanged (later observations, in which the running mean catches up with the new
        level, do not move the estimate)."""
        values, positions = self._checked(values, positions)
        if not len(values):
            return None
        counts, _, stats, lowest, new_low = self._trace(values)
        alarms = np.flatnonzero(self._alarms(counts, stats, lowest))
        if not len(alarms):
            return None
        before = new_low[new_low <= alarms[0]]
        if len(before):
            return int(positions[before[-1]])
        return self.change_at if self.change_at is not None else int(positions[0])

    @staticmethod
    def _checked(values: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(values, dtype=np.float64)
        positions = np.asarray(positions)
        if values.shape != positions.shape:
            raise ValueError("values and positions: need the same length")
        return values, positions

    def _trace(
        self, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The per-observation recursion, vectorized: counts, running means, statistic,
        its running minimum, and the indexes where a new minimum was set."""
        counts = self.n + np.arange(1, len(values) + 1)
        means = (self.n * self.mean + np.cumsum(values)) / counts
        stats = self.cumsum + np.cumsum(values - means - self.delta)
        before = np.minimum.accumulate(np.concatenate([[self.min_cumsum], stats[:-1]]))
        return counts, means, stats, np.minimum(before, stats), np.flatnonzero(stats < before)

    def _alarms(self, counts: np.ndarray, stats: np.ndarray, lowest: np.ndarray) -> np.ndarray:
        return (counts >= self.min_n) & (stats - lowest > self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PageHinkley:
        return cls(**state)
