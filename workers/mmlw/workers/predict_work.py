"""The work of scoring stored batches, one function for both of its callers: the scorer
that owns a partition (:mod:`mmlw.workers.consumers.scorer`, live readings) and the
Celery predict task (backfills and imports, pinned to a version)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mmlw.observability.metrics import instruments
from mmlw.services.alerting import evaluate_machine
from mmlw.services.drift import observe as observe_drift
from mmlw.services.scoring import alerting_machines, drift_inputs, score_batches
from mmlw.workers.context import WorkerContext

__all__ = ["predict_batches"]

log = logging.getLogger(__name__)


def predict_batches(
    ctx: WorkerContext, batch_ids: Sequence[int], version: int | None = None
) -> dict[str, object]:
    """Stream the named stored batches (and their machines' earlier unstreamed ones) with
    each machine's champion -- or the given champion ``version``, for backfills -- then
    run each machine's drift test and alert rules once for all of its batches (not for
    backfills: they score history). Idempotent: a batch is streamed once, whoever asks."""
    with instruments().predict_seconds.time():
        outcomes = score_batches(
            list(batch_ids),
            store=ctx.store,
            models=ctx.models,
            version=version,
            extra_sensors=ctx.settings.models.extra_sensors,
        )
    log.debug("predict batches %s (version %s): %s", batch_ids, version, outcomes)
    if version is None:
        for machine_id, champion, timestamps_us, scores in drift_inputs(outcomes):
            observe_drift(
                machine_id,
                champion,
                timestamps_us,
                scores,
                store=ctx.store,
                dispatcher=ctx.dispatcher,
                settings=ctx.settings.models.drift,
            )
        for machine_id, new_readings in alerting_machines(outcomes).items():
            try:
                evaluate_machine(
                    machine_id,
                    store=ctx.store,
                    config=ctx.alerts_config,
                    dispatcher=ctx.dispatcher,
                    new_readings=new_readings,
                )
            except Exception:  # the scores are stored; the next batch or tick re-evaluates
                log.exception("alert evaluation of %s after %s failed", machine_id, batch_ids)
    return {
        "status": [o.status for o in outcomes],
        "n": sum(o.n for o in outcomes),
        "flagged": sum(o.n_flagged for o in outcomes),
    }
