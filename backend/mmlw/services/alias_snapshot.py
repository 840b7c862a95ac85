"""Every machine's aliases, searched in the registry only when they may have changed.

A search of the registry's aliases costs as much as the registry holds models: about a
second of CPU for 1,000 models on the embedded MLflow store (and the MLflow server's CPU
in a deployment). ``GET /machines`` needs it for every machine's champion, and a
dashboard polls it every few seconds: with a fleet of 1,000 machines the API spent most of
a core on searches that returned the same answer.

So the answer is kept, and searched again when

- MMLW moved an alias since (its record of alias moves, ``changes``, has a new token:
  training, promotion, rollback, retirement -- seen at the next request, whatever process
  made the move), or
- it is older than ``max_age_s``: an alias moved outside MMLW (the MLflow UI, a script)
  leaves no record, and shows within that bound.

The token is read before the search, so a move during the search changes it and the next
request searches again. Two requests that miss at once both search; neither waits, and
the answer is one tuple replaced whole, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mmlw.registry.base import ModelRegistry, versions_under

__all__ = ["AliasSnapshot"]


class AliasSnapshot:
    """:meth:`~mmlw.registry.base.ModelRegistry.alias_map`, kept while nothing moved.

    >>> class Registry:
    ...     searches = 0
    ...     def alias_map(self):
    ...         self.searches += 1
    ...         return {"m1": {"champion": self.searches}}
    >>> token, now = [0], [0.0]
    >>> registry = Registry()
    >>> aliases = AliasSnapshot(registry, lambda: token[0], max_age_s=30, clock=lambda: now[0])
    >>> aliases.alias_versions("champion"), aliases.alias_versions("champion")
    ({'m1': 1}, {'m1': 1})
    >>> token[0] = 7  # MMLW moved an alias
    >>> aliases.alias_versions("champion"), registry.searches
    ({'m1': 2}, 2)
    >>> now[0] = 31.0  # nothing recorded, but the answer is too old
    >>> aliases.alias_versions("challenger"), registry.searches
    ({}, 3)
    """

    def __init__(
        self,
        registry: ModelRegistry,
        changes: Callable[[], object],
        *,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._changes = changes
        self._max_age_s = max_age_s
        self._clock = clock
        self._held: tuple[object, float, dict[str, dict[str, int]]] | None = None

    def alias_map(self) -> dict[str, dict[str, int]]:
        """Every machine's aliases (machine: alias: version)."""
        token, now = self._changes(), self._clock()
        held = self._held  # (token, when, answer): read and replaced whole, never changed
        if held is not None and held[0] == token and now - held[1] < self._max_age_s:
            return held[2]
        found = self._registry.alias_map()
        self._held = (token, now, found)
        return found

    def alias_versions(self, alias: str) -> dict[str, int]:
        """The version ``alias`` names for every machine that has one."""
        return versions_under(self.alias_map(), alias)
