"""Machines, their readings (publish, read, import history) and their scores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

from mmlw.client._http import Page, Session
from mmlw.schemas.readings import ReadingsBatch
from mmlw.schemas.resources import Accepted, ImportOut, MachineOut, ReadingsOut, ScoresOut
from mmlw.schemas.shadow import ShadowComparisonOut

__all__ = ["Machines", "Readings", "Scores", "ScoresWindow", "Window"]

PARQUET = "application/vnd.apache.parquet"


class Window(TypedDict, total=False):
    """Which stored rows: ``[start, end)``, the newest ``limit``, ``max_points`` buckets."""

    start: datetime | None
    end: datetime | None
    limit: int
    max_points: int | None


class ScoresWindow(Window, total=False):
    top: int
    role: Literal["champion", "challenger"]


class Machines:
    def __init__(self, session: Session) -> None:
        self._s = session

    def list(self) -> list[MachineOut]:
        """Every machine that has sent readings, with counters and its champion version."""
        return self._s.get(list[MachineOut], "/machines")

    def get(self, machine_id: str) -> MachineOut:
        return self._s.get(MachineOut, f"/machines/{machine_id}")


class Readings:
    def __init__(self, session: Session) -> None:
        self._s = session

    def publish(self, batch: ReadingsBatch) -> Accepted:
        """Publish a batch through the API to the broker; returns once the broker has it."""
        return self._s.call(
            Accepted,
            "POST",
            f"/machines/{batch.machine_id}/readings",
            content=batch.to_wire(),
            headers={"Content-Type": "application/json"},
        )

    def get(self, machine_id: str, **window: Unpack[Window]) -> ReadingsOut:
        """Stored readings in ``[start, end)``, the newest ``limit`` (server default 10,000)
        of them, oldest first; ``max_points``: downsampled on the server."""
        return self.page(machine_id, **window).item

    def page(self, machine_id: str, **window: Unpack[Window]) -> Page[ReadingsOut]:
        """Like :meth:`get`, with the number of readings in range before downsampling."""
        return self._s.page(ReadingsOut, f"/machines/{machine_id}/readings", **window)

    def import_file(
        self,
        machine_id: str,
        data: bytes | Path,
        *,
        kind: Literal["csv", "parquet"] | None = None,
        sep: str | None = None,
        time_column: str | None = None,
        sensors: Sequence[str] = (),
        label: str | None = None,
        nan: Literal["reject", "drop"] = "reject",
        tz: str = "UTC",
        batch_rows: int = 1000,
        score: bool = True,
    ) -> ImportOut:
        """Import history from CSV or Parquet (``kind``; by default from a path's suffix,
        else CSV) straight into the store; idempotent (see README, History import)."""
        if isinstance(data, Path):
            kind = kind or ("parquet" if data.suffix.lower() == ".parquet" else "csv")
            data = data.read_bytes()
        params: dict[str, Any] = {
            "sep": sep,
            "time_column": time_column,
            "sensor": list(sensors) or None,
        }
        params |= {"label": label, "nan": nan, "tz": tz, "batch_rows": batch_rows, "score": score}
        return self._s.call(
            ImportOut,
            "POST",
            f"/machines/{machine_id}/imports",
            content=data,
            params=params,
            headers={"Content-Type": PARQUET if kind == "parquet" else "text/csv"},
        )


class Scores:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, machine_id: str, **window: Unpack[ScoresWindow]) -> ScoresOut:
        """Champion scores in ``[start, end)`` with threshold, flag, version and the ``top``
        (default 3) contributing sensors; ``limit`` and ``max_points`` as for readings;
        ``role="challenger"``: the shadow challenger's scores instead."""
        return self.page(machine_id, **window).item

    def page(self, machine_id: str, **window: Unpack[ScoresWindow]) -> Page[ScoresOut]:
        """Like :meth:`get`, with the number of scores in range before downsampling."""
        return self._s.page(ScoresOut, f"/machines/{machine_id}/scores", **window)

    def compare(self, machine_id: str, **window: Unpack[Window]) -> ShadowComparisonOut:
        """Champion vs shadow challenger on the readings both scored in ``[start, end)``
        (the newest ``limit``; ``max_points``: downsampled): both series aligned, and a
        summary over all of them; empty with a ``reason`` when there is no challenger."""
        return self._s.get(ShadowComparisonOut, f"/machines/{machine_id}/scores/compare", **window)

    def latest(self, n: int = 1) -> list[ScoresOut]:
        """Every scored machine's newest ``n`` scores (no top sensors), in one request."""
        return self._s.get(list[ScoresOut], "/scores/latest", n=n)
