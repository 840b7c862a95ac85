"""How the ingest consumer groups a written buffer into scoring messages."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

from mmlw.workers.consumers import batch
from mmlw.workers.consumers.batch import predict_tasks


def test_doctest() -> None:
    result = doctest.testmod(batch)
    assert result.attempted > 0 and result.failed == 0


buffers = st.lists(st.sampled_from("abcdef"), max_size=300).map(
    lambda machines: [(i, m) for i, m in enumerate(machines)]
)


@given(buffers, st.integers(min_value=1, max_value=80))
def test_every_batch_once_in_tasks_no_larger_than_the_limit(
    batches: list[tuple[int, str]], size: int
) -> None:
    tasks = predict_tasks(batches, size)
    assert sorted(pair for task in tasks for pair in task) == batches
    assert all(1 <= len(task) <= size for task in tasks)


@given(buffers, st.integers(min_value=1, max_value=80), st.integers(min_value=1, max_value=4))
def test_a_message_never_spans_two_partitions(
    batches: list[tuple[int, str]], size: int, partitions: int
) -> None:
    def partition_of(machine: str) -> int:
        return ord(machine) % partitions

    tasks = predict_tasks(batches, size, partition_of)
    assert sorted(pair for task in tasks for pair in task) == batches
    assert all(len({partition_of(m) for _, m in task}) == 1 for task in tasks)


@given(buffers, st.integers(min_value=1, max_value=80))
def test_a_machine_spans_no_more_tasks_than_it_needs(
    batches: list[tuple[int, str]], size: int
) -> None:
    tasks = [[i for i, _ in task] for task in predict_tasks(batches, size)]
    machine = dict(batches)
    for m in set(machine.values()):
        count = sum(1 for _, x in batches if x == m)
        spans = sum(1 for task in tasks if any(machine[i] == m for i in task))
        assert spans <= -(-count // size) + 1  # its own share, plus one task it shares
    # and a machine that fits in a task is never split
    for m in set(machine.values()):
        if sum(1 for _, x in batches if x == m) <= size:
            assert sum(1 for task in tasks if any(machine[i] == m for i in task)) == 1


def test_a_machine_keeps_its_arrival_order() -> None:
    tasks = predict_tasks([(5, "b"), (3, "a"), (9, "b"), (1, "a")], size=64)
    assert tasks == [[(3, "a"), (1, "a"), (5, "b"), (9, "b")]]
