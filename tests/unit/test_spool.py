"""The local spool and the ingest consumer's backlog gate: pure, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmlw.errors import ServiceUnavailable
from mmlw.messaging.spool import Spool, SpoolFull
from mmlw.workers.consumers.backpressure import BacklogGate


def test_spool_keeps_messages_in_order_across_instances(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for i in range(5):
        spool.put(f"m-{i % 2}", f"body-{i}".encode(), f"id-{i}")
    spool.close()

    reopened = Spool(tmp_path / "spool.db")
    assert len(reopened) == 5
    assert reopened.size_bytes == sum(len(f"body-{i}") for i in range(5))
    messages = reopened.oldest(10)
    assert [m.message_id for m in messages] == [f"id-{i}" for i in range(5)]
    assert [m.routing_key for m in messages[:2]] == ["m-0", "m-1"]
    assert messages[3].body == b"body-3"
    reopened.close()


def test_spool_removes_only_the_message_named(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for i in range(3):
        spool.put("m", b"x" * 10, f"id-{i}")
    first, second, _ = spool.oldest(3)
    spool.remove(second)
    spool.remove(second)  # again: nothing more goes
    assert [m.message_id for m in spool.oldest(3)] == ["id-0", "id-2"]
    assert (len(spool), spool.size_bytes) == (2, 20)
    spool.remove(first)
    assert [m.message_id for m in spool.oldest(1)] == ["id-2"]
    spool.close()


def test_a_full_spool_refuses_with_a_clear_error_and_keeps_what_it_has(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=25, max_messages=10)
    spool.put("m", b"a" * 10, "id-0")
    spool.put("m", b"b" * 10, "id-1")
    with pytest.raises(SpoolFull, match=r"spool .* is full \(2 messages") as raised:
        spool.put("m", b"c" * 10, "id-2")
    assert isinstance(raised.value, ServiceUnavailable)
    assert [m.message_id for m in spool.oldest(5)] == ["id-0", "id-1"]
    spool.close()

    by_count = Spool(tmp_path / "other.db", max_messages=1)
    by_count.put("m", b"", None)
    with pytest.raises(SpoolFull):
        by_count.put("m", b"", None)
    by_count.close()


def test_backlog_gate_pauses_above_the_limit_and_resumes_at_half() -> None:
    depths = iter([0, 10, 11, 9, 6, 5, 11])
    gate = BacklogGate(lambda: next(depths), limit=10, ttl_s=0)
    assert [gate.paused() for _ in range(7)] == [False, False, True, True, True, False, True]


def test_backlog_gate_reads_the_depth_at_most_once_per_ttl() -> None:
    now = [0.0]
    calls: list[int] = []

    def depth() -> int:
        calls.append(1)
        return 50

    gate = BacklogGate(depth, limit=10, ttl_s=0.5, clock=lambda: now[0])
    assert gate.paused() and gate.paused()
    assert len(calls) == 1
    now[0] = 0.6
    assert gate.paused()
    assert len(calls) == 2


def test_backlog_gate_never_pauses_on_an_unknown_depth() -> None:
    depths = iter([20, None, 20])
    gate = BacklogGate(lambda: next(depths), limit=10, ttl_s=0)
    assert [gate.paused() for _ in range(3)] == [True, False, True]


def test_backlog_gate_counts_tasks_sent_since_its_last_reading() -> None:
    gate = BacklogGate(lambda: 4, limit=10, ttl_s=60, clock=lambda: 0.0)
    assert not gate.paused()
    gate.note_enqueued(6)
    assert not gate.paused()  # 4 + 6 is the limit, not over it
    gate.note_enqueued(1)
    assert gate.paused()
