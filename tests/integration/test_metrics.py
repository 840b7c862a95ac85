"""/metrics in Prometheus format: store totals, queue depths from RabbitMQ, and the
in-process worker's predict latency and model load time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mmlw.api.app import create_app
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology
from mmlw.schemas import TrainRequest
from mmlw.services.jobs import submit_training
from mmlw.settings import Settings
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import delete_topology, running_pipeline, wait_for

pytestmark = pytest.mark.rabbitmq


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_report_totals_queues_and_worker_timings(
    make_settings: Callable[..., Settings], rabbitmq_url: str
) -> None:
    settings = make_settings(broker_url=rabbitmq_url)
    topology = Topology(settings.broker.namespace)
    try:
        with (
            running_pipeline(settings) as pipeline,
            PikaReadingsPublisher(rabbitmq_url, pipeline.topology) as pub,
        ):
            machine = SyntheticMachine("pump-9", seed=3, faults=())
            for _ in range(6):
                pub.publish(machine.read(50).to_batch())
            pub.publish_raw("pump-9", b"not json")
            store = pipeline.store
            wait_for(
                lambda: [m.n_readings for m in store.machines.list()] == [300], what="readings"
            )
            job = submit_training(
                TrainRequest(machine_id="pump-9"),
                store=store,
                dispatcher=pipeline.context.dispatcher,
            )
            wait_for(lambda: store.jobs.get(job.id).state.finished, what="training")
            wait_for(lambda: store.scores.count("pump-9") == 300, what="backfilled scores")
            wait_for(lambda: len(store.dead_letters.list()) == 1, what="the dead letter")
            with TestClient(create_app(settings, store=store)) as client:
                response = client.get("/metrics")
    finally:
        delete_topology(rabbitmq_url, topology)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert found[("mmlw_readings_stored_total", ())] == 300
    assert found[("mmlw_scores_stored_total", ())] == 300
    assert found[("mmlw_batches_dead_lettered_total", ())] == 1
    queues = {dict(labels)["queue"] for name, labels in found if name == "mmlw_queue_depth"}
    assert topology.ingest_queue_name in queues and topology.task_queue_name("predict") in queues
    # this process ran the worker: the task(s) ingest queued (before the model) and the
    # backfill; how many messages share a task depends on how ingest cut its buffers
    assert found[("mmlw_predict_seconds_count", ())] >= 2
    assert found[("mmlw_model_load_seconds_count", ())] >= 1
