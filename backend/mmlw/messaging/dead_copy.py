"""What a dead letter looks like in ``<ns>.dead``, and in the store, for one AMQP message.

The ingest consumer records a message it gives up on in the store (the system of record)
and then publishes a copy of it to ``<ns>.dead``: the original body and properties
(``message_id``, ``content_type``, ``content_encoding``, ``timestamp``, ...) and headers,
plus headers of ours that say why and where from::

    x-mmlw-reason           why it was dead-lettered
    x-mmlw-dead-letter-id   the store's id of its record (absent if the store refused it)
    x-mmlw-routing-key      the routing key it was published with
    x-mmlw-exchange, x-mmlw-queue, x-mmlw-source, x-mmlw-dead-at
    x-mmlw-replayed-at, x-mmlw-replay-count    once it was replayed

The store record keeps the ``message_id`` and the same headers, made JSON-safe, with the
other properties under ``x-mmlw-properties``. Pure code: no broker client is imported.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "COPIED_PROPERTIES",
    "DEAD_AT",
    "DEAD_LETTER_ID",
    "PROPERTIES",
    "REASON",
    "REPLAYED_AT",
    "REPLAY_COUNT",
    "ROUTING_KEY",
    "DeadCopy",
    "body_bytes",
    "json_safe",
]

REASON = "x-mmlw-reason"
DEAD_LETTER_ID = "x-mmlw-dead-letter-id"
ROUTING_KEY = "x-mmlw-routing-key"
EXCHANGE = "x-mmlw-exchange"
QUEUE = "x-mmlw-queue"
SOURCE = "x-mmlw-source"
DEAD_AT = "x-mmlw-dead-at"
REPLAYED_AT = "x-mmlw-replayed-at"
REPLAY_COUNT = "x-mmlw-replay-count"
PROPERTIES = "x-mmlw-properties"  # in the store record only: the copied properties

# the properties a copy keeps; not ``user_id`` (RabbitMQ refuses one that is not the
# publisher's own) nor ``expiration`` (the copy would expire)
COPIED_PROPERTIES = (
    "content_type",
    "content_encoding",
    "message_id",
    "timestamp",
    "correlation_id",
    "reply_to",
    "type",
    "app_id",
    "priority",
)
_MAX_TEXT = 4096  # characters of one header value kept in the store record
_MAX_ITEMS = 200  # entries of one header table or array kept in the store record
_MAX_DEPTH = 8
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class DeadCopy:
    """A dead-lettered message as published to ``<ns>.dead``: ``properties`` are AMQP
    properties (``COPIED_PROPERTIES`` only), ``headers`` its own headers and ours."""

    body: bytes
    routing_key: str
    properties: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        body: bytes,
        *,
        properties: Mapping[str, Any],
        headers: Mapping[str, Any] | None,
        reason: str,
        routing_key: str | None,
        exchange: str | None,
        queue: str,
        source: str = "amqp",
    ) -> DeadCopy:
        """The copy of a message the consumer gives up on for ``reason``."""
        kept = {k: properties[k] for k in COPIED_PROPERTIES if properties.get(k) is not None}
        ours: dict[str, Any] = {
            REASON: reason,
            ROUTING_KEY: routing_key or "",
            EXCHANGE: exchange or "",
            QUEUE: queue,
            SOURCE: source,
            DEAD_AT: datetime.now(UTC).isoformat(),
        }
        own = {str(k): v for k, v in (headers or {}).items() if not str(k).startswith("x-mmlw-")}
        return cls(bytes(body), routing_key or "", kept, {**own, **ours})

    @property
    def dead_letter_id(self) -> int | None:
        return _int(self.headers.get(DEAD_LETTER_ID))

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        return None if value is None else str(value)

    def recorded_as(self, dead_letter_id: int | None) -> DeadCopy:
        """This copy naming its store record (None: the store did not take it)."""
        headers = {k: v for k, v in self.headers.items() if k != DEAD_LETTER_ID}
        if dead_letter_id is not None:
            headers[DEAD_LETTER_ID] = dead_letter_id
        return replace(self, headers=headers)

    def replayed(self, replayed_at: datetime, replay_count: int) -> DeadCopy:
        """This copy marked replayed."""
        marks = {REPLAYED_AT: replayed_at.isoformat(), REPLAY_COUNT: replay_count}
        return replace(self, headers={**self.headers, **marks})

    def stored_headers(self) -> dict[str, Any]:
        """The headers the store record keeps: the message's and ours (not the record's
        id nor the routing key, which have columns), and the properties under
        ``x-mmlw-properties``; JSON-safe and bounded."""
        headers = {k: v for k, v in self.headers.items() if k not in (DEAD_LETTER_ID, ROUTING_KEY)}
        properties = {k: v for k, v in self.properties.items() if k != "message_id"}
        return json_safe({**headers, PROPERTIES: properties})  # type: ignore[no-any-return]


def body_bytes(body: bytes | str | memoryview | None, content_encoding: str | None) -> bytes:
    """A delivery's body as the bytes sent: py-amqp hands over a body with a text
    ``content_encoding`` decoded, so it is encoded back with that encoding.

    >>> body_bytes("é", "latin-1"), body_bytes(b"\\xff", None)
    (b'\\xe9', b'\\xff')
    """
    if body is None:
        return b""
    if not isinstance(body, str):
        return bytes(body)
    try:
        return body.encode(content_encoding or "utf-8", "surrogateescape")
    except (LookupError, UnicodeEncodeError):
        return body.encode("utf-8", "surrogateescape")


def json_safe(value: Any, depth: int = 0) -> Any:
    """An AMQP field value as JSON: text escaped and cut, bytes as UTF-8 text (else
    ``base64:...``), times as ISO 8601, decimals as text; tables and arrays bounded.

    >>> json_safe({"a": b"\\xff", "t": datetime(2026, 1, 1, tzinfo=UTC), "n": [1, "x\\x00"]})
    {'a': 'base64:/w==', 't': '2026-01-01T00:00:00+00:00', 'n': [1, 'x\\\\x00']}
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return _text(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw[:_MAX_TEXT]).decode("ascii")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if depth >= _MAX_DEPTH:
        return _text(repr(value))
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_ITEMS]
        return {_text(str(k), 255): json_safe(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    return _text(repr(value))


def _text(text: str, limit: int = _MAX_TEXT) -> str:
    escaped = _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
