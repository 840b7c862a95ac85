"""Alerts and what people do with them, silences, the delivery log, dead letters."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mmlw.client._http import Session, clean
from mmlw.schemas.alerts import AlertOut, DeliveryOut, SilenceOut
from mmlw.schemas.dead_letters import DeadLetterDetail, DeadLetterItem, Purged, ReplayAccepted
from mmlw.schemas.readings import ReadingsBatch

__all__ = ["Alerts", "DeadLetters", "Deliveries", "Silences"]


class Alerts:
    def __init__(self, session: Session) -> None:
        self._s = session

    def list(
        self,
        *,
        machine_id: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        rule: str | None = None,
        limit: int = 100,
    ) -> builtins.list[AlertOut]:
        """Newest first; ``state="open"`` means pending or firing."""
        filters = clean(machine_id=machine_id, state=state, severity=severity, rule=rule)
        return self._s.get(builtins.list[AlertOut], "/alerts", limit=limit, **filters)

    def get(self, alert_id: int) -> AlertOut:
        return self._s.get(AlertOut, f"/alerts/{alert_id}")

    def acknowledge(self, alert_id: int, *, by: str, comment: str | None = None) -> AlertOut:
        """Someone is on it: no repeats, no resolved notice (Conflict if resolved)."""
        return self._act(alert_id, "acknowledge", clean(by=by, comment=comment))

    def unacknowledge(self, alert_id: int) -> AlertOut:
        return self._act(alert_id, "unacknowledge", None)

    def resolve(self, alert_id: int, *, by: str, comment: str | None = None) -> AlertOut:
        """Close it by hand (sends nothing)."""
        return self._act(alert_id, "resolve", clean(by=by, comment=comment))

    def deliveries(self, alert_id: int) -> builtins.list[DeliveryOut]:
        return self._s.get(builtins.list[DeliveryOut], f"/alerts/{alert_id}/deliveries")

    def rules(self) -> dict[str, Any]:
        """The loaded rules and notifiers (secrets masked)."""
        return self._s.get(dict[str, Any], "/alert-rules")

    def _act(self, alert_id: int, action: str, body: dict[str, Any] | None) -> AlertOut:
        return self._s.post(AlertOut, f"/alerts/{alert_id}/{action}", body)


class Silences:
    def __init__(self, session: Session) -> None:
        self._s = session

    def list(self, *, active: bool = False) -> builtins.list[SilenceOut]:
        return self._s.get(builtins.list[SilenceOut], "/silences", active=active)

    def create(
        self,
        matchers: Mapping[str, str],
        ends_at: datetime,
        *,
        created_by: str,
        starts_at: datetime | None = None,
        comment: str | None = None,
    ) -> SilenceOut:
        """Mute alerts whose labels match every matcher (shell patterns) until ``ends_at``."""
        body = clean(matchers=dict(matchers), ends_at=ends_at, created_by=created_by)
        body |= clean(starts_at=starts_at, comment=comment)
        return self._s.post(SilenceOut, "/silences", body)

    def delete(self, silence_id: int) -> SilenceOut:
        """End a silence now (it stays listed, inactive)."""
        return self._s.call(SilenceOut, "DELETE", f"/silences/{silence_id}")


class Deliveries:
    def __init__(self, session: Session) -> None:
        self._s = session

    def list(self, *, status: str | None = None, limit: int = 100) -> builtins.list[DeliveryOut]:
        """Every notification with every attempt, newest first."""
        return self._s.get(builtins.list[DeliveryOut], "/deliveries", status=status, limit=limit)


class DeadLetters:
    def __init__(self, session: Session) -> None:
        self._s = session

    def list(
        self, *, limit: int = 100, include_replayed: bool = True
    ) -> builtins.list[DeadLetterItem]:
        """Rejected messages, newest first, each with the reason."""
        path = "/dead-letters"
        return self._s.get(
            builtins.list[DeadLetterItem], path, limit=limit, include_replayed=include_replayed
        )

    def get(self, dead_letter_id: int) -> DeadLetterDetail:
        return self._s.get(DeadLetterDetail, f"/dead-letters/{dead_letter_id}")

    def replay(
        self, dead_letter_id: int, body: ReadingsBatch | bytes | str | None = None
    ) -> ReplayAccepted:
        """Publish it again, or the fixed ``body`` instead (InvalidInput if still invalid)."""
        if isinstance(body, ReadingsBatch):
            body = body.to_wire()
        fixed = body.decode() if isinstance(body, bytes) else body
        path = f"/dead-letters/{dead_letter_id}/replay"
        return self._s.post(ReplayAccepted, path, clean(body=fixed))

    def purge(
        self,
        *,
        ids: builtins.list[int] | None = None,
        older_than: datetime | None = None,
        all: bool = False,
    ) -> int:
        """Delete ``all``, or those matching ``ids`` and/or ``older_than``; how many went."""
        body = clean(ids=ids, older_than=older_than, all=all)
        return self._s.post(Purged, "/dead-letters/purge", body).purged
