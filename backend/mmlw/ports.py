"""Free TCP ports for servers MMLW starts on loopback: the demo's mail catcher, the bench,
the docs checks and the tests (a module at the bottom: it imports nothing of ours)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12_000  # how far below the ephemeral range ports are drawn from


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to, drawn at random from below the
    kernel's ephemeral range. A port the kernel hands out for ``bind(0)`` comes from that
    range, which every outgoing connection's local end also comes from: under the parallel
    suite one was taken by some connection before the server it was meant for bound it
    (``mlflow ui``: "Address already in use"). Below the range only another server can
    take it, and the draw is random."""
    low = _ephemeral_low()
    draw = random.SystemRandom()
    for _ in range(100):
        port = draw.randrange(max(1024, low - _SPAN), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded machine: whatever the kernel gives
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
