"""Min/max-per-bucket downsampling: what a plot must never lose."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from mmlw.services import downsample
from mmlw.services.downsample import downsample_indices


def test_doctest() -> None:
    assert doctest.testmod(downsample).failed == 0


def test_short_series_are_returned_whole() -> None:
    t = np.arange(10)
    assert downsample_indices(t, np.arange(10.0), 10).tolist() == list(range(10))
    assert downsample_indices(t[:0], np.zeros(0), 5).tolist() == []


def test_bucket_extremes_first_and_last_survive() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(100_000) * 1_000_000  # 1 Hz in microseconds
    v = rng.normal(size=100_000)
    v[12_345], v[77_777] = 50.0, -50.0
    idx = downsample_indices(t, v, 400)
    assert len(idx) <= 400
    assert np.all(np.diff(idx) > 0)
    assert {0, 99_999, 12_345, 77_777} <= set(idx.tolist())
    # every bucket's min and max: the downsampled series spans the same range per bucket
    assert v[idx].max() == v.max() and v[idx].min() == v.min()


def test_each_column_keeps_its_own_extremes() -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(50_000, 3))
    table[100, 0], table[20_000, 1], table[49_000, 2] = 9.0, -9.0, 9.0
    idx = downsample_indices(np.arange(50_000), table, 700)
    assert len(idx) <= 700
    assert {100, 20_000, 49_000} <= set(idx.tolist())


def test_a_flagged_row_survives_in_every_bucket_that_has_one() -> None:
    n = 60_000
    scores = np.linspace(0.0, 1.0, n)  # the bucket extremes are at its edges ...
    flagged = np.zeros(n, dtype=bool)
    flagged[[1_000, 30_123, 30_124, 59_000]] = True  # ... the flags are inside
    scores[flagged] = 0.5
    idx = downsample_indices(np.arange(n), scores, 300, flagged=flagged)
    assert len(idx) <= 300
    kept = set(idx.tolist())
    assert 1_000 in kept and 59_000 in kept
    assert kept & {30_123, 30_124}


def test_nan_is_ignored_and_all_nan_buckets_contribute_nothing() -> None:
    v = np.full(10_000, np.nan)
    v[:5_000] = np.arange(5_000.0)
    idx = downsample_indices(np.arange(10_000), v, 100)
    assert len(idx) <= 100
    assert 4_999 in idx and 9_999 in idx  # the last row is always kept


def test_uneven_sampling_uses_time_buckets() -> None:
    # a dense burst and a sparse tail: buckets are equal in time, not in row count
    t = np.concatenate([np.arange(90_000), 90_000 + np.arange(10_000) * 100])
    v = np.zeros(100_000)
    v[95_000] = 3.0
    idx = downsample_indices(t, v, 200)
    assert 95_000 in idx
    assert (idx >= 90_000).sum() > (idx < 90_000).sum()  # the tail spans 92 % of the time


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        downsample_indices(np.array([3, 2, 1] * 10), np.zeros(30), 5)
    with pytest.raises(ValueError, match="length"):
        downsample_indices(np.arange(5), np.zeros(4), 2)
    with pytest.raises(ValueError, match="max_points"):
        downsample_indices(np.arange(5), np.zeros(5), 0)
