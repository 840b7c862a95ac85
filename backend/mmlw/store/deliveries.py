"""The notification outbox: deliveries (one notification of one alert event through one
notifier) and the log of their attempts.

Deliveries are inserted by :func:`insert_delivery` in the transaction of the alert
change that calls for them (:class:`mmlw.store.alerts.AlertsTransaction`); the
repository moves each one on as the notify task tries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mmlw.errors import NotFound
from mmlw.schemas.alerts import DeliveryStatus
from mmlw.store.database import Database
from mmlw.store.tables import Delivery, DeliveryAttempt

__all__ = [
    "DeliveriesRepository",
    "DeliveryAttemptRecord",
    "DeliveryRecord",
    "DeliveryWork",
    "insert_delivery",
]

_FINISHED = [status.value for status in DeliveryStatus if status.finished]


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


@dataclass(frozen=True)
class DeliveryAttemptRecord:
    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery with every attempt, in order."""

    id: int
    alert_id: int
    notifier: str
    channel: str
    event: str
    status: DeliveryStatus
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[DeliveryAttemptRecord]
    last_error: str | None


def insert_delivery(
    session: Session,
    *,
    alert_id: int,
    notifier: str,
    channel: str,
    event: str,
    payload: dict[str, Any],
    now: datetime,
) -> int:
    """Queue one delivery in the caller's transaction; its id."""
    delivery = Delivery(
        alert_id=alert_id,
        notifier=notifier,
        channel=channel,
        event=event,
        status=DeliveryStatus.QUEUED.value,
        created_at=now,
        attempts=0,
        payload=payload,
    )
    session.add(delivery)
    session.flush()
    return delivery.id


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
            if DeliveryStatus(row.status).finished:
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
    ) -> DeliveryStatus:
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
                status = DeliveryStatus.DELIVERED
                row.delivered_at, row.last_error = now, None
            else:
                status = DeliveryStatus.FAILED if give_up else DeliveryStatus.RETRYING
                row.last_error = error
                if give_up:
                    row.last_error = f"gave up after {row.attempts} attempts: {error}"
            row.status = status.value
            return status

    def suppress(self, delivery_id: int, reason: str) -> None:
        """Not sent because the alert is acknowledged or silenced."""
        self._close(delivery_id, DeliveryStatus.SUPPRESSED, reason)

    def skip(self, delivery_id: int, reason: str) -> None:
        """Not sent because its channel is off (e-mail without an SMTP host)."""
        self._close(delivery_id, DeliveryStatus.SKIPPED, reason)

    def _close(self, delivery_id: int, status: DeliveryStatus, reason: str) -> None:
        with self._db.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status.not_in(_FINISHED))
                .values(status=status.value, last_error=reason)
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
                Delivery.status == DeliveryStatus.QUEUED.value,
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
        status: DeliveryStatus | str | None = None,
        delivery_id: int | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]:
        """Newest first, each with its attempts in order."""
        query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
        if delivery_id is not None:
            query = query.where(Delivery.id == delivery_id)
        if alert_id is not None:
            query = query.where(Delivery.alert_id == alert_id)
        if status is not None:
            query = query.where(Delivery.status == DeliveryStatus(status).value)
        with self._db.session() as session:
            rows = list(session.scalars(query))
            attempts: dict[int, list[DeliveryAttemptRecord]] = {r.id: [] for r in rows}
            if rows:
                for a in session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id.in_(list(attempts)))
                    .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt)
                ):
                    attempts[a.delivery_id].append(
                        DeliveryAttemptRecord(
                            attempt=a.attempt,
                            at=a.at,
                            ok=a.ok,
                            status_code=a.status_code,
                            error=a.error,
                            duration_ms=a.duration_ms,
                        )
                    )
            return [
                DeliveryRecord(
                    id=r.id,
                    alert_id=r.alert_id,
                    notifier=r.notifier,
                    channel=r.channel,
                    event=r.event,
                    status=DeliveryStatus(r.status),
                    created_at=r.created_at,
                    delivered_at=r.delivered_at,
                    attempts=attempts[r.id],
                    last_error=r.last_error,
                )
                for r in rows
            ]

    def get(self, delivery_id: int) -> DeliveryRecord:
        found = self.list(delivery_id=delivery_id, limit=1)
        if not found:
            raise NotFound(f"delivery {delivery_id} not found")
        return found[0]
