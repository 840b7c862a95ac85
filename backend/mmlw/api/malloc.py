"""Bound glibc's malloc arenas in the API process.

glibc gives each thread that allocates concurrently an arena of its own, up to eight per
core, and keeps the memory a thread freed in its arena. The API encodes large ranges on
whichever thread-pool thread serves the next chunk, so a few concurrent million-reading
reads left well over a GB resident in scattered arenas (measured with two reads at a
time: 1.3 GB with the default, 0.65 GB with two arenas, for the same ten readers).
Called once at start-up, before the thread pool exists; a no-op where the C library is
not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

__all__ = ["API_MALLOC_ARENAS", "limit_malloc_arenas"]

API_MALLOC_ARENAS: Final = 2
_M_ARENA_MAX: Final = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = API_MALLOC_ARENAS) -> bool:
    """At most ``arenas`` malloc arenas from now on; whether the C library took it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to bound
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
