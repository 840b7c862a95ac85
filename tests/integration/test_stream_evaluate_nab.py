"""``mmlw evaluate --mode stream`` on the NAB development subset: every data file gets a
detections file with exactly its rows, and the printed/recorded NAB scores are those of
the independent reference scorer (``../shared/tools/nab_score.py --threshold 0.5``). The
default detector meets the bars of docs/detectors-evaluation.md on nab-dev (on SKAB:
``test_select_settings.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mmlw.cli import main
from mmlw.settings import ModelSettings
from tests.conftest import reference_nab_scores

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@pytest.mark.parametrize("detectors", [(), ("robust_zscore",)], ids=["default", "robust_zscore"])
def test_stream_mode_on_nab_dev_matches_the_reference_scorer(
    detectors: tuple[str, ...], nab_dir: Path, nab_reference_scorer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["evaluate", "--mode", "stream", "--dataset", str(nab_dir), "--out", str(out)]
    for name in detectors:
        args += ["--detector", name]
    result = CliRunner().invoke(main, args, env={"MMLW_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0, result.output

    data_files = sorted(p.relative_to(nab_dir) for p in nab_dir.rglob("*.csv"))
    assert len(data_files) == 34
    written = sorted(p.relative_to(out / "detections") for p in (out / "detections").rglob("*.csv"))
    assert written == data_files
    for rel in data_files:
        data = pd.read_csv(nab_dir / rel, usecols=["timestamp"], dtype=str)
        det = pd.read_csv(out / "detections" / rel, dtype={"timestamp": str})
        assert list(det.columns) == ["timestamp", "anomaly_score"]
        assert det["timestamp"].tolist() == data["timestamp"].tolist(), rel
        assert set(det["anomaly_score"].unique()) <= {0, 1}
    assert result.output.count(" rows, ") == 34  # one progress line per file

    name = detectors[0] if detectors else ModelSettings().default_detector
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["detectors"]) == [name]
    record = summary["detectors"][name]
    assert record["errors"] == 0, [f for f in record["files"] if f["error"]]
    assert record["detections"] > 0
    ref = reference_nab_scores(nab_reference_scorer, nab_dir, out / "detections")
    for profile in PROFILES:
        assert record["scores"][profile] == pytest.approx(ref[profile], abs=1e-6), profile
        assert f"{record['scores'][profile]:.3f}" in result.output
    if not detectors:  # the default: NAB >= 65 / 50, at most 5 alerts on normal streams
        assert ref["standard"] >= 65.0 and ref["reward_low_FP_rate"] >= 50.0
        normal = (out / "detections" / "artificialNoAnomaly").rglob("*.csv")
        assert sum(int(pd.read_csv(p)["anomaly_score"].sum()) for p in normal) <= 5
