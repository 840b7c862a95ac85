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
        values = np.asarray(values, dtype=np.float64)
        positions = np.asarray(positions)
        detected = False
        for x, where in zip(values.tolist(), positions.tolist(), strict=True):
            self.n += 1
            self.mean += (x - self.mean) / self.n
            self.cumsum += x - self.mean - self.delta
            if self.cumsum < self.min_cumsum or self.change_at is None:
                self.min_cumsum = min(self.cumsum, self.min_cumsum)
                self.change_at = int(where)
            if self.n >= self.min_n and self.cumsum - self.min_cumsum > self.threshold:
                detected = True
        return detected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PageHinkley:
        return cls(**state)
