"""The wire contract shared by publishers, API, consumers, tasks and dashboard.

This package imports nothing else of MMLW's but :mod:`mmlw.errors`.
"""

from mmlw.schemas.jobs import (
    JobKind,
    JobOut,
    JobState,
    TrainOptions,
    TrainRequest,
    TrainResult,
)
from mmlw.schemas.readings import (
    MACHINE_ID_PATTERN,
    READINGS_SCHEMA,
    ReadingsBatch,
    describe_validation_error,
    parse_readings_message,
)
from mmlw.schemas.resources import (
    MachineOut,
    ModelVersionOut,
    ReadingsOut,
    ScoresOut,
    SensorContribution,
)

__all__ = [
    "MACHINE_ID_PATTERN",
    "READINGS_SCHEMA",
    "JobKind",
    "JobOut",
    "JobState",
    "MachineOut",
    "ModelVersionOut",
    "ReadingsBatch",
    "ReadingsOut",
    "ScoresOut",
    "SensorContribution",
    "TrainOptions",
    "TrainRequest",
    "TrainResult",
    "describe_validation_error",
    "parse_readings_message",
]
