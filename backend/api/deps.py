"""FastAPI dependencies, as named ``Annotated`` aliases for the routers."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from backend.alerts.config import AlertsConfig
from backend.messaging.dispatch import Dispatcher
from backend.messaging.sink import ReadingsSink
from backend.registry.base import ModelRegistry
from backend.settings import Settings
from backend.store import Store

__all__ = ["ApiKey", "AppState", "RegistryDep", "SettingsDep", "StateDep", "StoreDep"]


@dataclass
class AppState:
    settings: Settings
    store: Store
    registry: ModelRegistry
    dispatcher: Dispatcher
    publisher: ReadingsSink
    alerts_config: AlertsConfig


def get_state(request: Request) -> AppState:
    return request.app.state.mmlw  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


def get_store(state: StateDep) -> Store:
    return state.store


def get_registry(state: StateDep) -> ModelRegistry:
    return state.registry


def get_settings(state: StateDep) -> Settings:
    return state.settings


StoreDep = Annotated[Store, Depends(get_store)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="API key, if the server has keys")] = None,
) -> None:
    keys = settings.api.keys
    if not keys:
        return
    if x_api_key is None or not any(
        hmac.compare_digest(x_api_key.encode(), key.get_secret_value().encode()) for key in keys
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="X-API-Key: missing or not valid",
            headers={"WWW-Authenticate": "API-Key"},
        )


ApiKey = Depends(require_api_key)
