"""The README's first command, black-box: `mmlw demo` in a subprocess, checked through
its HTTP API while it runs — machines with readings, a registered model per machine,
and stored scores in which the injected faults score higher than normal operation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mmlw.ports import free_port
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow


def test_demo_trains_and_scores_simulated_machines(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLW_")}
    command = [
        sys.executable, "-m", "mmlw.cli", "demo",
        "--machines", "2", "--speedup", "100", "--warmup", "300",
        "--duration", "90", "--port", str(port), "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(timeout=10) as client:

            def scored_machines() -> list[dict[str, Any]] | None:
                assert process.poll() is None, "the demo exited"
                machines: list[dict[str, Any]] = client.get(f"{base}/machines").json()
                if len(machines) == 2 and all(_faults_scored(client, base, m) for m in machines):
                    return machines
                return None

            machines = wait_for(
                scored_machines,
                80,
                "the demo to show trained, scored machines with faults",
                interval_s=1.0,
                ignore=(httpx.HTTPError,),
            )
            for machine in machines:
                assert machine["n_readings"] > 300
                assert machine["champion_version"] == 1
                (version,) = client.get(f"{base}/machines/{machine['id']}/models").json()
                assert version["aliases"] == ["champion"]
                assert version["metrics"]["n_readings"] == 300
                normal, fault = _mean_scores(client, base, machine["id"])
                assert fault > 3 * normal, (machine["id"], normal, fault)
            # the injected faults raise alerts, and their e-mails reach the demo's catcher
            wait_for(lambda: _alert_mails(tmp_path), 60, "an alert e-mail in the demo's catcher")
            alerts = client.get(f"{base}/alerts").json()
            assert alerts and alerts[-1]["rule"] in (
                "anomalous-readings",
                "score-far-above-threshold",
            )
            assert alerts[-1]["top_sensors"] and alerts[-1]["model_version"] == 1
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert "API:" in output and "MLflow UI:" in output, output[-2000:]
    mails = _alert_mails(tmp_path)
    assert mails and "FIRING" in mails[0].read_text(), output[-2000:]
    assert f"alert e-mails captured: {len(mails)}" in output, output[-2000:]
    # the closing table's three figures: normal readings flagged, faults alerted, alerts
    # on faults (the demo's alert rules run on the machines' clock)
    flagged = re.search(r"normal readings flagged: +([0-9.]+)% of ([0-9]+)", output)
    alerted = re.search(r"injected faults alerted: +([0-9]+) of ([0-9]+)", output)
    on_faults = re.search(r"alerts overlapping faults: +([0-9]+) of ([0-9]+)", output)
    assert flagged and alerted and on_faults, output[-2000:]
    assert float(flagged[1]) < 5 and int(flagged[2]) > 300
    assert int(alerted[2]) >= 1 and int(alerted[1]) >= 1
    assert int(on_faults[2]) >= 1 and int(on_faults[1]) >= 0.8 * int(on_faults[2])


def _alert_mails(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "mail").glob("*.eml"))


def _mean_scores(client: httpx.Client, base: str, machine_id: str) -> tuple[float, float]:
    readings = client.get(f"{base}/machines/{machine_id}/readings", params={"limit": 100_000})
    scores = client.get(f"{base}/machines/{machine_id}/scores", params={"limit": 100_000})
    labels = dict(zip(readings.json()["timestamps"], readings.json()["labels"], strict=True))
    body = scores.json()
    truth = np.array([labels.get(t, -1) for t in body["timestamps"]])
    values = np.array(body["scores"])
    if not (truth == 1).any() or not (truth == 0).any():
        return float("nan"), float("nan")
    return float(values[truth == 0].mean()), float(values[truth == 1].mean())


def _faults_scored(client: httpx.Client, base: str, machine: dict[str, object]) -> bool:
    if machine.get("champion_version") is None:
        return False
    normal, fault = _mean_scores(client, base, str(machine["id"]))
    return bool(np.isfinite(fault) and np.isfinite(normal))
