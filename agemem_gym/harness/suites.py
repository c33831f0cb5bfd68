"""Benchmark suites of ``agemem eval``: which env ids run, and which metric each reports.

The ``paper`` suite is the paper's Table 2 (ALFWorld, SciWorld, PDDL, BabyAI: success rate,
PDDL: progress rate, HotpotQA: judge score); ``synthetic`` adds the generated memory families;
``locomo`` needs the LoCoMo file (``$AGEMEM_LOCOMO_PATH``), ``longmemeval`` a LongMemEval file
(``$AGEMEM_LONGMEMEVAL``, or ``--env-kwargs '{"data_path": ...}'``); both report scores by
question type as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from agemem_gym.error import InvalidConfig, unknown_name

__all__ = ["Benchmark", "SUITES", "METRICS", "resolve_suites", "metric_value"]

# metric -> (column of evaluation.summarize, description)
METRICS: dict[str, tuple[str, str]] = {
    "SR": ("success", "success rate"),
    "PR": ("task_score", "progress rate (AgentBoard: best fraction of goal atoms reached)"),
    "J": ("task_score", "judge score of the answer"),
    "F1": ("task_score", "answer F1"),
}


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One column of the main table.

    Attributes:
        label: Column name (``ALFWorld``).
        env_id: The registered id.
        metric: A key of :data:`METRICS`.
        env_kwargs: Extra ``gym.make`` arguments.
    """

    label: str
    env_id: str
    metric: str
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise unknown_name("metric", self.metric, METRICS)


SUITES: dict[str, tuple[Benchmark, ...]] = {
    "paper": (
        Benchmark("ALFWorld", "AgeMem/ALFWorld-v0", "SR"),
        Benchmark("SciWorld", "AgeMem/SciWorld-v0", "SR"),
        Benchmark("PDDL", "AgeMem/PDDL-v0", "PR"),
        Benchmark("BabyAI", "AgeMem/BabyAI-v0", "SR"),
        Benchmark("HotpotQA", "AgeMem/HotpotQA-v0", "J"),
    ),
    "synthetic": (
        Benchmark("FactUpdate", "AgeMem/FactUpdate-v0", "J"),
        Benchmark("LongRecall", "AgeMem/LongRecall-v0", "J"),
        Benchmark("MemoryProbe", "AgeMem/MemoryProbe-v0", "J"),
    ),
    "locomo": (Benchmark("LoCoMo", "AgeMem/LoCoMo-v0", "F1"),),
    "longmemeval": (Benchmark("LongMemEval", "AgeMem/LongMemEval-v0", "J"),),
}


def resolve_suites(names: Sequence[str], env_ids: Sequence[str] = ()) -> list[Benchmark]:
    """The benchmarks of ``names`` (in order, duplicates dropped) plus explicit env ids (metric J).

    Args:
        names: Suite names (keys of :data:`SUITES`).
        env_ids: Extra registered ids to run as well.

    Returns:
        The benchmarks.
    """
    out: dict[str, Benchmark] = {}
    for name in names:
        if name not in SUITES:
            raise unknown_name("suite", name, SUITES)
        for bench in SUITES[name]:
            out.setdefault(bench.label, bench)
    for env_id in env_ids:
        label = env_id.split("/")[-1].rsplit("-v", 1)[0]
        out.setdefault(label, Benchmark(label, env_id, "J"))
    if not out:
        raise InvalidConfig("nothing to evaluate: give --suite paper (or another suite) or --env ID")
    return list(out.values())


def metric_value(bench: Benchmark, summary: Mapping[str, Any]) -> float | None:
    """The benchmark's main metric from an :func:`~agemem_gym.evaluation.summarize` result (0–1)."""
    value = summary.get(METRICS[bench.metric][0])
    return None if value is None else float(value)
