"""Schemathesis against the OpenAPI schema: generated requests to every operation of
the real app (real store, real MLflow registry) get no 5xx and responses that conform
to the schema (status codes, content types, headers, bodies).

Left out: ``positive_data_acceptance`` (cross-field rules such as "end after start" are
not expressible in the schema, so schema-valid requests can rightly get a 422);
``negative_data_rejection`` (pydantic's lax mode accepts ``0`` for ``false`` and ``"1"``
for ``1`` in bodies; times must be ISO 8601 strings, which it enforces); and the
HTTP-method checks for OPTIONS (``allow_header_conformance``, ``unsupported_method``),
which concern the framework's 405 handling rather than our schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks

from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine


@pytest.fixture
def api_schema(
    make_settings: Callable[..., Settings], sqlite_store: Store, registry: MlflowRegistry
) -> Iterator[Any]:
    sqlite_store.readings.add(SyntheticMachine("m1", seed=1, n_sensors=3).read(20).to_batch())
    app = create_app(make_settings(), store=sqlite_store, registry=registry)
    with TestClient(app):  # runs the lifespan: the app's state is set up
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_conforming_responses(case: Any) -> None:
    case.call_and_validate(
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_headers_conformance,
            checks.response_schema_conformance,
        ]
    )
