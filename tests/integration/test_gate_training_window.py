"""The labelled promotion gate leaves out the challenger's own training rows (its
``mmlw.train_start`` / ``mmlw.train_end`` tags): a challenger that memorised the faults
of its training window must not pass on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmlw.errors import ConflictError
from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.schemas.readings import ReadingsBatch
from mmlw.schemas.resources import ModelVersionOut
from mmlw.services.lifecycle import gate_report, promote
from mmlw.settings import PromotionSettings
from mmlw.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRAINED = 1000  # readings 0..999: the challenger's training window
LATER = 300  # readings after it


class Threshold:
    """The champion: flags x > 3 (right on every fault)."""

    def score(self, frame: pd.DataFrame) -> SimpleNamespace:
        return SimpleNamespace(flags=frame["x"].to_numpy() > 3)


class Memorised:
    """The challenger: flags exactly the fault values it saw in training."""

    def __init__(self, seen: np.ndarray) -> None:
        self.seen = seen

    def score(self, frame: pd.DataFrame) -> SimpleNamespace:
        return SimpleNamespace(flags=np.isin(frame["x"].to_numpy(), self.seen))


class Registry:
    def __init__(self, models: dict[int, object], tags: dict[int, dict[str, str]]) -> None:
        self.models, self.tags = models, tags
        self.aliases = {CHAMPION: 1, CHALLENGER: 2}

    def alias_version(self, machine_id: str, alias: str) -> int | None:
        return self.aliases.get(alias)

    def set_alias(self, machine_id: str, alias: str, version: int) -> None:
        self.aliases[alias] = version

    def delete_alias(self, machine_id: str, alias: str) -> None:
        self.aliases.pop(alias, None)

    def load(self, machine_id: str, version: int) -> object:
        return self.models[version]

    def versions(self, machine_id: str) -> list[ModelVersionOut]:
        return [
            ModelVersionOut(
                model_name=f"mmlw-{machine_id}",
                version=v,
                aliases=[],
                run_id=None,
                created_at=T0,
                detector=None,
                threshold=None,
                metrics={},
                tags=self.tags.get(v, {}),
            )
            for v in self.models
        ]


def _stamp(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def _history(store: Store) -> np.ndarray:
    """Training window with a fault every 20th reading, later readings with a fault every
    30th (other values); the fault values of the training window."""
    rng = np.random.default_rng(3)
    n = TRAINED + LATER
    x = rng.uniform(-1, 1, n)
    labels = np.zeros(n, dtype=int)
    faults = [i for i in range(TRAINED) if i % 20 == 7]
    later = [i for i in range(TRAINED, n) if i % 30 == 11]
    x[faults] = 5 + np.arange(len(faults)) * 1e-3
    x[later] = 7 + np.arange(len(later)) * 1e-3
    labels[faults + later] = 1
    for first in range(0, n, 50):
        rows = range(first, first + 50)
        store.readings.add(
            ReadingsBatch.of_rows(
                "m", ["x"], [_stamp(i) for i in rows], [[x[i]] for i in rows],
                [int(labels[i]) for i in rows],
            )
        )  # fmt: skip
    return x[faults]


def _registry(seen: np.ndarray, *, tagged: bool = True) -> Registry:
    window = {
        "mmlw.train_start": pd.Timestamp(_stamp(0)).isoformat(),
        "mmlw.train_end": pd.Timestamp(_stamp(TRAINED - 1)).isoformat(),
    }
    return Registry({1: Threshold(), 2: Memorised(seen)}, {2: window if tagged else {}})


SETTINGS = PromotionSettings(gate="labelled", min_readings=200, f1_tolerance=0.5)


def test_the_labelled_gate_scores_only_readings_outside_the_training_window(
    sqlite_store: Store,
) -> None:
    registry = _registry(_history(sqlite_store))
    report = gate_report(
        "m",
        2,
        store=sqlite_store,
        registry=registry,
        settings=SETTINGS,  # type: ignore[arg-type]
    )
    assert report.kind == "labelled" and not report.passed, report.reason
    assert report.n_readings == LATER and report.training_rows_excluded == TRAINED
    assert f"{LATER} readings outside v2's training window" in report.reason
    assert f"{TRAINED} training-window readings excluded" in report.reason
    assert report.challenger["f1"] == 0.0 and report.champion["f1"] == 1.0
    with pytest.raises(ConflictError, match="training-window readings excluded"):
        promote(
            "m", store=sqlite_store, registry=registry, settings=SETTINGS,  # type: ignore[arg-type]
            actor="test", reason="test",
        )  # fmt: skip


def test_without_its_training_window_the_challenger_would_pass(sqlite_store: Store) -> None:
    """What the gate did before: the training rows flatter the challenger."""
    registry = _registry(_history(sqlite_store), tagged=False)
    report = gate_report(
        "m",
        2,
        store=sqlite_store,
        registry=registry,
        settings=SETTINGS,  # type: ignore[arg-type]
    )
    assert report.passed and report.n_readings == TRAINED + LATER
    assert "training window unknown" in report.reason


def test_too_few_readings_after_the_training_window_refuse(sqlite_store: Store) -> None:
    registry = _registry(_history(sqlite_store))
    settings = SETTINGS.model_copy(update={"min_readings": LATER + 1})
    report = gate_report(
        "m",
        2,
        store=sqlite_store,
        registry=registry,
        settings=settings,  # type: ignore[arg-type]
    )
    assert not report.passed and report.n_readings == LATER
    assert report.training_rows_excluded == TRAINED
    assert f"need {LATER + 1}" in report.reason and "refused" in report.reason
    # auto: not enough labelled readings outside the window, so the shadow gate decides
    auto = settings.model_copy(update={"gate": "auto"})
    report = gate_report(
        "m",
        2,
        store=sqlite_store,
        registry=registry,
        settings=auto,  # type: ignore[arg-type]
    )
    assert report.kind == "shadow" and not report.passed
