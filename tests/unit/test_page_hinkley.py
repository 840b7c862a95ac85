"""The vectorized Page-Hinkley update against the textbook per-observation recursion."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from mmlw.detectors import drift
from mmlw.detectors.drift import PageHinkley


def _recursion(ph: PageHinkley, values: np.ndarray, positions: np.ndarray) -> bool:
    """One observation at a time, as the test is usually written down."""
    detected = False
    for x, where in zip(values.tolist(), positions.tolist(), strict=True):
        ph.n += 1
        ph.mean += (x - ph.mean) / ph.n
        ph.cumsum += x - ph.mean - ph.delta
        if ph.cumsum < ph.min_cumsum or ph.change_at is None:
            ph.min_cumsum = min(ph.cumsum, ph.min_cumsum)
            ph.change_at = int(where)
        if ph.n >= ph.min_n and ph.cumsum - ph.min_cumsum > ph.threshold:
            detected = True
    return detected


def test_doctest() -> None:
    assert doctest.testmod(drift).failed == 0


@pytest.mark.parametrize("seed", range(40))
def test_vectorized_update_equals_the_recursion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fast = PageHinkley(
        delta=0.3, threshold=float(rng.uniform(5, 60)), min_n=int(rng.integers(1, 200))
    )
    slow = PageHinkley(**fast.to_dict())
    start = 0
    for _ in range(int(rng.integers(1, 6))):  # several batches, state carried between them
        k = int(rng.integers(1, 300))
        values = rng.normal(rng.uniform(-1, 2), 0.5, k)
        positions = np.arange(start, start + k)
        start += k
        assert fast.update(values, positions) == _recursion(slow, values, positions)
        assert (fast.n, fast.change_at) == (slow.n, slow.change_at)
        assert fast.cumsum == pytest.approx(slow.cumsum, rel=1e-9, abs=1e-9)
        assert fast.min_cumsum == pytest.approx(slow.min_cumsum, rel=1e-9, abs=1e-9)
        assert fast.mean == pytest.approx(slow.mean, rel=1e-9, abs=1e-9)


def test_an_empty_update_changes_nothing() -> None:
    ph = PageHinkley()
    assert ph.update(np.array([]), np.array([])) is False
    assert ph.to_dict() == PageHinkley().to_dict()


def test_locate_places_the_change_where_the_test_first_fires() -> None:
    """After a long shift the running mean catches up and the statistic falls again, so
    the minimum over *all* observations moves late; ``locate`` answers as the online test
    does at the moment it fires."""
    rng = np.random.default_rng(1)
    values = np.r_[rng.normal(0.0, 0.1, 300), rng.normal(1.0, 0.1, 3000)]
    positions = np.arange(len(values))
    everything = PageHinkley(delta=0.5, threshold=30.0, min_n=50)
    assert everything.update(values, positions)
    assert everything.change_at is not None and everything.change_at > 3000  # moved late
    fresh = PageHinkley(delta=0.5, threshold=30.0, min_n=50)
    assert fresh.locate(values, positions) == 299  # the last reading before the shift
    assert fresh.n == 0  # locate leaves the test as it was
    assert fresh.locate(values[:300], positions[:300]) is None  # no shift, no answer
