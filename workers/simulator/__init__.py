"""The simulator of machines: synthetic machines with injected faults, CSV replays, and a
runner that publishes their readings in paced batches to any readings sink."""

from workers.simulator.frame import Frame, Source
from workers.simulator.replay import NON_SENSOR_COLUMNS, CsvReplay
from workers.simulator.runner import SimulationStats, run_simulation
from workers.simulator.synthetic import (
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
