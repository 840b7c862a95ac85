"""What `mmlw demo` shows at its close, pinned without running it: its three simulated
machines (seed 0, 600 warm-up readings, 18,000 readings each, a fault about every 400)
replayed through the serving path as the demo serves them (the default detector fitted
on the warm-up, batches of 10, the default rules on the readings' clock). Issue bars:
at most 1 % of normal readings flagged, every injected fault alerted, at least 80 % of
alerts on a fault."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from mmlw.demo.alerts import FaultCoverage, fault_coverage
from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.evaluation.metrics import runs
from mmlw.evaluation.stream import replay_file
from mmlw.workers.simulator.synthetic import synthetic_fleet

WARMUP, READINGS = 600, 18_000


def test_the_demo_machines_flag_little_normal_data_and_alert_every_fault() -> None:
    fleet = synthetic_fleet(3, seed=0, warmup=WARMUP, start=datetime(2026, 1, 1, tzinfo=UTC))
    flagged = normal = 0
    coverage = FaultCoverage(0, 0, 0, 0)
    for machine in fleet:
        frame = machine.read(READINGS)
        data = pd.DataFrame(
            frame.values, index=pd.DatetimeIndex(frame.timestamps), columns=frame.columns
        )
        result = replay_file(data, WARMUP, DEFAULT_DETECTOR, batch_size=10)
        live_normal = (np.arange(READINGS) >= WARMUP) & ~np.asarray(frame.labels, dtype=bool)
        flagged += int((result.flags & live_normal).sum())
        normal += int(live_normal.sum())
        faults = [(e.start_index, e.end_index) for e in machine.fault_log]
        spans = [(float(a), float(b)) for a, b in runs(result.alerting)]
        coverage += fault_coverage(faults, spans, slack=30)
    assert coverage.faults > 100
    assert flagged / normal <= 0.01
    assert coverage.alerted == coverage.faults
    assert coverage.on_faults >= 0.8 * coverage.alerts
