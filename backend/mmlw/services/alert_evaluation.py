"""The alert state machine run against the store: the only writer of alert state from
rules.

:func:`evaluate_all` (:func:`evaluate` for one rule) reads a machine's open instances of
those rules, lets the pure engine (:func:`mmlw.alerts.engine.step`) decide, and writes
the new states together with the deliveries they call for, in one transaction
(:meth:`AlertsRepository.transaction <mmlw.store.alerts.AlertsRepository.transaction>`).
A concurrent evaluation of the same group makes the loser read and decide again, so an
event is never notified twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mmlw.alerts.config import AlertRule
from mmlw.alerts.engine import AlertSnapshot, AlertState, Event, Evidence, step
from mmlw.schemas.alerts import AlertOut
from mmlw.services.alert_views import alert_out, is_silenced
from mmlw.store.alerts import AlertProgress, AlertRecord, AlertsRepository, AlertsTransaction
from mmlw.store.silences import SilenceRecord

__all__ = ["Evaluation", "evaluate", "evaluate_all"]


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation did: the instance after it, the event and its deliveries."""

    alert: AlertOut | None
    event: Event | None
    delivery_ids: list[int]


_NOTHING = Evaluation(alert=None, event=None, delivery_ids=[])


def evaluate(
    alerts: AlertsRepository,
    rule: AlertRule,
    machine_id: str,
    evidence: Evidence,
    now: datetime,
    channels: dict[str, str],
) -> Evaluation:
    """Apply ``rule``'s evidence for ``machine_id`` at ``now``; ``channels`` maps each
    notifier name to its channel (email/webhook) for the deliveries it creates."""
    (evaluation,) = evaluate_all(alerts, machine_id, [(rule, evidence)], now, channels)
    return evaluation


def evaluate_all(
    alerts: AlertsRepository,
    machine_id: str,
    checks: Sequence[tuple[AlertRule, Evidence]],
    now: datetime,
    channels: dict[str, str],
) -> list[Evaluation]:
    """Apply each (rule, evidence) for ``machine_id`` at ``now`` as :func:`evaluate`
    would, one evaluation per check in order, in one transaction: one query for the open
    instances of these rules, one for the active silences only if an instance is open or
    some evidence holds (otherwise nothing else is read, nothing written). When no
    evidence holds, a Core read of whether any of them is open comes first, and if none
    is, that is all. A concurrent writer makes the whole transaction run again."""
    rules = [rule.name for rule, _ in checks]
    if len(set(rules)) != len(rules):
        raise ValueError(f"each rule at most once per evaluation, got {rules} on {machine_id}")
    if not checks:
        return []
    if not any(evidence.holds for _, evidence in checks) and not alerts.any_open(machine_id, rules):
        # the quiet case, after nearly every predict task: with no open instance and
        # no evidence that holds, every rule's step is "nothing" (one Core read)
        return [_NOTHING for _ in checks]
    return alerts.transaction(
        machine_id, lambda tx: _apply_all(tx, machine_id, checks, now, channels)
    )


def _apply_all(
    tx: AlertsTransaction,
    machine_id: str,
    checks: Sequence[tuple[AlertRule, Evidence]],
    now: datetime,
    channels: dict[str, str],
) -> list[Evaluation]:
    current = tx.open_alerts([rule.name for rule, _ in checks])
    # with no open instance and no evidence that holds, the engine opens nothing and
    # never asks whether it is silenced
    needs_silences = bool(current) or any(evidence.holds for _, evidence in checks)
    silences = tx.active_silences(now) if needs_silences else []
    return [
        _apply(tx, rule, machine_id, evidence, now, channels, current.get(rule.name), silences)
        for rule, evidence in checks
    ]


def _apply(
    tx: AlertsTransaction,
    rule: AlertRule,
    machine_id: str,
    evidence: Evidence,
    now: datetime,
    channels: dict[str, str],
    current: AlertRecord | None,
    silences: Sequence[SilenceRecord],
) -> Evaluation:
    """Move ``rule``'s open instance ``current`` (None: there is none) and write it."""
    labels = {**rule.labels, "rule": rule.name, "machine_id": machine_id}
    labels["severity"] = rule.severity
    silenced = is_silenced(silences, labels)
    before = snapshot(current) if current is not None else None
    transition = step(rule.timing, before, evidence, now, silenced=silenced)
    if transition.discard and current is not None:
        tx.discard(current.id)
        return _NOTHING
    if transition.after is None:
        return _NOTHING
    if current is None:
        record = tx.insert(rule.name, rule.severity, labels, progress(transition.after), now)
    else:
        record = tx.update(current.id, progress(transition.after), now)
    alert = alert_out(record, silenced)
    delivery_ids: list[int] = []
    if transition.event is not None:
        event = transition.event.value
        payload = {**alert.model_dump(mode="json"), "event": event}
        delivery_ids = [
            tx.add_delivery(record.id, notifier, channels[notifier], event, payload, now)
            for notifier in rule.notify
        ]
    return Evaluation(alert, transition.event, delivery_ids)


def snapshot(record: AlertRecord) -> AlertSnapshot:
    """What the engine needs of a stored instance."""
    return AlertSnapshot(
        state=AlertState(record.state),
        started_at=record.started_at,
        last_active_at=record.last_active_at,
        fired_at=record.fired_at,
        resolved_at=record.resolved_at,
        last_notified_at=record.last_notified_at,
        acknowledged=record.acknowledged,
        evidence=Evidence(
            holds=True,
            summary=record.summary,
            score=record.score,
            threshold=record.threshold,
            model_version=record.model_version,
            top_sensors=record.top_sensors,
        ),
    )


def progress(after: AlertSnapshot) -> AlertProgress:
    """What the store writes of an instance the engine moved."""
    evidence = after.evidence
    return AlertProgress(
        state=after.state.value,
        started_at=after.started_at,
        last_active_at=after.last_active_at,
        fired_at=after.fired_at,
        resolved_at=after.resolved_at,
        last_notified_at=after.last_notified_at,
        summary=evidence.summary,
        score=evidence.score,
        threshold=evidence.threshold,
        model_version=evidence.model_version,
        top_sensors=tuple((s, float(c)) for s, c in evidence.top_sensors),
    )
