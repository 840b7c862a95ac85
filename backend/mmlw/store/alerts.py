"""Alert instances: reading them, operator actions, and the transaction in which the
alerting services move them (:class:`AlertsTransaction`).

The store decides nothing about alerts: which state an instance moves to, and which
notifications that calls for, is the services' work
(:mod:`mmlw.services.alert_evaluation` over the pure :mod:`mmlw.alerts.engine`). It
keeps one open instance per (rule, machine) group — ``open_key`` is unique while open —
and serialises concurrent writers of a group optimistically (``revision``): the loser's
whole transaction runs again (:meth:`AlertsRepository.transaction`), so it decides again
on what the winner wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mmlw.errors import ConflictError, NotFound
from mmlw.store.database import Database
from mmlw.store.deliveries import insert_delivery
from mmlw.store.silences import SilenceRecord, active_silences
from mmlw.store.tables import Alert

__all__ = ["RESOLVED", "AlertProgress", "AlertRecord", "AlertsRepository", "AlertsTransaction"]

log = logging.getLogger(__name__)

#: the state of a closed instance (every other state is open)
RESOLVED = "resolved"
_RETRIES = 8
_T = TypeVar("_T")


@dataclass(frozen=True)
class AlertProgress:
    """What an evaluation writes of an instance: its state and the evidence shown."""

    state: str
    started_at: datetime
    last_active_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    last_notified_at: datetime | None
    summary: str
    score: float | None
    threshold: float | None
    model_version: int | None
    top_sensors: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class AlertRecord:
    """One stored alert instance of a (rule, machine) group."""

    id: int
    rule: str
    machine_id: str
    severity: str
    labels: dict[str, str]
    state: str
    started_at: datetime
    last_active_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    last_notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    summary: str
    score: float | None
    threshold: float | None
    model_version: int | None
    top_sensors: tuple[tuple[str, float], ...]

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def is_open(self) -> bool:
        return self.state != RESOLVED


def _open_key(rule: str, machine_id: str) -> str:
    return f"{rule}/{machine_id}"


def _record(row: Alert) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        rule=row.rule,
        machine_id=row.machine_id,
        severity=row.severity,
        labels=dict(row.labels),
        state=row.state,
        started_at=row.started_at,
        last_active_at=row.last_active_at,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        last_notified_at=row.last_notified_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        ack_comment=row.ack_comment,
        summary=row.summary,
        score=row.score,
        threshold=row.threshold,
        model_version=row.model_version,
        top_sensors=tuple((str(s), float(c)) for s, c in row.top_sensors),
    )


class AlertsTransaction:
    """One transaction over a machine's alert instances, as an evaluation needs it.

    Open instances are read once (:meth:`open_alerts`) and then written by id
    (:meth:`update`, :meth:`discard`): those writes are checked against what was read, so
    a concurrent writer makes the transaction fail and run again."""

    def __init__(self, session: Session, machine_id: str) -> None:
        self._session = session
        self._machine_id = machine_id

    def open_alerts(self, rules: Sequence[str]) -> dict[str, AlertRecord]:
        """The open instance of each of ``rules`` that has one, by rule."""
        keys = [_open_key(rule, self._machine_id) for rule in rules]
        query = select(Alert).where(Alert.open_key.in_(keys))
        return {row.rule: _record(row) for row in self._session.scalars(query)}

    def active_silences(self, now: datetime) -> list[SilenceRecord]:
        return active_silences(self._session, now)

    def discard(self, alert_id: int) -> None:
        """Delete an instance that never notified (a pending one that stopped holding)."""
        row = self._row(alert_id)
        self._session.delete(row)
        self._session.flush()  # before a later rule's insert, as when each rule ran alone

    def insert(
        self,
        rule: str,
        severity: str,
        labels: dict[str, str],
        progress: AlertProgress,
        now: datetime,
    ) -> AlertRecord:
        """Open a new instance of ``rule`` on this machine; the instance as stored (a
        concurrent insert of the same group fails the transaction: ``open_key``)."""
        row = Alert(
            rule=rule,
            machine_id=self._machine_id,
            severity=severity,
            labels=labels,
            acknowledged_at=None,
        )
        self._session.add(row)
        return self._written(row, progress, now)

    def update(self, alert_id: int, progress: AlertProgress, now: datetime) -> AlertRecord:
        """Write ``progress`` to an instance read by :meth:`open_alerts`."""
        return self._written(self._row(alert_id), progress, now)

    def _written(self, row: Alert, progress: AlertProgress, now: datetime) -> AlertRecord:
        _write(row, progress, now)
        self._session.flush()
        return _record(row)

    def add_delivery(
        self,
        alert_id: int,
        notifier: str,
        channel: str,
        event: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> int:
        """Queue a notification of ``alert_id`` with this transaction (the outbox)."""
        return insert_delivery(
            self._session,
            alert_id=alert_id,
            notifier=notifier,
            channel=channel,
            event=event,
            payload=payload,
            now=now,
        )

    def _row(self, alert_id: int) -> Alert:
        row = self._session.get(Alert, alert_id)
        if row is None:
            raise NotFound(f"alert {alert_id} not found")
        return row


def _write(row: Alert, progress: AlertProgress, now: datetime) -> None:
    row.state = progress.state
    row.open_key = _open_key(row.rule, row.machine_id) if progress.state != RESOLVED else None
    row.started_at = progress.started_at
    row.last_active_at = progress.last_active_at
    row.last_evaluated_at = now
    row.fired_at = progress.fired_at
    row.resolved_at = progress.resolved_at
    row.last_notified_at = progress.last_notified_at
    row.summary = progress.summary
    row.score = progress.score
    row.threshold = progress.threshold
    row.model_version = progress.model_version
    row.top_sensors = [[s, float(c)] for s, c in progress.top_sensors]


class AlertsRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- evaluation -------------------------------------------------------------------
    def any_open(self, machine_id: str, rules: Sequence[str]) -> bool:
        """Whether any of ``rules`` has an open instance on ``machine_id`` (one Core
        read: the cheap first question of nearly every evaluation)."""
        keys = [_open_key(rule, machine_id) for rule in rules]
        with self._db.engine.connect() as connection:
            found = connection.scalar(select(Alert.id).where(Alert.open_key.in_(keys)).limit(1))
        return found is not None

    def machines_with_open(self, rules: Mapping[str, Sequence[str]]) -> set[str]:
        """Which of the machines (machine: rule names) have an open instance of one of
        their rules: :meth:`any_open` of many machines in one Core read."""
        keys = {_open_key(rule, m): m for m, names in rules.items() for rule in names}
        if not keys:
            return set()
        with self._db.engine.connect() as connection:
            found = connection.scalars(select(Alert.open_key).where(Alert.open_key.in_(keys)))
            return {keys[key] for key in found if key is not None}

    def transaction(self, machine_id: str, work: Callable[[AlertsTransaction], _T]) -> _T:
        """Run ``work`` on ``machine_id``'s alerts in one transaction; run it again from
        the start when a concurrent writer won (so ``work`` must only read and write
        through the transaction it is given)."""
        return self._retrying(
            f"alerts of {machine_id}",
            lambda session: work(AlertsTransaction(session, machine_id)),
        )

    def _retrying(self, what: str, work: Callable[[Session], _T]) -> _T:
        """Run ``work`` in a transaction; re-run it when a concurrent writer won."""
        for attempt in range(_RETRIES):
            try:
                with self._db.session() as session:
                    return work(session)
            except (StaleDataError, IntegrityError):
                log.debug("%s changed concurrently (try %d)", what, attempt)
        raise ConflictError(f"{what}: changed concurrently too often; try again")

    # -- reading ----------------------------------------------------------------------
    def get(self, alert_id: int) -> AlertRecord:
        with self._db.session() as session:
            row = session.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"alert {alert_id} not found")
            return _record(row)

    def list(
        self,
        *,
        machine_id: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        rule: str | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Newest first; ``state`` is pending, firing, resolved or open (not resolved)."""
        query = select(Alert).order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit)
        if machine_id is not None:
            query = query.where(Alert.machine_id == machine_id)
        if state == "open":
            query = query.where(Alert.state != RESOLVED)
        elif state is not None:
            query = query.where(Alert.state == state)
        if severity is not None:
            query = query.where(Alert.severity == severity)
        if rule is not None:
            query = query.where(Alert.rule == rule)
        with self._db.session() as session:
            return [_record(r) for r in session.scalars(query)]

    # -- operator actions -------------------------------------------------------------
    def acknowledge(
        self, alert_id: int, by: str, comment: str | None, now: datetime
    ) -> AlertRecord:
        def change(row: Alert) -> None:
            if row.state == RESOLVED:
                raise ConflictError(f"alert {alert_id} is resolved; nothing to acknowledge")
            row.acknowledged_at, row.acknowledged_by, row.ack_comment = now, by, comment

        return self._change(alert_id, change)

    def unacknowledge(self, alert_id: int) -> AlertRecord:
        def change(row: Alert) -> None:
            row.acknowledged_at, row.acknowledged_by, row.ack_comment = None, None, None

        return self._change(alert_id, change)

    def resolve(self, alert_id: int, by: str, comment: str | None, now: datetime) -> AlertRecord:
        """Close by hand (sends nothing); if the condition still holds, the next
        evaluation opens a new instance."""

        def change(row: Alert) -> None:
            if row.state == RESOLVED:
                raise ConflictError(f"alert {alert_id} is already resolved")
            row.state, row.open_key = RESOLVED, None
            row.resolved_at, row.resolved_by = now, by
            if comment:
                row.ack_comment = comment

        return self._change(alert_id, change)

    def _change(self, alert_id: int, change: Callable[[Alert], None]) -> AlertRecord:
        def work(session: Session) -> AlertRecord:
            row = session.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"alert {alert_id} not found")
            change(row)
            session.flush()
            return _record(row)

        return self._retrying(f"alert {alert_id}", work)
