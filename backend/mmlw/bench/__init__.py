"""``mmlw bench``: the pipeline end to end on the real stack, against the baselines a user
would otherwise pick and against this machine's physical limits.

Start with :func:`run_bench` and a :class:`Scenario` (``bench/scenarios/*.yaml``).
"""

from mmlw.bench.report import BenchReport
from mmlw.bench.runner import BenchTargets, run_bench
from mmlw.bench.scenarios import Scenario, load_scenario

__all__ = ["BenchReport", "BenchTargets", "Scenario", "load_scenario", "run_bench"]
