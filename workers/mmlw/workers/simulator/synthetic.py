"""Synthetic multi-sensor machines with labelled, injected faults.

Three latent operating variables drive every sensor: *speed* (set by an operating mode
that switches every 80-200 readings, with a short ramp, plus a small wander), *load*
(a slow wander, partly tied to the mode) and *ambient temperature* (a daily cycle in
real time plus a faster HVAC cycle). Each sensor is a seeded linear mix of them, scaled to
unit spread around its own offset, plus small independent noise, so the sensors are
strongly correlated and a fault on one sensor breaks the correlation structure.

Fault sizes are in units of the sensor's normal operating spread (its noise sigma is
0.04-0.07 of that): a spike is 6-10 spreads for 1-3 readings, a level shift 2-3
spreads, a drift grows linearly to 4-5 spreads, a stuck sensor repeats the value it had
when the fault began, and a noise fault adds noise of 0.5-0.8 spreads (7x-20x its own).
All are far out of the learned correlation structure (a PCA residual on warm-up data
sees them); a per-sensor threshold sees spikes and late drift, not every level shift.

>>> from datetime import UTC, datetime
>>> machine = SyntheticMachine("pump-1", seed=7, start=datetime(2026, 1, 1, tzinfo=UTC),
...                            warmup=100, fault_every=50, fault_length=10)
>>> frame = machine.read(400)
>>> frame.values.shape, frame.columns[:3], str(frame.timestamps[1])
((400, 8), ['Current', 'Pressure', 'Temperature'], '2026-01-01 00:00:01+00:00')
>>> int(frame.labels[:100].sum()), [episode.kind for episode in machine.fault_log][:3]
(0, ['spike', 'drift', 'level_shift'])
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from mmlw.workers.simulator.frame import Frame, as_utc, epoch_us, utc_series

__all__ = ["FAULT_KINDS", "SENSOR_NAMES", "FaultEpisode", "SyntheticMachine", "synthetic_fleet"]

FAULT_KINDS: tuple[str, ...] = ("spike", "drift", "level_shift", "stuck", "noise")
SENSOR_NAMES: tuple[str, ...] = (
    "Current",
    "Pressure",
    "Temperature",
    "Vibration1",
    "Vibration2",
    "Flow",
    "Voltage",
    "Speed",
)

# name: ((speed, load, ambient) weights, offset, gain) -- gain is the operating spread.
_PROFILES: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "Current": ((0.3, 0.9, 0.05), 2.2, 0.3),
    "Pressure": ((0.8, 0.4, 0.0), 1.0, 0.25),
    "Temperature": ((0.1, 0.4, 0.8), 65.0, 4.0),
    "Vibration1": ((0.7, 0.3, 0.0), 0.3, 0.04),
    "Vibration2": ((0.6, 0.2, 0.15), 0.4, 0.05),
    "Flow": ((0.9, -0.2, 0.0), 120.0, 10.0),
    "Voltage": ((0.05, -0.5, 0.2), 230.0, 3.0),
    "Speed": ((1.0, -0.1, 0.0), 1450.0, 120.0),
}
_MODES = np.array([[-1.0, -0.3], [0.0, 0.2], [1.0, 0.5]])  # (speed, load) level per mode
_DWELL = (80, 200)  # readings per operating mode, inclusive
_RAMP = 12  # readings to move between modes
_BLOCK = 1024  # readings per independently seeded noise block
_REFERENCE = 4096  # readings used to scale each sensor to unit spread
_DAY_S = 86_400.0
_NOISE_STREAM, _FAULT_NOISE_STREAM, _MODE_STREAM, _FAULT_STREAM = 1, 2, 3, 4


class FaultEpisode(NamedTuple):
    """One injected fault: readings ``start_index <= i < end_index`` are labelled 1."""

    kind: str
    sensors: tuple[str, ...]
    start_index: int
    end_index: int


@dataclass(frozen=True)
class _Fault:
    episode: FaultEpisode
    sensors: np.ndarray  # column indices
    size: np.ndarray  # per sensor: offset, final drift, stuck value or noise sigma


class _Wander:
    """A smooth, stateless quasi-random signal of unit standard deviation."""

    def __init__(self, rng: np.random.Generator, periods: tuple[float, float], k: int) -> None:
        self.freq = 2 * np.pi / rng.uniform(*periods, size=k)
        self.phase = rng.uniform(0, 2 * np.pi, size=k)
        amp = rng.uniform(0.5, 1.0, size=k)
        self.amp = amp / np.sqrt(np.sum(amp**2) / 2)

    def __call__(self, index: np.ndarray) -> np.ndarray:
        return np.sin(np.outer(index, self.freq) + self.phase) @ self.amp


class SyntheticMachine:
    """An endless :class:`~mmlw.workers.simulator.frame.Source` of correlated sensor readings.

    Guarantees: the readings depend only on ``seed``, ``start`` and the other arguments,
    never on how they are split into ``read`` calls; values are finite; timestamps are
    ``start + i * period_s`` in UTC (``start`` defaults to the current second, a naive
    ``start`` is taken as UTC); no fault touches the first ``warmup`` readings; then one
    episode starts about every ``fault_every`` readings (+-25 %), lasts about
    ``fault_length`` readings (+-25 %, spikes 1-3), hits one or two sensors, and kinds
    cycle through ``faults`` (empty: a healthy machine); labels are 1 exactly inside
    episodes. Latent operating variables move on a scale of readings, except the daily
    ambient cycle, which follows real (simulated) time.
    """

    def __init__(
        self,
        machine_id: str,
        *,
        seed: int = 0,
        n_sensors: int = 8,
        start: datetime | None = None,
        period_s: float = 1.0,
        warmup: int = 600,
        fault_every: int = 400,
        fault_length: int = 60,
        faults: Sequence[str] = FAULT_KINDS,
    ) -> None:
        unknown = [kind for kind in faults if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"faults: unknown kinds {unknown}; known: {list(FAULT_KINDS)}")
        if n_sensors < 1 or period_s <= 0 or warmup < 0 or fault_every < 1 or fault_length < 1:
            raise ValueError(
                "need n_sensors >= 1, period_s > 0, warmup >= 0, fault_every >= 1 and "
                "fault_length >= 1"
            )
        if seed < 0:
            raise ValueError("seed: must be >= 0")
        self.machine_id = machine_id
        self.seed = seed
        self.start = as_utc(datetime.now(UTC).replace(microsecond=0) if start is None else start)
        self.period_s = float(period_s)
        self.warmup = warmup
        self.fault_every = fault_every
        self.fault_length = fault_length
        self.faults = tuple(faults)
        self.columns = [
            SENSOR_NAMES[j] if j < len(SENSOR_NAMES) else f"Sensor{j + 1}" for j in range(n_sensors)
        ]
        self.position = 0  # readings handed out so far
        self._build_plant(np.random.default_rng([seed, 0]))
        self._mode_rng = np.random.default_rng([seed, _MODE_STREAM])
        self._mode_starts = [0]
        self._mode_order: list[int] = []
        self._mode_seq = [self._next_mode(-1)]
        self._fault_rng = np.random.default_rng([seed, _FAULT_STREAM])
        self._faults: list[_Fault] = []
        self._fault_ends: list[int] = []
        self._next_fault = warmup + round(fault_every * self._fault_rng.uniform(0.1, 0.5))
        reference = self._mix(np.arange(_REFERENCE))
        self._mean = reference.mean(axis=0)
        self._spread = reference.std(axis=0) + 1e-12

    @property
    def fault_log(self) -> list[FaultEpisode]:
        """Fault episodes that have begun among the readings handed out so far."""
        return [f.episode for f in self._faults if f.episode.start_index < self.position]

    def read(self, n: int) -> Frame:
        """The next ``n`` readings (always exactly ``n``: the machine never runs out)."""
        if n < 1:
            raise ValueError("n: must be >= 1")
        first, self.position = self.position, self.position + n
        values, labels = self._generate(first, n)
        stamps = utc_series(self.start, self.period_s, first, n)
        return Frame(self.machine_id, list(self.columns), stamps, values, labels)

    # --- the plant -----------------------------------------------------------------

    def _build_plant(self, rng: np.random.Generator) -> None:
        m = len(self.columns)
        weights, offsets, gains = np.empty((m, 3)), np.empty(m), np.empty(m)
        for j, name in enumerate(self.columns):
            if name in _PROFILES:
                weights[j], offsets[j], gains[j] = _PROFILES[name]
            else:
                weights[j], offsets[j], gains[j] = rng.normal(size=3), 50.0, 5.0
        self._weights = weights * rng.uniform(0.8, 1.2, size=(m, 3))
        self._offsets = offsets * rng.uniform(0.95, 1.05, size=m)
        self._gains = gains * rng.uniform(0.9, 1.1, size=m)
        self._noise = rng.uniform(0.04, 0.07, size=m)
        self._speed_wander = _Wander(rng, (20.0, 120.0), 3)
        self._load_wander = _Wander(rng, (30.0, 200.0), 3)
        self._hvac = _Wander(rng, (60.0, 300.0), 2)
        self._day_phase = rng.uniform(-0.1, 0.1) * 2 * np.pi

    def _next_mode(self, previous: int) -> int:
        if not self._mode_order:
            order = [int(k) for k in self._mode_rng.permutation(len(_MODES))]
            if order[0] == previous:
                order.append(order.pop(0))
            self._mode_order = order
        return self._mode_order.pop(0)

    def _modes(self, index: np.ndarray) -> np.ndarray:
        """(speed, load) set points, ramping over ``_RAMP`` readings after a switch."""
        while self._mode_starts[-1] <= index[-1]:
            dwell = int(self._mode_rng.integers(_DWELL[0], _DWELL[1] + 1))
            self._mode_starts.append(self._mode_starts[-1] + dwell)
            self._mode_seq.append(self._next_mode(self._mode_seq[-1]))
        first = max(bisect.bisect_right(self._mode_starts, int(index[0])) - 2, 0)
        starts, seq = np.array(self._mode_starts[first:]), np.array(self._mode_seq[first:])
        segment = np.searchsorted(starts, index, side="right") - 1
        level = _MODES[seq[segment]]
        before = _MODES[seq[np.maximum(segment - 1, 0)]]
        ramp = np.clip((index - starts[segment] + 1) / _RAMP, 0.0, 1.0)[:, None]
        return before + (level - before) * ramp

    def _mix(self, index: np.ndarray) -> np.ndarray:
        """Noise-free sensor signals (before scaling) of readings ``index``."""
        modes = self._modes(index)
        seconds = (epoch_us(self.start) / 1e6 + index * self.period_s) % _DAY_S
        daily = np.sin(2 * np.pi * (seconds / _DAY_S - 0.375) + self._day_phase)  # peak 15:00
        latent = np.column_stack(
            (
                0.6 * modes[:, 0] + 0.25 * self._speed_wander(index),
                0.3 * modes[:, 1] + 0.6 * self._load_wander(index),
                0.4 * daily + 0.6 * self._hvac(index),
            )
        )
        return latent @ self._weights.T

    def _gaussian(self, stream: int, first: int, n: int) -> np.ndarray:
        """Standard normals of shape (n, sensors) for readings ``first..first+n-1``,
        identical however the range is split."""
        lo, hi = first // _BLOCK, (first + n - 1) // _BLOCK
        blocks = [
            np.random.default_rng([self.seed, stream, b]).standard_normal(
                (_BLOCK, len(self.columns))
            )
            for b in range(lo, hi + 1)
        ]
        skip = first - lo * _BLOCK
        return np.concatenate(blocks)[skip : skip + n]

    def _normal(self, first: int, n: int) -> np.ndarray:
        """Healthy readings in spread units (mean 0, spread 1 per sensor), with noise."""
        index = np.arange(first, first + n)
        clean = (self._mix(index) - self._mean) / self._spread
        return clean + self._noise * self._gaussian(_NOISE_STREAM, first, n)

    # --- faults --------------------------------------------------------------------

    def _schedule_faults(self, until: int) -> None:
        """Plan every fault episode that starts before reading ``until``."""
        if not self.faults:
            return
        rng, m = self._fault_rng, len(self.columns)
        while self._next_fault < until:
            start = self._next_fault
            kind = self.faults[len(self._faults) % len(self.faults)]
            if kind == "spike":
                length, count = int(rng.integers(1, 4)), 1
            else:
                length = max(2, round(self.fault_length * rng.uniform(0.75, 1.25)))
                count = min(m, int(rng.integers(1, 3)))
            sensors = np.sort(rng.choice(m, size=count, replace=False))
            if kind == "stuck":
                size = self._normal(start, 1)[0, sensors]
            elif kind == "noise":
                size = rng.uniform(0.5, 0.8, size=count)
            else:
                low, high = {"spike": (6.0, 10.0), "level_shift": (2.0, 3.0)}.get(kind, (4.0, 5.0))
                size = rng.choice([-1.0, 1.0], size=count) * rng.uniform(low, high, size=count)
            names = tuple(self.columns[j] for j in sensors)
            episode = FaultEpisode(kind, names, start, start + length)
            self._faults.append(_Fault(episode, sensors, size))
            self._fault_ends.append(episode.end_index)
            jitter = round(self.fault_every * rng.uniform(0.75, 1.25))
            self._next_fault = max(start + jitter, episode.end_index + 1)

    def _generate(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Scaled values and labels of readings ``first..first+n-1``."""
        z = self._normal(first, n)
        labels = np.zeros(n, dtype=np.int8)
        self._schedule_faults(first + n)
        k = bisect.bisect_right(self._fault_ends, first)
        for fault in self._faults[k:]:
            start, end = fault.episode.start_index, fault.episode.end_index
            if start >= first + n:
                break
            lo, hi = max(start, first), min(end, first + n)
            rows, cols = slice(lo - first, hi - first), fault.sensors
            labels[rows] = 1
            kind = fault.episode.kind
            if kind in ("spike", "level_shift"):
                z[rows, cols] += fault.size
            elif kind == "drift":
                grown = (np.arange(lo, hi) - start + 1) / (end - start)
                z[rows, cols] += np.outer(grown, fault.size)
            elif kind == "stuck":
                z[rows, cols] = fault.size
            else:
                extra = self._gaussian(_FAULT_NOISE_STREAM, lo, hi - lo)[:, cols]
                z[rows, cols] += extra * fault.size
        return self._offsets + self._gains * z, labels


def synthetic_fleet(n_machines: int, *, seed: int = 0, **kwargs: Any) -> list[SyntheticMachine]:
    """Machines ``machine-1 .. machine-N``, each with its own seed derived from ``seed``,
    sharing one ``start`` (the current second unless ``start`` is given) and ``kwargs``."""
    if n_machines < 1:
        raise ValueError("n_machines: must be >= 1")
    start = kwargs.pop("start", None)
    if start is None:
        start = datetime.now(UTC).replace(microsecond=0)
    seeds = np.random.SeedSequence(seed).generate_state(n_machines)
    return [
        SyntheticMachine(f"machine-{i + 1}", seed=int(s), start=start, **kwargs)
        for i, s in enumerate(seeds)
    ]
