"""The model lifecycle on top of the registry: which alias a new version gets, gated
promotion of a challenger, rollback, and the alias history that records every move.

The registry (MLflow) holds the aliases; our store holds their history (who, when, why,
from -> to), which MLflow does not keep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from mmlw.errors import ConflictError, InsufficientData, NotFound
from mmlw.evaluation.metrics import classification_metrics
from mmlw.registry.base import CHALLENGER, CHAMPION, ModelRegistry
from mmlw.settings import PromotionSettings
from mmlw.store import Store
from mmlw.store.lifecycle import AliasEventOut
from mmlw.store.tables import utcnow

__all__ = [
    "GateReport",
    "assign_new_version",
    "gate_report",
    "move_alias",
    "promote",
    "rollback",
]

log = logging.getLogger(__name__)


def move_alias(
    machine_id: str,
    alias: str,
    version: int | None,
    *,
    store: Store,
    registry: ModelRegistry,
    actor: str,
    reason: str,
    details: dict[str, object] | None = None,
    at: datetime | None = None,
) -> AliasEventOut:
    """Point ``alias`` at ``version`` (None removes it) and record the move."""
    previous = registry.alias_version(machine_id, alias)
    if version is None:
        registry.delete_alias(machine_id, alias)
    else:
        registry.set_alias(machine_id, alias, version)
    event = store.alias_history.record(
        machine_id,
        alias,
        previous,
        version,
        at=at or utcnow(),
        actor=actor,
        reason=reason,
        details=dict(details or {}),
    )
    log.info("%s %s: v%s -> v%s (%s, %s)", machine_id, alias, previous, version, actor, reason)
    return event


def assign_new_version(
    machine_id: str,
    version: int,
    mode: str,
    *,
    store: Store,
    registry: ModelRegistry,
    actor: str,
    reason: str,
) -> list[str]:
    """The aliases a freshly registered version gets: ``auto`` makes the first version
    champion and later ones challenger (scored in shadow until promoted)."""
    if mode == "none":
        return []
    if mode == "auto":
        mode = CHAMPION if registry.alias_version(machine_id, CHAMPION) is None else CHALLENGER
    move_alias(
        machine_id, mode, version, store=store, registry=registry, actor=actor, reason=reason
    )
    if mode == CHAMPION and registry.alias_version(machine_id, CHALLENGER) == version:
        move_alias(
            machine_id, CHALLENGER, None, store=store, registry=registry, actor=actor,
            reason=f"v{version} became champion",
        )  # fmt: skip
    return [mode]


@dataclass(frozen=True)
class GateReport:
    """How a challenger compares with the champion, and whether it may replace it."""

    kind: str
    passed: bool
    reason: str
    champion_version: int | None
    challenger_version: int
    n_readings: int
    champion: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, float] = field(default_factory=dict)
    # labelled gate: the readings of the challenger's training window, left out
    training_rows_excluded: int | None = None


def gate_report(
    machine_id: str,
    challenger_version: int,
    *,
    store: Store,
    registry: ModelRegistry,
    settings: PromotionSettings,
) -> GateReport:
    champion_version = registry.alias_version(machine_id, CHAMPION)
    if champion_version is None:
        return GateReport("none", True, "no champion yet", None, challenger_version, 0)
    kind = settings.gate
    if kind == "shadow":
        return _shadow_gate(machine_id, champion_version, challenger_version, store, settings)
    trained = _training_window(machine_id, challenger_version, registry)
    labelled = _labelled_window(machine_id, store, settings.min_readings, trained)
    if kind == "auto":
        kind = "labelled" if labelled.enough else "shadow"
    if kind == "labelled":
        if not labelled.enough and (labelled.trained is None or labelled.excluded == 0):
            raise InsufficientData(
                f"gate: fewer than {settings.min_readings} labelled readings with both "
                f"normal and anomalous ones for {machine_id}"
            )
        if not labelled.enough:
            reason = (
                f"labelled gate: {labelled.n} labelled readings outside v{challenger_version}'s "
                f"training window ({labelled.excluded} training-window readings excluded), "
                f"need {settings.min_readings} with both normal and anomalous ones: refused"
            )
            return GateReport(
                "labelled", False, reason, champion_version, challenger_version, labelled.n,
                training_rows_excluded=labelled.excluded,
            )  # fmt: skip
        return _labelled_gate(
            machine_id, champion_version, challenger_version, labelled, registry, settings
        )
    return _shadow_gate(machine_id, champion_version, challenger_version, store, settings)


def _training_window(
    machine_id: str, version: int, registry: ModelRegistry
) -> tuple[datetime, datetime] | None:
    """First and last reading the version was trained on (its ``mmlw.train_*`` tags)."""
    for registered in registry.versions(machine_id):
        if registered.version == version:
            start = registered.tags.get("mmlw.train_start")
            end = registered.tags.get("mmlw.train_end")
            if start and end:
                return datetime.fromisoformat(start), datetime.fromisoformat(end)
    return None


@dataclass(frozen=True)
class _Labelled:
    """Labelled readings for the gate, without the challenger's training window."""

    data: tuple[np.ndarray, np.ndarray, list[str]] | None  # values, labels, columns
    n: int  # labelled readings (both classes or not)
    excluded: int  # readings of the training window left out
    enough: bool  # at least the minimum, with both classes
    trained: tuple[datetime, datetime] | None


def _labelled_window(
    machine_id: str, store: Store, n: int, trained: tuple[datetime, datetime] | None
) -> _Labelled:
    """The newest labelled readings outside ``trained`` (after it, then before it):
    scoring a challenger on the rows it was fitted on would flatter it."""
    want = max(n, 5000)
    if trained is None:
        parts = [store.readings.window(machine_id, last_n=want)]
        excluded = 0
    else:
        first, last = trained
        after = store.readings.window(
            machine_id, start=last + timedelta(microseconds=1), last_n=want
        )
        parts = [after]
        if len(after[0]) < want:
            parts.insert(
                0, store.readings.window(machine_id, end=first, last_n=want - len(after[0]))
            )
        excluded = store.readings.count_in_range(
            machine_id, first, last + timedelta(microseconds=1)
        )
    found = [(v, lab.to_numpy()) for v, lab in parts if lab is not None and len(v)]
    if not found:
        return _Labelled(None, 0, excluded, False, trained)
    import pandas as pd

    values = pd.concat([v for v, _ in found])
    labels = np.concatenate([lab for _, lab in found])
    known = (labels >= 0) & values.notna().all(axis=1).to_numpy()
    y = labels[known]
    data = (values.to_numpy(dtype=np.float64)[known], y, [str(c) for c in values.columns])
    enough = len(y) >= n and bool((y == 1).any()) and bool((y == 0).any())
    return _Labelled(data if len(y) else None, len(y), excluded, enough, trained)


def _labelled_gate(
    machine_id: str,
    champion_version: int,
    challenger_version: int,
    labelled: _Labelled,
    registry: ModelRegistry,
    settings: PromotionSettings,
) -> GateReport:
    import pandas as pd

    assert labelled.data is not None
    X, y, columns = labelled.data
    frame = pd.DataFrame(X, columns=columns)
    metrics = {}
    for version in (champion_version, challenger_version):
        scored = registry.load(machine_id, version).score(frame)
        metrics[version] = classification_metrics(y, scored.flags)
    champ, chal = metrics[champion_version], metrics[challenger_version]
    f1_ok = chal["f1"] >= champ["f1"] - settings.f1_tolerance
    far_ok = chal["far"] <= champ["far"] + settings.far_tolerance
    if labelled.trained is None:
        rows = f"{len(y)} readings (v{challenger_version}'s training window unknown)"
    else:
        rows = (
            f"{len(y)} readings outside v{challenger_version}'s training window "
            f"({labelled.excluded} training-window readings excluded)"
        )
    reason = (
        f"labelled gate on {rows}: F1 {chal['f1']:.3f} vs {champ['f1']:.3f} "
        f"(tolerance {settings.f1_tolerance}), false alarms {chal['far']:.3f} vs "
        f"{champ['far']:.3f}: {'passed' if f1_ok and far_ok else 'failed'}"
    )
    return GateReport(
        "labelled", f1_ok and far_ok, reason, champion_version, challenger_version, len(y),
        champ, chal, labelled.excluded,
    )  # fmt: skip


def _shadow_gate(
    machine_id: str,
    champion_version: int,
    challenger_version: int,
    store: Store,
    settings: PromotionSettings,
) -> GateReport:
    champ_flags, chal_flags = store.scores.paired_flags(
        machine_id, champion_version, challenger_version
    )
    n = len(champ_flags)
    if n < settings.min_readings:
        return GateReport(
            "shadow", False,
            f"shadow gate: {n} readings scored by both, need {settings.min_readings}",
            champion_version, challenger_version, n,
        )  # fmt: skip
    champ_rate, chal_rate = float(champ_flags.mean()), float(chal_flags.mean())
    limit = max(settings.max_alert_ratio * champ_rate, settings.min_flag_rate)
    passed = chal_rate <= limit
    reason = (
        f"shadow gate on {n} readings: challenger flags {chal_rate:.2%}, champion "
        f"{champ_rate:.2%}, limit {limit:.2%}: {'passed' if passed else 'failed'}"
    )
    return GateReport(
        "shadow", passed, reason, champion_version, challenger_version, n,
        {"flag_rate": champ_rate}, {"flag_rate": chal_rate},
    )  # fmt: skip


def promote(
    machine_id: str,
    *,
    store: Store,
    registry: ModelRegistry,
    settings: PromotionSettings,
    actor: str,
    reason: str,
    version: int | None = None,
    gated: bool = True,
) -> tuple[AliasEventOut, GateReport | None]:
    """Make ``version`` (default: the challenger) champion, through the gate unless
    ``gated`` is False; ConflictError (with the gate's reason) if it does not pass."""
    if version is None:
        version = registry.alias_version(machine_id, CHALLENGER)
        if version is None:
            raise NotFound(f"machine {machine_id!r} has no challenger to promote")
    _require_version(machine_id, version, registry)
    if registry.alias_version(machine_id, CHAMPION) == version:
        raise ConflictError(f"v{version} is already champion of {machine_id}")
    report = None
    if gated:
        report = gate_report(machine_id, version, store=store, registry=registry, settings=settings)
        if not report.passed:
            raise ConflictError(f"promotion of v{version} refused: {report.reason}")
    details: dict[str, object] = {"gate": report.__dict__ if report is not None else "skipped"}
    event = move_alias(
        machine_id, CHAMPION, version, store=store, registry=registry, actor=actor,
        reason=reason if report is None else f"{reason}; {report.reason}", details=details,
    )  # fmt: skip
    if registry.alias_version(machine_id, CHALLENGER) == version:
        move_alias(
            machine_id, CHALLENGER, None, store=store, registry=registry, actor=actor,
            reason=f"v{version} promoted to champion",
        )  # fmt: skip
    return event, report


def rollback(
    machine_id: str,
    version: int,
    *,
    store: Store,
    registry: ModelRegistry,
    actor: str,
    reason: str,
) -> AliasEventOut:
    """Make an earlier ``version`` champion again, at once (no gate)."""
    _require_version(machine_id, version, registry)
    current = registry.alias_version(machine_id, CHAMPION)
    if current == version:
        raise ConflictError(f"v{version} is already champion of {machine_id}")
    return move_alias(
        machine_id, CHAMPION, version, store=store, registry=registry, actor=actor,
        reason=f"rollback: {reason}", details={"rolled_back_from": current},
    )  # fmt: skip


def _require_version(machine_id: str, version: int, registry: ModelRegistry) -> None:
    if version not in {v.version for v in registry.versions(machine_id)}:
        raise NotFound(f"machine {machine_id!r} has no model version {version}")
