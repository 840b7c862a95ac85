"""The per-process model cache, over a small in-memory registry of the same protocol."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmlw.detectors.model import AnomalyModel
from mmlw.detectors.pca import PCADetector
from mmlw.registry.base import DatasetInfo, RegisteredVersion
from mmlw.schemas.resources import ModelVersionOut
from mmlw.workers.model_cache import ModelCache


class MemoryRegistry:
    def __init__(self) -> None:
        self.models: dict[tuple[str, int], AnomalyModel] = {}
        self.aliases: dict[tuple[str, str], int] = {}
        self.alias_lookups = 0

    def model_name(self, machine_id: str) -> str:
        return f"mem-{machine_id}"

    def register(
        self,
        machine_id: str,
        model: AnomalyModel,
        *,
        params: Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        dataset: DatasetInfo | None = None,
    ) -> RegisteredVersion:
        version = 1 + sum(1 for m, _ in self.models if m == machine_id)
        self.models[(machine_id, version)] = model
        return RegisteredVersion(self.model_name(machine_id), version, "run")

    def set_alias(self, machine_id: str, alias: str, version: int) -> None:
        self.aliases[(machine_id, alias)] = version

    def alias_version(self, machine_id: str, alias: str) -> int | None:
        self.alias_lookups += 1
        return self.aliases.get((machine_id, alias))

    def load(self, machine_id: str, version: int) -> AnomalyModel:
        return self.models[(machine_id, version)]

    def versions(self, machine_id: str) -> list[ModelVersionOut]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def model(threshold: float) -> AnomalyModel:
    X = np.random.default_rng(0).normal(size=(50, 3))
    return AnomalyModel(PCADetector().fit(X), threshold, ["a", "b", "c"], "pca")


def test_alias_moves_are_seen_after_the_ttl_without_restart() -> None:
    registry, clock = MemoryRegistry(), Clock()
    cache = ModelCache(registry, ttl_s=5.0, clock=clock)
    assert cache.get("m1") is None
    registry.set_alias("m1", "champion", registry.register("m1", model(1.0)).version)
    # "no model" is not cached: the first champion is seen at once
    first = cache.get("m1")
    assert first is not None and first.version == 1
    registry.set_alias("m1", "champion", registry.register("m1", model(2.0)).version)
    clock.now = 3.0
    assert cache.get("m1").version == 1  # still fresh
    lookups = registry.alias_lookups
    clock.now = 7.0
    second = cache.get("m1")
    assert second is not None and second.version == 2 and second.model.threshold == 2.0
    assert registry.alias_lookups == lookups + 1
    registry.set_alias("m1", "champion", 1)  # roll back: no reload, the old one is kept
    clock.now = 20.0
    assert cache.get("m1") is first
    assert cache.loads == 2
