"""Per-process cache of loaded models, keyed by machine and alias.

An alias is re-resolved at most every ``ttl_s`` seconds, so an alias move reaches a
running worker within that time without a restart. "No champion yet" is never cached
("no challenger" is, for ``ttl_s``: shadow scoring must not cost a registry call per
batch): the first champion of a machine is used by the very next batch (together with the backfill
the train task queues, no batch falls between the two). A new version is loaded completely
before it replaces the old one: a batch is never scored by a half-loaded model.

A version the registry cannot vouch for (:class:`~mmlw.errors.UntrustedModel`: not
signed by MMLW, or its bytes changed) is refused once per process, logged and counted
(``mmlw_models_refused_total``); the alias keeps serving the version it served before,
or, in a process that served none yet, the newest version MMLW itself moved the alias to
(``history``: MMLW's own record of alias moves, newest first) that loads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mmlw.errors import UntrustedModel
from mmlw.observability.metrics import instruments
from mmlw.registry.base import CHAMPION, ModelRegistry
from mmlw.services.scoring import LoadedModel

__all__ = ["ModelCache"]

log = logging.getLogger(__name__)


class ModelCache:
    def __init__(
        self,
        registry: ModelRegistry,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        history: Callable[[str, str], list[int]] | None = None,
    ) -> None:
        self._registry = registry
        self._ttl_s = ttl_s
        self._clock = clock
        self._history = history
        self._entries: dict[tuple[str, str], tuple[float, LoadedModel | None]] = {}
        self._models: dict[tuple[str, int], LoadedModel] = {}
        self._refused: set[tuple[str, int]] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.loads = 0

    def _lock(self, machine_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(machine_id, threading.Lock())

    def get(self, machine_id: str, alias: str = CHAMPION) -> LoadedModel | None:
        key = (machine_id, alias)
        if (hit := self._fresh(key)) is not None:
            return hit[0]
        with self._lock(machine_id):
            if (hit := self._fresh(key)) is not None:
                return hit[0]
            version = self._registry.alias_version(machine_id, alias)
            if version is None:
                if alias != CHAMPION:
                    self._entries[key] = (self._clock(), None)
                return None
            loaded: LoadedModel | None
            try:
                loaded = self._load(machine_id, version)
            except UntrustedModel:
                loaded = self._instead_of(key, version)
            self._entries[key] = (self._clock(), loaded)
            return loaded

    def _instead_of(self, key: tuple[str, str], refused: int) -> LoadedModel | None:
        """What ``key``'s alias serves while the registry points it at a refused version."""
        previous = self._entries.get(key)
        if previous is not None and previous[1] is not None:
            return previous[1]
        machine_id, alias = key
        for version in self._history(machine_id, alias) if self._history else []:
            if version == refused:
                continue
            try:
                return self._load(machine_id, version)
            except UntrustedModel:
                continue
        return None

    def _fresh(self, key: tuple[str, str]) -> tuple[LoadedModel | None] | None:
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._ttl_s:
            return None
        return (entry[1],)

    def version(self, machine_id: str, version: int) -> LoadedModel:
        """A specific version (loaded once per process)."""
        with self._lock(machine_id):
            return self._load(machine_id, version)

    def _load(self, machine_id: str, version: int) -> LoadedModel:
        cached = self._models.get((machine_id, version))
        if (machine_id, version) in self._refused:
            raise UntrustedModel(f"{machine_id} version {version} was refused before")
        if cached is None:
            try:
                with instruments().model_load_seconds.time():
                    model = self._registry.load(machine_id, version)
            except UntrustedModel as exc:
                self._refused.add((machine_id, version))
                instruments().models_refused.inc()
                log.error("refused to load model version: %s", exc)
                raise
            cached = LoadedModel(self._registry.model_name(machine_id), version, model)
            self._models[(machine_id, version)] = cached
            self.loads += 1
        return cached

    def invalidate(self, machine_id: str | None = None) -> None:
        with self._guard:
            for key in list(self._entries):
                if machine_id is None or key[0] == machine_id:
                    del self._entries[key]
