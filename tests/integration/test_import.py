"""History import (CSV, Parquet, SQL) straight into the real store: idempotent per
content-derived message id, chunked, with bad input named by column and row; the CLI,
the API endpoint with scoped keys, and scoring of imported batches by the champion."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from httpx import Response

from mmlw.api.app import create_app
from mmlw.cli import main
from mmlw.registry.base import CHAMPION
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.jobs import TrainRequest
from mmlw.services.import_sources import csv_source, parquet_source, sql_source
from mmlw.services.importing import (
    ImportOptions,
    ImportReport,
    import_readings,
    queue_scoring,
)
from mmlw.services.jobs import InlineTrainer, submit_training
from mmlw.services.scoring import score_batch
from mmlw.settings import ModelSettings, Settings
from mmlw.store import Store
from mmlw.workers.model_cache import ModelCache
from tests.conftest import TEST_SIGNING_KEY

SENSORS = ["Accelerometer1RMS", "Current", "Pressure", "Volume Flow RateRMS"]
START = datetime(2026, 3, 9, 10, 0, 0)


def skab_like(rows: int, seed: int = 0, start: datetime = START) -> pd.DataFrame:
    """SKAB's layout: naive ``datetime``, sensors, float 0/1 ``anomaly`` and ``changepoint``."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.normal(1.0, 0.1, (rows, len(SENSORS))), columns=SENSORS)
    table.insert(0, "datetime", [start + timedelta(seconds=i) for i in range(rows)])
    anomaly = np.zeros(rows)
    anomaly[rows // 2 : rows // 2 + 20] = 1.0
    table["anomaly"] = anomaly
    table["changepoint"] = np.diff(anomaly, prepend=0.0) != 0
    table["changepoint"] = table["changepoint"].astype(float)
    return table


def write_skab_csv(path: Path, table: pd.DataFrame) -> Path:
    path.write_text(
        table.to_csv(sep=";", index=False, date_format="%Y-%m-%d %H:%M:%S", lineterminator="\r\n")
    )
    return path


def run_import(store: Store, chunks: Iterable[pd.DataFrame], **options: Any) -> ImportReport:
    return import_readings(chunks, ImportOptions(machine_id="pump-7", **options), store)


def test_a_skab_layout_csv_imported_twice_stores_its_rows_once(
    store: Store, tmp_path: Path
) -> None:
    table = skab_like(2345)
    path = write_skab_csv(tmp_path / "pump.csv", table)
    source = csv_source(path, chunk_rows=700)
    assert source.total_rows == 2345
    seen: list[int] = []
    first = import_readings(
        source.chunks, ImportOptions("pump-7", batch_rows=500), store, on_progress=seen.append
    )
    assert seen == [700, 700, 700, 245]
    assert (first.rows, first.batches, first.new_rows, first.new_batches) == (2345, 5, 2345, 5)
    assert first.columns == SENSORS and first.label_column == "anomaly"
    # a different read chunk size cuts the same batches: nothing new
    again = import_readings(
        csv_source(path, chunk_rows=333).chunks, ImportOptions("pump-7", batch_rows=500), store
    )
    assert (again.rows, again.new_rows, again.new_batches) == (2345, 0, 0)
    assert store.machines.get("pump-7").n_readings == 2345

    values, labels = store.readings.window("pump-7")
    assert list(values.columns) == SENSORS and len(values) == 2345
    assert np.allclose(values.to_numpy(), table[SENSORS].to_numpy())
    assert values.index[0] == pd.Timestamp(START, tz="UTC")  # naive times taken as UTC
    assert labels is not None and int(labels.sum()) == 20
    batch = store.readings.get(first.new_batch_ids[0])
    assert uuid.UUID(batch.message_id).version == 5


def test_the_cli_imports_a_real_skab_file_once(skab_dir: Path, tmp_path: Path) -> None:
    env = {"MMLW_DATA_DIR": str(tmp_path), "MMLW_ENVIRONMENT": "test", "MMLW_DATABASE_URL": None}
    Store.open(f"sqlite:///{tmp_path / 'mmlw.db'}").close()  # as `mmlw db upgrade` leaves it
    runner = CliRunner()
    args = ["import", "valve1-0", str(skab_dir / "valve1" / "0.csv")]
    first = runner.invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    assert "imported 1147 readings of valve1-0 in 2 batches: 1147 new" in first.stdout
    assert "importing valve1-0" in first.stderr  # the progress bar
    assert "not queued for scoring: MMLW_BROKER__URL is memory://" in first.stdout
    second = runner.invoke(main, [*args, "--batch-rows", "1000"], env=env)
    assert "0 new, 1147 already stored" in second.stdout
    with Store.open(f"sqlite:///{tmp_path / 'mmlw.db'}") as store:
        assert store.machines.get("valve1-0").n_readings == 1147


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_sql_query_on_postgresql_is_imported_once(
    database_url: str, sqlite_store: Store, tmp_path: Path
) -> None:
    stamps = pd.date_range("2026-01-01", periods=2500, freq="s", tz="UTC")
    rng = np.random.default_rng(3)
    history = pd.DataFrame(
        {"ts": stamps, "current": rng.normal(size=2500), "pressure": rng.normal(size=2500)}
    )
    history["machine"] = np.where(np.arange(2500) % 2 == 0, "press-1", "press-2")
    engine = sa.create_engine(database_url)
    history.to_sql("history", engine, index=False)
    engine.dispose()
    query = (
        'SELECT ts AS timestamp, current AS "Current", pressure AS "Pressure" '
        "FROM history WHERE machine = 'press-1' ORDER BY ts"
    )
    report = run_import(sqlite_store, sql_source(database_url, query, chunk_rows=400).chunks)
    assert (report.rows, report.new_rows, report.batches) == (1250, 1250, 2)
    values, labels = sqlite_store.readings.window("pump-7")
    expected = history[history.machine == "press-1"]
    assert labels is None and list(values.columns) == ["Current", "Pressure"]
    assert np.array_equal(values["Current"].to_numpy(), expected["current"].to_numpy())
    assert values.index.equals(pd.DatetimeIndex(expected["ts"]).as_unit("us"))

    env = {
        "MMLW_DATA_DIR": str(tmp_path),
        "MMLW_ENVIRONMENT": "test",
        "MMLW_DATABASE_URL": sqlite_store.database.engine.url.render_as_string(False),
    }
    cli = CliRunner().invoke(
        main, ["import", "pump-7", "--sql-url", database_url, "--query", query], env=env
    )
    assert cli.exit_code == 0, cli.output
    assert "imported 1250 readings of pump-7 in 2 batches: 0 new" in cli.stdout
    bad = CliRunner().invoke(
        main, ["import", "pump-7", "--sql-url", database_url, "--query", "SELECT nope"], env=env
    )
    assert bad.exit_code == 1 and bad.stderr.count("\n") <= 2
    assert "Error: query:" in bad.stderr and "nope" in bad.stderr


def test_parquet_round_trip(sqlite_store: Store, tmp_path: Path) -> None:
    local = pd.date_range("2026-03-29 00:00", periods=900, freq="10s", tz="Europe/Berlin")
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"timestamp": local, "Temp": rng.normal(size=900), "Flow": 1.0})
    table["anomaly"] = (np.arange(900) > 850).astype("int64")
    path = tmp_path / "history.parquet"
    table.to_parquet(path)
    source = parquet_source(path, chunk_rows=128)
    assert source.total_rows == 900
    report = run_import(sqlite_store, source.chunks, batch_rows=250)
    assert (report.rows, report.batches, report.label_column) == (900, 4, "anomaly")
    values, labels = sqlite_store.readings.window("pump-7")
    assert values.index.equals(pd.DatetimeIndex(local.tz_convert("UTC")).as_unit("us"))
    assert np.array_equal(values[["Temp", "Flow"]].to_numpy(), table[["Temp", "Flow"]].to_numpy())
    assert labels is not None and labels.tolist() == table["anomaly"].tolist()
    again = run_import(sqlite_store, parquet_source(path).chunks, batch_rows=250)
    assert again.new_rows == 0


T0 = "datetime;a\n2026-01-01 00:00:00;1\n"
BAD_INPUT = [
    (T0, {"sensors": ("b",)}, r"sensors: no column 'b'"),
    ("when;a\n2026-01-01 00:00:00;1\n", {}, r"time_column: none of \['datetime', 'timestamp'\]"),
    (T0 + "yesterday;2\n", {}, r"datetime: row 2: cannot parse 'yesterday'"),
    (T0 + "2026-01-01 00:00:01;x\n", {}, r"a: row 2: 'x' is not a number"),
    (T0 + "2026-01-01 00:00:01;\n", {}, r"a: row 2: empty, NaN or infinite"),
    ("datetime;a\n2026-01-01 00:00:00;inf\n", {}, r"a: row 1: empty, NaN or infinite"),
    ("datetime;a;anomaly\n2026-01-01 00:00:00;1;2\n", {}, r"anomaly: row 1: 2.0 is not 0 or 1"),
    ("datetime;a\n1767225600;1\n", {}, r"datetime: numbers are not times"),
    (T0, {"timezone": "Mars/Base"}, r"timezone: unknown"),
    ("datetime;a\n", {}, r"file: no rows"),
    ("", {}, r"file: empty"),
]


@pytest.mark.parametrize(("text", "options", "message"), BAD_INPUT)
def test_bad_input_is_refused_naming_the_column_and_row(
    sqlite_store: Store, tmp_path: Path, text: str, options: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        run_import(sqlite_store, csv_source(path).chunks, **options)
    assert sqlite_store.readings.window("pump-7")[0].empty


def test_the_drop_policy_skips_rows_with_empty_cells(sqlite_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("timestamp,a,b\n2026-01-01T00:00:00Z,1,2\n2026-01-01T00:00:01Z,,3\n"
                    ",5,6\n2026-01-01T01:00:03+01:00,7,8\n")  # fmt: skip
    report = run_import(sqlite_store, csv_source(path).chunks, nan="drop")
    assert (report.rows, report.dropped_rows) == (2, 2)
    values, _ = sqlite_store.readings.window("pump-7")
    assert values["a"].tolist() == [1.0, 7.0]
    assert values.index[-1] == pd.Timestamp("2026-01-01T00:00:03Z")


def test_the_cli_fails_with_one_line_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("datetime,a\n2026-01-01 00:00:00,1\n2026-01-01 00:00:01,oops\n")
    env = {"MMLW_DATA_DIR": str(tmp_path), "MMLW_ENVIRONMENT": "test", "MMLW_DATABASE_URL": None}
    Store.open(f"sqlite:///{tmp_path / 'mmlw.db'}").close()  # as `mmlw db upgrade` leaves it
    result: Result = CliRunner().invoke(main, ["import", "m-1", str(path)], env=env)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: a: row 2: 'oops' is not a number"
    usage = CliRunner().invoke(main, ["import", "m-1"], env=env)
    assert usage.exit_code == 2 and "give either FILE or both --sql-url and --query" in usage.output


def test_the_api_imports_csv_and_parquet_with_an_operate_key(
    make_settings: Callable[..., Settings],
    store: Store,
    registry: MlflowRegistry,
    tmp_path: Path,
) -> None:
    keys = {s: store.api_keys.create(f"{s}-key", [s])[0] for s in ("ingest", "read", "operate")}
    body = write_skab_csv(tmp_path / "h.csv", skab_like(1200)).read_bytes()
    url = "/api/v1/machines/pump-9/imports"
    csv = {"content-type": "text/csv"}
    with TestClient(create_app(make_settings(), store=store, registry=registry)) as client:

        def post(
            key: str, content: bytes = body, headers: dict[str, str] = csv, **params: Any
        ) -> Response:
            headers = {**headers, "X-API-Key": keys[key]}
            return client.post(url, content=content, params=params, headers=headers)

        assert [post(k).status_code for k in ("ingest", "read")] == [403, 403]
        first = post("operate").json()
        assert (first["rows"], first["new_rows"], first["batches"]) == (1200, 1200, 2)
        assert first["columns"] == SENSORS and first["queued_for_scoring"] == 0
        assert post("operate").json()["new_rows"] == 0
        bad = post("operate", body.replace(b";1.0", b";abc", 1))
        assert bad.status_code == 422
        assert "is not a number" in bad.json()["detail"]
        unknown = post("operate", sensor=["Nope"])
        assert unknown.status_code == 422
        assert unknown.json()["detail"].startswith("sensors: no column 'Nope'")
        wrong_type = post("operate", headers={"content-type": "application/json"})
        assert wrong_type.status_code == 415
        parquet_path = tmp_path / "h.parquet"
        skab_like(300, seed=9, start=START + timedelta(days=1)).to_parquet(parquet_path)
        parquet = post(
            "operate",
            parquet_path.read_bytes(),
            {"content-type": "application/vnd.apache.parquet"},
            batch_rows=100,
        ).json()
        assert (parquet["new_rows"], parquet["new_batches"]) == (300, 3)
    assert store.machines.get("pump-9").n_readings == 1500


class RecordingQueue:
    """Records predict calls (the PredictQueue protocol, no broker)."""

    def __init__(self) -> None:
        self.predicted: list[tuple[int, int | None]] = []

    def predict(self, batch_id: int, version: int | None = None) -> None:
        self.predicted.append((batch_id, version))


def test_imported_batches_are_queued_for_the_champion_and_scored(
    sqlite_store: Store, tracking_uri: str, tmp_path: Path, unique_prefix: str
) -> None:
    registry = MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=tmp_path / "a",
        model_prefix=unique_prefix,
    )
    history = write_skab_csv(tmp_path / "old.csv", skab_like(800, seed=1))
    dispatcher = RecordingQueue()
    before = run_import(sqlite_store, csv_source(history).chunks)
    assert queue_scoring(before, registry=registry, dispatcher=dispatcher).queued_for_scoring == 0
    trainer = InlineTrainer(sqlite_store, registry, ModelSettings())
    submit_training(TrainRequest(machine_id="pump-7"), store=sqlite_store, dispatcher=trainer)
    assert registry.alias_version("pump-7", CHAMPION) == 1

    later = write_skab_csv(
        tmp_path / "new.csv", skab_like(1500, seed=2, start=START.replace(day=10))
    )
    report = queue_scoring(
        run_import(sqlite_store, csv_source(later).chunks),
        registry=registry,
        dispatcher=dispatcher,
    )
    assert (report.queued_for_scoring, report.scoring_version) == (2, 1)
    assert dispatcher.predicted == [(i, 1) for i in report.new_batch_ids]
    models = ModelCache(registry, ttl_s=0)
    statuses = [  # what the predict tasks do with them, in the order they were queued
        score_batch(batch_id, store=sqlite_store, models=models, version=version).status
        for batch_id, version in dispatcher.predicted
    ]
    # the first task streams the machine up to its batch, earlier batches included; a
    # later task whose batch was streamed on the way finds it done
    assert statuses[0] == "scored" and set(statuses) <= {"scored", "duplicate"}
    assert sum(len(s.scores) for s in sqlite_store.scores.query("pump-7")) == 800 + 1500
    assert datetime.now(UTC)
