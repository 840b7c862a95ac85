"""The dashboard's API client over an in-memory transport (httpx's own swappable fake)."""

from __future__ import annotations

import json

import httpx
import pytest

from mmlw.frontend.api_client import ApiClient, ApiError

READINGS = {
    "machine_id": "pump-1",
    "columns": ["a"],
    "timestamps": ["2026-11-22T10:00:00Z"],
    "values": [[1.0]],
    "labels": [None],
}


def client_over(handler: httpx.MockTransport) -> ApiClient:
    return ApiClient("http://api.test/", read_key="reader", transport=handler)


def test_reads_send_the_read_key_and_report_the_total_in_range() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=READINGS, headers={"X-Total-Count": "604800"})

    page = client_over(httpx.MockTransport(handle)).readings("pump-1", max_points=4_802)
    assert page.total == 604_800 and page.item.values == [[1.0]]
    (request,) = seen
    assert request.url.path == "/api/v1/machines/pump-1/readings"
    assert request.url.params["max_points"] == "4802"
    assert request.url.params["limit"] == "1000000"
    assert request.headers["X-API-Key"] == "reader"


def test_writes_send_the_operators_key_instead() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"detail": "X-API-Key: missing or not valid"})

    client = client_over(httpx.MockTransport(handle))
    with pytest.raises(ApiError) as refused:
        client.acknowledge(7, "alice", None)
    assert refused.value.status == 401
    assert str(refused.value) == "401: X-API-Key: missing or not valid"
    with pytest.raises(ApiError):
        client.acknowledge(7, "alice", "operator")
    assert [r.headers["X-API-Key"] for r in seen] == ["", "operator"]
    assert json.loads(seen[1].content) == {"by": "alice"}
    assert seen[1].url.path == "/api/v1/alerts/7/acknowledge"


def test_validation_errors_are_flattened_to_one_line() -> None:
    detail = [
        {"loc": ["body", "detector"], "msg": "unknown detector 'nope'", "type": "value_error"},
        {"loc": ["body", "last_n"], "msg": "too small", "type": "value_error"},
    ]
    client = client_over(
        httpx.MockTransport(lambda _: httpx.Response(422, json={"detail": detail}))
    )
    with pytest.raises(ApiError, match=r"^422: detector: unknown detector 'nope'; last_n: too"):
        client.train("pump-1", {"detector": "nope"}, "operator")


def test_an_unreachable_api_is_an_api_error_without_status() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ApiError, match="API unreachable") as failed:
        client_over(httpx.MockTransport(refuse)).machines()
    assert failed.value.status is None
