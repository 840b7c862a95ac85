"""Alerts, silences and the notification delivery log.

Alerts are opened, fired and resolved by the rule engine; people acknowledge,
unacknowledge or resolve them here. Silences mute notifications of matching alerts for
a time range. Every notification attempt is in ``/deliveries``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path

from mmlw.api.deps import ROW_ID_MAX, SettingsDep, StateDep, StoreDep, row_limit
from mmlw.schemas.alerts import (
    AckRequest,
    AlertOut,
    DeliveryOut,
    DeliveryStatus,
    ResolveRequest,
    SilenceIn,
    SilenceOut,
)
from mmlw.services import alert_views
from mmlw.services.alert_views import delivery_out, silence_out
from mmlw.settings import Settings
from mmlw.store.tables import utcnow

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="alert id")]
StateFilter = Literal["pending", "firing", "resolved", "open"]
Severity = Literal["info", "warning", "critical"]


def _linked(alert: AlertOut, settings: Settings) -> AlertOut:
    return alert.model_copy(
        update={"dashboard_url": settings.dashboard.machine_url(alert.machine_id)}
    )


@router.get("/alerts")
def list_alerts(
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, row_limit(100, 1000)],
    machine_id: str | None = None,
    state: StateFilter | None = None,
    severity: Severity | None = None,
    rule: str | None = None,
) -> list[AlertOut]:
    """Newest first. ``state=open`` means pending or firing."""
    alerts = alert_views.list_alerts(
        store,
        utcnow(),
        machine_id=machine_id,
        state=state,
        severity=severity,
        rule=rule,
        limit=limit,
    )
    return [_linked(a, settings) for a in alerts]


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: AlertId, store: StoreDep, settings: SettingsDep) -> AlertOut:
    return _linked(alert_views.get_alert(store, alert_id, utcnow()), settings)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_alert(
    alert_id: AlertId, request: AckRequest, store: StoreDep, settings: SettingsDep
) -> AlertOut:
    """Someone is on it: no repeats and no resolved notice for this alert (409 if resolved)."""
    alert = alert_views.acknowledge(store, alert_id, request.by, request.comment, utcnow())
    return _linked(alert, settings)


@router.post("/alerts/{alert_id}/unacknowledge")
def unacknowledge_alert(alert_id: AlertId, store: StoreDep, settings: SettingsDep) -> AlertOut:
    return _linked(alert_views.unacknowledge(store, alert_id, utcnow()), settings)


@router.post("/alerts/{alert_id}/resolve")
def resolve_alert(
    alert_id: AlertId, request: ResolveRequest, store: StoreDep, settings: SettingsDep
) -> AlertOut:
    """Close it by hand (sends nothing); a condition that still holds opens a new alert."""
    alert = alert_views.resolve(store, alert_id, request.by, request.comment, utcnow())
    return _linked(alert, settings)


@router.get("/alerts/{alert_id}/deliveries")
def alert_deliveries(alert_id: AlertId, store: StoreDep) -> list[DeliveryOut]:
    store.alerts.get(alert_id)  # 404 for an unknown alert
    return [delivery_out(d) for d in store.deliveries.list(alert_id=alert_id, limit=1000)]


@router.get("/deliveries")
def list_deliveries(
    store: StoreDep,
    limit: Annotated[int, row_limit(100, 1000)],
    status: DeliveryStatus | None = None,
) -> list[DeliveryOut]:
    """The delivery log, newest first: every notification with every attempt."""
    return [delivery_out(d) for d in store.deliveries.list(status=status, limit=limit)]


@router.get("/silences")
def list_silences(store: StoreDep, active: bool = False) -> list[SilenceOut]:
    return [silence_out(s) for s in store.silences.list(utcnow(), active_only=active)]


@router.post("/silences", status_code=201)
def create_silence(silence: SilenceIn, store: StoreDep) -> SilenceOut:
    return silence_out(store.silences.create(silence, utcnow()))


@router.delete("/silences/{silence_id}")
def expire_silence(
    silence_id: Annotated[int, Path(ge=1, le=ROW_ID_MAX)], store: StoreDep
) -> SilenceOut:
    """End a silence now (it stays listed, inactive)."""
    return silence_out(store.silences.expire(silence_id, utcnow()))


@router.get("/alert-rules")
def list_alert_rules(state: StateDep) -> dict[str, Any]:
    """The loaded rules and notifiers (secrets masked)."""
    config = state.alerts_config
    return {
        "rules": [r.model_dump(mode="json", by_alias=True) for r in config.rules],
        "notifiers": {
            name: n.model_dump(mode="json", exclude={"secret"})
            for name, n in config.notifiers.items()
        },
    }
