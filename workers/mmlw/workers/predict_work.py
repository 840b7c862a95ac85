"""The work of scoring stored batches, one function for both of its callers: the scorer
that owns a partition (:mod:`mmlw.workers.consumers.scorer`, live readings) and the
Celery predict task (backfills and imports, pinned to a version)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mmlw.observability.metrics import instruments
from mmlw.services.alerting import evaluate_machines
from mmlw.services.drift import observe_many as observe_drift
from mmlw.services.scoring import alerting_machines, drift_inputs, score_batches, score_ratios
from mmlw.workers.context import WorkerContext

__all__ = ["predict_batches"]

log = logging.getLogger(__name__)


def predict_batches(
    ctx: WorkerContext, batch_ids: Sequence[int], version: int | None = None
) -> dict[str, object]:
    """Stream the named stored batches (and their machines' earlier unstreamed ones) with
    each machine's champion -- or the given champion ``version``, for backfills -- then
    run each machine's drift test and alert rules once for all of its batches (not for
    backfills: they score history), all machines' together: the number of queries does
    not grow with the machines a message names. Idempotent: a batch is streamed once,
    whoever asks."""
    with instruments().predict_seconds.time():
        outcomes = score_batches(
            list(batch_ids),
            store=ctx.store,
            models=ctx.models,
            version=version,
            extra_sensors=ctx.settings.models.extra_sensors,
        )
    log.debug("predict batches %s (version %s): %s", batch_ids, version, outcomes)
    if version is None:  # per round, whatever the number of machines (issue 24)
        observe_drift(
            drift_inputs(outcomes),
            store=ctx.store,
            dispatcher=ctx.dispatcher,
            settings=ctx.settings.models.drift,
        )
        evaluate_machines(
            alerting_machines(outcomes),
            store=ctx.store,
            config=ctx.alerts_config,
            dispatcher=ctx.dispatcher,
            ratios=score_ratios(outcomes),
        )
    return {
        "status": [o.status for o in outcomes],
        "n": sum(o.n for o in outcomes),
        "flagged": sum(o.n_flagged for o in outcomes),
    }
