"""An online, adaptive detector with an anomaly likelihood on top of its raw score.

Every statistic keeps learning as rows arrive, and all of it is carried between parts of
a series as a handful of numbers per sensor (no trailing rows), so serving, evaluation and
any batching score a series identically. Each stage is an exponentially weighted moving
average (EWMA) computed for a whole batch at once by one linear filter
(:func:`scipy.signal.lfilter`), with a point-wise step between stages; a stage only uses
the *previous* row's value of the stage before it, so the recursion is exactly the same
whether a series is scored whole or in parts.

Per sensor, in time order:

1. **forecast residual** — the forecast of a reading is the fast EWMA level of the
   readings before it (``level_rate``); ``r = x - forecast``;
2. **adaptive spread** — a slow EWMA of ``|r|`` (``spread_rate``), made robust by a second
   EWMA of ``|r|`` clipped at ``clip`` times the first; ``z = r / spread`` (the spread of
   the rows before);
3. **persistent level change** — the fast level against a slow level (``shift_rate``), in
   units of that difference's own adaptive spread: a shift keeps scoring while it is new
   and fades as the slow level follows it (after about ``1 / shift_rate`` rows the shift
   is the new normal);
4. **cycles** (``season`` rows, ``0``: off; ``"auto"``: the strongest autocorrelation
   period of the training rows, if any) — the forecast adds the EWMA of the residual one
   period back, so a repeating daily shape stops scoring once learned.

The raw score of a row is ``log1p(mean over sensors of max(z², zd²))`` (per-sensor parts
give :meth:`explain`). The **anomaly likelihood** (the idea of HTM/NAB's): a short moving
average of the raw score (``short_rate``) is compared with the long history of that average
(EWMA mean and variance, ``history_rate``); the tail probability ``Q`` of the standardised
short average says how unusual the recent scores are *for this stream*. The reported score
is the surprise ``-log10 Q`` (``1 - likelihood = 10**-score``), floored at ``floor``: every
reading less surprising than ``10**-floor`` reports ``floor``. On a stream whose training
rows are normal, the product's threshold (a high quantile of the training scores) is then
the floor itself, so one threshold means the same tail probability on every stream.

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(600, 2))
>>> det = AdaptiveDetector().fit(X[:300])
>>> scores, carry = det.stream(X[300:], None)
>>> bool(np.allclose(scores.sum(axis=1), det.floor))  # stationary: never above the floor
True
>>> spike = X[300:400].copy(); spike[50, 1] += 12.0
>>> bool(det.score_samples(spike)[50:56].max() > 2 * det.floor)
True
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.signal import lfilter
from scipy.special import log_ndtr

from backend.detectors._scale import scale_floor
from backend.detectors.base import BaseDetector, Carry, as_matrix

__all__ = ["AdaptiveDetector", "dominant_period"]

#: E|r| = MEAN_ABS * std for Gaussian r
_MEAN_ABS = float(np.sqrt(2.0 / np.pi))
_LN10 = float(np.log(10.0))
#: the carry's per-sensor and scalar state, in this order
_SENSOR_STATE = ("level", "slow", "r_abs1", "r_abs2", "d_abs1", "d_abs2")
_WARM_STATE = ("r_abs1", "r_abs2", "d_abs1", "d_abs2")
_SCALAR_STATE = ("short", "mean", "var1", "var2")


def _ewma(values: np.ndarray, rate: float, previous: np.ndarray) -> np.ndarray:
    """EWMA ``y_t = rate·v_t + (1 - rate)·y_{t-1}`` along axis 0, from ``y_{-1} = previous``."""
    zi = ((1.0 - rate) * np.asarray(previous, dtype=np.float64))[None, ...]
    out, _ = lfilter([rate], [1.0, rate - 1.0], values, axis=0, zi=zi)
    return np.asarray(out)


def _before(values: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each row's predecessor: ``previous`` then ``values[:-1]``."""
    return np.concatenate([np.asarray(previous, dtype=np.float64)[None, ...], values[:-1]])


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


class AdaptiveDetector(BaseDetector):
    """Online forecast residuals and level changes per sensor, scored as an anomaly
    likelihood (see the module docstring). Every parameter is a rate or a multiple, the
    same for any stream; ``floor`` is the surprise (``-log10`` tail probability) below
    which readings report as normal."""

    rowwise: ClassVar[bool] = False

    def __init__(
        self,
        level_rate: float = 0.2,
        spread_rate: float = 0.005,
        shift_rate: float = 0.005,
        short_rate: float = 0.2,
        history_rate: float = 0.0005,
        season: int | str = "auto",
        season_rate: float = 0.1,
        clip: float = 4.0,
        cap: float = 100.0,
        floor: float = 6.0,
        min_history_std: float = 0.05,
        eps: float = 1e-9,
    ) -> None:
        self.level_rate = level_rate
        self.spread_rate = spread_rate
        self.shift_rate = shift_rate
        self.short_rate = short_rate
        self.history_rate = history_rate
        self.season = season
        self.season_rate = season_rate
        self.clip = clip
        self.cap = cap
        self.floor = floor
        self.min_history_std = min_history_std
        self.eps = eps

    # -- fitting: the state a series starts from -----------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> AdaptiveDetector:
        for name in ("level_rate", "spread_rate", "shift_rate", "short_rate", "history_rate"):
            value = float(getattr(self, name))
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name}: {value!r} not in (0, 1]")
        if not 0.0 < float(self.season_rate) <= 1.0:
            raise ValueError(f"season_rate: {self.season_rate!r} not in (0, 1]")
        if float(self.clip) <= 0 or float(self.floor) <= 0 or float(self.min_history_std) <= 0:
            raise ValueError("clip, floor and min_history_std: must be positive")
        X = as_matrix(X)
        if not len(X):
            raise ValueError("X: need at least one row")
        n, m = X.shape
        self.n_features_in_ = m
        if self.season == "auto":
            self.period_ = dominant_period(X)
        elif isinstance(self.season, (int, np.integer)) and not isinstance(self.season, bool):
            if int(self.season) < 0:
                raise ValueError(f"season: {self.season!r} must be >= 0 or 'auto'")
            self.period_ = int(self.season)
        else:
            raise ValueError(f"season: {self.season!r} must be an int >= 0 or 'auto'")

        start = np.median(X[: min(n, 10)], axis=0)
        self.floor_ = scale_floor(np.median(X, axis=0), float(self.eps))
        steps = np.diff(X, axis=0) if n > 1 else np.zeros((1, m))
        spread = 1.4826 * np.median(np.abs(steps - np.median(steps, axis=0)), axis=0) / np.sqrt(2)
        spread = np.where(spread < self.floor_, steps.std(axis=0) / np.sqrt(2), spread)
        spread = np.maximum(spread, self.floor_)
        ratio = float(self.level_rate) / (2.0 - float(self.level_rate))
        shift_spread = spread * np.sqrt(ratio)
        sensors = {
            "level": start,
            "slow": start,
            "r_abs1": _MEAN_ABS * spread,
            "r_abs2": _MEAN_ABS * spread,
            "d_abs1": _MEAN_ABS * shift_spread,
            "d_abs2": _MEAN_ABS * shift_spread,
        }
        # a first pass over the training rows learns the spreads (and the cycle), a second
        # one, from them, the history of the raw score
        self.n_fit_ = n
        period = int(self.period_)
        if period:
            # the cycle's shape to start from: per phase, the median of the training
            # cycles around their running level
            level = _ewma(X, 1.0 / period, start)
            u = X - _before(level, start)
            cycles = -(-n // period)
            padded = np.full((cycles * period, m), np.nan)
            padded[:n] = u
            shape = np.nanmedian(padded.reshape(cycles, period, m), axis=0)
            sensors["profile"] = np.where(np.isfinite(shape), shape, 0.0)
        _, _, after = self._run(X, self._initial(sensors, mean=0.0, var=1.0))
        sensors.update({k: after[k] for k in ("r_abs1", "r_abs2", "d_abs1", "d_abs2")})
        sensors["profile"] = self._at_start(after["profile"], n)
        _, raw, after = self._run(X, self._initial(sensors, mean=0.0, var=1.0))
        short = _ewma(raw, float(self.short_rate), np.asarray(raw[0]))
        mean = float(np.median(short))
        spread = 1.4826 * float(np.median(np.abs(short - mean)))
        var = max(spread**2, float(self.min_history_std) ** 2)
        # the history learns from the training rows as it will from live ones (robustly)
        _, history = self._likelihood(raw, self._initial(sensors, mean=mean, var=var))
        # where a series starts: the first rows' level, everything else as learned
        sensors.update({k: after[k] for k in ("r_abs1", "r_abs2", "d_abs1", "d_abs2")})
        sensors["profile"] = self._at_start(after["profile"], n)
        self.start_ = {**self._initial(sensors, mean=mean, var=var), **history}
        # where the training rows end (what explain continues from)
        self.end_ = {**self.start_, **after, "seen": np.array(float(n))}
        return self

    def _at_start(self, profile: np.ndarray, n: int) -> np.ndarray:
        """A profile learned at the end of ``n`` rows, rotated to the phase of row 0."""
        period = len(profile)
        return profile[(np.arange(period) - n) % period] if period else profile

    def _initial(
        self, sensors: dict[str, np.ndarray], mean: float, var: float
    ) -> dict[str, np.ndarray]:
        period = int(getattr(self, "period_", 0))
        state = {k: np.asarray(sensors[k], dtype=np.float64).copy() for k in _SENSOR_STATE}
        state["short"] = np.array(mean)
        state["mean"] = np.array(mean)
        state["var1"] = np.array(var)
        state["var2"] = np.array(var)
        # the seasonal component of the last ``period`` rows, oldest first, and its base
        profile = sensors.get("profile")
        state["profile"] = np.zeros((period, self.n_features_in_)) if profile is None else profile
        state["base"] = np.asarray(sensors.get("base", sensors["level"]), dtype=np.float64)
        state["seen"] = np.array(0.0)
        return state

    # -- scoring ---------------------------------------------------------------------------
    def _run(
        self, X: np.ndarray, state: Carry
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Per-sensor raw terms, the raw score per row, and the sensor state after ``X``."""
        a, s, k = float(self.level_rate), float(self.spread_rate), float(self.clip)
        period = int(getattr(self, "period_", 0))
        after: dict[str, np.ndarray] = {}
        if period:
            # seasonal correction: EWMA of the residual one period back, per phase
            profile = np.asarray(state["profile"], dtype=np.float64)
            X, after["profile"], after["base"] = self._deseason(X, profile, state["base"])
        else:
            after["profile"] = np.asarray(state["profile"], dtype=np.float64)
            after["base"] = np.asarray(state["base"], dtype=np.float64)
        level = _ewma(X, a, state["level"])
        forecast = _before(level, state["level"])
        r = X - forecast
        r_abs1 = _ewma(np.abs(r), s, state["r_abs1"])
        bound = (
            k / _MEAN_ABS * np.maximum(_before(r_abs1, state["r_abs1"]), _MEAN_ABS * self.floor_)
        )
        r_abs2 = _ewma(np.minimum(np.abs(r), bound), s, state["r_abs2"])
        sigma = np.maximum(_before(r_abs2, state["r_abs2"]) / _MEAN_ABS, self.floor_)
        z = r / sigma

        slow = _ewma(X, float(self.shift_rate), state["slow"])
        d = level - _before(slow, state["slow"])
        d_abs1 = _ewma(np.abs(d), s, state["d_abs1"])
        bound = (
            k / _MEAN_ABS * np.maximum(_before(d_abs1, state["d_abs1"]), _MEAN_ABS * self.floor_)
        )
        d_abs2 = _ewma(np.minimum(np.abs(d), bound), s, state["d_abs2"])
        zd = d / np.maximum(_before(d_abs2, state["d_abs2"]) / _MEAN_ABS, self.floor_)

        cap = float(self.cap)
        terms = np.minimum(np.maximum(z * z, zd * zd), cap) / X.shape[1]
        raw = terms.sum(axis=1)
        after.update(
            level=level[-1],
            slow=slow[-1],
            r_abs1=r_abs1[-1],
            r_abs2=r_abs2[-1],
            d_abs1=d_abs1[-1],
            d_abs2=d_abs2[-1],
        )
        return terms, raw, after

    def _deseason(
        self, X: np.ndarray, profile: np.ndarray, base: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``X`` minus its seasonal component one period back, the profile and base after.

        ``u = x - base`` (``base``: an EWMA over about one period); the component is the
        EWMA, phase by phase, of ``u`` (``c_t = g·u_t + (1 - g)·c_{t-P}``), computed one
        period at a time; a row is corrected by ``c_{t-P}``, learned before it."""
        period, g = len(profile), float(self.season_rate)
        level = _ewma(X, 1.0 / period, base)
        u = X - _before(level, base)
        comp = np.vstack([profile, np.empty_like(X)])  # row t of X is comp[t + period]
        for i in range(0, len(X), period):
            j = min(i + period, len(X))
            comp[i + period : j + period] = g * u[i:j] + (1.0 - g) * comp[i:j]
        return X - comp[: len(X)], comp[-period:].copy(), level[-1]

    def _likelihood(
        self, raw: np.ndarray, state: Carry
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Surprise ``-log10 Q(z)`` of each row's short average against its history."""
        h = float(self.history_rate)
        short = _ewma(raw, float(self.short_rate), np.asarray(state["short"]))
        mean = _ewma(short, h, np.asarray(state["mean"]))
        mean_before = _before(mean, np.asarray(state["mean"]))
        dev2 = (short - mean_before) ** 2
        var1 = _ewma(dev2, h, np.asarray(state["var1"]))
        bound = (float(self.clip) ** 2) * np.maximum(
            _before(var1, np.asarray(state["var1"])), float(self.min_history_std) ** 2
        )
        var2 = _ewma(np.minimum(dev2, bound), h, np.asarray(state["var2"]))
        std = np.sqrt(
            np.maximum(_before(var2, np.asarray(state["var2"])), float(self.min_history_std) ** 2)
        )
        zl = (short - mean_before) / std
        surprise = -log_ndtr(-zl) / _LN10
        after = {"short": short[-1], "mean": mean[-1], "var1": var1[-1], "var2": var2[-1]}
        return surprise, after

    def stream(self, X: np.ndarray, carry: Carry | None) -> tuple[np.ndarray, Carry]:
        """A series starts (``carry`` None) from what the training rows taught, in warm-up:
        until it has seen as many rows as the detector was fitted on, it reports the floor
        (its statistics are the training rows', not yet its own)."""
        X = self._check_input(X)
        if carry:
            state: Carry = carry
        else:
            state = self.start_
        return self._score(X, state)

    def _score(self, X: np.ndarray, state: Carry) -> tuple[np.ndarray, Carry]:
        if not len(X):
            return np.zeros((0, self.n_features_in_)), dict(state)
        terms, raw, after = self._run(X, state)
        surprise, after_l = self._likelihood(raw, state)
        seen = float(state["seen"]) + np.arange(len(X))
        score = np.where(
            seen < self.n_fit_, float(self.floor), np.maximum(surprise, float(self.floor))
        )
        total = terms.sum(axis=1, keepdims=True)
        share = np.divide(
            terms, total, out=np.full_like(terms, 1.0 / terms.shape[1]), where=total > 0
        )
        # the excess over the floor shared by the sensors' raw terms, the floor itself put
        # on the largest one: a row at the floor sums to exactly the floor (no rounding
        # that could lift it over a threshold equal to the floor)
        contributions = share * (score - float(self.floor))[:, None]
        rows = np.arange(len(X))
        contributions[rows, share.argmax(axis=1)] += float(self.floor)
        new_state = {**after, **after_l, "seen": np.array(float(state["seen"]) + len(X))}
        return contributions, {k: np.asarray(v, dtype=np.float64) for k, v in new_state.items()}

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Rows ``X`` scored as if they followed the training rows (nothing learned)."""
        return self._score(self._check_input(X), self.end_)[0]

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.explain(X).sum(axis=1)
