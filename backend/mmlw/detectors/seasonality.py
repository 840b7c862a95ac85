"""The period of a repeating shape in a series (a daily cycle, a machine's duty cycle)."""

from __future__ import annotations

import numpy as np

from mmlw.detectors._online import before, ewma

__all__ = ["deseason", "dominant_period"]


def dominant_period(X: np.ndarray, low: int = 4, min_corr: float = 0.3) -> int:
    """The lag in ``[low, len(X) // 2]`` where the mean autocorrelation of the sensors'
    detrended first differences peaks above ``min_corr`` (a repeating shape), else 0.

    >>> t = np.arange(700)
    >>> rng = np.random.default_rng(0)
    >>> dominant_period(np.sin(2 * np.pi * t / 96)[:, None] + 0.1 * rng.normal(size=(700, 1)))
    96
    >>> dominant_period(rng.normal(size=(700, 2)))
    0
    """
    n = len(X)
    high = n // 2
    if high <= low:
        return 0
    # smoothed levels, so noise does not hide a slow cycle; then remove the linear trend
    kernel = np.ones(3) / 3.0
    smooth = np.column_stack([np.convolve(c, kernel, mode="valid") for c in X.T])
    t = np.arange(len(smooth), dtype=np.float64)
    fit = np.polynomial.polynomial.polyfit(t, smooth, 1)
    resid = smooth - np.polynomial.polynomial.polyval(t, fit).T
    resid = resid - resid.mean(axis=0)
    power = (resid**2).sum(axis=0)
    usable = power > 1e-12 * np.maximum(1.0, (smooth**2).sum(axis=0))
    if not usable.any():
        return 0
    resid = resid[:, usable] / np.sqrt(power[usable])
    m = len(resid)
    size = 1 << int(np.ceil(np.log2(2 * m)))
    spectrum = np.fft.rfft(resid, size, axis=0)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, size, axis=0)[: high + 1].mean(axis=1)
    # unbiased for the shrinking overlap
    acf = acf * m / np.maximum(m - np.arange(high + 1), 1)
    lags = np.arange(low, min(high, m - 1) + 1)
    if not len(lags):
        return 0
    # first local maximum past the first zero crossing, the usual period estimate
    below = np.flatnonzero(acf[lags] < 0)
    if not len(below):
        return 0
    # the first positive hump after it: its peak is the period
    rest = lags[below[0] :]
    positive = acf[rest] > 0
    if not positive.any():
        return 0
    hump = rest[int(np.argmax(positive)) :]
    ends = np.flatnonzero(acf[hump] <= 0)
    hump = hump[: ends[0]] if len(ends) else hump
    best = int(hump[np.argmax(acf[hump])])
    return best if acf[best] >= min_corr else 0


def deseason(
    X: np.ndarray, profile: np.ndarray, base: np.ndarray, rate: float, learn: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` minus its seasonal component one period back (``len(profile)`` rows), and
    the profile and base after it (unchanged without ``learn``).

    ``u = x - base`` (``base``: an EWMA over about one period); the component is the
    EWMA, phase by phase, of ``u`` (``c_t = g·u_t + (1 - g)·c_{t-P}``, ``g = rate``),
    computed one period at a time; a row is corrected by ``c_{t-P}``, learned before it.

    >>> X = np.tile([[1.0], [3.0], [1.0], [-1.0]], (3, 1))  # level 1, a cycle of 4 rows
    >>> profile = np.array([[0.0], [2.0], [0.0], [-2.0]])  # the cycle, learned
    >>> out, _, _ = deseason(X, profile, np.array([1.0]), 0.1, learn=False)
    >>> out[:, 0].tolist() == [1.0] * 12  # the cycle is taken off
    True
    """
    period = len(profile)
    rate = rate if learn else 0.0
    level = ewma(X, 1.0 / period if learn else 0.0, base)
    u = X - before(level, base)
    comp = np.vstack([profile, np.empty_like(X)])  # row t of X is comp[t + period]
    for i in range(0, len(X), period):
        j = min(i + period, len(X))
        comp[i + period : j + period] = rate * u[i:j] + (1.0 - rate) * comp[i:j]
    return X - comp[: len(X)], comp[-period:].copy(), level[-1]
