"""What the ingest consumer reads off a delivery: the readings batch, and the routing key,
``message_id`` and body as safe, storable values for logs and dead letters.

A sender controls every byte of a delivery, so nothing here trusts it: the body is
decoded within size and reading limits, and any text taken from it is escaped and cut
before it is stored or printed.
"""

from __future__ import annotations

import gc
import hashlib
import re

from kombu.message import Message

from mmlw.errors import InvalidMessage
from mmlw.schemas.readings import MAX_MESSAGE_BYTES
from mmlw.schemas.readings_arrays import ReadingsArrays, decode_readings

__all__ = [
    "decode_message",
    "delivery_ids",
    "describe",
    "message_key",
    "printable",
    "raw_body",
    "relax_gc",
]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def decode_message(
    body: bytes,
    *,
    max_readings: int,
    routing_key: str | None = None,
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> ReadingsArrays:
    """The batch in ``body``, or :class:`InvalidMessage` naming the field.

    Plainly written valid messages go straight to arrays
    (:func:`~mmlw.schemas.readings_arrays.decode_readings`); any other goes through
    the contract's validation, which decides and words the reason. A body longer than
    ``max_bytes`` is refused unparsed.
    """
    batch = decode_readings(body, max_readings, max_bytes)
    if routing_key and routing_key != batch.machine_id:
        raise InvalidMessage(
            f"machine_id: {batch.machine_id!r} does not match routing key {routing_key!r}"
        )
    return batch


def relax_gc(threshold0: int = 50_000) -> None:
    """Collect cyclic garbage less often in this process.

    Decoding a 1000-reading message allocates over a thousand containers; at Python's
    default first threshold (700) that sets off collections every message, older
    generations included, over the ~270k objects SQLAlchemy, Celery and pandas leave in
    the heap: measured here, it took the parse from 1.0 to 3.0 ms per message.
    """
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(first, threshold0), second, third)


def printable(text: str, limit: int) -> str:
    """``text`` with control characters and lone surrogates escaped, cut to ``limit``
    characters: safe to store in a text column and to print.

    >>> printable("id\\x00\\n" + "x" * 20, 12)
    'id\\\\x00\\\\nx...'
    """
    escaped = _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def describe(error: BaseException) -> str:
    """One storable line naming an unexpected error.

    >>> describe(ValueError("bad\\x00value"))
    'ValueError: bad\\\\x00value'
    """
    return printable(f"{type(error).__name__}: {error}", 500)


def raw_body(body: bytes | str | memoryview) -> bytes:
    """The message body as bytes (kombu hands some bodies, e.g. empty ones, as str)."""
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)


def delivery_ids(message: Message) -> tuple[str | None, str | None]:
    """The message's routing key and AMQP ``message_id``, made storable (a sender may
    put control characters in them)."""
    routing_key = (message.delivery_info or {}).get("routing_key")
    message_id = (message.properties or {}).get("message_id")
    return (
        None if routing_key is None else printable(str(routing_key), 255),
        None if message_id is None else printable(str(message_id), 255),
    )


def message_key(message: Message) -> str:
    """What identifies one message across its redeliveries: its AMQP ``message_id``, else
    its body's digest."""
    message_id = (message.properties or {}).get("message_id")
    if isinstance(message_id, str) and message_id:
        return f"id:{message_id}"
    return "sha256:" + hashlib.sha256(raw_body(message.body)).hexdigest()
