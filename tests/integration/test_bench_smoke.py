"""`mmlw bench` with tiny counts on the real RabbitMQ and PostgreSQL: every phase runs,
nothing is lost, the report has its parts. The figures of such a run mean nothing and are
never asserted (speed is measured by running the bench, not by tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmlw.bench import BenchTargets, Scenario, load_scenario, run_bench
from mmlw.bench.scenarios import SCENARIO_DIR
from mmlw.bench.table import render_report
from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.settings import Settings

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_scenario_file_is_valid(path: Path) -> None:
    scenario = load_scenario(path.stem)
    assert scenario.name == path.stem
    assert scenario.detectors


def test_overrides_are_validated_like_the_file() -> None:
    scenario = Scenario().with_updates(**{"throughput.readings": 5000, "stack.pool": "threads"})
    assert scenario.throughput.readings == 5000 and scenario.stack.pool == "threads"
    with pytest.raises(ValueError, match="pool"):
        Scenario().with_updates(**{"stack.pool": "gevent"})


def test_smoke_run_counts_every_reading_and_reports_every_part(
    rabbitmq_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    scenario = load_scenario("smoke")
    lines: list[str] = []
    report = run_bench(
        Settings(environment="test", data_dir=tmp_path / "data"),
        scenario,
        targets=BenchTargets(broker_url=rabbitmq_url, postgres_admin_url=postgres_admin_url),
        echo=lines.append,
    )
    (run,) = report.throughput["pca"]
    messages = -(-scenario.throughput.readings // scenario.batch_size)
    assert run.readings == messages * scenario.batch_size
    assert run.messages == messages
    assert run.lossless, run.counts
    assert run.counts.readings == run.counts.scored == run.readings
    assert set(run.cpu_s) >= {"ingest", "scorer", "worker", "rabbitmq", "postgresql", "other"}

    assert report.storage["readings"] >= scenario.throughput.readings  # what the runs added
    kb = report.storage_kb_per_1000()
    assert kb is not None and kb > 0
    assert sorted(report.scaleout) == [1, 2]
    assert all(run.lossless for runs in report.scaleout.values() for run in runs)
    assert "scale-out, pca e2e readings/s by scorer processes" in render_report(report)

    (latency,) = report.latency["pca"]
    assert latency.lossless
    assert latency.readings == scenario.latency.rate * scenario.latency.duration_s
    assert set(latency.percentiles_ms) == {"p50", "p95", "p99", "max"}

    (served,) = report.mlflow_serve["pca"]
    assert served.readings == scenario.baselines.readings
    (plain,) = report.plain_consumer["pca"]
    assert plain.readings == scenario.baselines.readings
    (raw,) = report.rabbitmq_limit
    assert raw.readings == scenario.limits.rabbitmq_readings
    assert [limit.batch_size for limit in report.scoring_limits["pca"]] == [scenario.batch_size]
    assert report.training["pca"].readings == scenario.training.readings
    assert len(report.training["pca"].warm_s) == scenario.training.repeats
    assert {"ingest", "scorer", "worker", "api"} <= set(report.peak_rss_mb)

    ratios = report.ratios()["pca"]
    assert all(value is not None and value > 0 for value in ratios.values()), ratios
    assert [t.name for t in report.targets() if t.met is None] == [  # it runs PCA only
        "Isolation Forest e2e, zero loss",
        f"default detector ({DEFAULT_DETECTOR}) e2e, zero loss",
        "level_change (streamed, stateful) e2e, zero loss",
    ]
    table = report.table()
    for label in ("e2e readings/s", "mlflow models serve", "plain pika consumer", "targets:"):
        assert label in table
    data = json.loads(report.write(tmp_path / "results").read_text())
    assert data["throughput"]["pca"][0]["lossless"] is True
    assert set(data["ratios"]["pca"]) == set(ratios)
    assert any(line.startswith("pca e2e:") for line in lines), "progress is shown"
