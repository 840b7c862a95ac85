"""Who is logged in to the dashboard, and how often an address may try.

Sessions live in the dashboard process, not in the cookie: the cookie carries only a
random session id (signed by Flask), so a visitor's API key never travels back to the
browser, and logging out (or the session expiring) makes that cookie worthless at once.
A restart logs everyone out.

>>> import itertools
>>> clock = itertools.count(0.0, 10.0).__next__  # each call: 10 s later
>>> limits = LoginLimiter(attempts=2, window_s=60, clock=clock)
>>> limits.retry_after("10.0.0.1"), limits.retry_after("10.0.0.1")
(None, None)
>>> limits.retry_after("10.0.0.1")  # a third try within the minute: wait
40.0
>>> limits.retry_after("10.0.0.2") is None  # another address is not held up
True
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmlw.frontend.api_client import ApiClient

__all__ = ["LoginLimiter", "Visitor", "VisitorSessions"]

Clock = Callable[[], float]


@dataclass
class Visitor:
    """One logged-in browser: the key it logged in with and what reads the API with it."""

    key: str | None
    client: ApiClient
    callbacks: list[Callable[..., Any]] = field(default_factory=list)
    expires_at: float = 0.0


class VisitorSessions:
    """Session id -> :class:`Visitor`, each for ``lifetime_s``; at most ``most`` at once
    (ended sessions are dropped at each login, then the oldest is logged out to make
    room), so logins cannot grow memory without bound."""

    def __init__(self, lifetime_s: float, *, most: int = 1_000, clock: Clock = time.monotonic):
        self._lifetime_s = lifetime_s
        self._most = most
        self._clock = clock
        self._visitors: OrderedDict[str, Visitor] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, visitor: Visitor) -> str:
        """Keep ``visitor`` under a new random id, returned."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        visitor.expires_at = now + self._lifetime_s
        with self._lock:
            ended = [s for s, v in self._visitors.items() if v.expires_at <= now]
            gone = [self._visitors.pop(s) for s in ended]
            self._visitors[sid] = visitor
            while len(self._visitors) > self._most:
                gone.append(self._visitors.popitem(last=False)[1])
        for visitor_gone in gone:
            visitor_gone.client.close()
        return sid

    def get(self, sid: object) -> Visitor | None:
        """The visitor of ``sid`` while its session lasts; None otherwise."""
        if not isinstance(sid, str):
            return None
        with self._lock:
            visitor = self._visitors.get(sid)
            if visitor is None or visitor.expires_at > self._clock():
                return visitor
            del self._visitors[sid]
        visitor.client.close()
        return None

    def close(self, sid: object) -> None:
        """Log ``sid`` out (nothing if it is unknown)."""
        with self._lock:
            visitor = self._visitors.pop(sid, None) if isinstance(sid, str) else None
        if visitor is not None:
            visitor.client.close()

    def __len__(self) -> int:
        return len(self._visitors)


class LoginLimiter:
    """At most ``attempts`` logins per client address within any ``window_s``; the
    addresses it tracks are bounded too (the longest-quiet one is forgotten first)."""

    def __init__(
        self,
        attempts: int,
        window_s: float = 60.0,
        *,
        most_addresses: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self._attempts = attempts
        self._window_s = window_s
        self._most = most_addresses
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float | None:
        """Count an attempt from ``address``: None when allowed, else the seconds until
        the next one will be (a refused attempt does not count)."""
        now = self._clock()
        with self._lock:
            times = self._seen.pop(address, None) or deque()
            while times and times[0] <= now - self._window_s:
                times.popleft()
            self._seen[address] = times
            while len(self._seen) > self._most:
                self._seen.popitem(last=False)
            if len(times) >= self._attempts:
                return round(times[0] + self._window_s - now, 1)
            times.append(now)
            return None
