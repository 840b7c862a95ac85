"""Configuration ranking: evaluate a grid of detector configs on one machine's stored
history and rank them (``mmlw tune``, ``POST /machines/{id}/tune``).

Protocol (the SKAB protocol of :mod:`mmlw.evaluation.protocol`, on one series): the
complete readings of the window, in time order, are split at ``train_fraction``; each
config is fitted on the older part, its threshold is chosen from its training scores only,
and the newer (held-out) part is scored. With labels in the held-out part, configs rank
by F1 (ties: fewer false alarms); without, by the held-out flag rate — the false-alarm
rate if those readings are normal, which is all an unlabelled history can tell.

Feature frames are computed once per distinct feature step and shared (see
:class:`~mmlw.services.tuning_plan.FeatureCache`); the result counts both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlw.errors import InsufficientData
from mmlw.messaging.dispatch import Dispatcher
from mmlw.schemas.jobs import JobKind, JobOut, TrainRequest
from mmlw.schemas.tuning import TuneRequest, TuneResult, TuneRow
from mmlw.services.tuning_plan import FeatureCache, TuneConfig, plan_configs, split_config
from mmlw.settings import Settings
from mmlw.store import Store

__all__ = [
    "create_tuning_job",
    "register_best",
    "run_tune_job",
    "run_tuning",
    "submit_tuning",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class History:
    values: pd.DataFrame
    labels: np.ndarray | None  # -1 = unknown
    n_train: int


@dataclass
class Scored:
    config: TuneConfig
    metrics: dict[str, float]
    error: str | None = None
    run_id: str | None = None


def load_history(request: TuneRequest, store: Store) -> History:
    """The window's complete readings (as a train job takes them) and the split."""
    from mmlw.services.training import complete_window

    values, labels = complete_window(request, store=store)
    return History(
        values=values,
        labels=None if labels is None else labels.to_numpy().astype(np.int64),
        n_train=int(len(values) * request.train_fraction),
    )


def _score(
    config: TuneConfig, cache: FeatureCache, history: History, quantile: float
) -> dict[str, float]:
    from mmlw.evaluation.datasets import BenchmarkFile
    from mmlw.evaluation.metrics import classification_metrics
    from mmlw.evaluation.protocol import ProtocolConfig, evaluate_file

    step, prototype = split_config(config)
    n = len(history.values)
    labels = history.labels if history.labels is not None else np.full(n, -1)
    file = BenchmarkFile(
        name=config.label,
        frame=pd.DataFrame(cache.frame(step), index=history.values.index),
        anomaly=np.clip(labels, 0, 1).astype(np.int8),
        changepoint=np.zeros(n, dtype=np.int8),
    )
    done = evaluate_file(
        file, prototype, ProtocolConfig(train_size=history.n_train, threshold_quantile=quantile)
    )
    flags = done.flags.astype(bool)
    metrics = {
        "fit_time_s": done.fit_time_s,
        "score_time_s": done.score_time_s,
        "threshold": done.threshold,
        "flag_rate": float(flags.mean()),
    }
    test_labels = labels[history.n_train :]
    known = test_labels >= 0
    if known.any():
        counts = classification_metrics(test_labels[known], flags[known])
        metrics |= {k: counts[k] for k in ("f1", "precision", "recall", "mar")}
        metrics["false_alarm_rate"] = counts["far"]
    else:
        metrics["false_alarm_rate"] = metrics["flag_rate"]
    return metrics


def _rank_key(labelled: bool) -> Callable[[Scored], tuple[float, ...]]:
    def key(s: Scored) -> tuple[float, ...]:
        if s.error is not None:
            return (1.0, 0.0, 0.0, 0.0)
        m = s.metrics
        first = -m["f1"] if labelled else m["flag_rate"]
        return (0.0, first, m["false_alarm_rate"], m["fit_time_s"])

    return key


def _rows(scored: list[Scored], labelled: bool) -> list[TuneRow]:
    metric = "f1" if labelled else "flag_rate"
    return [
        TuneRow(
            rank=rank,
            label=s.config.label,
            detector=s.config.detector,
            params=s.config.params,
            metric=s.metrics.get(metric),
            f1=s.metrics.get("f1"),
            false_alarm_rate=s.metrics.get("false_alarm_rate"),
            flag_rate=s.metrics.get("flag_rate"),
            fit_time_s=s.metrics.get("fit_time_s"),
            score_time_s=s.metrics.get("score_time_s"),
            threshold=s.metrics.get("threshold"),
            run_id=s.run_id,
            error=s.error,
        )
        for rank, s in enumerate(scored, start=1)
    ]


def run_tuning(
    request: TuneRequest,
    *,
    store: Store,
    settings: Settings,
    out: Path | None = None,
    log_mlflow: bool = True,
    on_config: Progress | None = None,
) -> TuneResult:
    """Evaluate and rank every planned config; write the chart and ``ranking.csv`` under
    ``out`` (default: ``<data dir>/tuning/<machine>-<time>``) and log a parent MLflow run
    with one child run per config. Raises ValueError for a bad grid before any work."""
    from mmlw.services.tuning_report import log_tuning, output_dir, write_outputs

    configs = plan_configs(request)
    history = load_history(request, store)
    quantile = request.threshold_quantile or settings.models.threshold_quantile
    labelled = history.labels is not None and bool((history.labels[history.n_train :] >= 0).any())
    cache = FeatureCache(history.values.to_numpy(dtype=np.float64))
    scored: list[Scored] = []
    for i, config in enumerate(configs, start=1):
        try:
            scored.append(Scored(config, _score(config, cache, history, quantile)))
        except (ArithmeticError, TypeError, ValueError) as exc:
            scored.append(Scored(config, {}, error=f"{type(exc).__name__}: {exc}"))
        if on_config is not None:
            on_config(i, len(configs))
    scored.sort(key=_rank_key(labelled))
    n_test = len(history.values) - history.n_train
    summary: dict[str, Any] = {
        "machine_id": request.machine_id,
        "metric": "f1" if labelled else "heldout_flag_rate",
        "labelled": labelled,
        "n_train": history.n_train,
        "n_test": n_test,
        "n_configs": len(configs),
        "features_computed": cache.computed,
        "features_requested": cache.requested,
    }
    directory = output_dir(settings, request.machine_id) if out is None else out
    figure = write_outputs(_rows(scored, labelled), summary, directory)
    parent = None
    if log_mlflow:
        parent = log_tuning(request, summary, scored, directory, settings, quantile)
    rows = _rows(scored, labelled)  # with the run ids
    log.info(
        "tuned %s: %d configs on %d + %d readings, %d feature frames for %d configs",
        request.machine_id,
        len(configs),
        history.n_train,
        n_test,
        cache.computed,
        cache.requested,
    )
    return TuneResult(
        **summary,
        rows=rows,
        parent_run_id=parent,
        report=str(directory / "tuning.html"),
        figure=figure,
    )


def register_best(
    request: TuneRequest, result: TuneResult, *, store: Store, dispatcher: Dispatcher
) -> JobOut:
    """Queue a normal train job for the best config, on the same window, as challenger."""
    from mmlw.services.jobs import submit_training

    best = next((r for r in result.rows if r.error is None), None)
    if best is None:
        raise InsufficientData("tuning: no config could be evaluated; nothing to register")
    reason = f"best of {result.n_configs} by {result.metric} (tuning {result.parent_run_id})"
    train = TrainRequest(
        machine_id=request.machine_id,
        detector=best.detector,
        params=best.params,
        start=request.start,
        end=request.end,
        last_n=request.last_n,
        threshold_quantile=request.threshold_quantile,
        alias="challenger",
        reason=reason[:200],
    )
    return submit_training(train, store=store, dispatcher=dispatcher)


def create_tuning_job(request: TuneRequest, *, store: Store) -> JobOut:
    """Check the grid and the machine, then record a queued tune job."""
    plan_configs(request)
    store.machines.get(request.machine_id)
    return store.jobs.create(JobKind.TUNE, request.machine_id, request.model_dump(mode="json"))


def submit_tuning(request: TuneRequest, *, store: Store, dispatcher: Dispatcher) -> JobOut:
    job = create_tuning_job(request, store=store)
    dispatcher.tune(str(job.id))
    return job


def run_tune_job(
    job_id: str, *, store: Store, settings: Settings, dispatcher: Dispatcher
) -> TuneResult | None:
    """Run a queued tune job once (a redelivery of a finished job does nothing); with
    ``register_best`` the best config is queued as a train job (``best_job_id``)."""
    from mmlw.services.jobs import run_job

    def work(job: JobOut) -> TuneResult:
        request = TuneRequest.model_validate(job.request)
        result = run_tuning(
            request,
            store=store,
            settings=settings,
            on_config=lambda done, total: store.jobs.progress(job_id, done, total),
        )
        if not request.register_best:
            return result
        trained = register_best(request, result, store=store, dispatcher=dispatcher)
        return result.model_copy(update={"best_job_id": str(trained.id)})

    return run_job(job_id, work, store=store)
