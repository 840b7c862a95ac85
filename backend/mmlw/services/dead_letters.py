"""Replaying and purging dead letters: the functions behind the API and ``mmlw dlq``.

The store is the system of record; ``<ns>.dead`` holds a copy of each AMQP dead letter
(:mod:`mmlw.messaging.dead_queue`). A purge deletes the records, then removes their copies
from ``<ns>.dead``; a replay marks the record, then its copy. The broker side is done
after the store's and never undoes it: if the broker is away, the next purge removes the
copies this one could not (every copy whose record is gone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mmlw.errors import ConflictError
from mmlw.messaging.dead_queue import DeadQueue, Swept
from mmlw.messaging.sink import ReadingsSink
from mmlw.schemas.readings import ReadingsBatch, parse_readings_message
from mmlw.store import DeadLetterOut, Store
from mmlw.store.dead_letters import SCHEMA_DEAD_LETTER_SOURCE

__all__ = ["PurgeOutcome", "Replayed", "purge", "replay"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replayed:
    """A replayed dead letter (now marked) and the batch that was published for it;
    ``broker``: what marking its copy in ``<ns>.dead`` did (None: not attempted)."""

    dead_letter: DeadLetterOut
    batch: ReadingsBatch
    broker: Swept | None = None


@dataclass(frozen=True)
class PurgeOutcome:
    """How many dead letters a purge deleted from the store, and what it did in
    ``<ns>.dead`` (None: not attempted)."""

    count: int
    broker: Swept | None = None


def replay(
    dead_letter_id: int,
    *,
    store: Store,
    publisher: ReadingsSink,
    body_override: bytes | None = None,
    max_readings: int | None = None,
    dead_queue: DeadQueue | None = None,
) -> Replayed:
    """Validate the dead letter's body (or ``body_override``), publish it, mark it replayed
    (in the store, then its copy in ``<ns>.dead`` if ``dead_queue`` is given).

    Replaying a scoring dead letter (a stored batch the champion refused) with a fixed
    body retires the stored batch, so that its readings end stored once -- the fixed
    ones -- and scored.

    The body is validated first: if it still breaks the wire contract this raises
    :class:`~mmlw.errors.InvalidMessage` naming the field, publishes nothing and leaves
    the dead letter unmarked. A valid batch goes to the readings exchange under its own
    machine id, so the ingest consumer stores it the normal way (idempotent by
    ``message_id``); the dead letter is marked only after the broker took it.
    Raises :class:`~mmlw.errors.NotFound` for an unknown id and
    :class:`~mmlw.errors.ConflictError` for a body kept only in part (no override).
    """
    dead_letter = store.dead_letters.get(dead_letter_id)
    if body_override is None and dead_letter.truncated:
        raise ConflictError(
            f"dead letter {dead_letter_id}: only the first {dead_letter.body_kept} of its "
            f"{dead_letter.body_size} bytes were kept; replay it with a corrected body"
        )
    body = dead_letter.body if body_override is None else body_override
    batch = parse_readings_message(body, max_readings)
    stored = _stored_original(dead_letter) if body_override is not None else None
    if stored is not None and stored[1] == str(batch.message_id):
        store.dead_letters.retire_batch(*stored)  # else the fix is refused as a reused id
    publisher.publish(batch)
    if stored is not None and stored[1] != str(batch.message_id):
        store.dead_letters.retire_batch(*stored)
    marked = store.dead_letters.mark_replayed(dead_letter_id)
    swept = None
    if dead_queue is not None and marked.source == "amqp" and marked.replayed_at is not None:
        swept = dead_queue.mark_replayed(dead_letter_id, marked.replayed_at, marked.replay_count)
        if not swept.complete:
            log.warning("dead letter %s: its copy in <ns>.dead is not marked", dead_letter_id)
    return Replayed(marked, batch, swept)


def _stored_original(dead_letter: DeadLetterOut) -> tuple[int, str] | None:
    """(batch id, message id) of the stored batch a scoring dead letter was made of;
    None for any other dead letter. A fixed replay replaces that batch: it is retired
    (:meth:`~mmlw.store.dead_letters.DeadLettersRepository.retire_batch`), so the fixed
    readings are stored once and scored."""
    batch_id = dead_letter.headers.get("batch_id")
    if dead_letter.source != SCHEMA_DEAD_LETTER_SOURCE or dead_letter.message_id is None:
        return None
    if not isinstance(batch_id, int) or isinstance(batch_id, bool):
        return None
    return batch_id, dead_letter.message_id


def purge(
    store: Store,
    ids: Iterable[int] | None = None,
    *,
    older_than: datetime | None = None,
    everything: bool = False,
    dead_queue: DeadQueue | None = None,
) -> PurgeOutcome:
    """Delete dead letters (every one, or those matching every criterion given: see
    :meth:`~mmlw.store.dead_letters.DeadLettersRepository.purge`), then, with
    ``dead_queue``, remove from ``<ns>.dead`` every copy whose record is gone (these and
    any an earlier purge could not reach)."""
    rows = store.dead_letters.purge_returning(ids, older_than=older_than, everything=everything)
    swept = None
    if dead_queue is not None:
        swept = dead_queue.forget(rows, store.dead_letters.stored_ids)
        if not swept.complete:
            log.warning("purge: <ns>.dead not swept to the end; the next purge goes on")
    return PurgeOutcome(len(rows), swept)
