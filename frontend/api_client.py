"""The dashboard's only way to the system: the backend's HTTP API (``/api/v1``).

Reads use the dashboard's configured key (``settings.dashboard.api_key``), if any; write
calls take the operator's key explicitly, so nothing the dashboard does on its own can
change the system. Every failure becomes an :class:`ApiError` with the API's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from backend.schemas.alerts import AlertOut, SilenceOut
from backend.schemas.jobs import JobOut
from backend.schemas.resources import MachineOut, ModelVersionOut, ReadingsOut, ScoresOut
from backend.settings import Settings

__all__ = ["ApiClient", "ApiError", "Page"]

API_PREFIX = "/api/v1"
TOTAL_COUNT_HEADER = "X-Total-Count"
MAX_LIMIT = 1_000_000

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """The API refused or could not be reached; ``status`` is None when unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Page(Generic[M]):
    """A (possibly downsampled) response and how many rows the range held in total."""

    item: M
    total: int


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
        headers = {"X-API-Key": read_key} if read_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + API_PREFIX,
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        key = settings.dashboard.api_key
        return cls(settings.dashboard.api_url, read_key=key.get_secret_value() if key else None)

    def close(self) -> None:
        self._http.close()

    # --- reading ---------------------------------------------------------------------
    def machines(self) -> list[MachineOut]:
        return _list(MachineOut, self._get("/machines"))

    def machine(self, machine_id: str) -> MachineOut:
        return MachineOut.model_validate_json(self._get(f"/machines/{machine_id}").content)

    def readings(
        self,
        machine_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = MAX_LIMIT,
        max_points: int | None = None,
    ) -> Page[ReadingsOut]:
        params = _params(start=start, end=end, limit=limit, max_points=max_points)
        response = self._get(f"/machines/{machine_id}/readings", params)
        return _page(ReadingsOut, response)

    def scores(
        self,
        machine_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = MAX_LIMIT,
        max_points: int | None = None,
        top: int = 0,
    ) -> Page[ScoresOut]:
        params = _params(start=start, end=end, limit=limit, max_points=max_points, top=top)
        response = self._get(f"/machines/{machine_id}/scores", params)
        return _page(ScoresOut, response)

    def models(self, machine_id: str) -> list[ModelVersionOut]:
        return _list(ModelVersionOut, self._get(f"/machines/{machine_id}/models"))

    def jobs(self, machine_id: str | None = None, limit: int = 100) -> list[JobOut]:
        return _list(JobOut, self._get("/jobs", _params(machine_id=machine_id, limit=limit)))

    def job(self, job_id: str) -> JobOut:
        return JobOut.model_validate_json(self._get(f"/jobs/{job_id}").content)

    def alerts(
        self,
        *,
        machine_id: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        limit: int = 500,
    ) -> list[AlertOut]:
        params = _params(machine_id=machine_id, state=state, severity=severity, limit=limit)
        return _list(AlertOut, self._get("/alerts", params))

    def alert(self, alert_id: int) -> AlertOut:
        return AlertOut.model_validate_json(self._get(f"/alerts/{alert_id}").content)

    def silences(self) -> list[SilenceOut]:
        return _list(SilenceOut, self._get("/silences"))

    # --- writing (the operator's key) -------------------------------------------------
    def train(self, machine_id: str, options: Mapping[str, Any], key: str | None) -> JobOut:
        response = self._send("POST", f"/machines/{machine_id}/train", key, options)
        return JobOut.model_validate_json(response.content)

    def promote(
        self, machine_id: str, version: int | None, by: str, gated: bool, key: str | None
    ) -> dict[str, Any]:
        body = {"version": version, "by": by, "gated": gated, "reason": "from the dashboard"}
        response = self._send("POST", f"/machines/{machine_id}/models/promote", key, body)
        return dict(response.json())

    def rollback(self, machine_id: str, version: int, by: str, key: str | None) -> dict[str, Any]:
        body = {"version": version, "by": by, "reason": "from the dashboard"}
        response = self._send("POST", f"/machines/{machine_id}/models/rollback", key, body)
        return dict(response.json())

    def acknowledge(self, alert_id: int, by: str, key: str | None) -> AlertOut:
        response = self._send("POST", f"/alerts/{alert_id}/acknowledge", key, {"by": by})
        return AlertOut.model_validate_json(response.content)

    def unacknowledge(self, alert_id: int, key: str | None) -> AlertOut:
        response = self._send("POST", f"/alerts/{alert_id}/unacknowledge", key, None)
        return AlertOut.model_validate_json(response.content)

    def resolve(self, alert_id: int, by: str, key: str | None) -> AlertOut:
        response = self._send("POST", f"/alerts/{alert_id}/resolve", key, {"by": by})
        return AlertOut.model_validate_json(response.content)

    def silence(
        self,
        matchers: Mapping[str, str],
        ends_at: datetime,
        by: str,
        key: str | None,
        comment: str | None = None,
    ) -> SilenceOut:
        body = {
            "matchers": dict(matchers),
            "ends_at": ends_at.isoformat(),
            "created_by": by,
            "comment": comment,
        }
        return SilenceOut.model_validate_json(self._send("POST", "/silences", key, body).content)

    def expire_silence(self, silence_id: int, key: str | None) -> None:
        self._send("DELETE", f"/silences/{silence_id}", key, None)

    # --- plumbing ---------------------------------------------------------------------
    def _get(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        return self._checked(lambda: self._http.get(path, params=params))

    def _send(
        self, method: str, path: str, key: str | None, body: Mapping[str, Any] | None
    ) -> httpx.Response:
        # the operator's key replaces the dashboard's read key on writes
        headers = {"X-API-Key": key or ""}
        return self._checked(lambda: self._http.request(method, path, json=body, headers=headers))

    @staticmethod
    def _checked(call: Any) -> httpx.Response:
        try:
            response: httpx.Response = call()
        except httpx.HTTPError as exc:
            raise ApiError(f"API unreachable: {exc}") from exc
        if response.is_success:
            return response
        raise ApiError(_detail(response), response.status_code)


def _params(**values: object) -> dict[str, str]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else str(value)
        for name, value in values.items()
        if value is not None
    }


def _list(model: type[M], response: httpx.Response) -> list[M]:
    return TypeAdapter(list[model]).validate_json(response.content)  # type: ignore[valid-type]


def _page(model: type[M], response: httpx.Response) -> Page[M]:
    item = model.model_validate_json(response.content)
    total = int(response.headers.get(TOTAL_COUNT_HEADER, "-1"))
    return Page(item, total)


def _detail(response: httpx.Response) -> str:
    """The API's error message ("detail"), flattened to one line."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):
        detail = "; ".join(
            ".".join(str(p) for p in item.get("loc", [])[1:]) + ": " + str(item.get("msg", ""))
            for item in detail
            if isinstance(item, dict)
        )
    return f"{response.status_code}: {detail}"
