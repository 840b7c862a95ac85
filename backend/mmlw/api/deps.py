"""FastAPI dependencies, as named ``Annotated`` aliases for the routers."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError

from mmlw.alerts.config import AlertsConfig
from mmlw.messaging.dispatch import Dispatcher
from mmlw.messaging.sink import ReadingsSink
from mmlw.registry.base import ModelRegistry
from mmlw.security.keys import Scope, allows
from mmlw.services.alias_snapshot import AliasSnapshot
from mmlw.settings import Settings
from mmlw.store import Store

ROW_ID_MAX = 2**63 - 1  # the largest id a BIGINT (and SQLite's INTEGER) holds
VERSION_MAX = 2**31 - 1

__all__ = [
    "ROW_ID_MAX",
    "VERSION_MAX",
    "AliasesDep",
    "ApiKey",
    "AppState",
    "Caller",
    "RegistryDep",
    "SettingsDep",
    "StateDep",
    "StoreDep",
    "authenticate",
    "row_limit",
]


@dataclass
class AppState:
    settings: Settings
    store: Store
    registry: ModelRegistry
    dispatcher: Dispatcher
    publisher: ReadingsSink
    alerts_config: AlertsConfig
    aliases: AliasSnapshot


def get_state(request: Request) -> AppState:
    return request.app.state.mmlw  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


def get_store(state: StateDep) -> Store:
    return state.store


def get_registry(state: StateDep) -> ModelRegistry:
    return state.registry


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_aliases(state: StateDep) -> AliasSnapshot:
    return state.aliases


StoreDep = Annotated[Store, Depends(get_store)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AliasesDep = Annotated[AliasSnapshot, Depends(get_aliases)]


# Every route needs a scope: GET -> read, other methods -> operate, except these
# (paths as the routers declare them, below the /api/v1 prefix).
SCOPE_OVERRIDES: dict[tuple[str, str], Scope] = {
    ("POST", "/machines/{machine_id}/readings"): Scope.INGEST,
    ("POST", "/dead-letters/purge"): Scope.ADMIN,
}


def required_scope(method: str, path: str) -> Scope:
    default = Scope.READ if method in ("GET", "HEAD") else Scope.OPERATE
    return SCOPE_OVERRIDES.get((method, path.removeprefix("/api/v1")), default)


CALLER_SCOPE_KEY = "mmlw.caller"
"""Where :class:`~mmlw.api.limits.ApiKeyGate` leaves the :class:`Caller` it authenticated."""


@dataclass(frozen=True)
class Caller:
    """Whom the X-API-Key header stands for; ``scopes`` None means every scope."""

    name: str | None
    scopes: frozenset[str] | None


def authenticate(settings: Settings, store: Store, x_api_key: str | None) -> Caller | None:
    """The caller the key stands for, or None (no key, an unknown or a revoked one).

    Keys in ``MMLW_API__KEYS`` have every scope; keys made with ``mmlw keys create`` have
    theirs. With no key anywhere the API is open in development and test, and closed in
    production (any header is then ignored).
    """
    if x_api_key is not None and any(
        hmac.compare_digest(x_api_key.encode(), key.get_secret_value().encode())
        for key in settings.api.keys
    ):
        return Caller(name=None, scopes=None)
    stored = store.api_keys.verify(x_api_key) if x_api_key else None
    if stored is not None:
        return Caller(name=stored.name, scopes=frozenset(stored.scopes))
    open_api = not settings.api.keys and settings.environment != "production"
    if open_api and not store.api_keys.any_active():
        return Caller(name=None, scopes=None)
    return None


UNAUTHORIZED_DETAIL = "X-API-Key: missing or not valid"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "API-Key"}


def require_api_key(
    request: Request,
    state: StateDep,
    x_api_key: Annotated[str | None, Header(description="API key (see mmlw keys)")] = None,
) -> None:
    """Authenticate the X-API-Key header and check the route's scope.

    The key was already authenticated by ``ApiKeyGate`` before any body was read; this
    reuses that (or authenticates itself when the app runs without the gate) and checks
    the scope the route needs. ``MMLW_API__PUBLIC_READ`` lets GETs through without a key.
    """
    settings, store = state.settings, state.store
    route = request.scope.get("route")
    needed = required_scope(request.method, getattr(route, "path", request.url.path))
    if needed is Scope.READ and settings.api.public_read:
        return
    caller = request.scope.get(CALLER_SCOPE_KEY)
    if not isinstance(caller, Caller):
        caller = authenticate(settings, store, x_api_key)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=UNAUTHORIZED_DETAIL,
            headers=UNAUTHORIZED_HEADERS,
        )
    if caller.scopes is not None and not allows(caller.scopes, needed):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"X-API-Key: key {caller.name!r} lacks scope {needed.value!r}",
        )


ApiKey = Depends(require_api_key)


def row_limit(default: int, most: int | None = None) -> Any:
    """A ``limit`` query parameter: at least 1, at most ``most`` and ``MMLW_API__MAX_ROWS``.

    Use as ``limit: Annotated[int, row_limit(100)]``; more is a 422 naming ``limit``,
    before anything is read.
    """

    def dependency(settings: SettingsDep, limit: LimitQuery = default) -> int:
        cap = min(settings.api.max_rows, most or settings.api.max_rows)
        if limit > cap:
            raise RequestValidationError(
                [
                    {
                        "type": "less_than_equal",
                        "loc": ("query", "limit"),
                        "msg": f"Input should be less than or equal to {cap}"
                        + (" (MMLW_API__MAX_ROWS)" if cap == settings.api.max_rows else ""),
                        "input": limit,
                    }
                ]
            )
        return limit

    return Depends(dependency)


LimitQuery = Annotated[int, Query(ge=1, description="at most this many rows (MMLW_API__MAX_ROWS)")]
