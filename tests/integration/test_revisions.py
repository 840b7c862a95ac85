"""``update_if_unchanged``: many rows compared and set in one statement, and what is set
is exactly what was given (bytes, timestamps, JSON, NULL), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, insert, select

from mmlw.store import Store
from mmlw.store.revisions import update_if_unchanged
from mmlw.store.tables import DriftState, StreamState

T0 = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
STREAMS = cast(Table, StreamState.__table__)
DRIFT = cast(Table, DriftState.__table__)


def stream_row(machine: str, carry: bytes, revision: int = 1) -> dict[str, object]:
    return {"machine_id": machine, "role": "champion", "model_version": 1,
            "cursor_batch_id": 1, "n_rows": 1, "carry": carry, "revision": revision,
            "updated_at": T0}  # fmt: skip


def test_rows_are_set_exactly_as_given(store: Store) -> None:
    every_byte = bytes(range(256)) * 3
    with store.database.engine.begin() as connection:
        connection.execute(insert(STREAMS), [stream_row("a", b""), stream_row("b", b"x")])
        connection.execute(insert(DRIFT), [
            {"machine_id": m, "champion_version": 1, "detector": {}, "status": "watching",
             "change_at": None, "job_id": None, "updated_at": T0, "revision": 1}
            for m in ("a", "b")
        ])  # fmt: skip
        later = T0 + timedelta(days=400, microseconds=1)
        assert update_if_unchanged(connection, STREAMS, [
            ({"machine_id": "a", "role": "champion"},
             {"cursor_batch_id": 2**62, "n_rows": 7, "carry": every_byte, "updated_at": later}, 1),
            ({"machine_id": "b", "role": "champion"},
             {"cursor_batch_id": 3, "n_rows": 0, "carry": b"", "updated_at": later}, 1),
        ])  # fmt: skip
        detector = {"mean": -1.5e-300, "n": 12, "name": 'Ünïcode "quoted" \\', "x": [1, None]}
        assert update_if_unchanged(connection, DRIFT, [
            ({"machine_id": "a"}, {"detector": detector, "status": "detected",
                                   "change_at": later, "job_id": None}, 1),
            ({"machine_id": "b"}, {"detector": {}, "status": "watching", "change_at": None,
                                   "job_id": "j" * 36}, 1),
        ])  # fmt: skip
        streams = {r.machine_id: r for r in connection.execute(select(STREAMS))}
        drift = {r.machine_id: r for r in connection.execute(select(DRIFT))}
    assert bytes(streams["a"].carry) == every_byte and bytes(streams["b"].carry) == b""
    assert streams["a"].cursor_batch_id == 2**62 and streams["a"].updated_at == later
    assert [streams[m].revision for m in "ab"] == [2, 2]
    assert drift["a"].detector == detector and drift["a"].change_at == later
    assert drift["b"].job_id == "j" * 36 and drift["b"].change_at is None
    assert [drift[m].revision for m in "ab"] == [2, 2]


def test_one_stale_revision_sets_nothing_the_caller_keeps(store: Store) -> None:
    with store.database.engine.connect() as connection:
        with connection.begin():
            connection.execute(insert(STREAMS), [stream_row("a", b"1"), stream_row("b", b"1", 5)])
        transaction = connection.begin()
        moved = update_if_unchanged(connection, STREAMS, [
            ({"machine_id": "a", "role": "champion"}, {"carry": b"2"}, 1),
            ({"machine_id": "b", "role": "champion"}, {"carry": b"2"}, 4),  # moved on: 5
        ])  # fmt: skip
        assert moved is False
        transaction.rollback()  # as every caller does
        carries = {r.machine_id: bytes(r.carry) for r in connection.execute(select(STREAMS))}
    assert carries == {"a": b"1", "b": b"1"}
