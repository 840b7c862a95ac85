"""Batch-size invariance, over the whole catalog: streaming a series in parts of 1, 7 or
100 rows, or in parts of random sizes, gives the contributions (and so the scores) of
streaming it whole. What a machine is served never depends on how its readings were
batched, and an evaluation that replays a file in any batch size scores what is served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmlw.detectors.base import Carry
from mmlw.detectors.catalog import DETECTORS, build_detector, load_detector_configs

# its module/session fixture is started once, on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("stream-invariance")

CONFIGS = load_detector_configs(Path(__file__).resolve().parents[2] / "configs" / "detectors.yaml")
CASES = [(name, {}) for name in sorted(DETECTORS)] + [
    (detector, params) for _, (detector, params) in sorted(CONFIGS.items())
]
SMOOTHED = [("robust_zscore", {"smoothing": 0.3})]


def series(n: int, seed: int = 0) -> np.ndarray:
    """Four sensors: a daily-like cycle, a slow drift, noise and a level shift."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cycle = np.sin(2 * np.pi * t / 97)
    drift = 0.002 * t
    shift = np.where(t > 0.7 * n, 1.5, 0.0)
    X = np.column_stack([cycle, 20 + drift, rng.normal(size=n), 5 + shift])
    return X + 0.05 * rng.normal(size=X.shape)


DATA = series(900)
TRAIN, LIVE = DATA[:400], DATA[400:]


def fitted(case: tuple[str, dict[str, object]]):  # type: ignore[no-untyped-def]
    name, params = case
    return build_detector(name, params).fit(TRAIN)


def streamed(detector, parts: Iterator[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    carry: Carry | None = None
    out, start = [], 0
    while start < len(LIVE):
        stop = min(start + next(parts), len(LIVE))
        contributions, carry = detector.stream(LIVE[start:stop], carry)
        for value in carry.values():
            assert isinstance(value, np.ndarray)  # a carry is data, never objects
        out.append(contributions)
        start = stop
    return np.vstack(out)


def sizes(size: int) -> Iterator[int]:
    while True:
        yield size


@pytest.fixture(scope="module", params=CASES + SMOOTHED, ids=str)
def case_and_whole(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    detector = fitted(request.param)
    return detector, streamed(detector, sizes(len(LIVE)))


@pytest.mark.parametrize("size", [1, 7, 100])
def test_any_batch_size_gives_the_whole_series_scores(case_and_whole, size: int) -> None:  # type: ignore[no-untyped-def]
    detector, whole = case_and_whole
    np.testing.assert_allclose(streamed(detector, sizes(size)), whole, rtol=1e-9, atol=1e-9)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(st.integers(1, 120), min_size=1, max_size=30))
def test_random_splits_give_the_whole_series_scores(case_and_whole, parts: list[int]) -> None:  # type: ignore[no-untyped-def]
    detector, whole = case_and_whole
    cycle = iter(parts * (len(LIVE) // len(parts) + 1) + [len(LIVE)])
    np.testing.assert_allclose(streamed(detector, cycle), whole, rtol=1e-9, atol=1e-9)


def test_stateless_detectors_stream_what_they_explain() -> None:
    """Where a row's score depends on that row alone, streaming is plain scoring."""
    for name in ("pca", "isolation_forest", "mahalanobis", "lof", "autoencoder"):
        detector = fitted((name, {}))
        assert detector.context_rows() == 0
        contributions, carry = detector.stream(LIVE, None)
        np.testing.assert_array_equal(contributions, detector.explain(LIVE))
        assert dict(carry) == {}


def test_half_space_trees_learn_online_when_streamed() -> None:
    """After a persistent shift, streamed Half-Space Trees learn the new level (the
    fitted detector, which never learns, keeps scoring it as anomalous)."""
    detector = fitted(("half_space_trees", {}))
    shifted = LIVE + np.array([0.0, 0.0, 0.0, 3.0])
    before = detector.anomaly_score(shifted[-50:]).mean()
    scores, _ = detector.stream(shifted, None)
    after = scores[-50:].sum(axis=1).mean()
    assert after < before
    np.testing.assert_array_equal(detector.anomaly_score(shifted[-50:]).mean(), before)
