"""The smallest scale a sensor is measured in, so a sensor constant in training stays usable.

A sensor that never moved in training has no spread to standardise by. Dividing by 0 gives
inf, and dividing by a fixed 1.0 is blind to a sensor at 1e-6 (a jump to 2e-6 is a z of
1e-6) while a sensor at 1e6 would score every one-unit wobble. The floor is instead
relative to the sensor's own magnitude — :data:`RELATIVE_RESOLUTION` of it, below the
resolution of any real sensor (a float32 reading resolves ~6e-8 of its value), so sensors
that move at all keep their own spread — and never below an absolute ``eps``, which only
matters for a sensor sitting at (almost exactly) 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RELATIVE_RESOLUTION", "floored_scale", "scale_floor"]

#: a sensor's smallest meaningful change, as a fraction of its magnitude
RELATIVE_RESOLUTION = 1e-6


def scale_floor(level: np.ndarray, eps: float) -> np.ndarray:
    """Per sensor ``max(RELATIVE_RESOLUTION · |level|, eps)``: finite, > 0 when ``eps > 0``.

    >>> scale_floor(np.array([1e6, -4.0, 1e-6, 0.0]), 1e-9).tolist()
    [1.0, 4e-06, 1e-09, 1e-09]
    """
    return np.maximum(RELATIVE_RESOLUTION * np.abs(np.asarray(level, dtype=np.float64)), eps)


def floored_scale(spread: np.ndarray, level: np.ndarray, eps: float) -> np.ndarray:
    """``spread`` raised to :func:`scale_floor` of ``level`` where it is smaller.

    Unchanged for every sensor whose spread is at least a millionth of its level.

    >>> floored_scale(np.array([2.0, 0.0, 0.0]), np.array([1e6, 4.0, 0.0]), 1e-9).tolist()
    [2.0, 4e-06, 1e-09]
    """
    return np.maximum(np.asarray(spread, dtype=np.float64), scale_floor(level, eps))
