"""Bulk import of a machine's past readings, straight into the store (not via the queue).

Raw chunks from :mod:`mmlw.services.import_sources` are checked, converted and cut
into batches of exactly ``batch_rows`` readings (the last one smaller), whatever the
reader's chunk size. Each batch's ``message_id`` is a UUID5 of the machine and the
batch's content, so importing the same rows again with the same ``batch_rows`` stores
nothing new: the store is idempotent per ``message_id``. (A file that has grown since
its import cuts its former last, partial batch differently: those rows are stored
again; import only the new rows instead.)

Policy for bad input (an ``InvalidInput`` naming the column and the data row, 1-based):
unknown column, unparseable or numeric time (ISO 8601 text or a datetime type only),
non-numeric sensor value, label other than 0/1. By default every column with numbers
is a sensor (text-only columns are ignored and reported). Empty, NaN or infinite cells are
refused (``nan="reject"``, as on the wire) or their rows are skipped and counted
(``nan="drop"``). Naive times are taken in ``timezone`` (default UTC).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from mmlw.errors import InvalidInput
from mmlw.registry.base import CHAMPION, ModelRegistry
from mmlw.schemas.readings import MACHINE_ID_PATTERN, SENSOR_PATTERN, ReadingsBatch
from mmlw.services.import_cells import (
    NAT,
    has_numbers,
    parse_numbers,
    parse_times_us,
    time_zone,
)
from mmlw.store import Store
from mmlw.store.packing import us_to_datetimes

__all__ = [
    "IMPORT_NAMESPACE",
    "TIME_COLUMNS",
    "ImportOptions",
    "ImportReport",
    "NanPolicy",
    "PredictQueue",
    "import_readings",
    "queue_scoring",
]

IMPORT_NAMESPACE = uuid.UUID("5b3c1d2e-7f4a-4d8e-9a61-0c2f6e9b7a13")
TIME_COLUMNS = ("datetime", "timestamp")
LABEL_COLUMN = "anomaly"
NEVER_SENSORS = ("anomaly", "changepoint")
MAX_BATCH_ROWS = 10_000
NanPolicy = Literal["reject", "drop"]
_WRITE_BATCHES = 20  # batches per store transaction


class PredictQueue(Protocol):
    """The part of :class:`~mmlw.messaging.dispatch.Dispatcher` an import needs."""

    def predict(self, batch_id: int, version: int | None = None) -> None: ...


@dataclass(frozen=True)
class ImportOptions:
    """How to read the rows; ``None`` picks the default named in the comment."""

    machine_id: str
    time_column: str | None = None  # the first of TIME_COLUMNS present
    sensors: tuple[str, ...] | None = None  # every numeric column but time and labels
    label_column: str | None = None  # ``anomaly`` when present
    nan: NanPolicy = "reject"
    timezone: str = "UTC"
    batch_rows: int = 1000


@dataclass
class ImportReport:
    """What an import did; ``new_*`` count what was not stored before."""

    machine_id: str
    columns: list[str] = field(default_factory=list)
    label_column: str | None = None
    rows: int = 0
    batches: int = 0
    new_rows: int = 0
    new_batches: int = 0
    dropped_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    new_batch_ids: list[int] = field(default_factory=list)
    queued_for_scoring: int = 0
    scoring_version: int | None = None


@dataclass(frozen=True)
class _Rows:
    times_us: np.ndarray
    values: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.times_us)

    def part(self, rows: slice) -> _Rows:
        labels = None if self.labels is None else self.labels[rows]
        return _Rows(self.times_us[rows], self.values[rows], labels)


def import_readings(
    chunks: Iterable[pd.DataFrame],
    options: ImportOptions,
    store: Store,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Store every row of ``chunks`` for ``options.machine_id``, each batch once.

    No row of a chunk is stored before the whole chunk passed the checks; on an
    ``InvalidInput`` some batches of earlier chunks may be stored (importing again after
    a fix adds only the rest). ``on_progress`` gets the number of rows of each chunk.
    """
    if not re.fullmatch(MACHINE_ID_PATTERN, options.machine_id):
        raise InvalidInput(
            "machine_id", f"{options.machine_id!r} does not match {MACHINE_ID_PATTERN}"
        )
    if not 1 <= options.batch_rows <= MAX_BATCH_ROWS:
        raise InvalidInput("batch_rows", f"must be between 1 and {MAX_BATCH_ROWS}")
    zone = time_zone(options.timezone)
    report = ImportReport(options.machine_id)
    checked = _checked_rows(chunks, options, zone, report, on_progress)
    pending: list[ReadingsBatch] = []
    for rows in _rebatch(checked, options.batch_rows):
        pending.append(_batch(options.machine_id, report.columns, rows))
        if len(pending) >= _WRITE_BATCHES:
            _write(pending, store, report)
            pending = []
    _write(pending, store, report)
    if not report.columns:
        raise InvalidInput("file", "no rows, expected a header row and readings")
    return report


def queue_scoring(
    report: ImportReport, *, registry: ModelRegistry, dispatcher: PredictQueue
) -> ImportReport:
    """Queue the newly stored batches for scoring by the machine's champion, pinned to
    its version like a backfill (history is scored, never alerted on). Nothing is
    queued when the machine has no champion: its first model's train job does that."""
    version = registry.alias_version(report.machine_id, CHAMPION)
    if version is None:
        return report
    for batch_id in report.new_batch_ids:
        dispatcher.predict(batch_id, version)
    report.queued_for_scoring = len(report.new_batch_ids)
    report.scoring_version = version
    return report


# -- checking ---------------------------------------------------------------------------
def _checked_rows(
    chunks: Iterable[pd.DataFrame],
    options: ImportOptions,
    zone: ZoneInfo,
    report: ImportReport,
    on_progress: Callable[[int], None] | None,
) -> Iterator[_Rows]:
    first_row = 1
    time_column = ""
    for chunk in chunks:
        if chunk.empty:  # a header without rows: its column types mean nothing
            continue
        if not report.columns:
            time_column = _layout(chunk, options, report)
        rows = _convert(chunk, time_column, report, zone, first_row, options.nan)
        first_row += len(chunk)
        if on_progress is not None:
            on_progress(len(chunk))
        if len(rows):
            yield rows


def _layout(chunk: pd.DataFrame, options: ImportOptions, report: ImportReport) -> str:
    """Fill ``report.columns``/``label_column``/``ignored_columns``; the time column."""
    present = [str(c) for c in chunk.columns]

    def need(name: str, what: str) -> str:
        if name not in present:
            raise InvalidInput(what, f"no column {name!r} (columns: {present})")
        return name

    if options.time_column is not None:
        time_column = need(options.time_column, "time_column")
    else:
        found = [c for c in TIME_COLUMNS if c in present]
        if not found:
            raise InvalidInput("time_column", f"none of {list(TIME_COLUMNS)} (columns: {present})")
        time_column = found[0]
    label: str | None = None
    if options.label_column is not None:
        label = need(options.label_column, "label_column")
    else:
        label = LABEL_COLUMN if LABEL_COLUMN in present else None
    not_sensors = {time_column, *([label] if label else []), *NEVER_SENSORS}
    if options.sensors is not None:
        sensors = [need(name, "sensors") for name in options.sensors]
        clash = [name for name in sensors if name in not_sensors]
        if clash or not sensors:
            raise InvalidInput("sensors", f"name sensor columns, not time/label columns {clash}")
    else:
        sensors = [c for c in present if c not in not_sensors and has_numbers(chunk[c])]
        if not sensors:
            raise InvalidInput("sensors", f"no numeric sensor column (columns: {present})")
    invalid = [name for name in sensors if not re.fullmatch(SENSOR_PATTERN, name)]
    if invalid or len(set(sensors)) != len(sensors) or len(sensors) > 256:
        raise InvalidInput("sensors", f"names must be unique and match {SENSOR_PATTERN}: {invalid}")
    report.columns = sensors
    report.label_column = label
    report.ignored_columns = [c for c in present if c not in sensors and c not in not_sensors]
    return time_column


def _convert(
    chunk: pd.DataFrame,
    time_column: str,
    report: ImportReport,
    zone: ZoneInfo,
    first_row: int,
    nan: NanPolicy,
) -> _Rows:
    """The chunk's rows as arrays, after the checks and the NaN policy."""
    for name in [time_column, *report.columns, *filter(None, [report.label_column])]:
        if name not in chunk.columns:
            raise InvalidInput(name, f"column missing from row {first_row} on")
    times = parse_times_us(chunk[time_column], time_column, zone, first_row)
    values = np.column_stack([parse_numbers(chunk[c], c, first_row) for c in report.columns])
    labels = None
    if report.label_column is not None:
        labels = parse_numbers(chunk[report.label_column], report.label_column, first_row)
        wrong = np.isfinite(labels) & (labels != 0) & (labels != 1)
        if wrong.any():
            row = int(np.argmax(wrong))
            raise InvalidInput(
                report.label_column, f"row {first_row + row}: {float(labels[row])} is not 0 or 1"
            )
    with_labels = values if labels is None else np.column_stack([values, labels])
    bad = (times == NAT) | ~np.isfinite(with_labels).all(axis=1)
    if bad.any():
        if nan == "reject":
            raise _empty_cell(bad, times, with_labels, time_column, report, first_row)
        report.dropped_rows += int(bad.sum())
        keep = ~bad
        times, values = times[keep], values[keep]
        labels = None if labels is None else labels[keep]
    return _Rows(times, values, None if labels is None else labels.astype(np.int8))


def _empty_cell(
    bad: np.ndarray,
    times: np.ndarray,
    with_labels: np.ndarray,
    time_column: str,
    report: ImportReport,
    first_row: int,
) -> InvalidInput:
    row = int(np.argmax(bad))
    if times[row] == NAT:
        column = time_column
    else:
        names = [*report.columns, *filter(None, [report.label_column])]
        column = names[int(np.argmax(~np.isfinite(with_labels[row])))]
    return InvalidInput(
        column,
        f"row {first_row + row}: empty, NaN or infinite (readings must be finite; the nan "
        "policy 'drop' skips such rows)",
    )


# -- batching and storing ---------------------------------------------------------------
def _rebatch(parts: Iterable[_Rows], size: int) -> Iterator[_Rows]:
    """The rows of ``parts`` again, in order, ``size`` at a time (the last may be fewer)."""
    buffer: list[_Rows] = []
    buffered = 0
    for part in parts:
        buffer.append(part)
        buffered += len(part)
        if buffered < size:
            continue
        rows = _concat(buffer)
        whole = len(rows) - len(rows) % size
        for start in range(0, whole, size):
            yield rows.part(slice(start, start + size))
        rest = rows.part(slice(whole, None))
        buffer, buffered = ([rest], len(rest)) if len(rest) else ([], 0)
    if buffered:
        yield _concat(buffer)


def _concat(parts: Sequence[_Rows]) -> _Rows:
    if len(parts) == 1:
        return parts[0]
    labels = None
    if parts[0].labels is not None:
        labels = np.concatenate([p.labels for p in parts if p.labels is not None])
    return _Rows(
        np.concatenate([p.times_us for p in parts]),
        np.concatenate([p.values for p in parts]),
        labels,
    )


def message_id(machine_id: str, columns: Sequence[str], rows: _Rows) -> uuid.UUID:
    """UUID5 of the machine and the batch's content: the same rows, the same id."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(columns).encode())
    for array in (rows.times_us, rows.values, rows.labels):
        digest.update(b"\x1e")
        if array is not None:
            digest.update(
                np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
            )
    return uuid.uuid5(IMPORT_NAMESPACE, f"{machine_id}/{digest.hexdigest()}")


def _batch(machine_id: str, columns: list[str], rows: _Rows) -> ReadingsBatch:
    """The wire contract's batch of ``rows`` (validated like any message)."""
    return ReadingsBatch.model_validate(
        {
            "message_id": message_id(machine_id, columns, rows),
            "machine_id": machine_id,
            "columns": columns,
            "timestamps": us_to_datetimes(rows.times_us),
            "values": rows.values.tolist(),
            "labels": None if rows.labels is None else rows.labels.tolist(),
        }
    )


def _write(batches: list[ReadingsBatch], store: Store, report: ImportReport) -> None:
    if not batches:
        return
    for batch, outcome in zip(batches, store.readings.add_many(batches), strict=True):
        report.rows += len(batch)
        report.batches += 1
        if outcome.created:
            report.new_rows += len(batch)
            report.new_batches += 1
            report.new_batch_ids.append(outcome.batch_id)
