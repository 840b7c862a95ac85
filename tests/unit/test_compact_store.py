"""The compact stored form (mmlw.store.compact): values come back as the very doubles that
were sent whatever their decimals, and contributions are kept for the rows that matter."""

from __future__ import annotations

import itertools
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlw.store.compact import (
    explained_rows,
    pack_contributions,
    pack_times,
    pack_values,
    unpack_contributions,
    unpack_times,
    unpack_values,
)


def _as_sent(values: np.ndarray) -> np.ndarray:
    """What a reading becomes once it travelled as JSON text."""
    return np.array(json.loads(json.dumps(values.tolist())), dtype=np.float64)


@settings(max_examples=200, deadline=None)
@given(
    decimals=st.integers(0, 12),
    scale=st.sampled_from([1e-3, 1.0, 10.0, 1e4, 1e8, 1e12]),
    rows=st.integers(1, 40),
    columns=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_values_come_back_exactly_in_either_form(
    decimals: int, scale: float, rows: int, columns: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = _as_sent(np.round(rng.normal(size=(rows, columns)) * scale, decimals))
    data = pack_values(values)
    back = unpack_values(data, rows, columns)
    assert back.dtype == np.float64 and back.shape == values.shape
    assert np.array_equal(back, values)  # bit for bit, but for the sign of a zero
    assert len(data) == 8 * rows * columns or len(data) <= 1 + 6 * columns + 4 * rows * columns + 1


def test_sensor_resolution_takes_2_to_3_bytes_a_value_and_full_doubles_keep_theirs() -> None:
    rng = np.random.default_rng(1)
    sensors = _as_sent(np.round(rng.normal(10, 1, size=(1000, 8)), 4))  # ranges of 6-8e4
    assert 1 + 6 * 8 + 2 * 8000 < len(pack_values(sensors)) <= 1 + 6 * 8 + 3 * 8000
    doubles = rng.normal(size=(1000, 8))  # 17 significant digits: no decimal scale holds them
    assert len(pack_values(doubles)) == 8 * 8000
    assert np.array_equal(unpack_values(pack_values(doubles), 1000, 8), doubles)
    mixed = sensors.copy()
    mixed[500, 3] = 1 / 3  # one full double makes the whole batch float64
    assert np.array_equal(unpack_values(pack_values(mixed), 1000, 8), mixed)
    huge = np.full((3, 2), 3.5e9)  # an integer past int32: float64
    assert len(pack_values(huge)) == 8 * 6
    assert np.array_equal(unpack_values(pack_values(huge), 3, 2), huge)


def test_contributions_are_kept_above_the_threshold_and_for_the_batch_worst() -> None:
    scores = np.array([0.1, 2.0, 0.3, 0.9, 0.95])
    rows = explained_rows(scores, threshold=1.0)
    assert rows.tolist() == [1]  # above the threshold, also the worst
    rows = explained_rows(scores, threshold=5.0)
    assert rows.tolist() == [1]  # nothing above: the worst alone
    contributions = np.arange(10, dtype=float).reshape(5, 2)
    data, kept = pack_contributions(contributions, explained_rows(scores, threshold=0.5))
    dense = unpack_contributions(data, kept, 5, 2)
    assert np.isnan(dense[[0, 2]]).all()
    assert np.array_equal(dense[[1, 3, 4]], contributions[[1, 3, 4]])
    # batches stored before 0014 kept every row (no row numbers)
    everything = unpack_contributions(contributions.astype("<f4").tobytes(), None, 5, 2)
    assert np.array_equal(everything, contributions)
    assert explained_rows(np.zeros(0), 1.0).size == 0


def test_a_batch_takes_the_bytes_its_widest_range_needs_and_older_forms_still_read() -> None:
    values = np.zeros((50, 5))
    values[:, 1] = np.arange(50) / 10  # 0.0-4.9 at one decimal
    values[:, 2] = -1000 + np.arange(50)  # -1000 to -951
    values[:, 3] = np.arange(50) / 1000  # 0.000-0.049 at three decimals: 49 steps each
    values = _as_sent(values)
    for widest, width in ((49, 1), (343, 2), (70_000, 3), (2**31 - 2, 4)):
        values[0, 4] = -widest // 2
        values[1, 4] = widest - widest // 2  # column 4 spans `widest`
        data = pack_values(values)
        assert data[1 + 5 * 5] == width and len(data) == 2 + 5 * 5 + width * 250
        assert np.array_equal(unpack_values(data, 50, 5), values)
    assert len(pack_values(np.full((50, 5), -3.25))) == 2 + 5 * 5  # all constant: no offsets
    # the earlier scaled int32 form, still in stores: scales, then n x c int32
    scales = np.array([0, 1, 0, 3, 0], dtype=np.int8)
    ints = np.rint(values * 10.0**scales).astype("<i4")
    assert np.array_equal(unpack_values(scales.tobytes() + ints.tobytes(), 50, 5), values)
    # an offsets form as long as float64's would be is padded out of the way
    for rows, columns, top in itertools.product(range(1, 12), range(1, 4), (0, 9, 999, 99999)):
        some = np.zeros((rows, columns))
        some[-1] = top
        packed = pack_values(some)
        assert len(packed) != 8 * some.size
        assert np.array_equal(unpack_values(packed, rows, columns), some)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 50),
    step=st.sampled_from([0, 1, 1_000, 1_000_000, 3_600_000_000]),
    jitter=st.sampled_from([0, 1, 999, 2**31]),
    seed=st.integers(0, 2**32 - 1),
)
def test_reading_times_come_back_exactly_in_every_form(
    n: int, step: int, jitter: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    times = 1_767_225_600_000_000 + step * np.arange(n, dtype=np.int64)
    if jitter:
        times = times + rng.integers(-jitter, jitter + 1, size=n)
    data = pack_times(times)
    assert np.array_equal(unpack_times(data), times)
    assert len(data) <= max(25, 5 + 4 * n) or len(data) == 8 * n


def test_even_times_take_25_bytes_and_jittered_half() -> None:
    even = 1_767_225_600_000_000 + 1_000_000 * np.arange(1000, dtype=np.int64)
    assert len(pack_times(even)) == 25
    jittered = even + np.random.default_rng(0).integers(0, 5000, size=1000)
    assert len(pack_times(jittered)) == 5 + 4 * 1000
    apart = even + np.arange(1000, dtype=np.int64) ** 3 * 10_000  # uneven, past int32
    assert len(pack_times(apart)) == 8 * 1000
    assert np.array_equal(unpack_times(pack_times(apart)), apart)
