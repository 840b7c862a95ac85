"""Drift-triggered retraining: a Page-Hinkley test per machine on the champion's
log(score / threshold); when the machine's normal regime has moved (every reading now
looks anomalous to the champion, for longer than a fault lasts), retrain on the readings
since the change. The new version is challenger: it scores in shadow and becomes champion
only through the promotion gate (:func:`mmlw.services.retraining.auto_promote`).

One state per machine in the store (``drift_states``): ``watching`` -> ``detected``
(waiting until the change has lasted ``min_regime_s`` by the readings' clock and
``train_readings`` readings followed it) -> ``retraining`` (one job). A batch whose
readings are mostly back under the threshold while ``detected`` ends the episode: it was
a fault, not a regime, and the test starts afresh with nothing retrained. A new champion
version starts a fresh test. Writes are optimistic, so concurrent predict tasks of one
machine create exactly one job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mmlw.detectors.drift import PageHinkley
from mmlw.messaging.dispatch import Dispatcher
from mmlw.schemas.jobs import JobKind, JobState, TrainRequest
from mmlw.services.scoring import LoadedModel
from mmlw.settings import DriftSettings
from mmlw.store import Store
from mmlw.store.lifecycle import DriftRecord
from mmlw.store.packing import us_to_datetimes
from mmlw.store.tables import utcnow

__all__ = ["DRIFT_REASON", "LOG_RATIO_CLIP", "log_ratios", "observe", "observe_many"]

log = logging.getLogger(__name__)

#: how a drift retrain's reason (and its version's ``mmlw.reason`` tag) begins
DRIFT_REASON = "drift:"
LOG_RATIO_CLIP = 3.0  # a reading 20x over the threshold counts no more than that
MAX_REPLAY = 200_000  # stored readings re-read to place a detected change in time order


def log_ratios(scores: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    ratio = np.maximum(scores / np.maximum(threshold, np.finfo(float).tiny), 1e-6)
    return np.clip(np.log(ratio), -LOG_RATIO_CLIP, LOG_RATIO_CLIP)


def observe(
    machine_id: str,
    champion: LoadedModel,
    timestamps_us: np.ndarray,
    scores: np.ndarray,
    *,
    store: Store,
    dispatcher: Dispatcher,
    settings: DriftSettings,
) -> str | None:
    """Feed one scored batch to the machine's drift test; returns the id of a retrain
    job if this call created one."""
    if not settings.enabled:
        return None
    for _ in range(8):
        current = store.drift.get(machine_id)
        record, start_job = _next(
            current, machine_id, champion, timestamps_us, scores, store, settings
        )
        if record == current:
            return None  # waiting (for readings after the change, or for the job): no news
        saved = store.drift.save(record, expected=current)
        if saved is None:
            continue  # another task moved it first: read again
        if not start_job:
            return None
        return _start_retraining(machine_id, champion, saved, store=store, dispatcher=dispatcher)
    log.warning("drift state of %s kept changing; batch not observed", machine_id)
    return None


def observe_many(
    batches: Sequence[tuple[str, LoadedModel, np.ndarray, np.ndarray]],
    *,
    store: Store,
    dispatcher: Dispatcher,
    settings: DriftSettings,
) -> list[str]:
    """:func:`observe` of many machines' scored readings (machine, champion, times,
    scores; one item per machine) with one read of their states and one transaction
    writing those that changed, whatever the number of machines; when another process
    moved one of them first, nothing of the round is kept and each machine is observed on
    its own. Returns the ids of the retrain jobs created."""
    if not settings.enabled or not batches:
        return []
    current = store.drift.get_many([machine_id for machine_id, *_ in batches])
    changes, starts = [], []
    for machine_id, champion, timestamps_us, scores in batches:
        before = current.get(machine_id)
        record, start_job = _next(
            before, machine_id, champion, timestamps_us, scores, store, settings
        )
        if record != before:
            changes.append((record, before))
            starts.append(champion if start_job else None)
    saved = store.drift.save_many(changes)
    if saved is None:
        jobs = [observe(*batch, store=store, dispatcher=dispatcher, settings=settings)
                for batch in batches]  # fmt: skip
        return [job for job in jobs if job is not None]
    return [
        _start_retraining(record.machine_id, champion, record, store=store, dispatcher=dispatcher)
        for record, champion in zip(saved, starts, strict=True)
        if champion is not None
    ]


def _next(
    current: DriftRecord | None,
    machine_id: str,
    champion: LoadedModel,
    timestamps_us: np.ndarray,
    scores: np.ndarray,
    store: Store,
    settings: DriftSettings,
) -> tuple[DriftRecord, bool]:
    """The machine's drift state after these readings (from ``current``, or a fresh test
    for a new champion), and whether to start a retrain."""
    values = log_ratios(scores, champion.model.threshold)
    order = np.argsort(timestamps_us, kind="stable")
    if current is None or current.champion_version != champion.version:
        test = PageHinkley(settings.delta, settings.threshold, settings.min_readings)
        record = DriftRecord(
            machine_id, champion.version, test.to_dict(), "watching", None, None, utcnow()
        )
    else:
        test = PageHinkley.from_dict(current.detector)
        record = current
    return _advance(record, test, values[order], timestamps_us[order], store, settings)


def _advance(
    record: DriftRecord,
    test: PageHinkley,
    values: np.ndarray,
    timestamps_us: np.ndarray,
    store: Store,
    settings: DriftSettings,
) -> tuple[DriftRecord, bool]:
    now = utcnow()
    if record.status == "watching":
        if test.update(values, timestamps_us) and test.change_at is not None:
            # change_at is the last reading before the change: start just after it
            last_before = _change_in_time_order(store, record, test)
            change_at = us_to_datetimes(np.array([last_before + 1]))[0]
            log.warning("%s: drift detected, change began %s", record.machine_id, change_at)
            record = replace(record, status="detected", change_at=change_at)
        record = replace(record, detector=test.to_dict(), updated_at=now)
    if record.status == "detected" and record.change_at is not None:
        if len(values) and float(np.median(values)) <= 0.0:
            # the readings are back under the threshold: an episode (a fault), not a regime
            lasted = us_to_datetimes(np.array([timestamps_us[-1]]))[0] - record.change_at
            log.info(
                "%s: the change of %s ended after %.0f s: an episode, not retrained on",
                record.machine_id, record.change_at, lasted.total_seconds(),
            )  # fmt: skip
            fresh = PageHinkley(test.delta, test.threshold, test.min_n)
            return replace(
                record, status="watching", detector=fresh.to_dict(), change_at=None,
                updated_at=now,
            ), False  # fmt: skip
        newest = us_to_datetimes(np.array([timestamps_us.max()]))[0] if len(values) else None
        lasted_s = (newest - record.change_at).total_seconds() if newest is not None else 0.0
        since = store.scores.count_since(record.machine_id, record.change_at)
        if since >= settings.train_readings and lasted_s >= settings.min_regime_s:
            return replace(record, status="retraining", updated_at=now), True
    if record.status == "retraining" and record.job_id is not None:
        job = store.jobs.get(record.job_id)
        if job.state is JobState.FAILED:  # start over: watch the regime again
            fresh = PageHinkley(test.delta, test.threshold, test.min_n)
            record = replace(
                record, status="watching", detector=fresh.to_dict(), job_id=None, updated_at=now
            )
    return record, False


def _change_in_time_order(store: Store, record: DriftRecord, test: PageHinkley) -> int:
    """Where the change began, from the stored scores in time order.

    Predict tasks run concurrently, so the online test may have seen a later batch before
    an earlier one, which corrupts its estimate of *where* the statistic's minimum was
    (not *that* it crossed the threshold). Re-run the same test over this champion's
    stored scores, sorted by time (at most the newest ``MAX_REPLAY`` readings), placing the
    change where that test first detects it (:meth:`PageHinkley.locate`; scores stored
    since then must not move it); fall back to the online estimate when they are not
    there or do not set it off.
    """
    recent = store.scores.recent(record.machine_id, min(test.n, MAX_REPLAY))
    fallback = int(test.change_at) if test.change_at is not None else 0
    if recent is None:
        return fallback
    mine = recent.versions == record.champion_version
    if not mine.any():
        return fallback
    replay = PageHinkley(test.delta, test.threshold, test.min_n)
    found = replay.locate(
        log_ratios(recent.scores[mine], recent.thresholds[mine]), recent.timestamps_us[mine]
    )
    return found if found is not None else fallback


def _start_retraining(
    machine_id: str,
    champion: LoadedModel,
    record: DriftRecord,
    *,
    store: Store,
    dispatcher: Dispatcher,
) -> str:
    request = TrainRequest(
        machine_id=machine_id,
        detector=champion.model.detector_name,
        params=dict(champion.model.params),  # type: ignore[arg-type]  # stored from a TrainRequest
        start=record.change_at or utcnow(),
        alias="challenger",
        reason=f"{DRIFT_REASON} regime changed at {record.change_at:%Y-%m-%d %H:%M:%S} UTC",
    )
    job = store.jobs.create(JobKind.TRAIN, machine_id, request.model_dump(mode="json"))
    while store.drift.save(replace(record, job_id=str(job.id)), expected=record) is None:
        record = store.drift.get(machine_id) or record
    dispatcher.train(str(job.id))
    log.warning("%s: retraining on the new regime (job %s)", machine_id, job.id)
    return str(job.id)
