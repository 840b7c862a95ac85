"""Downsampling time series for plots: keep every time bucket's extremes.

A plot of N points on a W-pixel axis shows at most ~W distinct x positions, and what the
eye takes from each one is its lowest and highest value (min/max or "M4" aggregation):
a spike stays a spike, a flat line stays flat. :func:`downsample_indices` cuts the time
range into equal-width buckets and keeps, per bucket, the rows holding each column's
minimum and maximum; with a ``flagged`` mask it also keeps, per bucket, the flagged row
with the highest first-column value, so an anomaly never vanishes from the picture.

>>> import numpy as np
>>> t = np.arange(1_000)
>>> v = np.zeros(1_000); v[500] = 9.0
>>> idx = downsample_indices(t, v, 50)
>>> len(idx) <= 50, 500 in idx, int(idx[0]), int(idx[-1])
(True, True, 0, 999)
"""

from __future__ import annotations

import numpy as np

__all__ = ["downsample_indices"]


def downsample_indices(
    timestamps: np.ndarray,
    values: np.ndarray,
    max_points: int,
    *,
    flagged: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted, unique row indices to draw in place of all rows.

    Guarantees: all rows when there are at most ``max_points``; otherwise the first and
    last row, and per equal-width time bucket each column's minimum and maximum row (NaN
    ignored) and -- where the bucket holds a ``flagged`` row -- one flagged row. At most
    ``max_points`` rows, unless ``max_points`` is below what a single bucket needs
    (``2 * columns + 3``); then one bucket is used.

    ``timestamps`` (any numeric type) must be sorted ascending; ``values`` is ``(n,)`` or
    ``(n, columns)``.
    """
    n = len(timestamps)
    if max_points < 1:
        raise ValueError("max_points: must be >= 1")
    table = np.asarray(values, dtype=np.float64)
    if table.ndim == 1:
        table = table[:, None]
    if table.shape[0] != n or (flagged is not None and len(flagged) != n):
        raise ValueError("timestamps, values and flagged must have the same length")
    if n <= max_points:
        return np.arange(n)
    times = np.asarray(timestamps)
    if np.any(times[1:] < times[:-1]):
        raise ValueError("timestamps: must be sorted ascending")
    per_bucket = 2 * table.shape[1] + (1 if flagged is not None else 0)
    n_buckets = max(1, (max_points - 2) // per_bucket)
    starts = _bucket_starts(times, n_buckets)
    chosen = [np.array([0, n - 1])]
    for column in table.T:
        chosen.append(_segment_extreme(column, starts, np.fmin))
        chosen.append(_segment_extreme(column, starts, np.fmax))
    if flagged is not None:
        priority = np.where(np.asarray(flagged, dtype=bool), table[:, 0], np.nan)
        chosen.append(_segment_extreme(priority, starts, np.fmax))
    return np.unique(np.concatenate(chosen))


def _bucket_starts(times: np.ndarray, n_buckets: int) -> np.ndarray:
    """First row of every non-empty bucket of ``[times[0], times[-1]]`` cut ``n_buckets`` ways."""
    first, last = float(times[0]), float(times[-1])
    edges = first + (last - first) * np.arange(1, n_buckets) / n_buckets
    starts = np.searchsorted(times.astype(np.float64), edges, side="left")
    return np.unique(np.concatenate([[0], starts[starts < len(times)]]))


def _segment_extreme(column: np.ndarray, starts: np.ndarray, reduce: np.ufunc) -> np.ndarray:
    """Per segment (``starts`` .. next start) the first row where ``reduce`` finds its value;
    segments that are all NaN contribute nothing."""
    ends = np.append(starts[1:], len(column))
    extreme = reduce.reduceat(column, starts)
    hits = np.flatnonzero(column == np.repeat(extreme, ends - starts))
    if hits.size == 0:
        return hits
    position = np.searchsorted(hits, starts)
    found = hits[np.minimum(position, hits.size - 1)]
    valid = (position < hits.size) & (found < ends)
    return found[valid]
