"""Train one machine's detector on a window of its stored readings and register it."""

from __future__ import annotations

import logging
import time

import numpy as np

from backend import __version__
from backend.detectors.catalog import build_detector
from backend.detectors.model import AnomalyModel
from backend.detectors.threshold import quantile_threshold
from backend.errors import InsufficientData, MMLWError
from backend.evaluation.metrics import point_counts
from backend.registry.base import CHAMPION, DatasetInfo, ModelRegistry
from backend.registry.hashing import content_hash
from backend.schemas.jobs import TrainRequest, TrainResult
from backend.settings import ModelSettings
from backend.store import Store

__all__ = ["classification_metrics", "run_train_job", "train_machine"]

log = logging.getLogger(__name__)


def classification_metrics(labels: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, false-alarm and missed-alarm rates of flags vs 0/1 labels."""
    counts = point_counts(labels, flags)
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
    }


def train_machine(
    request: TrainRequest, *, store: Store, registry: ModelRegistry, settings: ModelSettings
) -> TrainResult:
    """Fit, calibrate, log and register; the first version of a machine becomes champion."""
    store.machines.get(request.machine_id)
    values, labels = store.readings.window(
        request.machine_id, request.start, request.end, request.last_n
    )
    if not values.empty:
        complete = values.notna().all(axis=1).to_numpy()
        values = values[complete]
        labels = labels[complete] if labels is not None else None
    if len(values) < request.min_readings:
        raise InsufficientData(
            f"machine {request.machine_id!r}: {len(values)} complete readings in the window, "
            f"need at least {request.min_readings}"
        )
    detector = build_detector(request.detector, request.params)
    X = values.to_numpy(dtype=np.float64)
    started = time.perf_counter()
    detector.fit(X)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    train_scores = detector.score_samples(X)
    score_s = time.perf_counter() - started
    quantile = request.threshold_quantile or settings.threshold_quantile
    threshold = quantile_threshold(train_scores, quantile)
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
    columns = [str(c) for c in values.columns]
    dataset = DatasetInfo(
        machine_id=request.machine_id,
        start=values.index[0].isoformat(),
        end=values.index[-1].isoformat(),
        n_rows=len(values),
        columns=columns,
        content_hash=content_hash(values),
    )
    model = AnomalyModel(
        detector=detector,
        threshold=threshold,
        columns=columns,
        detector_name=request.detector,
        params=dict(request.params),
    )
    registered = registry.register(
        request.machine_id,
        model,
        params={
            "detector": request.detector,
            "threshold_quantile": quantile,
            **detector.get_params(),
        },
        metrics=metrics,
        tags={"mmlw.version": __version__, "mmlw.dataset_hash": dataset.content_hash},
        dataset=dataset,
    )
    aliases: list[str] = []
    if registry.alias_version(request.machine_id, CHAMPION) is None:
        registry.set_alias(request.machine_id, CHAMPION, registered.version)
        aliases.append(CHAMPION)
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
    )


def run_train_job(
    job_id: str, *, store: Store, registry: ModelRegistry, settings: ModelSettings
) -> TrainResult | None:
    """Run a queued train job once; a redelivery of a finished job does nothing.

    Returns the result, or None if the job failed or had already finished.
    """
    job = store.jobs.start(job_id)
    if job is None:
        log.info("train job %s already finished; skipping", job_id)
        return None
    try:
        request = TrainRequest.model_validate(job.request)
        result = train_machine(request, store=store, registry=registry, settings=settings)
    except (MMLWError, ValueError) as exc:
        store.jobs.finish(job_id, error=str(exc))
        log.warning("train job %s failed: %s", job_id, exc)
        return None
    except Exception as exc:
        store.jobs.finish(job_id, error=f"{type(exc).__name__}: {exc}")
        raise
    store.jobs.finish(job_id, result=result.model_dump(mode="json"))
    return result
