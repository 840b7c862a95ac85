"""Retention, against SQLite and PostgreSQL alike: what is older than a horizon goes
(whole day partitions on PostgreSQL), what is newer, or still to be streamed, stays; a
message id is stored once whichever partition its batch is in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mmlw.cli import main
from mmlw.errors import NotFound
from mmlw.schemas import ReadingsBatch
from mmlw.services.retention import apply_retention
from mmlw.settings.sections import RetentionSettings
from mmlw.store import ScoreRecord, Store
from mmlw.store.partitions import day_partitions, ensure_partitions, partition_name
from mmlw.store.retention import prune_alerts, prune_readings, prune_scores
from mmlw.store.rollups import RollupsRepository
from mmlw.store.streams import save_carry
from mmlw.store.tables import Alert, Delivery, DeliveryAttempt, StreamState

NOW = datetime.now(UTC).replace(microsecond=0)
HORIZON = NOW - timedelta(days=30)
OLD = datetime.combine((NOW - timedelta(days=40)).date(), time(10), tzinfo=UTC)  # mid-day


def batch(at: datetime, machine: str = "m1", n: int = 4, value: float = 1.0) -> ReadingsBatch:
    return ReadingsBatch.of_rows(
        machine,
        ["a", "b"],
        [at + timedelta(seconds=i) for i in range(n)],
        [[value + i, -value - i] for i in range(n)],
    )


def is_postgres(store: Store) -> bool:
    return store.database.dialect == "postgresql"


def old_partitions(store: Store) -> None:
    """Day partitions 40 days back (PostgreSQL), as if made ahead 40 days ago."""
    ensure_partitions(store.database.engine, now=OLD, ahead_days=1)


def rolled_up(store: Store) -> None:
    """Roll up every batch stored: pruning keeps what the rollups do not hold."""
    RollupsRepository(store.database).roll_up(NOW + timedelta(days=1))


def stored(store: Store, batch_id: int) -> bool:
    try:
        store.readings.get(batch_id)
    except NotFound:
        return False
    return True


def score(store: Store, batch_id: int, version: int = 1) -> ScoreRecord:
    stored_batch = store.readings.get(batch_id)
    n = len(stored_batch.timestamps_us)
    return ScoreRecord(
        batch=stored_batch,
        model_name="m1-model",
        model_version=version,
        role="champion",
        threshold=0.5,
        scores=np.linspace(0, 1, n),
        contributions=np.zeros((n, 2)),
        columns=["a", "b"],
    )


def test_old_readings_go_and_newer_ones_stay(store: Store) -> None:
    old_partitions(store)
    old = store.readings.add(batch(OLD)).batch_id  # a day partition
    ancient = store.readings.add(batch(NOW - timedelta(days=500))).batch_id  # default one
    across = store.readings.add(batch(HORIZON - timedelta(seconds=2))).batch_id
    recent = store.readings.add(batch(NOW - timedelta(hours=1))).batch_id
    rolled_up(store)

    pruned = prune_readings(store.database, HORIZON, batch_size=1)

    assert not stored(store, old) and not stored(store, ancient)
    assert stored(store, across) and stored(store, recent)  # across: its last reading is newer
    if is_postgres(store):
        dropped = partition_name("reading_batches", OLD.date())
        assert dropped in pruned.partitions_dropped
        with store.database.engine.connect() as connection:
            names = {p.name for p in day_partitions(connection, "reading_batches")}
            assert connection.scalar(sa.text("SELECT to_regclass(:n)"), {"n": dropped}) is None
        assert dropped not in names
        assert pruned.rows_deleted == 1  # the ancient batch, from the default partition
    else:
        assert pruned.rows_deleted == 2
    # its message id went with it: the same message is a new batch again
    again = store.readings.add(batch(OLD).model_copy())
    assert again.created


def test_nothing_goes_when_everything_is_newer(store: Store) -> None:
    ids = [store.readings.add(batch(NOW - timedelta(days=d))).batch_id for d in (0, 1, 29)]
    rolled_up(store)
    pruned = prune_readings(store.database, HORIZON)
    assert pruned.rows_deleted == 0 and not pruned.partitions_dropped
    assert all(stored(store, i) for i in ids)


def test_a_checkpoint_keeps_the_batches_it_has_yet_to_stream(store: Store) -> None:
    old_partitions(store)
    streamed = store.readings.add(batch(OLD, n=2)).batch_id
    pending = store.readings.add(batch(OLD + timedelta(hours=1), value=9)).batch_id
    other = store.readings.add(batch(OLD, machine="m2")).batch_id
    with store.database.session() as session:
        session.add(
            StreamState(
                machine_id="m1",
                role="champion",
                model_version=1,
                cursor_batch_id=streamed,
                n_rows=2,
                carry=save_carry({}),
                revision=1,
                updated_at=NOW,
            )
        )
    rolled_up(store)
    pruned = prune_readings(store.database, HORIZON)
    assert stored(store, pending) and stored(store, streamed) == is_postgres(store)
    if is_postgres(store):  # the partition holding the pending batch stays whole
        assert pruned.partitions_kept == [partition_name("reading_batches", OLD.date())]
        assert stored(store, other)
    else:
        assert not stored(store, other)
    assert store.streams.get("m1", "champion") is not None


def test_a_message_id_is_stored_once_across_partitions(store: Store) -> None:
    old_partitions(store)
    first = batch(OLD)
    created = store.readings.add(first)
    assert created.created
    assert not store.readings.add(first).created
    # the same message id, other content, in another day (partition): not stored
    moved = batch(NOW, value=7).model_copy(update={"message_id": first.message_id})
    reused = store.readings.add(moved)
    assert reused.reused and reused.batch_id == created.batch_id
    outcomes = store.readings.add_many([first, moved, first])
    assert [o.created for o in outcomes] == [False, False, False]
    with store.database.engine.connect() as connection:
        count = connection.scalar(
            sa.text("SELECT count(*) FROM reading_batches WHERE message_id = :m"),
            {"m": str(first.message_id)},
        )
    assert count == 1
    # scores stay idempotent on (batch, model, version, role) too
    assert store.scores.add(score(store, created.batch_id))
    assert not store.scores.add(score(store, created.batch_id))


def test_old_scores_go_and_scores_outlive_their_readings(store: Store) -> None:
    old_partitions(store)
    old = store.readings.add(batch(OLD)).batch_id
    older = store.readings.add(batch(NOW - timedelta(days=100))).batch_id
    recent = store.readings.add(batch(NOW - timedelta(hours=1))).batch_id
    for batch_id in (old, older, recent):
        store.scores.add(score(store, batch_id))
    rolled_up(store)
    prune_readings(store.database, HORIZON)
    pruned = prune_scores(store.database, NOW - timedelta(days=90))
    assert pruned.rows_deleted == 1  # the 100 days old one
    assert store.scores.count("m1") == 8  # 40 days old (its readings gone) and recent
    assert [s.batch_id for s in store.scores.query("m1")] == [recent]


def _alert(connection: Any, resolved_at: datetime | None, key: str | None) -> int:
    row: dict[str, Any] = {
        "rule": "r",
        "machine_id": "m1",
        "open_key": key,
        "state": "resolved" if resolved_at else "firing",
        "severity": "warning",
        "labels": {},
        "summary": "",
        "started_at": NOW - timedelta(days=500),
        "last_active_at": NOW - timedelta(days=500),
        "last_evaluated_at": NOW - timedelta(days=500),
        "resolved_at": resolved_at,
        "top_sensors": [],
        "revision": 1,
    }
    alert_id = int(connection.execute(sa.insert(Alert).values(row).returning(Alert.id)).scalar())
    delivery = connection.execute(
        sa.insert(Delivery)
        .values(
            alert_id=alert_id,
            notifier="n",
            channel="webhook",
            event="firing",
            status="delivered",
            created_at=NOW,
            attempts=1,
            payload={},
        )
        .returning(Delivery.id)
    ).scalar()
    connection.execute(
        sa.insert(DeliveryAttempt).values(
            delivery_id=delivery, attempt=1, at=NOW, ok=True, duration_ms=1.0
        )
    )
    return alert_id


def test_resolved_alerts_go_with_their_deliveries_and_open_ones_stay(store: Store) -> None:
    with store.database.engine.begin() as connection:
        gone = _alert(connection, NOW - timedelta(days=400), None)
        kept = _alert(connection, NOW - timedelta(days=10), None)
        still_open = _alert(connection, None, "r/m1")
    pruned = prune_alerts(store.database, NOW - timedelta(days=365), batch_size=1)
    assert pruned.rows_deleted == 1
    with store.database.engine.connect() as connection:
        left = set(connection.scalars(sa.select(Alert.id)))
        deliveries = set(connection.scalars(sa.select(Delivery.alert_id)))
    assert left == deliveries == {kept, still_open}
    assert gone not in left


def test_apply_retention_keeps_everything_at_zero_days(store: Store) -> None:
    old = store.readings.add(batch(NOW - timedelta(days=4000))).batch_id
    keep_all = RetentionSettings(
        readings_days=0, scores_days=0, alerts_days=0, rollup_minute_days=0, rollup_hour_days=0
    )
    report = apply_retention(store, keep_all, now=NOW)
    assert report.pruned == [] and stored(store, old)
    assert report.summary()["rolled_up"]["reading_batches"] == 1  # rolled up, kept
    report = apply_retention(store, RetentionSettings(), now=NOW)
    assert not stored(store, old)
    summary = report.summary()
    assert summary["pruned"]["reading_batches"]["rows_deleted"] == 1
    assert set(summary["pruned"]) == {
        *("reading_batches", "score_batches", "alerts", "rollups_minute", "rollups_hour")
    }
    assert summary["rolled_up"]["reading_batches"] == 0  # once only


def test_partitions_are_made_ahead_on_postgresql_only(store: Store) -> None:
    later = NOW + timedelta(days=10)
    created = ensure_partitions(store.database.engine, now=later, ahead_days=2)
    if not is_postgres(store):
        assert created == []
        return
    days = [(later + timedelta(days=d)).date() for d in range(3)]
    assert created == [
        partition_name(t, d) for t in ("reading_batches", "score_batches") for d in days
    ]
    assert ensure_partitions(store.database.engine, now=later, ahead_days=2) == []
    # a batch of that day lands in its partition, not in the default one
    store.readings.add(batch(later))
    with store.database.engine.connect() as connection:
        n = connection.scalar(
            sa.text(f"SELECT count(*) FROM {partition_name('reading_batches', days[0])}")
        )
    assert n == 1


def test_mmlw_db_prune(database_url: str, tmp_path: Any) -> None:
    with Store.open(database_url) as store:
        old = store.readings.add(batch(NOW - timedelta(days=4000))).batch_id
    env = {
        "MMLW_ENVIRONMENT": "test",
        "MMLW_DATA_DIR": str(tmp_path),
        "MMLW_DATABASE_URL": database_url,
        "MMLW_RETENTION__READINGS_DAYS": "7",
    }
    result = CliRunner().invoke(main, ["db", "prune"], env=env)
    assert result.exit_code == 0, result.output
    assert '"rows_deleted": 1' in result.output
    with Store.open(database_url, migrate=False) as store:
        assert not stored(store, old)


@pytest.mark.parametrize("hour", [3, 22])
def test_beat_prunes_daily(hour: int, make_settings: Any) -> None:
    from mmlw.workers.celery_app import create_celery
    from mmlw.workers.tasks import RETENTION_TASK

    settings = make_settings().model_copy(update={"retention": RetentionSettings(hour_utc=hour)})
    entry = create_celery(settings).conf.beat_schedule["retention-apply"]
    assert entry["task"] == RETENTION_TASK
    assert entry["schedule"].hour == {hour} and entry["schedule"].minute == {0}
    train = f"{settings.broker.namespace}.train"  # routed as dispatch routes train tasks
    assert entry["options"] == {"queue": train, "exchange": train, "routing_key": train}


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from mmlw.settings import Settings

    monkeypatch.setenv("MMLW_RETENTION__SCORES_DAYS", "0")
    monkeypatch.setenv("MMLW_RETENTION__READINGS_DAYS", "7")
    retention = Settings().retention
    assert (retention.readings_days, retention.scores_days, retention.alerts_days) == (7, 0, 365)
    with pytest.raises(ValidationError):
        RetentionSettings(readings_days=-1)


@pytest.mark.rabbitmq
def test_the_beat_entry_reaches_a_worker_that_prunes(make_settings: Any, rabbitmq_url: str) -> None:
    """What beat sends (task and routing options, as they are) is run by a worker of the
    train queue, which prunes with the deployment's retention settings."""
    from mmlw.messaging.topology import Topology
    from mmlw.workers.celery_app import create_celery
    from mmlw.workers.context import WorkerContext
    from mmlw.workers.runtime import worker_thread
    from tests.integration.pipeline import delete_topology
    from tests.support.wait import wait_for

    settings = make_settings(broker_url=rabbitmq_url).model_copy(
        update={"retention": RetentionSettings(readings_days=7)}
    )
    settings.ensure_data_dir()
    with Store.open(settings.resolved_database_url) as store:
        old = store.readings.add(batch(NOW - timedelta(days=4000))).batch_id
        new = store.readings.add(batch(NOW - timedelta(days=1))).batch_id
    context = WorkerContext(settings)
    app = create_celery(settings, context)
    entry = app.conf.beat_schedule["retention-apply"]
    try:
        with worker_thread(app, queues=("train",), concurrency=1):
            app.send_task(entry["task"], **entry["options"])
            wait_for(lambda: not stored(context.store, old), 60, "the old batch pruned")
        assert stored(context.store, new)
    finally:
        context.store.close()
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))


@pytest.mark.rabbitmq
def test_the_hourly_rollup_entry_reaches_a_worker_that_rolls_up(
    make_settings: Any, rabbitmq_url: str
) -> None:
    """Beat's hourly entry (task and routing options, as they are) is run by a worker of
    the train queue, which adds the closed hours' batches to the rollups; the current
    hour's batch waits for its hour to close."""
    from time import sleep

    from mmlw.messaging.topology import Topology
    from mmlw.store.rollups import RollupsRepository
    from mmlw.workers.celery_app import create_celery
    from mmlw.workers.context import WorkerContext
    from mmlw.workers.runtime import worker_thread
    from mmlw.workers.tasks import ROLLUP_TASK
    from tests.integration.pipeline import delete_topology
    from tests.support.wait import wait_for

    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 30:  # the hour must not close under the test
        sleep(61 - now.second)
        now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    settings = make_settings(broker_url=rabbitmq_url)
    settings.ensure_data_dir()
    with Store.open(settings.resolved_database_url) as store:
        store.readings.add(batch(this_hour - timedelta(hours=3), value=2.0))
        store.readings.add(batch(this_hour + timedelta(seconds=1), value=5.0))
    context = WorkerContext(settings)
    app = create_celery(settings, context)
    entry = app.conf.beat_schedule["rollups-apply"]
    assert entry["task"] == ROLLUP_TASK and entry["schedule"].minute == {5}
    rollups = RollupsRepository(context.store.database)

    def rolled_up() -> float:
        window = rollups.readings_window("m1", 3600, now - timedelta(days=1), now)
        return float(window.rollups.n.sum())

    try:
        with worker_thread(app, queues=("train",), concurrency=1):
            app.send_task(entry["task"], **entry["options"])
            wait_for(lambda: rolled_up() > 0, 60, "the closed hour rolled up")
        window = rollups.readings_window("m1", 3600, now - timedelta(days=1), now)
        assert window.rollups.maximum.max() == 5.0  # the closed hour only (2 + 3)
        assert len(window.unrolled) == 1  # this hour's batch, still raw
    finally:
        context.store.close()
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))
