"""Scheduled retraining (Celery beat): machines whose champion is older than
``retrain_every_s`` get a new version trained on their newest readings, leaving out
readings the champion flagged and alert periods; it becomes challenger and scores in
shadow. With ``auto_promote`` a challenger that passes the promotion gate is promoted."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mmlw.errors import ConflictError, InsufficientData, NotFound
from mmlw.messaging.dispatch import Dispatcher
from mmlw.registry.base import CHALLENGER, CHAMPION, ModelRegistry
from mmlw.schemas.jobs import TrainRequest
from mmlw.services.drift import DRIFT_REASON
from mmlw.services.jobs import submit_training
from mmlw.services.lifecycle import promote
from mmlw.settings import ModelSettings
from mmlw.store import Store
from mmlw.store.tables import utcnow

__all__ = ["auto_promote", "retrain_due"]

log = logging.getLogger(__name__)


def retrain_due(
    *,
    store: Store,
    registry: ModelRegistry,
    dispatcher: Dispatcher,
    settings: ModelSettings,
    now: datetime | None = None,
) -> list[str]:
    """Queue a retrain for every machine whose champion is due; returns the job ids."""
    if settings.retrain_every_s is None:
        return []
    now = now or utcnow()
    due_before = now - timedelta(seconds=settings.retrain_every_s)
    started = []
    for machine in store.machines.list():
        versions = registry.versions(machine.id)
        champion = next((v for v in versions if CHAMPION in v.aliases), None)
        if champion is None or versions[-1].created_at > due_before:
            continue  # no model, or the newest version is recent enough
        if any(not j.state.finished for j in store.jobs.list(machine.id, limit=20)):
            continue  # one job at a time per machine
        request = TrainRequest(
            machine_id=machine.id,
            detector=champion.detector or settings.default_detector,
            last_n=settings.retrain_last_n,
            exclude_flagged=True,
            alias="challenger",
            reason=f"scheduled retrain (every {settings.retrain_every_s:g} s)",
        )
        job = submit_training(request, store=store, dispatcher=dispatcher)
        started.append(str(job.id))
        log.info("scheduled retrain of %s: job %s", machine.id, job.id)
    return started


def auto_promote(*, store: Store, registry: ModelRegistry, settings: ModelSettings) -> list[str]:
    """Promote each machine's challenger that passes the gate; returns those machines.
    Every challenger with ``auto_promote``; else (``drift.promote``) those a drift
    retrain made."""
    drift_only = not settings.auto_promote
    if drift_only and not (settings.drift.enabled and settings.drift.promote):
        return []
    promoted = []
    for machine in store.machines.list():
        challenger = registry.alias_version(machine.id, CHALLENGER)
        if challenger is None:
            continue
        if drift_only and not _made_by_drift(registry, machine.id, challenger):
            continue
        try:
            promote(
                machine.id,
                store=store,
                registry=registry,
                settings=settings.promotion,
                actor="auto-promotion",
                reason="passed the gate",
            )
        except (ConflictError, InsufficientData, NotFound) as exc:
            log.debug("%s: challenger stays: %s", machine.id, exc)
            continue
        promoted.append(machine.id)
    return promoted


def _made_by_drift(registry: ModelRegistry, machine_id: str, version: int) -> bool:
    found = [v for v in registry.versions(machine_id) if v.version == version]
    return bool(found) and found[0].tags.get("mmlw.reason", "").startswith(DRIFT_REASON)
