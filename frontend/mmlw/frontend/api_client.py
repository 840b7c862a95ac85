"""The dashboard's only way to the system: the backend's HTTP API, through
:class:`mmlw.client.Client`.

Reads use the dashboard's configured key (``settings.dashboard.api_key``), if any; write
calls take the operator's key explicitly, so nothing the dashboard does on its own can
change the system. Every failure is an :class:`ApiError` (``mmlw.client.ClientError``)
with the API's message and ``status`` (None when the API was not reached).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Unpack

import httpx

from mmlw.client import Client, Page
from mmlw.client import ClientError as ApiError
from mmlw.client._data import ScoresWindow, Window
from mmlw.schemas.alerts import AlertOut, SilenceOut
from mmlw.schemas.jobs import JobOut
from mmlw.schemas.resources import MachineOut, ModelVersionOut, ReadingsOut, ScoresOut
from mmlw.schemas.shadow import ShadowComparisonOut
from mmlw.settings import Settings

__all__ = ["ApiClient", "ApiError", "Page"]

MAX_LIMIT = 1_000_000
FROM_DASHBOARD = "from the dashboard"


class ApiClient:
    """Synchronous client; safe to share between the dashboard's request threads."""

    def __init__(
        self,
        base_url: str,
        *,
        read_key: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._api = Client(base_url, api_key=read_key, timeout=timeout_s, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        key = settings.dashboard.api_key
        return cls(settings.dashboard.api_url, read_key=key.get_secret_value() if key else None)

    def close(self) -> None:
        self._api.close()

    def _as(self, key: str | None) -> Client:
        """The operator's key replaces the dashboard's read key on writes."""
        return self._api.with_api_key(key or "")

    # --- reading ---------------------------------------------------------------------
    def machines(self) -> list[MachineOut]:
        return self._api.machines.list()

    def machine(self, machine_id: str) -> MachineOut:
        return self._api.machines.get(machine_id)

    def readings(self, machine_id: str, **window: Unpack[Window]) -> Page[ReadingsOut]:
        window.setdefault("limit", MAX_LIMIT)
        return self._api.readings.page(machine_id, **window)

    def scores(self, machine_id: str, **window: Unpack[ScoresWindow]) -> Page[ScoresOut]:
        window.setdefault("limit", MAX_LIMIT)
        window.setdefault("top", 0)
        return self._api.scores.page(machine_id, **window)

    def shadow(self, machine_id: str, **window: Unpack[Window]) -> ShadowComparisonOut:
        """Champion vs shadow challenger on the readings both scored (see the API)."""
        window.setdefault("limit", MAX_LIMIT)
        return self._api.scores.compare(machine_id, **window)

    def latest_scores(self, n: int) -> list[ScoresOut]:
        """Every scored machine's newest ``n`` scores, in one request."""
        return self._api.scores.latest(n)

    def models(self, machine_id: str) -> list[ModelVersionOut]:
        return self._api.models.list(machine_id)

    def jobs(self, machine_id: str | None = None, limit: int = 100) -> list[JobOut]:
        return self._api.jobs.list(machine_id, limit)

    def job(self, job_id: str) -> JobOut:
        return self._api.jobs.get(job_id)

    def alerts(
        self,
        *,
        machine_id: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        limit: int = 500,
    ) -> list[AlertOut]:
        return self._api.alerts.list(
            machine_id=machine_id, state=state, severity=severity, limit=limit
        )

    def alert(self, alert_id: int) -> AlertOut:
        return self._api.alerts.get(alert_id)

    def silences(self) -> list[SilenceOut]:
        return self._api.silences.list()

    # --- writing (the operator's key) -------------------------------------------------
    def train(self, machine_id: str, options: Mapping[str, Any], key: str | None) -> JobOut:
        return self._as(key).jobs.train(machine_id, options)

    def promote(
        self, machine_id: str, version: int | None, by: str, gated: bool, key: str | None
    ) -> dict[str, Any]:
        moved = self._as(key).models.promote(
            machine_id, by=by, version=version, gated=gated, reason=FROM_DASHBOARD
        )
        return moved.model_dump(mode="json")

    def rollback(self, machine_id: str, version: int, by: str, key: str | None) -> dict[str, Any]:
        moved = self._as(key).models.rollback(machine_id, version, by=by, reason=FROM_DASHBOARD)
        return moved.model_dump(mode="json")

    def acknowledge(self, alert_id: int, by: str, key: str | None) -> AlertOut:
        return self._as(key).alerts.acknowledge(alert_id, by=by)

    def unacknowledge(self, alert_id: int, key: str | None) -> AlertOut:
        return self._as(key).alerts.unacknowledge(alert_id)

    def resolve(self, alert_id: int, by: str, key: str | None) -> AlertOut:
        return self._as(key).alerts.resolve(alert_id, by=by)

    def silence(
        self,
        matchers: Mapping[str, str],
        ends_at: datetime,
        by: str,
        key: str | None,
        comment: str | None = None,
    ) -> SilenceOut:
        return self._as(key).silences.create(matchers, ends_at, created_by=by, comment=comment)

    def expire_silence(self, silence_id: int, key: str | None) -> None:
        self._as(key).silences.delete(silence_id)
