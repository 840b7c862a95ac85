"""The long-lived objects a worker process needs, built once from Settings, on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from mmlw.alerts.config import AlertsConfig, load_alerts_config
from mmlw.messaging.dispatch import CeleryDispatcher, Dispatcher
from mmlw.messaging.topology import Topology
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.store import Store

if TYPE_CHECKING:  # the model cache imports scikit-learn: ingest and the API never load it
    from mmlw.workers.model_cache import ModelCache

__all__ = ["WorkerContext"]


@dataclass
class WorkerContext:
    settings: Settings
    migrate: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @cached_property
    def topology(self) -> Topology:
        return Topology.from_settings(self.settings.broker)

    @cached_property
    def store(self) -> Store:
        with self._lock:
            self.settings.ensure_data_dir()
            return Store.open(
                self.settings.resolved_database_url,
                migrate=self.migrate,
                dead_letter_body_limit=self.settings.broker.dead_letter_body_limit,
            )

    @cached_property
    def registry(self) -> MlflowRegistry:
        """The registry, claimed for this database's deployment: a store of another's
        models is :class:`~mmlw.registry.ownership.ForeignRegistry` before any is used."""
        registry = MlflowRegistry.from_settings(self.settings)
        identity = self.store.deployment.identity()
        registry.claim(
            identity.id,
            had_models=identity.had_models,
            database_url=self.settings.resolved_database_url,
        )
        return registry

    @cached_property
    def models(self) -> ModelCache:
        from mmlw.workers.model_cache import ModelCache

        return ModelCache(
            self.registry,
            ttl_s=self.settings.models.alias_cache_ttl_s,
            history=self._alias_history,
            changes=self.store.alias_history.newest_id,
            max_versions=self.settings.models.cache_max_versions,
            max_bytes=int(self.settings.models.cache_max_mb * 2**20),
            refresh_in_background=True,  # a fleet's alias search never holds up a batch
        )

    def _alias_history(self, machine_id: str, alias: str) -> list[int]:
        """The versions MMLW moved ``alias`` to, newest first."""
        events = self.store.alias_history.list(machine_id, alias)
        return [e.to_version for e in reversed(events) if e.to_version is not None]

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return CeleryDispatcher.from_broker(self.settings.broker.url, self.topology)

    @cached_property
    def alerts_config(self) -> AlertsConfig:
        return load_alerts_config(self.settings.alerts.rules_file)
