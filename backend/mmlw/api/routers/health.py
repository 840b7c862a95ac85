from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from mmlw.api.deps import StateDep
from mmlw.version import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health(state: StateDep) -> dict[str, str]:
    """Liveness plus a database round trip; needs no API key."""
    with state.store.database.session() as session:
        session.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "version": __version__,
        "database": state.store.database.dialect,
        "broker": state.settings.broker.url.split("://", 1)[0],
    }


@router.get("/metrics", response_class=Response)
def metrics(state: StateDep) -> Response:
    """Prometheus text format: store/broker totals and this process's instruments. Needs
    no API key (counts only, no data), like /health."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from mmlw.messaging.topology import TASK_QUEUES, Topology
    from mmlw.observability.metrics import StoreCollector, instruments

    topology = Topology(state.settings.broker.namespace)
    queues = [topology.ingest_queue_name, topology.dead_queue_name]
    queues += [topology.task_queue_name(q) for q in TASK_QUEUES]
    totals = CollectorRegistry()
    totals.register(StoreCollector(state.store, state.settings.broker.url, queues))
    body = generate_latest(totals) + generate_latest(instruments().registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
