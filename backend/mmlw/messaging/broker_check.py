"""Is the broker there, and what to tell a person when it is not.

Every message here names the broker by :func:`broker_location` (scheme, host, port and
vhost: never the user or password) and says what to do. :func:`check_broker` makes one
connection attempt; :class:`BrokerWaitLog` is what a long-running process says while it
waits for the broker (``mmlw ingest``, ``mmlw worker``); :func:`wait_for_broker` waits.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from amqp.exceptions import AccessRefused, AMQPError, NotAllowed, RecoverableConnectionError
from kombu import Connection
from kombu.exceptions import OperationalError

from mmlw.errors import ServiceUnavailable

__all__ = [
    "BrokerProblem",
    "BrokerRefused",
    "BrokerUnreachable",
    "BrokerWaitLog",
    "broker_location",
    "broker_problem",
    "check_broker",
    "describe_broker_error",
    "is_broker_error",
    "wait_for_broker",
]

SETTING = "MMLW_BROKER__URL"
BROKER_ERRORS: tuple[type[BaseException], ...] = (OperationalError, AMQPError, OSError)


class BrokerUnreachable(ServiceUnavailable):
    """The broker is down or cannot be reached: worth waiting for."""


class BrokerRefused(ServiceUnavailable):
    """The broker answered and refused us (login, vhost, permissions): waiting won't help."""


def broker_location(url: str) -> str:
    """``url`` without user and password: ``amqp://127.0.0.1:5672//``.

    >>> broker_location("amqp://guest:secret@rabbit:5672//")
    'amqp://rabbit:5672//'
    >>> broker_location("amqp://u:p@rabbit/prod")
    'amqp://rabbit:5672/prod'
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return "memory://"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default_port = 5671 if parts.scheme == "amqps" else 5672
    return f"{parts.scheme}://{host}:{port or default_port}{parts.path or '/'}"


def _user(url: str) -> str | None:
    return urlsplit(url).username


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_broker_error(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the broker's or the network's."""
    return any(isinstance(e, BROKER_ERRORS) for e in _chain(error))


@dataclass(frozen=True)
class BrokerProblem:
    """``unreachable``: down or not reachable (wait for it); else it refused us."""

    unreachable: bool
    reason: str


def broker_problem(error: BaseException, url: str) -> BrokerProblem:
    """Classify ``error`` from connecting or sending to the broker at ``url``."""
    chain = _chain(error)
    for e in chain:
        if isinstance(e, AccessRefused):
            text = str(getattr(e, "reply_text", "") or e)
            if "login" in text.lower():
                return BrokerProblem(False, f"login refused for user {_user(url) or 'guest'!r}")
            return BrokerProblem(False, f"access refused: {text}")
        if isinstance(e, NotAllowed):
            return BrokerProblem(False, f"not allowed: {getattr(e, 'reply_text', '') or e}")
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return BrokerProblem(True, "connection refused")
        if isinstance(e, socket.gaierror):
            return BrokerProblem(True, f"unknown host {urlsplit(url).hostname!r}")
        if isinstance(e, TimeoutError):
            return BrokerProblem(True, "timed out")
        if isinstance(e, OSError):
            return BrokerProblem(True, (e.strerror or str(e) or type(e).__name__).lower())
        if isinstance(e, RecoverableConnectionError):
            return BrokerProblem(True, str(e).splitlines()[0] if str(e) else "connection lost")
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return BrokerProblem(not isinstance(error, AMQPError), first)


def describe_broker_error(error: BaseException, url: str) -> str:
    """One line: what went wrong with the broker at ``url`` and what to do."""
    problem = broker_problem(error, url)
    where = broker_location(url)
    if problem.unreachable:
        return (
            f"cannot reach the broker at {where} ({problem.reason}): start RabbitMQ, or fix "
            f"the host and port in {SETTING}"
        )
    if problem.reason.startswith("login refused"):
        return (
            f"the broker at {where} refused the login of user {_user(url) or 'guest'!r}: "
            f"check the user and password in {SETTING}"
        )
    return (
        f"the broker at {where} refused us ({problem.reason}): check the user's permissions "
        f"and the vhost in {SETTING}"
    )


def check_broker(url: str, *, timeout_s: float = 5.0) -> None:
    """One connection attempt; :class:`BrokerUnreachable` or :class:`BrokerRefused`
    (with :func:`describe_broker_error`'s line) if it fails. ``memory://``: nothing to do."""
    if url.startswith("memory://"):
        return
    connection = Connection(url, connect_timeout=timeout_s)
    try:
        connection.ensure_connection(max_retries=0)
    except Exception as exc:
        if not is_broker_error(exc):
            raise
        kind = BrokerUnreachable if broker_problem(exc, url).unreachable else BrokerRefused
        raise kind(describe_broker_error(exc, url)) from exc
    finally:
        connection.release()


class BrokerWaitLog:
    """What a process says while it waits for the broker: the first failure at once, then
    at most every ``every_s``; once the broker answers, that it is connected."""

    def __init__(
        self,
        url: str,
        logger: logging.Logger,
        *,
        every_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.location = broker_location(url)
        self._log = logger
        self._every_s = every_s
        self._clock = clock
        self._since: float | None = None  # first failure of the current outage
        self._said: float | None = None  # when we last said so

    @property
    def waiting(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        now = self._clock()
        if self._since is None:
            self._since = now
        if self._said is None or now - self._said >= self._every_s:
            self._said = now
            reason = broker_problem(error, self.url).reason
            self._log.warning("waiting for the broker at %s (%s); retrying", self.location, reason)
        self._log.debug("connecting to the broker failed", exc_info=error)

    def connected(self) -> None:
        if self._since is None:
            self._log.info("connected to the broker at %s", self.location)
        else:
            waited = self._clock() - self._since
            self._log.warning(
                "connected to the broker at %s (after waiting %.0f s)", self.location, waited
            )
        self._since = self._said = None


def wait_for_broker(
    url: str,
    logger: logging.Logger,
    *,
    stop: threading.Event | None = None,
    every_s: float = 15.0,
    max_delay_s: float = 5.0,
) -> bool:
    """Return True once the broker at ``url`` answers (False if ``stop`` is set first),
    saying so while it waits; :class:`BrokerRefused` at once if it refuses us."""
    stop = stop or threading.Event()
    waits = BrokerWaitLog(url, logger, every_s=every_s)
    delay = 0.5
    while True:
        try:
            check_broker(url)
        except BrokerUnreachable as exc:
            waits.failed(exc.__cause__ or exc)
        else:
            if waits.waiting:
                waits.connected()
            return True
        if stop.wait(delay):
            return False
        delay = min(delay * 2, max_delay_s)
