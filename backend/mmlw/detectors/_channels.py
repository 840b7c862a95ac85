"""The adaptive detector's extra channels, beside its anomaly likelihood: the worst
sensor's (:mod:`~mmlw.detectors._worst_sensor`, inside the held-alarm passes) and the
roughness of the raw readings (:mod:`~mmlw.detectors._roughness`, around them: it sees
the readings before the cross-sensor transform). Each reports where it is more
surprised than the detector; models saved before a channel existed score as they did."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmlw.detectors._roughness import KEYS as ROUGH_KEYS
from mmlw.detectors._roughness import Roughness
from mmlw.detectors.base import Carry

__all__ = ["Channels"]


class Channels:
    """Mixed into :class:`~mmlw.detectors.adaptive.AdaptiveDetector`."""

    short_rate: Any
    history_rate: Any
    clip: Any
    cap: Any
    min_history_std: Any
    roughness: Any
    n_fit_: int

    def _channel_options(self, learn: bool) -> dict[str, float]:
        """The likelihood's settings, as the extra channels take them (history frozen
        without ``learn``)."""
        return {
            "rate": float(self.short_rate),
            "history_rate": float(self.history_rate) if learn else 0.0,
            "clip": float(self.clip),
            "min_std": float(self.min_history_std),
        }

    def _fit_roughness(self, X: np.ndarray) -> None:
        """The roughness channel of training rows ``X`` (raw; three sensors or more)."""
        wanted = bool(self.roughness) and X.shape[1] >= 3 and len(X) >= 2
        self.rough_ = Roughness.fit(X, **self._channel_options(learn=True)) if wanted else None

    def _start_roughness(self, start: dict[str, np.ndarray], end: dict[str, np.ndarray]) -> None:
        """The channel's keys where a series starts and where the training rows end."""
        rough: Roughness | None = getattr(self, "rough_", None)
        if rough is not None:
            start.update(rough.start)
            end.update(rough.end)

    @staticmethod
    def _held(carry: Carry) -> dict[str, np.ndarray]:
        """The part of a carry the held-alarm passes score from."""
        return {k: np.asarray(v) for k, v in carry.items() if k not in ROUGH_KEYS}

    def _with_roughness(
        self, X: np.ndarray, before: Carry, contributions: np.ndarray, after: Carry
    ) -> tuple[np.ndarray, Carry]:
        """Rows ``X`` (raw readings) scored ``contributions`` from carry ``before``: where the
        roughness channel is more surprised (after warm-up) the excess goes to the
        roughest sensor; its keys join the carry ``after``."""
        rough: Roughness | None = getattr(self, "rough_", None)
        if rough is None or "r_short" not in before:
            return contributions, after
        surprise, roughest, keys = rough.surprise(X, before)
        warm = float(np.asarray(before["seen"])) + np.arange(len(X)) >= self.n_fit_
        extra = np.where(warm, np.maximum(surprise - contributions.sum(axis=1), 0.0), 0.0)
        contributions = contributions.copy()
        contributions[np.arange(len(X)), roughest] += extra
        return contributions, {**after, **keys}
