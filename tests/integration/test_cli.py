"""The ``mmlw`` command, run in-process with click's runner against real services: a SQLite
store in ``tmp_path``, the session's MLflow store and, for the publishing commands, the
RabbitMQ server on loopback (a unique namespace per test, deleted afterwards).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from kombu import Connection

from mmlw.cli import main
from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.messaging.topology import Topology
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.readings import ReadingsBatch, parse_readings_message
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import TEST_SIGNING_KEY

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
COMMANDS = (
    "demo",
    "api",
    "worker",
    "scorer",
    "ingest",
    "simulate",
    "publish",
    "train",
    "jobs",
    "models",
    "machines",
    "db",
    "alerts",
)
JOB_LINE = re.compile(r"^job (?P<id>[0-9a-f-]{36}) (?P<state>\w+): ", re.MULTILINE)

Cli = Callable[..., Result]


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The CLI's data dir, its database migrated (as `mmlw db upgrade` leaves it)."""
    path = (tmp_path / "data").resolve()
    path.mkdir()
    Store.open(f"sqlite:///{path / 'mmlw.db'}").close()
    return path


@pytest.fixture
def cli_env(
    data_dir: Path, tracking_uri: str, unique_prefix: str, registry: MlflowRegistry
) -> dict[str, str | None]:
    """MMLW_* for one test; every other MMLW_* variable of the caller is hidden."""
    # ``registry`` makes sure the session's MLflow store and experiment exist.
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("MMLW_")}
    env.update(
        MMLW_ENVIRONMENT="test",
        MMLW_DATA_DIR=str(data_dir),
        MMLW_MLFLOW_TRACKING_URI=tracking_uri,
        MMLW_MODELS__REGISTERED_MODEL_PREFIX=unique_prefix,
        MMLW_MODELS__SIGNING_KEY=TEST_SIGNING_KEY,
        MMLW_BROKER__URL="memory://",
        MMLW_BROKER__NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        MLFLOW_LOGGING_LEVEL=None,  # the CLI sets it; restored after each run
    )
    return env


@pytest.fixture
def cli(cli_env: dict[str, str | None]) -> Cli:
    runner = CliRunner()

    def run(*args: str, **env: str | None) -> Result:
        return runner.invoke(main, list(args), env={**cli_env, **env}, catch_exceptions=True)

    return run


@pytest.fixture
def store_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'mmlw.db'}"


@pytest.fixture
def seeded(store_url: str) -> Iterator[Store]:
    """The CLI's store, holding 200 readings of machine ``mixer-1``."""
    store = Store.open(store_url)
    source = SyntheticMachine("mixer-1", seed=2, n_sensors=5, start=START, warmup=100_000)
    store.readings.add(source.read(120).to_batch())
    store.readings.add(source.read(80).to_batch())
    yield store
    store.close()


@pytest.fixture
def broker_namespace(rabbitmq_url: str) -> Iterator[str]:
    """A namespace of its own on RabbitMQ; its queues and exchanges are deleted after."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    yield namespace
    topology = Topology(namespace)
    with Connection(rabbitmq_url) as connection:
        channel = connection.channel()
        for queue in (topology.ingest_queue_name, topology.dead_queue_name):
            channel.queue_delete(queue)
        for exchange in (topology.readings_exchange_name, topology.dead_exchange_name):
            channel.exchange_delete(exchange)


def drain_ingest_queue(broker_url: str, namespace: str) -> list[tuple[ReadingsBatch, Any]]:
    """Every message waiting in ``<ns>.ingest``, parsed, with its kombu message."""
    out = []
    with Connection(broker_url) as connection:
        queue = Topology(namespace).ingest_queue().bind(connection.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            out.append((parse_readings_message(message.body), message))
    return out


def assert_one_line_error(result: Result, *expected: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert result.stdout == ""


# --- help and schema -------------------------------------------------------------------


def test_help_lists_every_command(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0, result.output
    listed = {
        line.split()[0]
        for line in result.stdout.split("Commands:", 1)[1].splitlines()
        if line.strip()
    }
    assert set(COMMANDS) <= listed, listed


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(cli: Cli, command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_db_upgrade_creates_the_schema(cli: Cli, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    result = cli("db", "upgrade", MMLW_DATA_DIR=str(fresh))
    assert result.exit_code == 0, result.output
    assert "at head" in result.stdout
    engine = sa.create_engine(f"sqlite:///{fresh / 'mmlw.db'}")
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"machines", "reading_batches", "score_batches", "jobs", "dead_letters"} <= tables
    again = cli("db", "upgrade", MMLW_DATA_DIR=str(fresh))
    assert again.exit_code == 0, again.output


# --- train, models, jobs, machines -----------------------------------------------------


def test_train_inline_then_list_models_jobs_and_machines(
    cli: Cli, seeded: Store, unique_prefix: str
) -> None:
    first = cli("train", "mixer-1", "--inline")
    assert first.exit_code == 0, first.output
    match = JOB_LINE.search(first.stdout)
    assert match is not None, first.stdout
    assert match["state"] == "succeeded"
    assert f"{unique_prefix}mixer-1 v1 " in first.stdout
    assert "on 200 readings" in first.stdout
    assert "champion" in first.stdout
    first_job = match["id"]

    second = cli(
        "train", "mixer-1", "--inline", "--detector", "isolation_forest", "--last-n", "100"
    )
    assert second.exit_code == 0, second.output
    assert f"{unique_prefix}mixer-1 v2 " in second.stdout
    assert "on 100 readings" in second.stdout
    assert "challenger" in second.stdout  # the first version stays champion
    second_job = JOB_LINE.search(second.stdout)["id"]  # type: ignore[index]

    models = cli("models", "mixer-1")
    assert models.exit_code == 0, models.output
    lines = models.stdout.strip().splitlines()
    assert len(lines) == 2, models.stdout
    assert lines[0].split()[:4] == [f"{unique_prefix}mixer-1", "v1", "champion", DEFAULT_DETECTOR]
    assert lines[1].split()[:4] == [
        f"{unique_prefix}mixer-1",
        "v2",
        "challenger",
        "isolation_forest",
    ]

    jobs = cli("jobs")
    assert jobs.exit_code == 0, jobs.output
    rows = [line.split() for line in jobs.stdout.strip().splitlines()]
    assert [row[0] for row in rows] == [second_job, first_job]  # newest first
    assert all(row[1:4] == ["train", "mixer-1", "succeeded"] for row in rows)
    assert cli("jobs", "--machine", "nobody").stdout == ""
    assert len(cli("jobs", "--limit", "1").stdout.strip().splitlines()) == 1

    shown = cli("jobs", first_job)
    assert shown.exit_code == 0, shown.output
    job = json.loads(shown.stdout)
    assert job["id"] == first_job
    assert job["state"] == "succeeded"
    assert job["machine_id"] == "mixer-1"
    assert job["result"]["version"] == 1
    assert job["result"]["aliases"] == ["champion"]
    assert job["request"]["detector"] == DEFAULT_DETECTOR

    machines = cli("machines")
    assert machines.exit_code == 0, machines.output
    [line] = machines.stdout.strip().splitlines()
    assert line.split()[:5] == ["mixer-1", "200", "readings", "0", "scored"]

    # the CLI and the store agree
    assert [j.id.hex for j in seeded.jobs.list("mixer-1")] == [
        uuid.UUID(second_job).hex,
        uuid.UUID(first_job).hex,
    ]


def test_train_with_too_few_readings_fails_in_one_line(cli: Cli, store_url: str) -> None:
    store = Store.open(store_url)
    try:
        store.readings.add(SyntheticMachine("tiny-1", start=START).read(20).to_batch())
    finally:
        store.close()
    result = cli("train", "tiny-1", "--inline")
    assert_one_line_error(result, "failed", "20 complete readings", "at least 50")


def test_train_with_unknown_detector_fails_in_one_line(cli: Cli, seeded: Store) -> None:
    result = cli("train", "mixer-1", "--detector", "nope", "--inline")
    assert_one_line_error(result, "detector", "nope")
    assert cli("models", "mixer-1").exit_code != 0  # nothing was registered


def test_train_with_unknown_parameter_fails_in_one_line(cli: Cli, seeded: Store) -> None:
    result = cli("train", "mixer-1", "--inline", "--param", "n_trees=5")
    assert_one_line_error(result, "params", "n_trees")


# --- one-line errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("train", "unknown-machine", "--inline"), ("unknown-machine", "not found")),
        (("train", "x", "--detector", "nope", "--inline"), ("detector", "nope")),
        (("train", "x"), ("memory://", "--inline")),
        (("models", "nope"), ("no registered model", "nope")),
        (("jobs", "no-such-job"), ("no-such-job", "not found")),
        (("worker",), ("memory://", "RabbitMQ")),
        (("ingest",), ("memory://", "RabbitMQ")),
        (("scorer",), ("memory://", "RabbitMQ")),
        (("simulate", "--max-readings", "5"), ("memory://", "RabbitMQ")),
    ],
    ids=lambda value: " ".join(value) if isinstance(value[0], str) else None,
)
def test_errors_are_one_line_and_exit_non_zero(
    cli: Cli, args: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert_one_line_error(cli(*args), *expected)


def test_publish_without_a_broker_explains_rabbitmq(cli: Cli, tmp_path: Path) -> None:
    csv = write_skab_csv(tmp_path / "valve1" / "3.csv", rows=5)
    assert_one_line_error(cli("publish", str(csv)), "memory://", "RabbitMQ")


def test_bad_settings_are_one_line(cli: Cli) -> None:
    assert_one_line_error(cli("machines", MMLW_ENVIRONMENT="bogus"), "settings")
    assert_one_line_error(cli("machines", MMLW_BROKER__NAMESPACE="Has Spaces!"), "settings")


def test_bad_csv_is_one_line(cli: Cli, tmp_path: Path) -> None:
    csv = tmp_path / "broken.csv"
    csv.write_text("when;a\n2026-01-01 00:00:00;1.0\n")
    result = cli("publish", str(csv), MMLW_BROKER__URL="amqp://guest:guest@127.0.0.1:1//")
    assert_one_line_error(result, "datetime")


# --- publishing to RabbitMQ ------------------------------------------------------------

SKAB_SENSORS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]


def write_skab_csv(path: Path, rows: int) -> Path:
    """A file in the SKAB layout: ``;``-separated, naive datetimes, anomaly/changepoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [";".join(["datetime", *SKAB_SENSORS, "anomaly", "changepoint"])]
    for i in range(rows):
        values = [f"{(j + 1) * 0.1 + i * 0.01:.4f}" for j in range(len(SKAB_SENSORS))]
        anomaly = "1.0" if i % 7 == 6 else "0.0"
        lines.append(
            ";".join([f"2020-03-09 10:{i // 60:02d}:{i % 60:02d}", *values, anomaly, "0.0"])
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.rabbitmq
def test_publish_csv_to_rabbitmq(
    cli: Cli, tmp_path: Path, rabbitmq_url: str, broker_namespace: str
) -> None:
    csv = write_skab_csv(tmp_path / "valve1" / "3.csv", rows=25)
    result = cli(
        "publish",
        str(csv),
        "--batch-size",
        "10",
        MMLW_BROKER__URL=rabbitmq_url,
        MMLW_BROKER__NAMESPACE=broker_namespace,
    )
    assert result.exit_code == 0, result.output
    assert "published 25 readings of valve1-3 in 3 batches" in result.stdout

    arrived = drain_ingest_queue(rabbitmq_url, broker_namespace)
    assert [len(batch) for batch, _ in arrived] == [10, 10, 5]
    for batch, message in arrived:
        assert batch.machine_id == "valve1-3"
        assert batch.columns == SKAB_SENSORS
        assert message.delivery_info["routing_key"] == "valve1-3"
        assert message.properties["message_id"] == str(batch.message_id)
        assert message.properties["delivery_mode"] == 2
        assert message.content_type == "application/json"
    timestamps = [t for batch, _ in arrived for t in batch.timestamps]
    assert timestamps[0] == datetime(2020, 3, 9, 10, 0, 0, tzinfo=UTC)
    assert timestamps == sorted(timestamps)
    assert len(set(timestamps)) == 25
    labels = [label for batch, _ in arrived for label in batch.labels or []]
    assert labels == [1 if i % 7 == 6 else 0 for i in range(25)]
    assert arrived[0][0].values[1] == pytest.approx([(j + 1) * 0.1 + 0.01 for j in range(8)])


@pytest.mark.rabbitmq
def test_simulate_to_rabbitmq(cli: Cli, rabbitmq_url: str, broker_namespace: str) -> None:
    result = cli(
        "simulate",
        "--machines",
        "2",
        "--max-readings",
        "40",
        "--speedup",
        "0",
        "--batch-size",
        "10",
        MMLW_BROKER__URL=rabbitmq_url,
        MMLW_BROKER__NAMESPACE=broker_namespace,
    )
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("published 40 readings: ")
    assert json.loads(last.split(": ", 1)[1]) == {"machine-1": 20, "machine-2": 20}

    arrived = drain_ingest_queue(rabbitmq_url, broker_namespace)
    assert len(arrived) == 4
    assert sum(len(batch) for batch, _ in arrived) == 40
    per_machine: dict[str, int] = {}
    for batch, message in arrived:
        per_machine[batch.machine_id] = per_machine.get(batch.machine_id, 0) + len(batch)
        assert message.delivery_info["routing_key"] == batch.machine_id
        assert len(batch.columns) == 8
    assert per_machine == {"machine-1": 20, "machine-2": 20}


# --- mmlw alerts -------------------------------------------------------------------------


def test_alerts_list_show_ack_unack_resolve_silence_and_deliveries(
    cli: Cli, store_url: str
) -> None:
    from mmlw.alerts.config import load_alerts_config
    from mmlw.alerts.engine import Evidence
    from mmlw.services.alert_evaluation import evaluate
    from mmlw.store.tables import utcnow

    config = load_alerts_config(None)
    with Store.open(store_url) as store:
        evidence = Evidence(
            holds=True,
            summary="4 of 5",
            score=9.0,
            threshold=1.5,
            model_version=2,
            top_sensors=(("temp", 0.7),),
        )
        evaluate(
            store.alerts, config.rules[0], "press-1", evidence, utcnow(), {"operator-mail": "email"}
        )

    listed = cli("alerts", "list", "--state", "open")
    assert listed.exit_code == 0, listed.output
    (line,) = [row for row in listed.output.splitlines() if "press-1" in row]
    assert "firing" in line and "anomalous-readings" in line and "temp" in line and "9/1.5" in line
    alert_id = line.split()[0]

    shown = json.loads(cli("alerts", "show", alert_id).output)
    assert shown["model_version"] == 2 and shown["dashboard_url"].endswith("/machines/press-1")
    assert [d["event"] for d in shown["deliveries"]] == ["firing"]

    assert "acknowledged by alice" in cli("alerts", "ack", alert_id, "--by", "alice").output
    assert " A-" in next(r for r in cli("alerts", "list").output.splitlines() if "press-1" in r)
    assert cli("alerts", "unack", alert_id).exit_code == 0
    assert "resolved by bob" in cli("alerts", "resolve", alert_id, "--by", "bob").output
    again = cli("alerts", "resolve", alert_id, "--by", "bob")
    assert again.exit_code == 1 and "already resolved" in again.output

    silenced = cli("alerts", "silence", "--match", "machine_id=press-*", "--for", "30m")
    assert silenced.exit_code == 0 and "machine_id" in silenced.output
    assert "active" in cli("alerts", "silences", "--active").output
    silence_id = silenced.output.split()[1]
    assert cli("alerts", "unsilence", silence_id).exit_code == 0
    assert cli("alerts", "silences", "--active").output.strip() == ""

    log = cli("alerts", "deliveries")
    assert log.exit_code == 0 and "operator-mail" in log.output and "queued" in log.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alerts", "show", "999"), "alert 999 not found"),
        (("alerts", "silence", "--match", "nonsense"), "--match: expected LABEL=PATTERN"),
        (("alerts", "silence", "--match", "rule=x", "--for", "soon"), "expected a duration"),
        (("alerts", "rules", "--file", "/nonexistent.yaml"), "cannot read alert rules"),
    ],
)
def test_alerts_errors_are_one_line(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_alerts_rules_validates_a_file(cli: Cli, tmp_path: Path) -> None:
    ok = cli("alerts", "rules")
    assert ok.exit_code == 0 and "built-in defaults: 3 rules" in ok.output
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules: [{name: r, condition: {kind: scores, k: 9, n: 2}}]")
    result = cli("alerts", "rules", "--file", str(bad))
    assert result.exit_code == 1 and "k (9) cannot exceed n (2)" in result.output


# --- model lifecycle ---------------------------------------------------------------------


def test_promote_gate_rollback_and_alias_history(cli: Cli, seeded: Store) -> None:
    assert cli("train", "mixer-1", "--inline").exit_code == 0
    second = cli("train", "mixer-1", "--inline", "--last-n", "150")
    assert second.exit_code == 0 and "challenger" in second.stdout

    gate = cli("gate", "mixer-1")
    assert gate.exit_code == 0 and "shadow gate: 0 readings scored by both" in gate.stdout
    refused = cli("promote", "mixer-1", "--by", "alice")
    assert refused.exit_code == 1 and "promotion of v2 refused" in refused.output
    forced = cli("promote", "mixer-1", "--force", "--by", "alice", "--reason", "trust me")
    assert forced.exit_code == 0 and "champion v1 -> v2" in forced.stdout
    back = cli("rollback", "mixer-1", "1", "--by", "bob")
    assert back.exit_code == 0 and "champion v2 -> v1" in back.stdout
    again = cli("rollback", "mixer-1", "1")
    assert again.exit_code == 1 and "already champion" in again.output
    missing = cli("rollback", "mixer-1", "9")
    assert missing.exit_code == 1 and "no model version 9" in missing.output

    history = cli("aliases", "mixer-1").stdout.strip().splitlines()
    moves = [line.split()[2:6] for line in history]
    assert moves == [
        ["champion", "-", "->", "v1"],
        ["challenger", "-", "->", "v2"],
        ["champion", "v1", "->", "v2"],
        ["challenger", "v2", "->", "-"],
        ["champion", "v2", "->", "v1"],
    ]
    assert "alice" in history[2] and "trust me" in history[2] and "rollback" in history[4]


def test_compare_trains_configs_side_by_side_without_moving_aliases(
    cli: Cli, seeded: Store, tmp_path: Path
) -> None:
    chart = tmp_path / "compare.html"
    result = cli(
        "compare", "mixer-1", "--inline", "--last-n", "150",
        "--detector", "pca", "--detector", "isolation_forest:n_estimators=50",
        "--detector", "robust_zscore", "--plot", str(chart),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[2:5]]
    assert [(r[0], r[1]) for r in rows] == [
        ("pca", "v1"),
        ("isolation_forest", "v2"),
        ("robust_zscore", "v3"),
    ]
    assert all(float(r[2]) >= 0 and float(r[3]) >= 0 for r in rows)
    assert "plotly" in chart.read_text() and "fit time" in chart.read_text()
    # comparison versions get no alias: the machine still has no champion
    assert cli("aliases", "mixer-1").stdout.strip() == ""
    bad = cli("compare", "mixer-1", "--inline", "--detector", "pca", "--detector", "nope")
    assert bad.exit_code == 1 and "nope" in bad.output
