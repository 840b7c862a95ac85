"""Servers started by the bench, the docs checks and the tests get ports outside the
range the kernel gives outgoing connections, so no connection can take one first."""

from __future__ import annotations

import socket

from mmlw.ports import _ephemeral_low, free_port


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    low = _ephemeral_low()
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1  # drawn at random
    for port in ports:
        assert 1024 <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_given() -> None:
    low = _ephemeral_low()
    held = []
    try:
        for port in range(max(1024, low - 12_000), low, 7):  # a seventh of the draw range
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        taken = {s.getsockname()[1] for s in held}
        assert not taken & {free_port() for _ in range(50)}
    finally:
        for sock in held:
            sock.close()
