"""An online, adaptive detector with an anomaly likelihood on top of its raw score.

Every statistic keeps learning as rows arrive and is carried between parts of a series
as a handful of numbers per sensor (no trailing rows). Each stage is an exponentially
weighted moving average (EWMA) of a whole batch at once (:func:`scipy.signal.lfilter`)
that uses the *previous* row's value of the stage before it, so serving, evaluation and
any batching score a series identically.

With two or more sensors, the stages see each sensor's reading minus what the other
sensors predict for it (:class:`~mmlw.detectors.cross_sensor.CrossSensorResidual`,
``cross_sensor``): a machine moving to another operating point moves its sensors together
and stays normal; one sensor leaving the others does not. Per sensor, in time order:

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
the floor itself, so one threshold means the same tail probability on every stream. With
two or more sensors a channel watches the worst sensor (``worst_sensor``), with three or
more one the roughness of each sensor's raw readings (``roughness``), so that one sensor's
fault is not averaged away among the others (:mod:`~mmlw.detectors._channels`).

**Alarms are held** (``hold``): from the row after a reading scores above the floor, the
series is in alarm, and its readings are not learned from (only the fast level follows
them), so a level shift, a drift or a stuck sensor keeps scoring while it lasts. The
alarm ends when the readings are back near the level before it: one reading within
``release`` (squared spreads from the slow level, on every sensor) after a large shift
(``large_shift`` times that) or a short burst (``level_release_after`` rows); a smaller
shift, with many normal-looking single readings, also needs the fast level back within
``level_release`` (:mod:`~mmlw.detectors.held_alarms`). After an episode (longer than
``blip_rows``) nothing learned during it is kept and the fast level returns to the slow
one, which re-learns where the machine is now (what it knew weighs as
``after_episode_rows`` readings); after a blip the score history keeps what it learned
about the blip's size, so a stream's usual blips stop alarming. An alarm that outlasts
``regime_rows`` rows is a new regime: the series continues from a copy of its state that
kept learning throughout. All of it is in the carry, so any batching scores the same.

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(600, 2))
>>> det = AdaptiveDetector().fit(X[:300])
>>> scores, carry = det.stream(X[300:], None)
>>> bool(np.allclose(scores.sum(axis=1), det.floor))  # stationary: never above the floor
True
>>> spike = X[300:400].copy(); spike[50, 1] += 12.0
>>> bool(det.anomaly_score(spike)[50:56].max() > 2 * det.floor)
True
>>> shift = X[300:500].copy(); shift[50:150, 0] += 8.0  # a fault of 100 rows
>>> flagged = det.anomaly_score(shift) > det.floor
>>> bool(flagged[55:150].all()), bool(flagged[160:].any())  # held while it lasts, then over
(True, False)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mmlw.detectors import _worst_sensor as _worst
from mmlw.detectors._channels import Channels
from mmlw.detectors._online import MEAN_ABS as _MEAN_ABS
from mmlw.detectors._online import before as _before
from mmlw.detectors._online import catching_up
from mmlw.detectors._online import ewma as _ewma
from mmlw.detectors._scale import scale_floor
from mmlw.detectors.base import BaseDetector, Carry, as_matrix
from mmlw.detectors.cross_sensor import CrossSensorResidual
from mmlw.detectors.held_alarms import HISTORY, HeldAlarms
from mmlw.detectors.likelihood import robust_start, surprise_of
from mmlw.detectors.seasonality import deseason, dominant_period

__all__ = ["AdaptiveDetector", "dominant_period"]

#: the carry's per-sensor state
_SENSOR_STATE = ("level", "slow", "r_abs1", "r_abs2", "d_abs1", "d_abs2")
#: parameters in (0, 1], positive, and at least a value
_RATES = ("level_rate", "spread_rate", "shift_rate", "short_rate", "history_rate", "season_rate")
_POSITIVE = ("clip", "floor", "min_history_std", "release")
_AT_LEAST = {"level_release": 0, "large_shift": 0, "level_release_after": 0, "blip_rows": 0}
_AT_LEAST |= {"after_episode_rows": 1, "regime_rows": 1}


class AdaptiveDetector(Channels, HeldAlarms, BaseDetector):
    """Forecast residuals and level changes per sensor as an anomaly likelihood, alarms
    held while they last (see the module docstring). Parameters are rates, multiples or
    row counts, the same for any stream; ``floor`` is the surprise (``-log10`` tail)."""

    rowwise: ClassVar[bool] = False
    history_keys: ClassVar[tuple[str, ...]] = HISTORY + _worst.KEYS

    def __init__(
        self,
        level_rate: float = 0.2,
        spread_rate: float = 0.005,
        shift_rate: float = 0.005,
        short_rate: float = 0.3,
        history_rate: float = 0.0005,
        season: int | str = "auto",
        season_rate: float = 0.1,
        clip: float = 6.0,
        cap: float = 100.0,
        floor: float = 6.0,
        min_history_std: float = 0.05,
        cross_sensor: bool = True,
        cross_ridge: float = 1e-4,
        hold: bool = True,
        release: float = 12.0,
        level_release: float = 16.0,
        large_shift: float = 4.0,
        level_release_after: int = 1,
        regime_rows: int = 500,
        blip_rows: int = 8,
        after_episode_rows: int = 10,
        worst_sensor: bool = True,
        roughness: bool = True,
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
        self.cross_sensor = cross_sensor
        self.cross_ridge = cross_ridge
        self.hold = hold
        self.release = release
        self.level_release = level_release
        self.large_shift = large_shift
        self.level_release_after = level_release_after
        self.regime_rows = regime_rows
        self.blip_rows = blip_rows
        self.after_episode_rows = after_episode_rows
        self.worst_sensor = worst_sensor
        self.roughness = roughness
        self.eps = eps

    # -- fitting: the state a series starts from -----------------------------------------
    def _check_params(self) -> None:
        for name in _RATES:
            if not 0.0 < float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name}: {getattr(self, name)!r} not in (0, 1]")
        for name in _POSITIVE:
            if float(getattr(self, name)) <= 0.0:
                raise ValueError(f"{name}: {getattr(self, name)!r} must be positive")
        for name, low in _AT_LEAST.items():
            if float(getattr(self, name)) < low:
                raise ValueError(f"{name}: {getattr(self, name)!r} must be >= {low}")

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> AdaptiveDetector:
        self._check_params()
        X = as_matrix(X)
        if not len(X):
            raise ValueError("X: need at least one row")
        n, m = X.shape
        self.n_features_in_ = m
        self.cross_ = (
            CrossSensorResidual.fit(X, float(self.cross_ridge), float(self.eps))
            if self.cross_sensor and m > 1
            else None
        )
        self._fit_roughness(X)
        X = self._inputs(X)
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
        after = self._run(X, self._initial(sensors, mean=0.0, var=1.0), learn=True)[3]
        sensors.update({k: after[k] for k in ("r_abs1", "r_abs2", "d_abs1", "d_abs2")})
        sensors["profile"] = self._at_start(after["profile"], n)
        initial = self._initial(sensors, mean=0.0, var=1.0)
        terms, raw, _, after = self._run(X, initial, learn=True)
        short = _ewma(raw, float(self.short_rate), np.asarray(raw[0]))
        mean, var = robust_start(short, float(self.min_history_std))
        # the history learns from the training rows as it will from live ones (robustly)
        _, history = self._likelihood(raw, self._initial(sensors, mean=mean, var=var), True)
        # where a series starts: the first rows' level, everything else as learned
        sensors.update({k: after[k] for k in ("r_abs1", "r_abs2", "d_abs1", "d_abs2")})
        sensors["profile"] = self._at_start(after["profile"], n)
        start_state = {**self._initial(sensors, mean=mean, var=var), **history}
        if self.worst_sensor and m > 1:
            start_state.update(
                _worst.fit_state(terms, cap=float(self.cap), **self._channel_options(True))
            )
        self.start_ = self._with_shadow(start_state, alarm=0.0, alarm_rows=0.0)
        # where the training rows end (what explain continues from)
        end_state = {**start_state, **after, "seen": np.array(float(n))}
        self.end_ = self._with_shadow(end_state, alarm=0.0, alarm_rows=0.0)
        self._start_roughness(self.start_, self.end_)
        return self

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        """What the stages see: each sensor against the others, or the readings."""
        cross = getattr(self, "cross_", None)
        return X if cross is None else cross.transform(X)

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
        state["catch"] = np.array(float(round(1.0 / float(self.shift_rate))))
        return state

    # -- scoring ---------------------------------------------------------------------------
    def _run(
        self, X: np.ndarray, state: Carry, learn: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Per-sensor raw terms, the raw score per row, each row's deviation from the slow
        level (two columns: the reading's and the fast level's, largest over sensors, in
        squared spreads), and the sensor state after ``X``.
        Without ``learn`` only the fast level moves (slow level, spreads, cycle frozen)."""
        a, k = float(self.level_rate), float(self.clip)
        s = float(self.spread_rate) if learn else 0.0
        period = int(getattr(self, "period_", 0))
        after: dict[str, np.ndarray] = {}
        if period:
            # seasonal correction: EWMA of the residual one period back, per phase
            profile = np.asarray(state["profile"], dtype=np.float64)
            X, after["profile"], after["base"] = deseason(
                X, profile, state["base"], float(self.season_rate), learn
            )
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

        slow, after["catch"] = self._slow(X, state, learn)
        d = level - _before(slow, state["slow"])
        d_abs1 = _ewma(np.abs(d), s, state["d_abs1"])
        bound = (
            k / _MEAN_ABS * np.maximum(_before(d_abs1, state["d_abs1"]), _MEAN_ABS * self.floor_)
        )
        d_abs2 = _ewma(np.minimum(np.abs(d), bound), s, state["d_abs2"])
        zd = d / np.maximum(_before(d_abs2, state["d_abs2"]) / _MEAN_ABS, self.floor_)

        cap = float(self.cap)
        # each sensor's term (uncapped: it says which sensors to blame), the raw score
        # from the capped ones (no single sensor outweighs ``cap``)
        terms = np.maximum(z * z, zd * zd) / X.shape[1]
        raw = np.minimum(terms, cap / X.shape[1]).sum(axis=1)
        # how far each reading is from the slow level (the level before an alarm): the
        # largest over sensors of its squared distance in units of the point and level
        # spreads (one sensor still off keeps an alarm on)
        scale2 = sigma**2 + (_before(d_abs2, state["d_abs2"]) / _MEAN_ABS) ** 2
        reading = ((X - _before(slow, state["slow"])) ** 2 / scale2).max(axis=1)
        # and how far the fast level is from it, in the level's spreads
        dev = np.column_stack([reading, (zd * zd).max(axis=1)])
        after.update(
            level=level[-1],
            slow=slow[-1],
            r_abs1=r_abs1[-1],
            r_abs2=r_abs2[-1],
            d_abs1=d_abs1[-1],
            d_abs2=d_abs2[-1],
        )
        return terms, raw, dev, after

    def _slow(self, X: np.ndarray, state: Carry, learn: bool) -> tuple[np.ndarray, np.ndarray]:
        """The slow level after each row and the rows it weighs (:func:`catching_up`)."""
        rate = float(self.shift_rate) if learn else 0.0
        full = round(1.0 / float(self.shift_rate))
        catch = int(np.asarray(state.get("catch", full)))
        return catching_up(X, np.asarray(state["slow"]), rate, catch, full)

    def _after_episode(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """After an episode: the level before it, a slow level that re-learns where the
        machine is now (:func:`~mmlw.detectors._online.catching_up`; models saved before
        ``after_episode_rows`` existed go on as they did), fresh worst-sensor averages."""
        rows = getattr(self, "after_episode_rows", None)
        state = super()._after_episode(state)
        if "tshort" in state:  # the worst sensor's averages start afresh
            state = {**state, "tshort": np.ones_like(state["tshort"])}
        if rows is None:
            return state
        return {**state, "catch": np.array(float(rows))}

    def _likelihood(
        self, raw: np.ndarray, state: Carry, learn: bool
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The anomaly likelihood's surprise of each row (frozen without ``learn``)."""
        return surprise_of(
            raw,
            state,
            short_rate=float(self.short_rate),
            history_rate=float(self.history_rate) if learn else 0.0,
            clip=float(self.clip),
            min_std=float(self.min_history_std),
        )

    def _pass(
        self, X: np.ndarray, state: Carry, learn: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Terms, surprise and deviation (see :meth:`_run`) of rows ``X`` from ``state`` (no
        alarm keys) and that state after them; with the worst sensor's keys, both channels'."""
        terms, raw, dev, after = self._run(X, state, learn)
        surprise, after_l = self._likelihood(raw, state, learn)
        seen = np.array(float(state["seen"]) + len(X))
        if "tshort" in state:
            options = self._channel_options(learn)
            worst, after_w = _worst.surprise_of_worst(terms, state, cap=float(self.cap), **options)
            surprise = np.maximum(surprise, worst)
            after_l.update(after_w)
        return terms, surprise, dev, {**after, **after_l, "seen": seen}

    def stream(self, X: np.ndarray, carry: Carry | None) -> tuple[np.ndarray, Carry]:
        """A series starts (``carry`` None) from what the training rows taught, in warm-up:
        until it has seen as many rows as the detector was fitted on, it reports the floor
        (its statistics are the training rows', not yet its own)."""
        raw, carry = self._check_input(X), carry if carry else self.start_
        return self._with_roughness(raw, carry, *self._score(self._inputs(raw), self._held(carry)))

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Rows ``X`` scored as if they followed the training rows."""
        raw = self._check_input(X)
        scored = self._score(self._inputs(raw), self._held(self.end_))
        return self._with_roughness(raw, self.end_, *scored)[0]

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self.explain(X).sum(axis=1)
