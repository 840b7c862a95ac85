"""Alerting end to end: pika -> ingest -> scoring -> rules -> one e-mail to a real SMTP
server and one signed webhook to a real HTTP receiver, repeats and resolved notices,
retries with backoff, acknowledge and silence, state across restarts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmlw.alerts.config import load_alerts_config
from mmlw.alerts.engine import Evidence
from mmlw.alerts.mailcatcher import MailCatcher
from mmlw.alerts.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from mmlw.api.app import create_app
from mmlw.messaging.dispatch import CeleryDispatcher
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology
from mmlw.schemas import JobState, TrainRequest
from mmlw.schemas.alerts import SilenceIn
from mmlw.services.alert_evaluation import evaluate as evaluate_rule
from mmlw.services.alert_views import list_alerts
from mmlw.services.alerting import send_delivery, tick
from mmlw.services.jobs import submit_training
from mmlw.settings import AlertSettings, Settings, SmtpSettings
from mmlw.store import Store
from mmlw.store.tables import utcnow
from mmlw.workers.celery_app import create_celery
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import Pipeline, delete_topology, running_pipeline, wait_for
from tests.integration.receivers import webhook_receiver

SECRET = "hook-secret-for-tests"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the simulated machines' first reading


def write_rules(
    path: Path, hook_url: str, *, k: int = 4, n: int = 5, repeat: str = "1h", backoff: str = "0.2s"
) -> Path:
    path.write_text(
        f"""
notifiers:
  ops-mail: {{type: email, to: [ops@example.com], max_attempts: 3, backoff: {backoff}}}
  ops-hook:
    type: webhook
    url: {hook_url}
    secret: {SECRET}
    timeout: 1s
    max_attempts: 4
    backoff: {backoff}
rules:
  - name: anomalous-readings
    condition: {{kind: scores, k: {k}, n: {n}}}
    keep_firing_for: 0s
    repeat_interval: {repeat}
    severity: critical
    labels: {{team: maintenance}}
    notify: [ops-mail, ops-hook]
"""
    )
    return path


def alert_settings(
    make_settings: Callable[..., Settings], rules: Path, smtp_port: int, **kw: object
) -> Settings:
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port)
    alerts = AlertSettings(rules_file=rules, smtp=smtp, tick_s=3600)
    return make_settings(alerts=alerts, **kw)


def publish(
    pub: PikaReadingsPublisher, machine: SyntheticMachine, n: int, shift: float = 0.0
) -> int:
    """``n`` readings in batches of 10; ``shift`` is added to the first sensor (a fault)."""
    for _ in range(0, n, 10):
        frame = machine.read(10)
        batch = frame.to_batch()
        if shift:
            values = np.asarray(batch.values)
            values[:, 0] += shift
            batch = batch.model_copy(update={"values": values.tolist()})
        pub.publish(batch)
    return n


def scored(store: Store, machine_id: str) -> int:
    return store.scores.count(machine_id)


def events_queued(store: Store, alert_id: int) -> list[str]:
    """The events of ``alert_id``'s deliveries in the outbox, oldest first: every
    notification it ever called for, sent or not."""
    return [d.event for d in reversed(store.deliveries.list(alert_id=alert_id))]


def train_champion(pipeline: Pipeline, machine_id: str) -> None:
    dispatcher = CeleryDispatcher.from_broker(pipeline.settings.broker.url, pipeline.topology)
    job = submit_training(
        TrainRequest(machine_id=machine_id, last_n=400), store=pipeline.store, dispatcher=dispatcher
    )
    wait_for(lambda: pipeline.store.jobs.get(job.id).state.finished, what="train job")
    assert pipeline.store.jobs.get(job.id).state is JobState.SUCCEEDED


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    with MailCatcher() as running:
        yield running


@pytest.mark.rabbitmq
@pytest.mark.slow
# alone: it restarts every process of the pipeline. The resolved notice was missing in
# some CI runs (alert still firing after every recovery reading was scored): the default
# detector flagged about half of the readings after this 80-reading fault, as the machine
# moved on meanwhile (tests/unit/test_after_a_long_fault.py); it re-learns where the
# machine is after an episode now. The machine starts at T0: its readings depend on times
@pytest.mark.alone
def test_fault_fires_once_by_mail_and_signed_webhook_survives_restart_and_resolves(
    make_settings: Callable[..., Settings],
    rabbitmq_url: str,
    database_url: str,
    catcher: MailCatcher,
    tmp_path: Path,
) -> None:
    with webhook_receiver() as hook:
        rules = write_rules(tmp_path / "alerts.yaml", hook.url)
        settings = alert_settings(
            make_settings, rules, catcher.port, broker_url=rabbitmq_url, database_url=database_url
        )
        # a fixed start: the simulated readings depend on their times (its modes), and
        # with the wall clock as start the recovery readings differed from run to run
        machine = SyntheticMachine("press-1", seed=5, faults=(), start=T0)
        shift = 0.0
        try:
            with (
                running_pipeline(settings) as pipeline,
                PikaReadingsPublisher(rabbitmq_url, pipeline.topology) as pub,
            ):
                store = pipeline.store
                publish(pub, machine, 400)
                wait_for(lambda: store.machines.get("press-1").n_readings == 400, what="readings")
                train_champion(pipeline, "press-1")
                wait_for(lambda: scored(store, "press-1") == 400, what="backfilled scores")
                publish(pub, machine, 40)
                wait_for(lambda: scored(store, "press-1") == 440, what="normal scores")
                assert store.alerts.list() == []

                train = store.readings.window("press-1", last_n=400)[0]
                shift = 30 * float(train.iloc[:, 0].std())
                publish(pub, machine, 30, shift)
                wait_for(
                    lambda: len(catcher.messages) >= 1 and len(hook.requests) >= 1,
                    what="the firing e-mail and webhook",
                )
                (alert,) = list_alerts(store, utcnow())
                assert alert.state == "firing" and alert.severity == "critical"
                assert alert.model_version == 1
                assert alert.top_sensors[0].sensor == machine.columns[0]

                # continued anomalous readings: no duplicate before the repeat interval
                publish(pub, machine, 30, shift)
                wait_for(lambda: scored(store, "press-1") == 500, what="more fault scores")
                pipeline.wait_idle()  # their rules evaluated, whatever that sent, sent
                assert events_queued(store, alert.id) == ["firing", "firing"]
                assert (len(catcher.messages), len(hook.requests)) == (1, 1)

            # restart every process: the alert and its notified state are in the store
            with (
                running_pipeline(settings) as pipeline,
                PikaReadingsPublisher(rabbitmq_url, pipeline.topology) as pub,
            ):
                store = pipeline.store
                with TestClient(create_app(settings, store=store)) as api:
                    (again,) = api.get("/api/v1/alerts", params={"state": "open"}).json()
                    assert again["id"] == alert.id and again["state"] == "firing"
                    assert again["dashboard_url"].endswith("/machines/press-1")
                publish(pub, machine, 20, shift)
                wait_for(lambda: scored(store, "press-1") == 520, what="fault scores after restart")
                pipeline.wait_idle()
                assert events_queued(store, alert.id) == ["firing", "firing"]
                assert (len(catcher.messages), len(hook.requests)) == (1, 1)

                # recovery: one resolved notice through each notifier
                publish(pub, machine, 20)
                wait_for(
                    lambda: len(catcher.messages) >= 2 and len(hook.requests) >= 2,
                    what=lambda: (
                        f"the resolved notices: alert {store.alerts.get(alert.id).state}, "
                        f"{scored(store, 'press-1')} scored, "
                        f"outbox {events_queued(store, alert.id)}, "
                        f"{len(catcher.messages)} mails, {len(hook.requests)} hooks"
                    ),
                )
                wait_for(lambda: scored(store, "press-1") == 540, what="recovery scores")
                pipeline.wait_idle()
                assert events_queued(store, alert.id) == [
                    "firing",
                    "firing",
                    "resolved",
                    "resolved",
                ]
                assert (len(catcher.messages), len(hook.requests)) == (2, 2)
                resolved = store.alerts.get(alert.id)
                assert resolved.state == "resolved" and resolved.resolved_at is not None
                deliveries = store.deliveries.list(alert_id=alert.id)
        finally:
            delete_topology(rabbitmq_url, Topology(settings.broker.namespace))

    # the e-mails
    firing_mail, resolved_mail = catcher.messages
    assert "FIRING: anomalous-readings on press-1 (critical)" in firing_mail["Subject"]
    assert "RESOLVED" in resolved_mail["Subject"]
    text = firing_mail.get_body(("plain",)).get_content()
    assert machine.columns[0] in text and "v1" in text and "/machines/press-1" in text
    assert firing_mail.get_body(("html",)) is not None
    # the webhooks: signed, fresh, and saying what happened
    events = []
    for request in hook.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert verify(
            SECRET,
            request.body,
            headers[TIMESTAMP_HEADER.lower()],
            headers[SIGNATURE_HEADER.lower()],
            now=time.time(),
            tolerance_s=300,
        )
        body = json.loads(request.body)
        assert body["machine_id"] == "press-1" and body["rule"] == "anomalous-readings"
        assert body["model_version"] == 1 and body["threshold"] > 0
        assert body["last_score"] > body["threshold"]
        assert body["top_sensors"][0]["sensor"] == machine.columns[0]
        assert body["labels"]["team"] == "maintenance"
        events.append(body["event"])
    assert events == ["firing", "resolved"]
    assert sorted((d.event, d.channel, d.status, len(d.attempts)) for d in deliveries) == [
        ("firing", "email", "delivered", 1),
        ("firing", "webhook", "delivered", 1),
        ("resolved", "email", "delivered", 1),
        ("resolved", "webhook", "delivered", 1),
    ]


def open_alert(store: Store, settings: Settings, pipeline: Pipeline) -> list[int]:
    """Fire the rule for machine m1 through the store (no readings needed) and hand its
    deliveries to the running worker."""
    config = load_alerts_config(settings.alerts.rules_file)
    channels = {name: n.type for name, n in config.notifiers.items()}
    evidence = Evidence(holds=True, summary="test", score=5.0, threshold=1.0)
    evaluation = evaluate_rule(store.alerts, config.rules[0], "m1", evidence, utcnow(), channels)
    for delivery_id in evaluation.delivery_ids:
        pipeline.context.dispatcher.notify(delivery_id)
    return evaluation.delivery_ids


def test_failing_webhook_is_retried_with_backoff_and_every_attempt_is_logged(
    make_settings: Callable[..., Settings], catcher: MailCatcher, tmp_path: Path
) -> None:
    # 500, then a hang past the 1 s timeout, then success; the e-mail goes through at once
    with webhook_receiver([500, "timeout", "ok"]) as hook:
        settings = alert_settings(
            make_settings, write_rules(tmp_path / "a.yaml", hook.url), catcher.port
        )
        with running_pipeline(settings) as pipeline:
            store = pipeline.store
            ids = open_alert(store, settings, pipeline)
            wait_for(
                lambda: all(store.deliveries.get(i).status == "delivered" for i in ids),
                what=lambda: f"deliveries: {[store.deliveries.get(i) for i in ids]}",
            )
            hook_delivery = next(
                store.deliveries.get(i) for i in ids if store.deliveries.get(i).channel == "webhook"
            )
    attempts = hook_delivery.attempts
    assert [(a.ok, a.status_code) for a in attempts] == [(False, 500), (False, None), (True, 200)]
    assert "HTTP 500" in (attempts[0].error or "") and "timed out" in (attempts[1].error or "")
    # exponential backoff: ~0.2 s before the 2nd attempt, ~0.4 s (+1 s timeout) before the 3rd
    gap1 = (attempts[1].at - attempts[0].at).total_seconds()
    gap2 = (attempts[2].at - attempts[1].at).total_seconds()
    assert gap1 >= 0.2 and gap2 >= 0.4 + 1.0
    assert len(hook.requests) == 3 and len(catcher.messages) == 1


def test_a_receiver_that_keeps_failing_is_given_up_after_max_attempts(
    make_settings: Callable[..., Settings], catcher: MailCatcher, tmp_path: Path
) -> None:
    with webhook_receiver([503] * 10) as hook:
        settings = alert_settings(
            make_settings, write_rules(tmp_path / "a.yaml", hook.url, backoff="0.05s"), catcher.port
        )
        with running_pipeline(settings) as pipeline:
            store = pipeline.store
            open_alert(store, settings, pipeline)
            wait_for(
                lambda: len(store.deliveries.list(status="failed")) == 1, what="a failed delivery"
            )
            (failed,) = store.deliveries.list(status="failed")
    assert failed.channel == "webhook" and len(failed.attempts) == 4 == len(hook.requests)
    assert failed.last_error is not None and failed.last_error.startswith(
        "gave up after 4 attempts"
    )


def test_acknowledged_or_silenced_alerts_send_nothing(
    make_settings: Callable[..., Settings], catcher: MailCatcher, tmp_path: Path, store: Store
) -> None:
    with webhook_receiver() as hook:
        settings = alert_settings(
            make_settings, write_rules(tmp_path / "a.yaml", hook.url, repeat="1s"), catcher.port
        )
        config = load_alerts_config(settings.alerts.rules_file)
        rule = config.rules[0]
        channels = {name: n.type for name, n in config.notifiers.items()}
        bad = Evidence(holds=True, summary="bad", score=5.0, threshold=1.0)

        def evaluate(machine_id: str, seconds: float) -> list[int]:
            now = start + timedelta(seconds=seconds)
            return evaluate_rule(store.alerts, rule, machine_id, bad, now, channels).delivery_ids

        start = utcnow()
        first = evaluate("m1", 0)
        assert len(first) == 2
        alert_id = store.alerts.list(machine_id="m1")[0].id
        # acknowledged after the firing notice was queued: sending it is suppressed ...
        store.alerts.acknowledge(alert_id, "alice", "on it", utcnow())
        for delivery_id in first:
            outcome = send_delivery(delivery_id, store=store, config=config, settings=settings)
            assert outcome.status == "suppressed"
        # ... and no repeat is due while acknowledged, however long it fires
        assert evaluate("m1", 5) == [] and evaluate("m1", 60) == []
        store.alerts.unacknowledge(alert_id)
        assert len(evaluate("m1", 61)) == 2  # repeats resume

        # a silence on m2 mutes the firing notice altogether
        store.silences.create(
            SilenceIn(
                matchers={"machine_id": "m2"},
                starts_at=start,
                ends_at=start + timedelta(hours=1),
                created_by="bob",
            ),
            utcnow(),
        )
        assert evaluate("m2", 0) == []
        (m2,) = list_alerts(store, utcnow(), machine_id="m2")
        assert m2.state == "firing" and m2.silenced and m2.last_notified_at is None
    assert hook.requests == [] and catcher.messages == []


def test_tick_fires_no_data_alerts_and_resends_lost_hand_offs(
    make_settings: Callable[..., Settings], catcher: MailCatcher, tmp_path: Path
) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(
        "notifiers: {mail: {type: email, to: [ops@example.com]}}\n"
        "rules:\n"
        "  - {name: quiet, condition: {kind: no_data, seconds: 60}, notify: [mail]}\n"
        "  - {name: bad, machines: ghost, condition: {kind: scores}, notify: [mail]}\n"
    )
    settings = alert_settings(make_settings, rules, catcher.port)
    assert create_celery(settings).conf.beat_schedule["alerts-tick"]["task"] == "mmlw.alerts.tick"
    with running_pipeline(settings) as pipeline:
        store, dispatcher = pipeline.store, pipeline.context.dispatcher
        store.readings.add(SyntheticMachine("lathe-1", seed=1, faults=()).read(5).to_batch())
        config = load_alerts_config(rules)
        now = utcnow()
        # a delivery whose hand-off to the queue was lost (written, never dispatched)
        lost = evaluate_rule(
            store.alerts,
            config.rules[1],
            "ghost",
            Evidence(holds=True, summary="x"),
            now,
            {"mail": "email"},
        ).delivery_ids
        assert tick(store=store, config=config, dispatcher=dispatcher, now=now) == 1
        assert catcher.messages == []  # fresh data; the lost hand-off is not overdue yet
        later = now + timedelta(seconds=61)
        tick(store=store, config=config, dispatcher=dispatcher, now=later)
        wait_for(lambda: len(catcher.messages) == 2, what="the no-data and the re-sent e-mails")
        wait_for(lambda: store.deliveries.get(lost[0]).status == "delivered", what="delivered")
    subjects = sorted(catcher.subjects())
    assert "FIRING: bad on ghost" in subjects[0] and "FIRING: quiet on lathe-1" in subjects[1]
