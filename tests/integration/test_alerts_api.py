"""The alerts HTTP API on a real store: list and filters, acknowledge / unacknowledge /
resolve, silences, the delivery log, the loaded rules; bad input names the field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from mmlw.alerts.config import load_alerts_config
from mmlw.alerts.engine import Evidence
from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.services.alert_evaluation import evaluate
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.store.tables import utcnow

API = "/api/v1"


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(), store=store, registry=registry)) as running:
        yield running


def fire(store: Store, machine_id: str, rule_index: int = 0) -> int:
    config = load_alerts_config(None)
    evidence = Evidence(
        holds=True,
        summary="bad",
        score=6.0,
        threshold=2.0,
        model_version=1,
        top_sensors=(("vibration", 0.6), ("temp", 0.3)),
    )
    rule = config.rules[rule_index]
    evaluate(store.alerts, rule, machine_id, evidence, utcnow(), {"operator-mail": "email"})
    return store.alerts.list(machine_id=machine_id, rule=rule.name)[0].id


def test_list_filter_and_act_on_alerts(client: TestClient, store: Store) -> None:
    first = fire(store, "press-1")
    critical = fire(store, "press-2", rule_index=1)
    listed = client.get(f"{API}/alerts").json()
    assert [a["id"] for a in listed] == [critical, first]  # newest first
    (one,) = client.get(f"{API}/alerts", params={"severity": "critical"}).json()
    assert one["machine_id"] == "press-2" and one["state"] == "firing"
    assert one["top_sensors"][0] == {"sensor": "vibration", "contribution": 0.6}
    assert one["dashboard_url"] == "http://127.0.0.1:8050/machines/press-2"
    assert (
        client.get(f"{API}/alerts", params={"machine_id": "press-1", "state": "open"}).json()[0][
            "id"
        ]
        == first
    )

    acked = client.post(
        f"{API}/alerts/{first}/acknowledge", json={"by": "alice", "comment": "on it"}
    )
    assert acked.status_code == 200
    assert acked.json()["acknowledged"] and acked.json()["acknowledged_by"] == "alice"
    assert client.get(f"{API}/alerts/{first}").json()["ack_comment"] == "on it"
    assert not client.post(f"{API}/alerts/{first}/unacknowledge").json()["acknowledged"]
    resolved = client.post(f"{API}/alerts/{first}/resolve", json={"by": "bob"}).json()
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == "bob"
    conflict = client.post(f"{API}/alerts/{first}/acknowledge", json={"by": "alice"})
    assert conflict.status_code == 409 and "resolved" in conflict.json()["detail"]
    assert client.get(f"{API}/alerts", params={"state": "resolved"}).json()[0]["id"] == first

    (delivery,) = client.get(f"{API}/alerts/{critical}/deliveries").json()
    assert delivery["event"] == "firing" and delivery["status"] == "queued"
    assert delivery["attempts"] == [] and delivery["notifier"] == "operator-mail"
    assert len(client.get(f"{API}/deliveries", params={"status": "queued"}).json()) == 2


def test_silences_mark_matching_alerts(client: TestClient, store: Store) -> None:
    alert_id = fire(store, "press-7")
    ends = (utcnow() + timedelta(hours=1)).isoformat()
    created = client.post(
        f"{API}/silences",
        json={"matchers": {"machine_id": "press-*"}, "ends_at": ends, "created_by": "carol"},
    )
    assert created.status_code == 201 and created.json()["active"]
    assert client.get(f"{API}/alerts/{alert_id}").json()["silenced"]
    silence_id = created.json()["id"]
    assert [s["id"] for s in client.get(f"{API}/silences", params={"active": True}).json()] == [
        silence_id
    ]
    ended = client.delete(f"{API}/silences/{silence_id}").json()
    assert not ended["active"]
    assert not client.get(f"{API}/alerts/{alert_id}").json()["silenced"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("get", "/alerts/999", None, "alert 999 not found"),
        ("get", "/alerts?state=burning", None, "state"),
        ("post", "/alerts/1/acknowledge", {}, "by"),
        ("post", "/alerts/1/acknowledge", {"by": "x", "extra": 1}, "extra"),
        (
            "post",
            "/silences",
            {"matchers": {}, "ends_at": "2030-01-01T00:00:00Z", "created_by": "x"},
            "matchers",
        ),
        (
            "post",
            "/silences",
            {
                "matchers": {"rule": "r"},
                "starts_at": "2030-01-02T00:00:00Z",
                "ends_at": "2030-01-01T00:00:00Z",
                "created_by": "x",
            },
            "ends_at must be after starts_at",
        ),
        ("delete", "/silences/42", None, "silence 42 not found"),
    ],
)
def test_bad_requests_name_the_problem(
    client: TestClient, method: str, path: str, body: object, field: str
) -> None:
    response = client.request(method.upper(), f"{API}{path}", json=body)
    assert 400 <= response.status_code < 500
    assert field in str(response.json()["detail"])


def test_rules_endpoint_masks_secrets(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry, tmp_path
) -> None:
    from mmlw.settings import AlertSettings

    rules = tmp_path / "alerts.yaml"
    rules.write_text(
        "notifiers: {h: {type: webhook, url: 'http://127.0.0.1:1/x', secret: very-secret}}\n"
        "rules: [{name: r, condition: {kind: scores, k: 1, n: 2}, notify: [h]}]\n"
    )
    settings = make_settings(alerts=AlertSettings(rules_file=rules))
    with TestClient(create_app(settings, store=store, registry=registry)) as client:
        body = client.get(f"{API}/alert-rules").json()
    assert body["rules"][0]["condition"] == {"kind": "scores", "k": 1, "n": 2, "multiple": 1.0}
    assert "secret" not in body["notifiers"]["h"] and "very-secret" not in str(body)
