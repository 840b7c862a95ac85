"""What the rest of MMLW needs from a model registry; MLflow is one implementation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mmlw.schemas.resources import ModelVersionOut

if TYPE_CHECKING:  # not at run time: it imports scikit-learn
    from mmlw.detectors.model import AnomalyModel

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DatasetInfo",
    "ModelRegistry",
    "RegisteredVersion",
    "versions_under",
]

CHAMPION = "champion"
CHALLENGER = "challenger"


def versions_under(alias_map: dict[str, dict[str, int]], alias: str) -> dict[str, int]:
    """The version ``alias`` names for every machine of ``alias_map`` (machine: alias:
    version) that has one."""
    return {m: aliases[alias] for m, aliases in alias_map.items() if alias in aliases}


@dataclass(frozen=True)
class DatasetInfo:
    """The identity of a training batch: enough to recognise the same data again."""

    machine_id: str
    start: str
    end: str
    n_rows: int
    columns: list[str]
    content_hash: str


@dataclass(frozen=True)
class RegisteredVersion:
    model_name: str
    version: int
    run_id: str


class ModelRegistry(Protocol):
    def model_name(self, machine_id: str) -> str: ...

    def register(
        self,
        machine_id: str,
        model: AnomalyModel,
        *,
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        dataset: DatasetInfo,
    ) -> RegisteredVersion: ...

    def set_alias(self, machine_id: str, alias: str, version: int) -> None: ...

    def delete_alias(self, machine_id: str, alias: str) -> None: ...

    def alias_version(self, machine_id: str, alias: str) -> int | None: ...

    def alias_versions(self, alias: str) -> dict[str, int]:
        """The version ``alias`` names for every machine that has one, keyed by machine id:
        what :meth:`alias_version` says per machine, in a number of registry round trips
        that does not grow with the machines (one per page of registered models)."""
        ...

    def alias_map(self) -> dict[str, dict[str, int]]:
        """Every alias of every machine (machine: alias: version), as
        :meth:`alias_versions` reads them: all aliases for the price of one."""
        ...

    def load(self, machine_id: str, version: int) -> AnomalyModel: ...

    def versions(self, machine_id: str) -> list[ModelVersionOut]: ...
