"""Whether a failed write was the store's fault (down, busy: try again later) or the
data's (refused: try again never) -- the line between requeueing a message and
dead-lettering it."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from mmlw.errors import ServiceUnavailable
from mmlw.store import Store

__all__ = ["store_answers", "store_unreachable"]

_UNREACHABLE = (
    sa_exc.OperationalError,  # connection refused or lost, server shutting down, locked
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free
    ServiceUnavailable,
    OSError,  # ConnectionError and TimeoutError among them
)


def store_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store (or broker) could not be reached or was busy --
    worth retrying later -- rather than that it refused what it was given.

    >>> store_unreachable(ConnectionRefusedError()), store_unreachable(ValueError())
    (True, False)
    """
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNREACHABLE)


def store_answers(store: Store) -> bool:
    """Whether the store answers a trivial query now (a failed write was the data's
    fault, not the connection's)."""
    try:
        with store.database.engine.connect() as connection:
            connection.execute(select(1))
    except Exception:
        return False
    return True
