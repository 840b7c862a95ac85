"""``mmlw select-settings``: leave-one-group-out on a SKAB-layout folder, through the
serving path. On generated groups, its output and record; on SKAB, the claim of
docs/detectors-evaluation.md: every fold chooses the default detector's alarm release
among the shipped candidates, and the pooled held-out figures meet the issue's bars."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner, Result

from mmlw.cli import main
from mmlw.detectors.adaptive import AdaptiveDetector

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = REPO / "configs" / "selection" / "alarm-release.yaml"


def _select(tmp_path: Path, *args: str) -> Result:
    env = {"MMLW_DATA_DIR": str(tmp_path / "data")}
    return CliRunner().invoke(main, ["select-settings", *args], env=env)


def _groups(root: Path) -> Path:
    """Three groups of two files: a shift of 6 spreads on one sensor for 40 rows."""
    rng = np.random.default_rng(5)
    for group in ("a", "b", "c"):
        for k in range(2):
            n = 520
            X = rng.normal(size=(n, 2))
            X[440:480, k] += 6.0
            anomaly, cp = np.zeros(n), np.zeros(n)
            anomaly[440:480] = 1.0
            cp[[440, 480]] = 1.0
            times = pd.date_range("2020-01-01", periods=n, freq="s")
            frame = pd.DataFrame({"datetime": times.strftime("%Y-%m-%d %H:%M:%S")})
            frame["s1"], frame["s2"] = X[:, 0], X[:, 1]
            frame["anomaly"], frame["changepoint"] = anomaly, cp
            (root / group).mkdir(parents=True, exist_ok=True)
            frame.to_csv(root / group / f"{k}.csv", sep=";", index=False)
    return root


def test_each_group_is_scored_with_settings_chosen_without_it(tmp_path: Path) -> None:
    data, out = _groups(tmp_path / "set"), tmp_path / "out"
    candidates = tmp_path / "candidates.yaml"
    candidates.write_text("detector: adaptive\ngrid: {level_release: [0, 16]}\n")
    result = _select(tmp_path, "--dataset", str(data), "--candidates", str(candidates),
                     "--max-far", "50", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("[") >= 2 and "[2/2] level_release=16" in result.output
    folds = [line.split()[1] for line in result.output.splitlines() if line.startswith("with")]
    assert folds == ["a:", "b:", "c:"]
    record = json.loads((out / "selection.json").read_text())
    assert record["candidates"] == [{"level_release": 0}, {"level_release": 16}]
    assert [f["held_out"] for f in record["folds"]] == ["a", "b", "c"]
    assert all(f["chosen"] in record["candidates"] for f in record["folds"])
    assert 0.0 < record["held_out"]["f1"] <= 1.0
    assert f"F1 {record['held_out']['f1']:.3f}" in result.output
    assert (out / "candidate-1" / "detections" / "b" / "0.csv").exists()


def test_bad_candidates_and_datasets_are_one_line(tmp_path: Path) -> None:
    data = _groups(tmp_path / "set")
    loose = tmp_path / "loose.yaml"
    loose.write_text("candidates: [{level_release: 0}]\n")  # FAR 25 % on these files
    result = _select(tmp_path, "--dataset", str(data), "--candidates", str(loose))
    assert result.exit_code == 1 and "no configuration keeps FAR <= 13.5 %" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: {level_release: []}\n")
    result = _select(tmp_path, "--dataset", str(data), "--candidates", str(bad))
    assert result.exit_code == 1 and "grid: must map each parameter" in result.output
    bad.write_text("detectors: [adaptive]\n")
    result = _select(tmp_path, "--dataset", str(data), "--candidates", str(bad))
    assert result.exit_code == 1 and "expected a mapping of detector" in result.output
    one = tmp_path / "one"
    (one / "a").mkdir(parents=True)
    (one / "a" / "0.csv").symlink_to(data / "a" / "0.csv")
    result = _select(tmp_path, "--dataset", str(one), "--candidates", str(CANDIDATES))
    assert result.exit_code == 1 and "two or more" in result.output
    assert (
        len(result.output.strip().splitlines())
        <= len([line for line in CANDIDATES.read_text().splitlines() if line.startswith("  - ")])
        + 1
    )  # a line per candidate replayed, then the one-line error


def test_on_skab_every_fold_chooses_the_defaults(skab_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _select(tmp_path, "--dataset", str(skab_dir), "--candidates", str(CANDIDATES),
                     "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "selection.json").read_text())
    defaults = AdaptiveDetector()
    chosen = [f["chosen"] for f in record["folds"]]
    assert [f["held_out"] for f in record["folds"]] == ["other", "valve1", "valve2"]
    assert all(c == {k: getattr(defaults, k) for k in c} for c in chosen), chosen
    held = record["held_out"]
    assert held["f1"] >= 0.80 and held["far"] <= 13.5 and held["nab_standard"] > 32.4, held
