"""Alerting as the pipeline uses it: evaluate a machine's rules after each scored batch
(and on a periodic tick for time-based conditions), and send one delivery per call.

Deliveries are an outbox: they are written in the same transaction as the alert change
that calls for them, then handed to the ``notify`` queue; a tick re-sends any whose
hand-off was lost. Sending re-checks acknowledge/silence, so a muted alert sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from mmlw.alerts.conditions import (
    ScoredReadings,
    could_hold,
    episode_evidence,
    no_data_evidence,
    scores_evidence,
)
from mmlw.alerts.config import AlertRule, AlertsConfig, FlagsCondition, NoDataCondition
from mmlw.alerts.engine import Event, Evidence
from mmlw.alerts.notifiers import EMAIL_OFF, build_notifier
from mmlw.errors import NotFound
from mmlw.messaging.dispatch import Dispatcher
from mmlw.observability.metrics import instruments
from mmlw.schemas.alerts import DeliveryStatus
from mmlw.services.alert_evaluation import Evaluation, evaluate_all
from mmlw.services.alert_views import quiet_reason
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.store.tables import utcnow

__all__ = ["SendOutcome", "evaluate_machine", "evaluate_machines", "send_delivery", "tick"]

log = logging.getLogger(__name__)

REDISPATCH_AFTER = timedelta(seconds=60)
#: the most newly scored readings one evaluation looks back over (one large import batch
#: is judged on its newest ones)
MAX_NEW_READINGS = 10_000


def _channels(config: AlertsConfig) -> dict[str, str]:
    return {name: n.type for name, n in config.notifiers.items()}


def evaluate_machine(
    machine_id: str,
    *,
    store: Store,
    config: AlertsConfig,
    dispatcher: Dispatcher,
    now: datetime | None = None,
    new_readings: int = 1,
) -> list[Evaluation]:
    """Evaluate every rule that applies to ``machine_id`` (in one transaction) and
    dispatch what they send.

    ``new_readings``: how many readings were scored since the last evaluation (at most
    :data:`MAX_NEW_READINGS` are looked at). A rule with no open alert that held at one of
    them but not at the newest (a short episode inside a large batch) is first stepped
    with that evidence, so it fires, then with the newest readings', so it can resolve."""
    now = now or utcnow()
    rules = config.rules_for(machine_id)
    if not rules:
        return []
    new_readings = max(1, min(new_readings, MAX_NEW_READINGS))
    n = _window(rules, new_readings)
    recent = store.scores.recent(machine_id, n) if n else None
    last_received = store.machines.last_seen(machine_id) if _needs_last_seen(rules) else None
    checks = _Checks.of(rules, recent, last_received, now, new_readings)
    return _step(machine_id, checks, store, config, dispatcher, now)


def evaluate_machines(
    new_readings: Mapping[str, int],
    *,
    store: Store,
    config: AlertsConfig,
    dispatcher: Dispatcher,
    now: datetime | None = None,
    ratios: Mapping[str, np.ndarray] | None = None,
) -> dict[str, list[Evaluation]]:
    """:func:`evaluate_machine` of many machines (machine: readings scored since its last
    evaluation) in a number of queries that does not grow with the machines when they
    are quiet: one read of which have an open alert, one of their recent scores, one of
    when they were last seen; only a machine whose evidence holds or that has an open
    alert is then stepped on its own. A machine whose evaluation fails is logged and
    left for its next batch or tick; the others go on.

    ``ratios`` (machine: each new reading's score over its threshold, oldest first, for
    machines whose new readings are all known) spares the read of recent scores for a
    machine with no open alert whose new readings cannot make a score rule hold
    (:func:`~mmlw.alerts.conditions.could_hold`: with no open alert the rule did not
    hold before them, so the older readings in a window count at most ``k - 1``), and
    with no open alert there is nothing to resolve or repeat."""
    now = now or utcnow()
    rules = {m: found for m in new_readings if (found := config.rules_for(m))}
    alerting = store.alerts.machines_with_open(
        {m: [rule.name for rule in found] for m, found in rules.items()}
    )
    calm = {
        m
        for m in rules
        if ratios is not None and m in ratios and _no_rule_could_hold(rules[m], ratios[m])
    }
    rules = {m: found for m, found in rules.items() if m not in calm or m in alerting}
    new = {m: max(1, min(new_readings[m], MAX_NEW_READINGS)) for m in rules}
    windows = {m: n for m in rules if (n := _window(rules[m], new[m]))}
    recent = store.scores.recent_many(windows)
    seen = [m for m in rules if _needs_last_seen(rules[m])]
    last_seen = store.machines.last_seen_many(seen)
    checks = {m: _Checks.of(rules[m], recent.get(m), last_seen.get(m), now, new[m]) for m in rules}
    quiet = {m for m, c in checks.items() if c.quiet}
    out: dict[str, list[Evaluation]] = {}
    for machine_id, machine_checks in checks.items():
        if machine_id in quiet and machine_id not in alerting:
            continue  # nothing holds, nothing is open: every rule's step is "nothing"
        try:
            out[machine_id] = _step(machine_id, machine_checks, store, config, dispatcher, now)
        except Exception:  # the scores are stored; the next batch or tick re-evaluates
            log.exception("alert evaluation of %s failed", machine_id)
    return out


def _no_rule_could_hold(rules: Sequence[AlertRule], ratios: np.ndarray) -> bool:
    """Whether no score rule could hold at the new readings (score ratios ``ratios``)."""
    return not any(
        could_hold(rule.condition, ratios)
        for rule in rules
        if isinstance(rule.condition, FlagsCondition)
    )


def _window(rules: Sequence[AlertRule], new_readings: int) -> int:
    """How many of the newest scored readings the rules look at (0: none)."""
    n = max((r.condition.n for r in rules if isinstance(r.condition, FlagsCondition)), default=0)
    return n + new_readings - 1 if n else 0


def _needs_last_seen(rules: Sequence[AlertRule]) -> bool:
    return any(isinstance(r.condition, NoDataCondition) for r in rules)


@dataclass(frozen=True)
class _Checks:
    """A machine's rules with their evidence at the newest reading (``latest``), and the
    short episodes inside the new readings that the newest reading no longer shows."""

    latest: list[tuple[AlertRule, Evidence]]
    episodes: list[tuple[AlertRule, Evidence]]

    @classmethod
    def of(
        cls,
        rules: Sequence[AlertRule],
        recent: ScoredReadings | None,
        last_received: datetime | None,
        now: datetime,
        new_readings: int,
    ) -> _Checks:
        latest = [(rule, _evidence(rule, recent, last_received, now)) for rule in rules]
        episodes = [
            (rule, found)
            for rule, evidence in latest
            if isinstance(rule.condition, FlagsCondition)
            and (found := episode_evidence(rule.condition, recent, new_readings, evidence))
        ]
        return cls(latest, episodes)

    @property
    def quiet(self) -> bool:
        return not self.episodes and not any(evidence.holds for _, evidence in self.latest)


def _step(
    machine_id: str,
    checks: _Checks,
    store: Store,
    config: AlertsConfig,
    dispatcher: Dispatcher,
    now: datetime,
) -> list[Evaluation]:
    evaluations: list[Evaluation] = []
    episodes = checks.episodes
    if episodes:  # rare: only an episode no open alert covers needs its own step
        open_rules = {a.rule for a in store.alerts.list(machine_id=machine_id, state="open")}
        episodes = [(rule, found) for rule, found in episodes if rule.name not in open_rules]
        if episodes:
            evaluations += _apply(machine_id, episodes, store, config, dispatcher, now)
    return evaluations + _apply(machine_id, checks.latest, store, config, dispatcher, now)


def _apply(
    machine_id: str,
    checks: list[tuple[AlertRule, Evidence]],
    store: Store,
    config: AlertsConfig,
    dispatcher: Dispatcher,
    now: datetime,
) -> list[Evaluation]:
    """Step the rules with their evidence (one transaction) and dispatch what they send."""
    rules = [rule for rule, _ in checks]
    evaluations = evaluate_all(store.alerts, machine_id, checks, now, _channels(config))
    for rule, evaluation in zip(rules, evaluations, strict=True):
        if evaluation.event is not None:
            instruments().alerts_fired.labels(evaluation.event.value).inc()
            log.info(
                "alert %s on %s: %s (%d notifications)",
                rule.name,
                machine_id,
                evaluation.event.value,
                len(evaluation.delivery_ids),
            )
        _dispatch(evaluation.delivery_ids, store=store, dispatcher=dispatcher, now=now)
    return evaluations


def _evidence(
    rule: AlertRule, recent: ScoredReadings | None, last_received: datetime | None, now: datetime
) -> Evidence:
    if isinstance(rule.condition, FlagsCondition):
        return scores_evidence(rule.condition, recent)
    return no_data_evidence(rule.condition, last_received, now)


def tick(
    *, store: Store, config: AlertsConfig, dispatcher: Dispatcher, now: datetime | None = None
) -> int:
    """Evaluate every machine (time-based conditions: no data, pending periods, keep
    firing, repeats) and re-send lost hand-offs; returns how many machines."""
    now = now or utcnow()
    machines = store.machines.list()
    for machine in machines:
        evaluate_machine(machine.id, store=store, config=config, dispatcher=dispatcher, now=now)
    lost = store.deliveries.undispatched(older_than=now - REDISPATCH_AFTER)
    if lost:
        log.warning("re-sending %d notifications whose hand-off was lost", len(lost))
        _dispatch(lost, store=store, dispatcher=dispatcher, now=now)
    return len(machines)


def _dispatch(ids: list[int], *, store: Store, dispatcher: Dispatcher, now: datetime) -> None:
    for delivery_id in ids:
        dispatcher.notify(delivery_id)
    store.deliveries.mark_dispatched(ids, now)


#: what :func:`send_delivery` says of a delivery that was already finished
DONE = "done"
#: ... and of a delivery this store does not hold
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SendOutcome:
    """The delivery's status after this attempt (:data:`DONE`: it was already finished),
    and when to try again if it is to be retried."""

    status: DeliveryStatus | str
    retry_in_s: float | None = None


def send_delivery(
    delivery_id: int, *, store: Store, config: AlertsConfig, settings: Settings
) -> SendOutcome:
    """Make the next attempt of one delivery, log it, and say whether to retry when.

    A task naming a delivery this store does not hold (left in the broker's queue by a
    deployment whose database was replaced, e.g. a demo restarted with a fresh data dir)
    is dropped with a warning: there is nothing to send and nothing to retry."""
    try:
        work = store.deliveries.claim(delivery_id)
    except NotFound:
        log.warning("delivery %s is not in this store; its notify task is dropped", delivery_id)
        return SendOutcome(UNKNOWN)
    if work is None:
        return SendOutcome(DONE)
    now = utcnow()
    if work.event != Event.RESOLVED:
        reason = quiet_reason(store, work.alert_id, now)
        if reason is not None:
            store.deliveries.suppress(delivery_id, reason)
            return SendOutcome(DeliveryStatus.SUPPRESSED)
    notifier_config = config.notifiers.get(work.notifier)
    if notifier_config is None or notifier_config.type != work.channel:
        store.deliveries.record_attempt(
            delivery_id,
            ok=False,
            now=now,
            duration_ms=0.0,
            error=f"notifier {work.notifier!r} ({work.channel}) is no longer configured",
            give_up=True,
        )
        return SendOutcome(DeliveryStatus.FAILED)
    if notifier_config.type == "email" and not settings.alerts.smtp.enabled:
        store.deliveries.skip(delivery_id, EMAIL_OFF)  # not retried: nothing would change
        return SendOutcome(DeliveryStatus.SKIPPED)
    payload = {
        **work.payload,
        "dashboard_url": settings.dashboard.machine_url(work.payload["machine_id"]),
    }
    started = utcnow()
    result = build_notifier(notifier_config, settings.alerts.smtp).send(payload, delivery_id)
    give_up = not result.ok and work.attempt >= notifier_config.max_attempts
    status = store.deliveries.record_attempt(
        delivery_id,
        ok=result.ok,
        now=started,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error,
        give_up=give_up,
    )
    if not result.ok:
        instruments().notifications_failed.labels(work.channel).inc()
    if status is DeliveryStatus.RETRYING:
        log.warning(
            "notification %d via %s failed (attempt %d): %s",
            delivery_id,
            work.notifier,
            work.attempt,
            result.error,
        )
        return SendOutcome(status, notifier_config.backoff * 2 ** (work.attempt - 1))
    if status is DeliveryStatus.FAILED:
        log.error("notification %d via %s: gave up: %s", delivery_id, work.notifier, result.error)
    return SendOutcome(status)
