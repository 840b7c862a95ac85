"""Alerts as people see them: the store's records as the API's response models, each
alert with whether a silence mutes it now, and the operator actions (acknowledge,
unacknowledge, resolve) that answer with the alert as it then is.

Whether a silence mutes an alert is alerting logic (the engine's label matchers), so it
is decided here rather than by the store; the API and the CLI both read alerts through
these functions and so show the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from mmlw.alerts.engine import labels_match
from mmlw.schemas.alerts import (
    AlertOut,
    DeliveryAttemptOut,
    DeliveryOut,
    SilenceOut,
)
from mmlw.schemas.resources import SensorContribution
from mmlw.store import Store
from mmlw.store.alerts import AlertRecord
from mmlw.store.deliveries import DeliveryRecord
from mmlw.store.silences import SilenceRecord

__all__ = [
    "acknowledge",
    "alert_out",
    "delivery_out",
    "get_alert",
    "is_silenced",
    "list_alerts",
    "quiet_reason",
    "resolve",
    "silence_out",
    "unacknowledge",
]


def is_silenced(silences: Sequence[SilenceRecord], labels: Mapping[str, str]) -> bool:
    """Whether one of the ``silences`` in force mutes an alert with these labels.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> night = SilenceRecord(1, {"machine_id": "press-*"}, t, t, "bob", None, t, True)
    >>> is_silenced([night], {"machine_id": "press-2"}), is_silenced([night], {"rule": "x"})
    (True, False)
    """
    return any(s.active and labels_match(s.matchers, dict(labels)) for s in silences)


def alert_out(record: AlertRecord, silenced: bool) -> AlertOut:
    return AlertOut(
        id=record.id,
        rule=record.rule,
        machine_id=record.machine_id,
        severity=record.severity,
        state=record.state,  # type: ignore[arg-type]
        acknowledged=record.acknowledged,
        acknowledged_by=record.acknowledged_by,
        acknowledged_at=record.acknowledged_at,
        ack_comment=record.ack_comment,
        silenced=silenced,
        started_at=record.started_at,
        fired_at=record.fired_at,
        resolved_at=record.resolved_at,
        resolved_by=record.resolved_by,
        last_active_at=record.last_active_at,
        last_notified_at=record.last_notified_at,
        last_score=record.score,
        threshold=record.threshold,
        model_version=record.model_version,
        top_sensors=[SensorContribution(sensor=s, contribution=c) for s, c in record.top_sensors],
        labels=dict(record.labels),
        summary=record.summary,
    )


def silence_out(record: SilenceRecord) -> SilenceOut:
    return SilenceOut(
        id=record.id,
        matchers=dict(record.matchers),
        starts_at=record.starts_at,
        ends_at=record.ends_at,
        created_by=record.created_by,
        comment=record.comment,
        created_at=record.created_at,
        active=record.active,
    )


def delivery_out(record: DeliveryRecord) -> DeliveryOut:
    return DeliveryOut(
        id=record.id,
        alert_id=record.alert_id,
        notifier=record.notifier,
        channel=record.channel,  # type: ignore[arg-type]
        event=record.event,  # type: ignore[arg-type]
        status=record.status,
        created_at=record.created_at,
        delivered_at=record.delivered_at,
        attempts=[
            DeliveryAttemptOut(
                attempt=a.attempt,
                at=a.at,
                ok=a.ok,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in record.attempts
        ],
        last_error=record.last_error,
    )


def _seen(store: Store, records: Sequence[AlertRecord], now: datetime) -> list[AlertOut]:
    silences = store.silences.active(now) if records else []
    return [alert_out(r, is_silenced(silences, r.labels)) for r in records]


def list_alerts(
    store: Store,
    now: datetime,
    *,
    machine_id: str | None = None,
    state: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    limit: int = 100,
) -> list[AlertOut]:
    """Newest first; ``state`` is pending, firing, resolved or open (not resolved)."""
    found = store.alerts.list(
        machine_id=machine_id, state=state, severity=severity, rule=rule, limit=limit
    )
    return _seen(store, found, now)


def get_alert(store: Store, alert_id: int, now: datetime) -> AlertOut:
    (alert,) = _seen(store, [store.alerts.get(alert_id)], now)
    return alert


def acknowledge(
    store: Store, alert_id: int, by: str, comment: str | None, now: datetime
) -> AlertOut:
    """Someone is on it: no repeats and no resolved notice (ConflictError if resolved)."""
    (alert,) = _seen(store, [store.alerts.acknowledge(alert_id, by, comment, now)], now)
    return alert


def unacknowledge(store: Store, alert_id: int, now: datetime) -> AlertOut:
    (alert,) = _seen(store, [store.alerts.unacknowledge(alert_id)], now)
    return alert


def resolve(store: Store, alert_id: int, by: str, comment: str | None, now: datetime) -> AlertOut:
    """Close by hand (sends nothing); a condition that still holds opens a new alert."""
    (alert,) = _seen(store, [store.alerts.resolve(alert_id, by, comment, now)], now)
    return alert


def quiet_reason(store: Store, alert_id: int, now: datetime) -> str | None:
    """Why notifications of this alert are muted right now (None = they are not)."""
    alert = store.alerts.get(alert_id)
    if alert.acknowledged:
        return f"acknowledged by {alert.acknowledged_by}"
    if is_silenced(store.silences.active(now), alert.labels):
        return "silenced"
    return None
