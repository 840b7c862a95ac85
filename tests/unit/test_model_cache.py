"""The per-process model cache, over a small in-memory registry of the same protocol."""

from __future__ import annotations

import gc
import pickle
import threading
import weakref
from collections.abc import Mapping

import numpy as np
import pytest

from mmlw.detectors.model import AnomalyModel
from mmlw.detectors.pca import PCADetector
from mmlw.registry.base import DatasetInfo, RegisteredVersion
from mmlw.schemas.resources import ModelVersionOut
from mmlw.workers.model_cache import FOREIGN_MOVES_S, ModelCache


class MemoryRegistry:
    def __init__(self) -> None:
        self.models: dict[tuple[str, int], AnomalyModel] = {}
        self.aliases: dict[tuple[str, str], int] = {}
        self.alias_lookups = 0
        self.bulk_lookups = 0

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

    def alias_versions(self, alias: str) -> dict[str, int]:
        return {m: a[alias] for m, a in self.alias_map().items() if alias in a}

    def alias_map(self) -> dict[str, dict[str, int]]:
        self.bulk_lookups += 1
        out: dict[str, dict[str, int]] = {}
        for (m, a), v in self.aliases.items():
            out.setdefault(m, {})[a] = v
        return out

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
    registry.set_alias("m1", "champion", 1)  # roll back: v1 was dropped when the alias left
    clock.now = 20.0
    rolled_back = cache.get("m1")
    assert rolled_back is not None and rolled_back.version == 1 and rolled_back is not first
    assert cache.loads == 3 and cache.held == 1


class DeserialisingRegistry(MemoryRegistry):
    """Every load builds a new model object, as unpickling an artifact does; ``alive``
    counts those something still keeps in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[weakref.ref[AnomalyModel]] = []

    def load(self, machine_id: str, version: int) -> AnomalyModel:
        loaded: AnomalyModel = pickle.loads(pickle.dumps(self.models[(machine_id, version)]))
        self.loaded.append(weakref.ref(loaded))
        return loaded

    def alive(self) -> int:
        """Loaded model objects still in memory."""
        gc.collect()
        return sum(ref() is not None for ref in self.loaded)


def registry_of(versions: int, machines: int = 1) -> DeserialisingRegistry:
    registry, fitted = DeserialisingRegistry(), model(1.0)
    for m in range(machines):
        for _ in range(versions):
            registry.register(f"m{m}", fitted)
    return registry


def test_fifty_versions_loaded_in_turn_leave_at_most_max_versions_in_memory() -> None:
    registry = registry_of(50)
    cache = ModelCache(registry, ttl_s=5.0, max_versions=4)
    for version in range(1, 51):
        assert cache.version("m0", version).version == version
    assert cache.loads == 50
    assert registry.alive() <= 4 and cache.held == 4


def test_without_a_bound_every_version_would_stay_alive() -> None:
    """The counting above sees a cache that keeps what it loaded."""
    registry = registry_of(50)
    cache = ModelCache(registry, ttl_s=5.0, max_versions=1000)
    for version in range(1, 51):
        cache.version("m0", version)
    assert registry.alive() == 50


def test_champions_of_fifty_machines_are_bounded_too() -> None:
    registry = registry_of(1, machines=50)
    for m in range(50):
        registry.set_alias(f"m{m}", "champion", 1)
    cache = ModelCache(registry, ttl_s=5.0, max_versions=4)
    for m in range(50):
        served = cache.get(f"m{m}")
        assert served is not None and served.model_name == f"mem-m{m}"
    del served
    assert registry.alive() <= 4
    again = cache.get("m0")  # its entry went with its model: resolved and loaded again
    assert again is not None and again.version == 1 and cache.loads == 51


def test_an_alias_moving_through_fifty_versions_keeps_only_the_one_it_serves() -> None:
    registry, clock = registry_of(50), Clock()
    cache = ModelCache(registry, ttl_s=5.0, clock=clock, max_versions=1000)
    for version in range(1, 51):
        registry.set_alias("m0", "champion", version)
        clock.now += 10
        served = cache.get("m0")
        assert served is not None and served.version == version
    del served
    assert registry.alive() == 1 and cache.held == 1


def test_a_version_another_alias_still_serves_is_kept() -> None:
    registry, clock = registry_of(2), Clock()
    registry.set_alias("m0", "champion", 1)
    registry.set_alias("m0", "challenger", 1)
    cache = ModelCache(registry, ttl_s=5.0, clock=clock)
    champion, challenger = cache.get("m0"), cache.get("m0", "challenger")
    assert champion is challenger
    registry.set_alias("m0", "champion", 2)
    clock.now = 10.0
    assert cache.get("m0").version == 2
    assert cache.get("m0", "challenger") is challenger  # still served: not reloaded
    assert cache.loads == 2 and cache.held == 2


def test_the_least_recently_used_version_goes_first() -> None:
    registry = registry_of(5, machines=2)
    registry.set_alias("m1", "champion", 1)
    cache = ModelCache(registry, ttl_s=5.0, max_versions=3)
    champion = cache.get("m1")
    cache.version("m0", 1)
    cache.version("m0", 2)
    assert cache.get("m1") is champion  # a fresh alias hit counts as a use
    cache.version("m0", 3)  # full: m0 v1, the least recently used, goes
    assert cache.get("m1") is champion and cache.loads == 4
    cache.version("m0", 1)
    assert cache.loads == 5


def test_invalidate_makes_the_next_get_ask_the_registry() -> None:
    registry, clock = registry_of(2), Clock()
    registry.set_alias("m0", "champion", 1)
    cache = ModelCache(registry, ttl_s=5.0, clock=clock)
    assert cache.get("m0").version == 1
    registry.set_alias("m0", "champion", 2)
    assert cache.get("m0").version == 1  # within the TTL
    cache.invalidate("m0")
    assert cache.get("m0").version == 2
    assert registry.alive() == 1 and cache.held == 1


def test_max_versions_must_hold_one() -> None:
    with pytest.raises(ValueError, match="max_versions"):
        ModelCache(MemoryRegistry(), max_versions=0)


def test_a_fleet_re_resolves_an_alias_in_one_registry_request() -> None:
    registry, clock = registry_of(2, machines=100), Clock()
    for m in range(99):  # m99 has no champion yet
        registry.set_alias(f"m{m}", "champion", 1)
    cache = ModelCache(registry, ttl_s=5.0, clock=clock)
    for m in range(99):
        assert cache.get(f"m{m}").version == 1
        assert cache.get(f"m{m}", "challenger") is None
    first = registry.alias_lookups
    assert first <= 8 and registry.bulk_lookups == 1  # champion and challenger, for all
    registry.set_alias("m5", "champion", 2)
    clock.now = 10.0
    for m in range(99):
        assert cache.get(f"m{m}").version == (2 if m == 5 else 1)
        assert cache.get(f"m{m}", "challenger") is None
    assert registry.alias_lookups == first and registry.bulk_lookups == 2
    # "no champion" in the fleet's answer is asked again for that machine, every time,
    # so its first champion is used at once
    assert cache.get("m99") is None and cache.get("m99") is None
    assert registry.alias_lookups == first + 2
    registry.set_alias("m99", "champion", 1)
    assert cache.get("m99").version == 1
    # an invalidation drops the fleet's answer too
    registry.set_alias("m7", "champion", 2)
    cache.invalidate("m7")
    assert cache.get("m7").version == 2


class SlowRegistry(DeserialisingRegistry):
    """``alias_map`` reads the aliases, then waits for ``gate`` while it is closed (a
    fleet's slow search: its answer is as of when it began)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def alias_map(self) -> dict[str, dict[str, int]]:
        answer = super().alias_map()
        self.gate.wait(10)
        return answer


def _fleet_in_background() -> tuple[SlowRegistry, Clock, ModelCache]:
    registry, clock, fitted = SlowRegistry(), Clock(), model(1.0)
    for m in range(10):
        for _ in range(2):
            registry.register(f"m{m}", fitted)
        registry.set_alias(f"m{m}", "champion", 1)
    cache = ModelCache(registry, ttl_s=5.0, clock=clock, refresh_in_background=True)
    for m in range(10):
        assert cache.get(f"m{m}").version == 1  # the first answer is waited for
    return registry, clock, cache


def test_a_fleet_keeps_scoring_with_the_old_answer_while_the_new_one_is_asked() -> None:
    registry, clock, cache = _fleet_in_background()
    assert registry.bulk_lookups == 1
    registry.set_alias("m5", "champion", 2)
    registry.gate.clear()  # the registry is slow now
    clock.now = 10.0
    assert cache.get("m5").version == 1  # served at once, from the answer before
    refreshing = cache._refreshing
    assert refreshing is not None and refreshing.is_alive()
    registry.gate.set()
    refreshing.join(10)
    assert cache.get("m5").version == 2 and registry.bulk_lookups == 2
    assert cache.get("m4").version == 1


def test_an_invalidation_during_a_background_search_discards_its_answer() -> None:
    registry, clock, cache = _fleet_in_background()
    registry.gate.clear()
    clock.now = 10.0
    cache.get("m1")  # starts a search that will answer "m7: v1"
    refreshing = cache._refreshing
    assert refreshing is not None
    registry.set_alias("m7", "champion", 2)
    cache.invalidate("m7")
    registry.gate.set()
    refreshing.join(10)
    assert cache.get("m7").version == 2  # asked again, not taken from the stale search


def test_the_memory_bound_drops_the_least_recently_used_too() -> None:
    registry = registry_of(20)
    one = len(pickle.dumps(registry.models[("m0", 1)], protocol=pickle.HIGHEST_PROTOCOL))
    cache = ModelCache(registry, ttl_s=5.0, max_versions=1000, max_bytes=3 * one + one // 2)
    for version in range(1, 21):
        cache.version("m0", version)
    assert cache.held == 3 and cache.bytes == 3 * one
    assert registry.alive() <= 3
    # one model larger than the bound is still held (alone): a batch needs its model
    tiny = ModelCache(registry, ttl_s=5.0, max_bytes=1)
    assert tiny.version("m0", 1).version == 1 and tiny.held == 1
    tiny.version("m0", 2)
    assert tiny.held == 1 and tiny.bytes == one


class TimedRegistry(MemoryRegistry):
    """A fleet's search that takes ``seconds`` of the cache's clock."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def alias_map(self) -> dict[str, dict[str, int]]:
        answer = super().alias_map()
        self.clock.now += self.seconds
        return answer


def _fleet_with_changes(seconds: float) -> tuple[TimedRegistry, Clock, ModelCache, list[int]]:
    clock = Clock()
    registry, moves, fitted = TimedRegistry(clock, seconds), [0], model(1.0)
    for m in range(10):
        for _ in range(2):
            registry.register(f"m{m}", fitted)
        registry.set_alias(f"m{m}", "champion", 1)
    cache = ModelCache(registry, ttl_s=5.0, clock=clock, changes=lambda: moves[0])
    for m in range(10):
        assert cache.get(f"m{m}").version == 1
    return registry, clock, cache, moves


def test_a_slow_fleet_search_waits_for_a_move_mmlw_recorded() -> None:
    registry, clock, cache, moves = _fleet_with_changes(seconds=2.0)  # asked every 20 s
    assert registry.bulk_lookups == 1
    clock.now += 25.0
    assert cache.get("m1").version == 1 and registry.bulk_lookups == 1  # nothing moved
    registry.set_alias("m5", "champion", 2)
    moves[0] += 1  # MMLW moved it: its record changed
    clock.now += 25.0
    assert cache.get("m5").version == 2 and registry.bulk_lookups == 2
    # a move outside MMLW (the MLflow UI: no record) is found by the next full search
    registry.set_alias("m6", "champion", 2)
    clock.now += 25.0
    assert cache.get("m6").version == 1 and registry.bulk_lookups == 2
    clock.now += FOREIGN_MOVES_S
    assert cache.get("m6").version == 2 and registry.bulk_lookups == 3


def test_a_fast_search_runs_every_ttl_whatever_the_record_says() -> None:
    registry, clock, cache, _ = _fleet_with_changes(seconds=0.1)  # 10 x 0.1 s < ttl
    registry.set_alias("m6", "champion", 2)  # not recorded
    clock.now += 6.0
    assert cache.get("m6").version == 2 and registry.bulk_lookups == 2
