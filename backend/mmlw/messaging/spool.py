"""A durable local buffer for messages the broker cannot take now (the machine side).

One SQLite file, one row per message in arrival order. A publisher appends here when
the broker is down or keeps refusing, and sends the rows back oldest first once it can,
deleting each row only after the broker confirmed that message. A crash between the
confirm and the delete sends that message again: the ingest side stores a message id
once, so at-least-once is enough. One publisher (process) per file.

    >>> import tempfile, pathlib
    >>> spool = Spool(pathlib.Path(tempfile.mkdtemp()) / "spool.db")
    >>> spool.put("pump-1", b"{}", "id-1"); spool.put("pump-1", b"[]", "id-2")
    >>> [m.message_id for m in spool.oldest(10)], len(spool)
    (['id-1', 'id-2'], 2)
    >>> spool.remove(spool.oldest(1)[0]); len(spool)
    1
    >>> spool.close()
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from mmlw.errors import ServiceUnavailable

__all__ = ["Spool", "SpoolFull", "SpooledMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    routing_key TEXT NOT NULL,
    message_id TEXT,
    body BLOB NOT NULL
)
"""


class SpoolFull(ServiceUnavailable):
    """The broker is unreachable and the local spool has no room left for the batch."""


@dataclass(frozen=True)
class SpooledMessage:
    id: int
    routing_key: str
    message_id: str | None
    body: bytes


class Spool:
    """Messages kept on local disk (SQLite, synchronous writes) until the broker takes them.

    ``put`` raises :class:`SpoolFull` once the bodies held would exceed ``max_bytes``
    or the rows ``max_messages``; nothing already spooled is ever dropped to make room.
    """

    def __init__(
        self, path: Path, *, max_bytes: int = 256 * 2**20, max_messages: int = 1_000_000
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spool"
        ).fetchone()

    def __len__(self) -> int:
        return int(self._count)

    @property
    def size_bytes(self) -> int:
        return int(self._bytes)

    def put(self, routing_key: str, body: bytes, message_id: str | None) -> None:
        """Append one message durably (on disk when this returns)."""
        with self._lock:
            if self._count >= self.max_messages or self._bytes + len(body) > self.max_bytes:
                raise SpoolFull(
                    f"local spool {self.path} is full ({self._count} messages, "
                    f"{self._bytes / 2**20:.1f} of {self.max_bytes / 2**20:.1f} MB) and the "
                    "broker is not taking messages: the batch was not kept"
                )
            self._db.execute(
                "INSERT INTO spool (routing_key, message_id, body) VALUES (?, ?, ?)",
                (routing_key, message_id, body),
            )
            self._count += 1
            self._bytes += len(body)

    def oldest(self, limit: int) -> list[SpooledMessage]:
        """Up to ``limit`` messages, oldest first (they stay until :meth:`remove`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, routing_key, message_id, body FROM spool ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [SpooledMessage(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def remove(self, message: SpooledMessage) -> None:
        """Forget a message the broker has confirmed."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM spool WHERE id = ?", (message.id,)).rowcount
            if deleted:
                self._count -= 1
                self._bytes -= len(message.body)

    def close(self) -> None:
        with self._lock:
            self._db.close()
