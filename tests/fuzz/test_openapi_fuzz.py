"""Schemathesis against the OpenAPI schema: generated requests to every operation of
the real app (real store, real MLflow registry), sent with a valid API key so the
handlers run, get no 5xx and responses that conform to the schema (status codes,
content types, headers, bodies).

Every ``date-time`` field and query parameter is drawn from :func:`edge_date_times`:
ordinary times mixed with years 0001 and 9999, offsets up to +-23:59 (also ones that
carry the moment past year 1 or 9999), naive times, leap seconds, impossible days and
nine-digit fractions, all of the RFC 3339 shape. A sweep then sends every such value to
every date-time query parameter, so each edge is tried whatever Hypothesis draws.

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
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import checks
from schemathesis.specs.openapi.formats import unregister_string_format

from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine

API_KEY = "fuzz-key-0123456789abcdef"
HEADERS = {"X-API-Key": API_KEY}

EDGE_DATE_TIMES = (  # the first is what a coverage phase tries: make it the worst
    "0001-01-01T00:00:00+01:00",  # in UTC: the last hour of year 0
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00",  # naive
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",  # in UTC: year 10000
    "9999-12-31T23:59:59.999999999-23:59",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59",
    "0000-01-01T00:00:00Z",  # year 0: the grammar's, not the calendar's
    "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00+00:01",  # just before the epoch in UTC
    "2199-12-31T23:59:59-00:01",  # just after 2200 in UTC
    "2200-01-01T00:00:00Z",
    "2016-12-31T23:59:60Z",  # a leap second
    "2026-02-30T12:00:00Z",  # no such day
    "2026-13-01T00:00:00Z",  # no such month
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:59:59.123456789+23:59",
    "2026-01-01t10:00:00z",  # lower case is RFC 3339 too
    "2026-01-01T10:00:00-00:00",
)


def _number(low: int, high: int, width: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda value: f"{value:0{width}d}")


def edge_date_times() -> st.SearchStrategy[str]:
    """RFC 3339-shaped date-times, about half of them at an edge."""
    year = st.sampled_from(["0001", "0002", "1969", "1970", "2199", "2200", "9998", "9999"]) | (
        _number(1970, 2100, 4)
    )
    date = st.builds("{}-{}-{}".format, year, _number(1, 12, 2), _number(1, 31, 2))
    clock = st.builds("{}:{}:{}".format, _number(0, 23, 2), _number(0, 59, 2), _number(0, 60, 2))
    fraction = st.just("") | st.integers(1, 9).flatmap(
        lambda n: _number(0, 10**n - 1, n).map(".".__add__)
    )
    numeric_offset = st.builds(
        "{}{}:{}".format,
        st.sampled_from("+-"),
        st.sampled_from(["00", "01", "14", "23"]) | _number(0, 23, 2),
        st.sampled_from(["00", "59"]) | _number(0, 59, 2),
    )
    offset = st.sampled_from(["Z", "", "+00:00"]) | numeric_offset
    built = st.builds("{}T{}{}{}".format, date, clock, fraction, offset)
    return st.sampled_from(EDGE_DATE_TIMES) | built


@pytest.fixture
def app_client(
    make_settings: Callable[..., Settings], sqlite_store: Store, registry: MlflowRegistry
) -> Iterator[TestClient]:
    sqlite_store.readings.add(SyntheticMachine("m1", seed=1, n_sensors=3).read(20).to_batch())
    settings = make_settings()
    api = settings.api.model_copy(update={"keys": [SecretStr(API_KEY)]})
    app = create_app(
        settings.model_copy(update={"api": api}), store=sqlite_store, registry=registry
    )
    with TestClient(app, raise_server_exceptions=False) as client:  # runs the lifespan
        yield client


@pytest.fixture
def api_schema(app_client: TestClient) -> Iterator[Any]:
    schemathesis.openapi.format("date-time", edge_date_times())
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app_client.app)
    finally:
        unregister_string_format("date-time")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_conforming_responses(case: Any) -> None:
    if case.path_parameters and "machine_id" in case.path_parameters:
        case.path_parameters["machine_id"] = "m1"  # stored: the handler runs past its lookup
    response = case.call_and_validate(
        headers=HEADERS,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_headers_conformance,
            checks.response_schema_conformance,
        ],
    )
    assert response.status_code not in (401, 403), "the key must let the handler run"


def _date_time_query_parameters(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, parameter) of every GET query parameter of format date-time."""
    found = []
    for path, operations in openapi["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            shapes = parameter["schema"].get("anyOf", [parameter["schema"]])
            if parameter["in"] == "query" and any(s.get("format") == "date-time" for s in shapes):
                found.append((path.replace("{machine_id}", "m1"), parameter["name"]))
    return found


def test_every_date_time_query_parameter_takes_every_edge(app_client: TestClient) -> None:
    targets = _date_time_query_parameters(app_client.get("/openapi.json").json())
    assert len(targets) >= 5, targets  # readings and scores start/end, models/at
    failures = []
    for path, name in targets:
        for value in EDGE_DATE_TIMES:
            response = app_client.get(path, params={name: value}, headers=HEADERS)
            if response.status_code >= 500 or response.status_code in (401, 403):
                failures.append(f"{path}?{name}={value}: {response.status_code}")
    assert not failures, failures
