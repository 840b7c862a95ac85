"""What processes cost, read from Linux's ``/proc``: peak resident memory (VmHWM) and
CPU time (user + system), for a process and its children."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "CpuMeter",
    "cpu_seconds",
    "descendants",
    "machine_busy_seconds",
    "peak_rss_mb",
    "pids_named",
]

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size in MB, or None if it is gone."""
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (e.g. a prefork pool's children)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for children_file in (_PROC / str(parent) / "task").glob("*/children"):
            try:
                children = [int(c) for c in children_file.read_text().split()]
            except OSError:
                continue
            found.extend(children)
            frontier.extend(children)
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by the live processes ``pids``."""
    total = 0
    for pid in pids:
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name`` (e.g. ``beam.smp``, ``postgres``)."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    fields = [int(v) for v in (_PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / _TICKS, total / _TICKS


class CpuMeter:
    """CPU seconds per role between :meth:`start` and :meth:`stop`, and what the rest
    of the machine (other users' processes included) used meanwhile."""

    def __init__(self, roles: Callable[[], dict[str, list[int]]]) -> None:
        self._roles = roles
        self._start: dict[str, dict[int, float]] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def _per_pid(pids: Iterable[int]) -> dict[int, float]:
        return {pid: cpu_seconds([pid]) for pid in pids}

    def start(self) -> None:
        self._start = {role: self._per_pid(pids) for role, pids in self._roles().items()}
        self._machine = machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        """Seconds per role, plus ``other`` (the rest of the machine) and ``idle``."""
        busy, total = machine_busy_seconds()
        out: dict[str, float] = {}
        for role, pids in self._roles().items():
            before = self._start.get(role, {})
            out[role] = sum(
                max(0.0, seconds - before.get(pid, 0.0))
                for pid, seconds in self._per_pid(pids).items()
            )
        machine_busy = busy - self._machine[0]
        out["other"] = max(0.0, machine_busy - sum(out.values()))
        out["idle"] = max(0.0, (total - self._machine[1]) - machine_busy)
        return {role: round(seconds, 2) for role, seconds in out.items()}
