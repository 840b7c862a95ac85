"""A Dispatcher for service tests that need no broker: it records the train jobs."""

from __future__ import annotations

from collections.abc import Sequence


class Jobs:
    """Records what the drift service dispatches (the Dispatcher protocol, no broker)."""

    def __init__(self) -> None:
        self.trained: list[str] = []
        self.scored: list[list[tuple[int, str]]] = []

    def train(self, job_id: str) -> None:
        self.trained.append(job_id)

    def predict(self, batch_id: int, version: int | None = None) -> None: ...

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None: ...

    def score(self, batches: Sequence[tuple[int, str]]) -> None:
        self.scored.append(list(batches))

    def notify(self, delivery_id: int) -> None: ...

    def tune(self, job_id: str) -> None: ...
