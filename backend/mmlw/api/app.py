"""``create_app(settings)``: the FastAPI backend. Nothing connects until start-up."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mmlw.alerts.config import load_alerts_config
from mmlw.alerts.notifiers import log_email_status
from mmlw.api.deps import ApiKey, AppState
from mmlw.api.docs_pages import add_docs_pages
from mmlw.api.limits import ApiKeyGate, BodyLimit
from mmlw.api.routers import (
    alerts,
    dead_letters,
    health,
    imports,
    jobs,
    machines,
    models,
    readings,
    scores,
    tuning,
)
from mmlw.errors import (
    BrokerBusy,
    ConflictError,
    InsufficientData,
    InvalidInput,
    InvalidMessage,
    MMLWError,
    NotFound,
    ServiceUnavailable,
)
from mmlw.messaging.dispatch import CeleryDispatcher, Dispatcher
from mmlw.messaging.kombu_publisher import KombuReadingsPublisher
from mmlw.messaging.sink import ReadingsSink
from mmlw.messaging.topology import Topology
from mmlw.registry.base import ModelRegistry
from mmlw.services.alias_snapshot import AliasSnapshot
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.version import __version__

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    """Every error: ``detail`` names the field or the problem."""

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the body is not readable JSON"},
    401: {"model": ErrorOut, "description": "no valid X-API-Key"},
    413: {"model": ErrorOut, "description": "the body is larger than MMLW_API__MAX_BODY_MB"},
    403: {"model": ErrorOut, "description": "the key lacks the scope this needs"},
    404: {"model": ErrorOut, "description": "no such machine, job, alert, version, ..."},
    409: {"model": ErrorOut, "description": "conflicts with the current state"},
    422: {"model": ErrorOut, "description": "invalid input; detail names the field"},
    503: {"model": ErrorOut, "description": "a service behind the API is unavailable"},
}

_STATUS = {
    NotFound: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,
    InsufficientData: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidInput: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidMessage: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ServiceUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    registry: ModelRegistry | None = None,
    dispatcher: Dispatcher | None = None,
    publisher: ReadingsSink | None = None,
) -> FastAPI:
    """Build the app; collaborators not given are created from ``settings`` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        topology = Topology.from_settings(settings.broker)
        owned_store = store is None
        owned_publisher = publisher is None
        settings.ensure_data_dir()
        log_email_status(settings.alerts.smtp, log)
        the_store = store or Store.open(  # only `mmlw db upgrade` migrates
            settings.resolved_database_url,
            migrate=False,
            dead_letter_body_limit=settings.broker.dead_letter_body_limit,
        )
        if registry is None:
            from mmlw.registry.mlflow_registry import MlflowRegistry

            owned_registry = MlflowRegistry.from_settings(settings)
            identity = the_store.deployment.identity()  # never another deployment's models
            try:
                owned_registry.claim(
                    identity.id,
                    had_models=identity.had_models,
                    database_url=settings.resolved_database_url,
                )
            except BaseException:
                if owned_store:
                    the_store.close()
                raise
            the_registry: ModelRegistry = owned_registry
        else:
            the_registry = registry
        the_publisher = publisher or KombuReadingsPublisher(
            settings.broker.url, topology, settings.broker.publish_confirm_timeout_s
        )
        app.state.mmlw = AppState(
            settings=settings,
            store=the_store,
            registry=the_registry,
            dispatcher=dispatcher or CeleryDispatcher.from_broker(settings.broker.url, topology),
            publisher=the_publisher,
            alerts_config=load_alerts_config(settings.alerts.rules_file),
            aliases=AliasSnapshot(
                the_registry,
                the_store.alias_history.newest_id,
                max_age_s=settings.api.alias_max_age_s,
            ),
        )
        try:
            yield
        finally:
            if owned_publisher:
                the_publisher.close()
            if owned_store:
                the_store.close()

    app = FastAPI(
        title="MMLW",
        version=__version__,
        description="Anomaly detection on machine sensor data, served from a message broker.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by add_docs_pages, never from a CDN
        redoc_url=None,
    )
    add_docs_pages(app)

    @app.exception_handler(MMLWError)
    async def _mmlw_error(_: Request, exc: MMLWError) -> JSONResponse:
        code = next((c for t, c in _STATUS.items() if isinstance(exc, t)), 500)
        headers = (
            {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
            if isinstance(exc, BrokerBusy)
            else None
        )
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is not echoed back: NaN/inf in it cannot be JSON-encoded
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    # before the router parses anything: the key (inner), and before that the body size
    app.add_middleware(ApiKeyGate, prefix=API_PREFIX)
    app.add_middleware(BodyLimit)
    if settings.api.cors_origins:  # closed unless origins are named (outermost)
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.include_router(health.router)
    api = APIRouter(prefix=API_PREFIX, dependencies=[ApiKey], responses=ERROR_RESPONSES)
    for module in (machines, readings, imports, scores, jobs, tuning, models, dead_letters, alerts):
        api.include_router(module.router)
    app.include_router(api)
    return app
