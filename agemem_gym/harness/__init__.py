"""The evaluation harness behind ``agemem eval``: suites, parallel panels, report, plots.

>>> from agemem_gym.harness import SUITES
>>> [b.label for b in SUITES["paper"]]
['ALFWorld', 'SciWorld', 'PDDL', 'BabyAI', 'HotpotQA']
"""

from agemem_gym.harness.evaluate import SCHEMA, evaluate_suite
from agemem_gym.harness.runner import run_panel
from agemem_gym.harness.suites import METRICS, SUITES, Benchmark, resolve_suites

__all__ = [
    "SCHEMA",
    "METRICS",
    "SUITES",
    "Benchmark",
    "evaluate_suite",
    "resolve_suites",
    "run_panel",
]
