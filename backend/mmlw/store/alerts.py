"""Alert instances, silences and the notification outbox (deliveries and attempts).

:meth:`AlertsRepository.evaluate_all` (:meth:`~AlertsRepository.evaluate` for one rule)
is the only writer of alert state from rules: it reads a machine's open instances of
those rules, lets the pure engine decide, and writes the new states together with the
deliveries they call for, in one transaction. Concurrent evaluations of one group are
serialised optimistically (``revision``, and a unique ``open_key``): the loser re-reads
and decides again, so an event is never notified twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mmlw.alerts.config import AlertRule
from mmlw.alerts.engine import (
    AlertSnapshot,
    AlertState,
    Event,
    Evidence,
    labels_match,
    step,
)
from mmlw.errors import ConflictError, NotFound
from mmlw.schemas.alerts import (
    AlertOut,
    DeliveryAttemptOut,
    DeliveryOut,
    SilenceIn,
    SilenceOut,
)
from mmlw.schemas.resources import SensorContribution
from mmlw.store.database import Database
from mmlw.store.tables import Alert, Delivery, DeliveryAttempt, Silence

__all__ = [
    "AlertsRepository",
    "DeliveriesRepository",
    "DeliveryWork",
    "Evaluation",
    "SilencesRepository",
]

log = logging.getLogger(__name__)

_RETRIES = 8
_T = TypeVar("_T")


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation did: the instance after it, the event and its deliveries."""

    alert: AlertOut | None
    event: Event | None
    delivery_ids: list[int]


def _open_key(rule: str, machine_id: str) -> str:
    return f"{rule}/{machine_id}"


def _silenced(silences: Sequence[Silence], labels: dict[str, str], now: datetime) -> bool:
    return any(
        s.starts_at <= now < s.ends_at and labels_match(dict(s.matchers), labels) for s in silences
    )


def _active_silences(session: Session, now: datetime) -> list[Silence]:
    query = select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
    return list(session.scalars(query))


def _alert_out(row: Alert, silenced: bool) -> AlertOut:
    return AlertOut(
        id=row.id,
        rule=row.rule,
        machine_id=row.machine_id,
        severity=row.severity,
        state=row.state,  # type: ignore[arg-type]
        acknowledged=row.acknowledged_at is not None,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=row.acknowledged_at,
        ack_comment=row.ack_comment,
        silenced=silenced,
        started_at=row.started_at,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        last_active_at=row.last_active_at,
        last_notified_at=row.last_notified_at,
        last_score=row.score,
        threshold=row.threshold,
        model_version=row.model_version,
        top_sensors=[SensorContribution(sensor=s, contribution=c) for s, c in row.top_sensors],
        labels=dict(row.labels),
        summary=row.summary,
    )


def _snapshot(row: Alert) -> AlertSnapshot:
    return AlertSnapshot(
        state=AlertState(row.state),
        started_at=row.started_at,
        last_active_at=row.last_active_at,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        last_notified_at=row.last_notified_at,
        acknowledged=row.acknowledged_at is not None,
        evidence=Evidence(
            holds=True,
            summary=row.summary,
            score=row.score,
            threshold=row.threshold,
            model_version=row.model_version,
            top_sensors=tuple((s, c) for s, c in row.top_sensors),
        ),
    )


def _write(row: Alert, after: AlertSnapshot, now: datetime) -> None:
    row.state = after.state.value
    row.open_key = _open_key(row.rule, row.machine_id) if after.is_open else None
    row.started_at = after.started_at
    row.last_active_at = after.last_active_at
    row.last_evaluated_at = now
    row.fired_at = after.fired_at
    row.resolved_at = after.resolved_at
    row.last_notified_at = after.last_notified_at
    evidence = after.evidence
    row.summary = evidence.summary
    row.score = evidence.score
    row.threshold = evidence.threshold
    row.model_version = evidence.model_version
    row.top_sensors = [[s, float(c)] for s, c in evidence.top_sensors]


class AlertsRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- evaluation -------------------------------------------------------------------
    def evaluate(
        self,
        rule: AlertRule,
        machine_id: str,
        evidence: Evidence,
        now: datetime,
        channels: dict[str, str],
    ) -> Evaluation:
        """Apply ``rule``'s evidence for ``machine_id`` at ``now``; ``channels`` maps each
        notifier name to its channel (email/webhook) for the deliveries it creates."""
        (evaluation,) = self.evaluate_all(machine_id, [(rule, evidence)], now, channels)
        return evaluation

    def evaluate_all(
        self,
        machine_id: str,
        checks: Sequence[tuple[AlertRule, Evidence]],
        now: datetime,
        channels: dict[str, str],
    ) -> list[Evaluation]:
        """Apply each (rule, evidence) for ``machine_id`` at ``now`` as :meth:`evaluate`
        would, one evaluation per check in order, in one transaction: one query for the
        open instances of these rules, one for the active silences only if an instance is
        open or some evidence holds (otherwise nothing else is read, nothing written).
        When no evidence holds, a Core read of whether any of them is open comes first,
        and if none is, that is all. A concurrent writer makes the whole transaction run
        again."""
        keys = [_open_key(rule.name, machine_id) for rule, _ in checks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"each rule at most once per evaluation, got {keys}")
        if not checks:
            return []
        if not any(evidence.holds for _, evidence in checks) and not self._any_open(keys):
            # the quiet case, after nearly every predict task: with no open instance and
            # no evidence that holds, every rule's step is "nothing" (one Core read)
            return [Evaluation(alert=None, event=None, delivery_ids=[]) for _ in checks]
        return self._retrying(
            f"alert {', '.join(keys)}",
            lambda session: self._apply_all(session, machine_id, checks, keys, now, channels),
        )

    def _any_open(self, keys: Sequence[str]) -> bool:
        with self._db.engine.connect() as connection:
            found = connection.scalar(select(Alert.id).where(Alert.open_key.in_(keys)).limit(1))
        return found is not None

    def _retrying(self, what: str, work: Callable[[Session], _T]) -> _T:
        """Run ``work`` in a transaction; re-run it when a concurrent writer won."""
        for attempt in range(_RETRIES):
            try:
                with self._db.session() as session:
                    return work(session)
            except (StaleDataError, IntegrityError):
                log.debug("%s changed concurrently (try %d)", what, attempt)
        raise ConflictError(f"{what}: changed concurrently too often; try again")

    def _apply_all(
        self,
        session: Session,
        machine_id: str,
        checks: Sequence[tuple[AlertRule, Evidence]],
        keys: Sequence[str],
        now: datetime,
        channels: dict[str, str],
    ) -> list[Evaluation]:
        rows = {
            row.rule: row for row in session.scalars(select(Alert).where(Alert.open_key.in_(keys)))
        }
        # with no open instance and no evidence that holds, the engine opens nothing and
        # never asks whether it is silenced
        needs_silences = bool(rows) or any(evidence.holds for _, evidence in checks)
        silences = _active_silences(session, now) if needs_silences else []
        return [
            self._apply(
                session, rule, machine_id, evidence, now, channels, rows.get(rule.name), silences
            )
            for rule, evidence in checks
        ]

    def _apply(
        self,
        session: Session,
        rule: AlertRule,
        machine_id: str,
        evidence: Evidence,
        now: datetime,
        channels: dict[str, str],
        row: Alert | None,
        silences: Sequence[Silence],
    ) -> Evaluation:
        """Move ``rule``'s open instance ``row`` (None: there is none) and write it."""
        labels = {**rule.labels, "rule": rule.name, "machine_id": machine_id}
        labels["severity"] = rule.severity
        current = _snapshot(row) if row is not None else None
        silenced = _silenced(silences, labels, now)
        transition = step(rule.timing, current, evidence, now, silenced=silenced)
        if transition.discard and row is not None:
            session.delete(row)
            session.flush()  # before a later rule's insert, as when each rule ran alone
            return Evaluation(alert=None, event=None, delivery_ids=[])
        if transition.after is None:
            return Evaluation(alert=None, event=None, delivery_ids=[])
        if row is None:
            row = Alert(
                rule=rule.name,
                machine_id=machine_id,
                severity=rule.severity,
                labels=labels,
                acknowledged_at=None,
            )
            session.add(row)
        _write(row, transition.after, now)
        session.flush()
        delivery_ids: list[int] = []
        if transition.event is not None:
            payload = {
                **_alert_out(row, silenced).model_dump(mode="json"),
                "event": transition.event.value,
            }
            for notifier in rule.notify:
                delivery = Delivery(
                    alert_id=row.id,
                    notifier=notifier,
                    channel=channels[notifier],
                    event=transition.event.value,
                    status="queued",
                    created_at=now,
                    attempts=0,
                    payload=payload,
                )
                session.add(delivery)
                session.flush()
                delivery_ids.append(delivery.id)
        return Evaluation(_alert_out(row, silenced), transition.event, delivery_ids)

    # -- reading ----------------------------------------------------------------------
    def get(self, alert_id: int, now: datetime) -> AlertOut:
        with self._db.session() as session:
            row = session.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"alert {alert_id} not found")
            return _alert_out(row, _silenced(_active_silences(session, now), row.labels, now))

    def list(
        self,
        now: datetime,
        *,
        machine_id: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        rule: str | None = None,
        limit: int = 100,
    ) -> list[AlertOut]:
        """Newest first; ``state`` is pending, firing, resolved or open (not resolved)."""
        query = select(Alert).order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit)
        if machine_id is not None:
            query = query.where(Alert.machine_id == machine_id)
        if state == "open":
            query = query.where(Alert.state != AlertState.RESOLVED.value)
        elif state is not None:
            query = query.where(Alert.state == state)
        if severity is not None:
            query = query.where(Alert.severity == severity)
        if rule is not None:
            query = query.where(Alert.rule == rule)
        with self._db.session() as session:
            silences = _active_silences(session, now)
            return [
                _alert_out(r, _silenced(silences, r.labels, now)) for r in session.scalars(query)
            ]

    # -- operator actions -------------------------------------------------------------
    def acknowledge(self, alert_id: int, by: str, comment: str | None, now: datetime) -> AlertOut:
        def change(row: Alert) -> None:
            if row.state == AlertState.RESOLVED.value:
                raise ConflictError(f"alert {alert_id} is resolved; nothing to acknowledge")
            row.acknowledged_at, row.acknowledged_by, row.ack_comment = now, by, comment

        return self._change(alert_id, now, change)

    def unacknowledge(self, alert_id: int, now: datetime) -> AlertOut:
        def change(row: Alert) -> None:
            row.acknowledged_at, row.acknowledged_by, row.ack_comment = None, None, None

        return self._change(alert_id, now, change)

    def resolve(self, alert_id: int, by: str, comment: str | None, now: datetime) -> AlertOut:
        """Close by hand (sends nothing); if the condition still holds, the next
        evaluation opens a new instance."""

        def change(row: Alert) -> None:
            if row.state == AlertState.RESOLVED.value:
                raise ConflictError(f"alert {alert_id} is already resolved")
            row.state, row.open_key = AlertState.RESOLVED.value, None
            row.resolved_at, row.resolved_by = now, by
            if comment:
                row.ack_comment = comment

        return self._change(alert_id, now, change)

    def _change(self, alert_id: int, now: datetime, change: Callable[[Alert], None]) -> AlertOut:
        def work(session: Session) -> AlertOut:
            row = session.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"alert {alert_id} not found")
            change(row)
            session.flush()
            return _alert_out(row, _silenced(_active_silences(session, now), row.labels, now))

        return self._retrying(f"alert {alert_id}", work)

    def is_quiet(self, alert_id: int, now: datetime) -> str | None:
        """Why notifications of this alert are muted right now (None = they are not)."""
        alert = self.get(alert_id, now)
        if alert.acknowledged:
            return f"acknowledged by {alert.acknowledged_by}"
        if alert.silenced:
            return "silenced"
        return None


class SilencesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, silence: SilenceIn, now: datetime) -> SilenceOut:
        starts_at = silence.starts_at or now
        if silence.ends_at <= starts_at:
            raise ValueError("ends_at: must be after starts_at (default: now)")
        row = Silence(
            matchers=dict(silence.matchers),
            starts_at=starts_at,
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            comment=silence.comment,
            created_at=now,
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return self._out(row, now)

    def list(self, now: datetime, *, active_only: bool = False) -> list[SilenceOut]:
        query = select(Silence).order_by(Silence.id.desc())
        if active_only:
            query = query.where(Silence.starts_at <= now, Silence.ends_at > now)
        with self._db.session() as session:
            return [self._out(r, now) for r in session.scalars(query)]

    def expire(self, silence_id: int, now: datetime) -> SilenceOut:
        with self._db.session() as session:
            row = session.get(Silence, silence_id)
            if row is None:
                raise NotFound(f"silence {silence_id} not found")
            if row.ends_at > now:
                row.ends_at = max(now, row.starts_at)
            return self._out(row, now)

    @staticmethod
    def _out(row: Silence, now: datetime) -> SilenceOut:
        return SilenceOut(
            id=row.id,
            matchers=dict(row.matchers),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            created_by=row.created_by,
            comment=row.comment,
            created_at=row.created_at,
            active=row.starts_at <= now < row.ends_at,
        )


@dataclass(frozen=True)
class DeliveryWork:
    """What a notify task needs to make one attempt."""

    id: int
    alert_id: int
    notifier: str
    channel: str
    event: str
    attempt: int
    payload: dict[str, Any]


_DONE = ("delivered", "failed", "suppressed", "skipped")


class DeliveriesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def claim(self, delivery_id: int) -> DeliveryWork | None:
        """The next attempt of an unfinished delivery; None when it is already done
        (a redelivered task)."""
        with self._db.session() as session:
            row = session.get(Delivery, delivery_id)
            if row is None:
                raise NotFound(f"delivery {delivery_id} not found")
            if row.status in _DONE:
                return None
            return DeliveryWork(
                id=row.id,
                alert_id=row.alert_id,
                notifier=row.notifier,
                channel=row.channel,
                event=row.event,
                attempt=row.attempts + 1,
                payload=dict(row.payload),
            )

    def record_attempt(
        self,
        delivery_id: int,
        *,
        ok: bool,
        now: datetime,
        duration_ms: float,
        status_code: int | None = None,
        error: str | None = None,
        give_up: bool = False,
    ) -> str:
        """Log one attempt and move the delivery on; returns its new status."""
        with self._db.session() as session:
            row = session.get(Delivery, delivery_id, with_for_update=True)
            if row is None:
                raise NotFound(f"delivery {delivery_id} not found")
            row.attempts += 1
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery_id,
                    attempt=row.attempts,
                    at=now,
                    ok=ok,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            if ok:
                row.status, row.delivered_at, row.last_error = "delivered", now, None
            else:
                row.last_error = error
                row.status = "failed" if give_up else "retrying"
                if give_up:
                    row.last_error = f"gave up after {row.attempts} attempts: {error}"
            return row.status

    def suppress(self, delivery_id: int, reason: str) -> None:
        """Not sent because the alert is acknowledged or silenced."""
        self._close(delivery_id, "suppressed", reason)

    def skip(self, delivery_id: int, reason: str) -> None:
        """Not sent because its channel is off (e-mail without an SMTP host)."""
        self._close(delivery_id, "skipped", reason)

    def _close(self, delivery_id: int, status: str, reason: str) -> None:
        with self._db.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status.not_in(_DONE))
                .values(status=status, last_error=reason)
            )

    def mark_dispatched(self, delivery_ids: Sequence[int], now: datetime) -> None:
        if not delivery_ids:
            return
        with self._db.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(list(delivery_ids)))
                .values(dispatched_at=now)
            )

    def undispatched(self, older_than: datetime, limit: int = 100) -> list[int]:
        """Queued deliveries whose task was never sent (a crash between commit and send)."""
        query = (
            select(Delivery.id)
            .where(
                Delivery.status == "queued",
                Delivery.dispatched_at.is_(None),
                Delivery.created_at < older_than,
            )
            .order_by(Delivery.id)
            .limit(limit)
        )
        with self._db.session() as session:
            return list(session.scalars(query))

    def list(
        self,
        *,
        alert_id: int | None = None,
        status: str | None = None,
        delivery_id: int | None = None,
        limit: int = 100,
    ) -> list[DeliveryOut]:
        """Newest first, each with its attempts in order."""
        query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
        if delivery_id is not None:
            query = query.where(Delivery.id == delivery_id)
        if alert_id is not None:
            query = query.where(Delivery.alert_id == alert_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        with self._db.session() as session:
            rows = list(session.scalars(query))
            attempts: dict[int, list[DeliveryAttemptOut]] = {r.id: [] for r in rows}
            if rows:
                for a in session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id.in_(list(attempts)))
                    .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt)
                ):
                    attempts[a.delivery_id].append(
                        DeliveryAttemptOut(
                            attempt=a.attempt,
                            at=a.at,
                            ok=a.ok,
                            status_code=a.status_code,
                            error=a.error,
                            duration_ms=a.duration_ms,
                        )
                    )
            return [
                DeliveryOut(
                    id=r.id,
                    alert_id=r.alert_id,
                    notifier=r.notifier,
                    channel=r.channel,  # type: ignore[arg-type]
                    event=r.event,  # type: ignore[arg-type]
                    status=r.status,  # type: ignore[arg-type]
                    created_at=r.created_at,
                    delivered_at=r.delivered_at,
                    attempts=attempts[r.id],
                    last_error=r.last_error,
                )
                for r in rows
            ]

    def get(self, delivery_id: int) -> DeliveryOut:
        found = self.list(delivery_id=delivery_id, limit=1)
        if not found:
            raise NotFound(f"delivery {delivery_id} not found")
        return found[0]
