"""The SKAB protocol: per file, a fresh detector fitted on the first rows, test part scored.

For every file, with one fixed detector configuration for the whole benchmark:

1. split unshuffled: rows ``[0, train_size)`` train, the rest test (SKAB: 400);
2. fit a **fresh** detector on the training rows (``sklearn.base.clone`` of the prototype);
3. threshold from the training part only (:func:`training_threshold`); no test labels
   are ever used;
4. score the test rows; ``flag = score > threshold`` (strict, like scikit-learn's
   ``predict`` with ``contamination``);
5. optional smoothing of the 0/1 alarm series (:func:`smooth_flags`), then an optional
   hold (an alarm keeps firing for ``smoothing_hold`` rows, like an alert rule's
   ``keep_firing_for``);
6. changepoint predictions from the alarm series, or from their own k-of-n smoothing of
   the raw flags (:func:`changepoint_alarms`, :func:`alarm_changepoints`).

Files whose training part is shorter than ``train_size`` rows or whose test part is
empty raise ValueError naming the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from mmlw.detectors.threshold import quantile_threshold
from mmlw.evaluation.datasets import BenchmarkFile
from mmlw.evaluation.metrics import (
    NabCounts,
    PointCounts,
    nab_counts,
    nab_scores,
    point_counts,
    point_metrics,
)

__all__ = [
    "DetectorResult",
    "FileResult",
    "ProtocolConfig",
    "alarm_changepoints",
    "changepoint_alarms",
    "run_protocol",
    "smooth_flags",
    "training_threshold",
]

ThresholdRule = Literal["quantile", "quantile_multiple", "max", "mean_std"]
Smoothing = Literal["none", "rolling_median", "k_of_n"]
Edges = Literal["rising", "both"]


@dataclass(frozen=True)
class ProtocolConfig:
    """Every knob of the protocol; the defaults are our generic setting.

    * ``threshold_rule``: ``quantile`` (``threshold_quantile`` of training scores),
      ``quantile_multiple`` (that quantile times ``threshold_factor``), ``max`` (largest
      training score, times ``threshold_factor``) or ``mean_std`` (mean +
      ``threshold_factor`` * std of training scores).
    * ``smoothing``: ``rolling_median`` of ``smoothing_window`` trailing rows (first
      ``window - 1`` rows become 0, as pandas' NaN filled with 0), or ``k_of_n``: a row
      alarms when at least ``smoothing_k`` of the last ``smoothing_window`` raw flags do.
      ``smoothing_hold`` > 0 then keeps each alarm on for that many further rows.
    * ``cp_k`` / ``cp_window``: if ``cp_window > 0`` changepoints come from a k-of-n
      smoothing of the **raw** flags (``cp_k`` of the last ``cp_window``) instead of from
      the point alarms, so a hold that suits point-wise alarms does not blur the edges.
    * ``cp_rolling_max``: if ``w > 1``, a trailing rolling max over ``w`` rows is applied
      to the alarms before taking edges, with pandas' ``rolling(w).max().diff()``
      semantics: the rolled series is undefined for the first ``w - 1`` rows, so no edge
      is reported in test rows ``0 .. w-1``.
    * ``cp_edges``: ``rising`` (0->1 transitions) or ``both`` (0->1 and 1->0). Without a
      rolling max the first test row is an edge only if it alarms and edges are
      ``rising`` (the series is taken to start at 0); for ``both`` it never is (pandas
      ``diff`` gives NaN there).
    """

    train_size: int = 400
    threshold_rule: ThresholdRule = "quantile"
    threshold_quantile: float = 0.99
    threshold_factor: float = 3.0
    smoothing: Smoothing = "none"
    smoothing_window: int = 3
    smoothing_k: int = 2
    smoothing_hold: int = 0
    cp_k: int = 1
    cp_window: int = 0
    cp_rolling_max: int = 0
    cp_edges: Edges = "rising"
    nab_window_s: float = 60.0

    def as_params(self) -> dict[str, Any]:
        """Flat ``protocol.*`` parameters for logging."""
        return {f"protocol.{k}": v for k, v in self.__dict__.items()}


def training_threshold(train_scores: np.ndarray, config: ProtocolConfig) -> float:
    """The threshold chosen from training scores only, by ``config.threshold_rule``."""
    scores = np.asarray(train_scores, dtype=np.float64)
    if config.threshold_rule in ("quantile", "quantile_multiple"):
        threshold = quantile_threshold(scores, config.threshold_quantile)
        if config.threshold_rule == "quantile":
            return threshold
        return float(threshold * config.threshold_factor)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("train_scores: need a non-empty finite array")
    if config.threshold_rule == "max":
        return float(scores.max() * config.threshold_factor)
    if config.threshold_rule == "mean_std":
        return float(scores.mean() + config.threshold_factor * scores.std())
    raise ValueError(f"threshold_rule: unknown {config.threshold_rule!r}")


def _trailing_sum(x: np.ndarray, window: int) -> np.ndarray:
    c = np.concatenate([[0], np.cumsum(x, dtype=np.int64)])
    idx = np.arange(1, len(x) + 1)
    return c[idx] - c[np.maximum(idx - window, 0)]


def smooth_flags(flags: np.ndarray, config: ProtocolConfig) -> np.ndarray:
    """The 0/1 alarm series after ``config.smoothing`` and ``smoothing_hold`` (int8)."""
    f = np.asarray(flags).astype(np.int64)
    n = int(config.smoothing_window)
    if config.smoothing == "none" or n <= 1:
        out = f > 0
    elif config.smoothing == "rolling_median":
        out = _trailing_sum(f, n) > n / 2  # median of 0/1 values over a full window
        out[: n - 1] = False
    elif config.smoothing == "k_of_n":
        out = _trailing_sum(f, n) >= int(config.smoothing_k)
    else:
        raise ValueError(f"smoothing: unknown {config.smoothing!r}")
    hold = int(config.smoothing_hold)
    if hold > 0:  # on while any alarm fired in this row or the ``hold`` rows before it
        out = _trailing_sum(out.astype(np.int64), hold + 1) > 0
    return out.astype(np.int8)


def changepoint_alarms(flags: np.ndarray, alarms: np.ndarray, config: ProtocolConfig) -> np.ndarray:
    """The series changepoints are taken from: ``alarms``, or (``cp_window > 0``) the raw
    ``flags`` with ``cp_k`` of the last ``cp_window`` set."""
    if int(config.cp_window) <= 0:
        return np.asarray(alarms).astype(np.int8)
    sums = _trailing_sum(np.asarray(flags).astype(np.int64), int(config.cp_window))
    return (sums >= int(config.cp_k)).astype(np.int8)


def alarm_changepoints(alarms: np.ndarray, config: ProtocolConfig) -> np.ndarray:
    """Predicted changepoints (0/1 per row) from the alarm series, as documented above."""
    a = np.asarray(alarms).astype(np.int8)
    w = int(config.cp_rolling_max)
    if w > 1:
        a = (_trailing_sum(a, w) > 0).astype(np.int8)
    diff = np.diff(a.astype(np.int16), prepend=0)
    if config.cp_edges == "rising":
        edges = (diff > 0).astype(np.int8)
    elif config.cp_edges == "both":
        edges = (diff != 0).astype(np.int8)
        edges[:1] = 0
    else:
        raise ValueError(f"cp_edges: unknown {config.cp_edges!r}")
    if w > 1:
        edges[:w] = 0  # rolling(w) is NaN for rows < w-1, so diff is NaN for rows < w
    return edges


@dataclass(frozen=True)
class FileResult:
    """One file's test part: times, labels, scores, the threshold and the predictions."""

    name: str
    times: pd.DatetimeIndex
    anomaly: np.ndarray
    changepoint: np.ndarray
    scores: np.ndarray
    threshold: float
    flags: np.ndarray
    pred_cp: np.ndarray
    counts: PointCounts
    nab: NabCounts
    fit_time_s: float = 0.0
    score_time_s: float = 0.0  # scoring the test rows


@dataclass
class DetectorResult:
    """All files of one detector configuration, and the benchmark metrics over them."""

    label: str
    detector: str
    params: dict[str, Any]
    config: ProtocolConfig
    files: list[FileResult] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """F1, FAR %, MAR % (micro-averaged) and NAB scores (summed raw, then normalised)."""
        counts = sum((f.counts for f in self.files), PointCounts())
        out = point_metrics(counts)
        out.update(nab_scores([f.nab for f in self.files]))
        out.update(tp=counts.tp, fp=counts.fp, fn=counts.fn, tn=counts.tn)
        return out


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    if not len(index):
        return np.zeros(0)
    return np.asarray((index - index[0]).total_seconds(), dtype=np.float64)


def evaluate_file(
    file: BenchmarkFile, prototype: BaseEstimator, config: ProtocolConfig
) -> FileResult:
    """The protocol on one file with a fresh clone of ``prototype``."""
    n = int(config.train_size)
    if len(file.frame) <= n:
        raise ValueError(f"{file.name}: {len(file.frame)} rows, need more than {n} (train_size)")
    X = file.frame.to_numpy(dtype=np.float64)
    started = time.perf_counter()
    detector = clone(prototype).fit(X[:n])
    fit_s = time.perf_counter() - started
    threshold = training_threshold(detector.anomaly_score(X[:n]), config)
    started = time.perf_counter()
    scores = np.asarray(detector.anomaly_score(X[n:]), dtype=np.float64)
    score_s = time.perf_counter() - started
    flags = scores > threshold
    alarms = smooth_flags(flags, config)
    pred_cp = alarm_changepoints(changepoint_alarms(flags, alarms, config), config)
    times = file.frame.index[n:]
    anomaly, cp = file.anomaly[n:], file.changepoint[n:]
    return FileResult(
        name=file.name,
        times=pd.DatetimeIndex(times),
        anomaly=anomaly,
        changepoint=cp,
        scores=scores,
        threshold=threshold,
        flags=alarms,
        pred_cp=pred_cp,
        counts=point_counts(anomaly, alarms),
        nab=nab_counts(_seconds(pd.DatetimeIndex(times)), cp, pred_cp, config.nab_window_s),
        fit_time_s=fit_s,
        score_time_s=score_s,
    )


def run_protocol(
    files: Iterable[BenchmarkFile],
    detector: str,
    params: Mapping[str, Any] | None = None,
    config: ProtocolConfig | None = None,
    *,
    label: str | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> DetectorResult:
    """Run the protocol for one catalog detector over ``files`` (``on_file`` after each)."""
    from mmlw.detectors.catalog import build_detector

    config = config or ProtocolConfig()
    prototype = build_detector(detector, params)
    result = DetectorResult(
        label=label or detector, detector=detector, params=dict(params or {}), config=config
    )
    for file in files:
        done = evaluate_file(file, prototype, config)
        result.files.append(done)
        if on_file is not None:
            on_file(done)
    return result
