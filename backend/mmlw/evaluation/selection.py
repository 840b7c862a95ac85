"""Settings chosen without the data they are scored on: leave-one-group-out.

A SKAB-layout folder's files fall into groups (the first folder of their path: SKAB's
``valve1``, ``valve2`` and ``other``). Every candidate configuration is replayed through
the serving path once (:func:`~mmlw.evaluation.stream.stream_evaluate`); then, for each
group, the configuration with the highest F1 on the *other* groups (its false-alarm rate
there at most ``max_far`` %) is chosen and scored on the held-out group. The held-out
groups' counts are pooled (point counts and the changepoint score's raw counts both add
up), so the pooled figure is one no setting was chosen on. When every fold chooses the
same configuration, it is also that configuration's own figure on the whole folder.

>>> from mmlw.evaluation.metrics import PointCounts
>>> def totals(tp, fp, fn, tn):
...     return SkabTotals(PointCounts(tp, fp, fn, tn))
>>> strict = {"a": totals(8, 1, 2, 89), "b": totals(7, 1, 3, 89), "c": totals(9, 0, 1, 90)}
>>> loose = {"a": totals(10, 30, 0, 60), "b": totals(10, 30, 0, 60), "c": totals(10, 2, 0, 88)}
>>> folds, pooled = leave_one_group_out([strict, loose], max_far=13.5)  # loose: FAR 33 %
>>> [(f.held_out, f.chosen) for f in folds], round(pooled["f1"], 3)
([('a', 0), ('b', 0), ('c', 0)], 0.857)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

from mmlw.evaluation.stream_report import SkabTotals

__all__ = ["Fold", "leave_one_group_out", "load_candidates"]

#: at most this many configurations in one candidates file (each is a whole replay)
MAX_CANDIDATES = 500


@dataclass(frozen=True)
class Fold:
    """One held-out group: the configuration chosen without it (an index into the
    candidates), its scores on the other groups and on the held-out one."""

    held_out: str
    chosen: int
    train: dict[str, Any]
    held: dict[str, Any]


def leave_one_group_out(
    candidates: Sequence[Mapping[str, SkabTotals]], *, max_far: float
) -> tuple[list[Fold], dict[str, Any]]:
    """Folds and the pooled held-out scores of ``candidates`` (each configuration's
    totals per group, every one with the same groups). Ties go to the earlier candidate.
    ValueError with fewer than two groups, or when no candidate keeps FAR within
    ``max_far`` % on the groups a fold chooses on."""
    if not candidates:
        raise ValueError("candidates: need at least one configuration")
    groups = sorted(candidates[0])
    if len(groups) < 2 or any(sorted(c) != groups for c in candidates):
        raise ValueError(f"groups: need the same two or more in every candidate, got {groups}")
    folds, pooled = [], SkabTotals()
    for held in groups:
        train = [
            reduce(SkabTotals.__add__, (c[g] for g in groups if g != held)).scores()
            for c in candidates
        ]
        eligible = [i for i, scores in enumerate(train) if scores["far"] <= max_far]
        if not eligible:
            raise ValueError(f"no configuration keeps FAR <= {max_far} % without {held!r}")
        chosen = max(eligible, key=lambda i: (train[i]["f1"], -i))
        folds.append(Fold(held, chosen, train[chosen], candidates[chosen][held].scores()))
        pooled += candidates[chosen][held]
    return folds, pooled.scores()


def load_candidates(path: Path | str) -> tuple[str | None, list[dict[str, Any]]]:
    """The detector (None: the product's default) and the configurations of a YAML file:
    ``candidates`` (a list of parameter mappings, in order) and/or ``grid`` (parameter ->
    list of values, every combination, after them). ValueError naming the file and
    field on anything else."""
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML ({exc.__class__.__name__})") from exc
    if not isinstance(spec, dict) or not set(spec) <= {"detector", "candidates", "grid"}:
        raise ValueError(f"{path}: expected a mapping of detector, candidates and grid")
    detector = spec.get("detector")
    if detector is not None and not isinstance(detector, str):
        raise ValueError(f"{path}: detector: must be a catalog name")
    listed = spec.get("candidates") or []
    if not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed):
        raise ValueError(f"{path}: candidates: must be a list of parameter mappings")
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"{path}: grid: must map each parameter to a non-empty list")
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    configs = [dict(c) for c in listed] + (combos if grid else [])
    if not configs or len(configs) > MAX_CANDIDATES:
        raise ValueError(f"{path}: need 1 to {MAX_CANDIDATES} configurations, got {len(configs)}")
    return detector, configs
