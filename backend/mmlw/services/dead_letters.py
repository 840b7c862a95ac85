"""Replaying dead letters: the same function behind ``POST .../replay`` and ``mmlw dlq``."""

from __future__ import annotations

from dataclasses import dataclass

from mmlw.errors import ConflictError
from mmlw.messaging.sink import ReadingsSink
from mmlw.schemas.readings import ReadingsBatch, parse_readings_message
from mmlw.store import DeadLetterOut, Store

__all__ = ["Replayed", "replay"]


@dataclass(frozen=True)
class Replayed:
    """A replayed dead letter (now marked) and the batch that was published for it."""

    dead_letter: DeadLetterOut
    batch: ReadingsBatch


def replay(
    dead_letter_id: int,
    *,
    store: Store,
    publisher: ReadingsSink,
    body_override: bytes | None = None,
    max_readings: int | None = None,
) -> Replayed:
    """Validate the dead letter's body (or ``body_override``), publish it, mark it replayed.

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
    publisher.publish(batch)
    return Replayed(store.dead_letters.mark_replayed(dead_letter_id), batch)
