"""Train one machine's detector on a window of its stored readings and register it."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from mmlw.detectors.model import fit_model
from mmlw.errors import InsufficientData
from mmlw.evaluation.metrics import classification_metrics
from mmlw.registry.base import DatasetInfo, ModelRegistry
from mmlw.registry.hashing import content_hash
from mmlw.schemas.jobs import JobOut, TrainRequest, TrainResult
from mmlw.services.jobs import run_job
from mmlw.services.lifecycle import assign_new_version
from mmlw.settings import ModelSettings
from mmlw.store import Store
from mmlw.store.tables import utcnow
from mmlw.version import __version__

__all__ = ["complete_window", "run_train_job", "train_machine"]

log = logging.getLogger(__name__)


def train_machine(
    request: TrainRequest, *, store: Store, registry: ModelRegistry, settings: ModelSettings
) -> TrainResult:
    """Fit, calibrate, log and register; the first version of a machine becomes champion."""

    def flagged(index: pd.DatetimeIndex) -> np.ndarray:
        return _flagged_or_alerting(store, request.machine_id, index)

    values, labels = complete_window(
        request, store=store, exclude=flagged if request.exclude_flagged else None
    )
    X = values.to_numpy(dtype=np.float64)
    columns = [str(c) for c in values.columns]
    quantile = request.threshold_quantile or settings.threshold_quantile
    fitted = fit_model(X, columns, request.detector, request.params, quantile)
    model, train_scores = fitted.model, fitted.train_scores
    threshold, fit_s, score_s = model.threshold, fitted.fit_s, fitted.score_s
    metrics = {
        "fit_time_s": fit_s,
        "score_time_s": score_s,
        "threshold": threshold,
        "n_readings": float(len(X)),
        "train_flag_rate": float(np.mean(train_scores > threshold)),
    }
    if labels is not None and (labels >= 0).any():
        known = labels.to_numpy() >= 0
        metrics |= {
            f"train_{k}": v
            for k, v in classification_metrics(
                labels.to_numpy()[known], train_scores[known] > threshold
            ).items()
        }
    dataset = DatasetInfo(
        machine_id=request.machine_id,
        start=values.index[0].isoformat(),
        end=values.index[-1].isoformat(),
        n_rows=len(values),
        columns=columns,
        content_hash=content_hash(values),
    )
    params = {
        "detector": request.detector,
        "threshold_quantile": quantile,
        **model.detector.get_params(),  # type: ignore[attr-defined]
    }
    config_hash = _config_hash(params)
    same_as = _same_training(registry, request.machine_id, config_hash, dataset.content_hash)
    registered = registry.register(
        request.machine_id,
        model,
        params=params,
        metrics=metrics,
        tags={
            "mmlw.version": __version__,
            "mmlw.dataset_hash": dataset.content_hash,
            "mmlw.config_hash": config_hash,
            "mmlw.train_start": dataset.start,
            "mmlw.train_end": dataset.end,
            "mmlw.reason": request.reason,
            **({"mmlw.same_as": str(same_as)} if same_as is not None else {}),
        },
        dataset=dataset,
    )
    aliases = assign_new_version(
        request.machine_id,
        registered.version,
        request.alias,
        store=store,
        registry=registry,
        actor="training",
        reason=request.reason,
    )
    log.info(
        "trained %s v%d on %d readings (%s) in %.2fs",
        registered.model_name,
        registered.version,
        len(X),
        request.detector,
        fit_s,
    )
    return TrainResult(
        model_name=registered.model_name,
        version=registered.version,
        run_id=registered.run_id,
        aliases=aliases,
        threshold=threshold,
        n_readings=len(X),
        metrics=metrics,
        config_hash=config_hash,
        dataset_hash=dataset.content_hash,
        same_as=same_as,
    )


class Window(Protocol):
    """Where training data comes from (TrainRequest, TuneRequest)."""

    @property
    def machine_id(self) -> str: ...
    @property
    def start(self) -> datetime | None: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def last_n(self) -> int | None: ...
    @property
    def min_readings(self) -> int: ...


def complete_window(
    window: Window,
    *,
    store: Store,
    exclude: Callable[[pd.DatetimeIndex], np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The window's readings without a missing sensor (and without ``exclude``'s rows),
    with their labels; InsufficientData if fewer than ``min_readings`` remain."""
    store.machines.get(window.machine_id)
    values, labels = store.readings.window(
        window.machine_id, window.start, window.end, window.last_n
    )
    if not values.empty:
        keep = values.notna().all(axis=1).to_numpy()
        if exclude is not None:
            keep = keep & ~exclude(pd.DatetimeIndex(values.index))
        values = values[keep]
        labels = labels[keep] if labels is not None else None
    if len(values) < window.min_readings:
        raise InsufficientData(
            f"machine {window.machine_id!r}: {len(values)} complete readings in the window, "
            f"need at least {window.min_readings}"
        )
    return values, labels


def _config_hash(params: dict[str, object]) -> str:
    """What makes two trainings the same recipe (detector, its parameters, threshold)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _same_training(
    registry: ModelRegistry, machine_id: str, config_hash: str, dataset_hash: str
) -> int | None:
    """The newest earlier version trained with this config on this very data."""
    for version in reversed(registry.versions(machine_id)):
        tags = version.tags
        if tags.get("mmlw.config_hash") == config_hash and tags.get("dataset_hash") == dataset_hash:
            return version.version
    return None


def _flagged_or_alerting(store: Store, machine_id: str, index: pd.DatetimeIndex) -> np.ndarray:
    """Readings the champion flagged, or inside an alert of this machine."""
    drop = np.zeros(len(index), dtype=bool)
    stamps = index.as_unit("us").asi8
    for part in store.scores.query(machine_id, index[0], index[-1] + pd.Timedelta(microseconds=1)):
        flagged = part.timestamps_us[part.flags]
        drop |= np.isin(stamps, flagged)
    for alert in store.alerts.list(machine_id=machine_id, limit=1000):
        end = alert.resolved_at or utcnow()
        drop |= (index >= alert.started_at) & (index <= end)
    return drop


def run_train_job(
    job_id: str, *, store: Store, registry: ModelRegistry, settings: ModelSettings
) -> TrainResult | None:
    """Run a queued train job once; a redelivery of a finished job does nothing.

    Returns the result, or None if the job failed or had already finished.
    """

    def work(job: JobOut) -> TrainResult:
        request = TrainRequest.model_validate(job.request)
        return train_machine(request, store=store, registry=registry, settings=settings)

    return run_job(job_id, work, store=store)
