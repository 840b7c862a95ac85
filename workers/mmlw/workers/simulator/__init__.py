"""The simulator of machines: synthetic machines with injected faults, CSV replays, and a
runner that publishes their readings in paced batches to any readings sink."""

from mmlw.workers.simulator.frame import Frame, Source
from mmlw.workers.simulator.replay import NON_SENSOR_COLUMNS, CsvReplay
from mmlw.workers.simulator.runner import SimulationStats, run_simulation
from mmlw.workers.simulator.synthetic import (
    FAULT_KINDS,
    SENSOR_NAMES,
    FaultEpisode,
    SyntheticMachine,
    synthetic_fleet,
)

__all__ = [
    "FAULT_KINDS",
    "NON_SENSOR_COLUMNS",
    "SENSOR_NAMES",
    "CsvReplay",
    "FaultEpisode",
    "Frame",
    "SimulationStats",
    "Source",
    "SyntheticMachine",
    "run_simulation",
    "synthetic_fleet",
]
