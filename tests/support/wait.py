"""Polling, the one way tests wait for something that happens in another thread or process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from mmlw.errors import NotFound

T = TypeVar("T")

# "not there yet" rather than a failure: a machine or job not stored yet, a process whose
# HTTP port is not open yet
NOT_YET: tuple[type[BaseException], ...] = (NotFound, httpx.TransportError)


def wait_for(
    probe: Callable[[], T | None],
    timeout_s: float = 60.0,
    what: str | Callable[[], str] = "",
    *,
    interval_s: float = 0.1,
    ignore: tuple[type[BaseException], ...] = NOT_YET,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail naming
    ``what`` (a text, or a function giving one, called only on failure) after
    ``timeout_s``. A probe raising one of ``ignore`` (by default :data:`NOT_YET`) counts
    as not holding yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = probe()
        except ignore:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            description = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s}s waiting for {description or probe}")
        time.sleep(interval_s)
