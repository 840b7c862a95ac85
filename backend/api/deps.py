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
from backend.security.keys import Scope, allows
from backend.settings import Settings
from backend.store import Store

ROW_ID_MAX = 2**63 - 1  # the largest id a BIGINT (and SQLite's INTEGER) holds
VERSION_MAX = 2**31 - 1

__all__ = [
    "ROW_ID_MAX",
    "VERSION_MAX",
    "ApiKey",
    "AppState",
    "RegistryDep",
    "SettingsDep",
    "StateDep",
    "StoreDep",
]


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


# Every route needs a scope: GET -> read, other methods -> operate, except these
# (paths as the routers declare them, below the /api/v1 prefix).
SCOPE_OVERRIDES: dict[tuple[str, str], Scope] = {
    ("POST", "/machines/{machine_id}/readings"): Scope.INGEST,
    ("POST", "/dead-letters/purge"): Scope.ADMIN,
}


def required_scope(method: str, path: str) -> Scope:
    default = Scope.READ if method in ("GET", "HEAD") else Scope.OPERATE
    return SCOPE_OVERRIDES.get((method, path.removeprefix("/api/v1")), default)


def require_api_key(
    request: Request,
    state: StateDep,
    x_api_key: Annotated[str | None, Header(description="API key (see mmlw keys)")] = None,
) -> None:
    """Authenticate the X-API-Key header and check the route's scope.

    Keys in ``MMLW_API__KEYS`` have every scope; keys made with ``mmlw keys create`` have
    theirs. With no key anywhere the API is open in development and test, and closed in
    production. ``MMLW_API__PUBLIC_READ`` lets GETs through without a key.
    """
    settings, store = state.settings, state.store
    route = request.scope.get("route")
    needed = required_scope(request.method, getattr(route, "path", request.url.path))
    if needed is Scope.READ and settings.api.public_read:
        return
    if x_api_key is not None and any(
        hmac.compare_digest(x_api_key.encode(), key.get_secret_value().encode())
        for key in settings.api.keys
    ):
        return
    stored = store.api_keys.verify(x_api_key) if x_api_key else None
    if stored is not None:
        if not allows(stored.scopes, needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"X-API-Key: key {stored.name!r} lacks scope {needed.value!r}",
            )
        return
    open_api = not settings.api.keys and settings.environment != "production"
    if open_api and not store.api_keys.any_active():
        return  # no keys configured at all: an open development API (any header is ignored)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="X-API-Key: missing or not valid",
        headers={"WWW-Authenticate": "API-Key"},
    )


ApiKey = Depends(require_api_key)
