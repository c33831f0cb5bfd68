"""Run every benchmark of a suite for several policies and collect one JSON-ready result.

>>> from agemem_gym.harness import evaluate_suite
>>> result = evaluate_suite(["no-memory", "oracle"], suites=[], env_ids=["AgeMem/Probe-Recall-v0"],
...                         episodes=2, progress=False)
>>> sorted(result["results"]["Probe-Recall"])
['no-memory', 'oracle']
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from agemem_gym import policies
from agemem_gym.error import Error, InvalidConfig
from agemem_gym.evaluation import summarize
from agemem_gym.harness.judging import JudgeSpec, make_judges
from agemem_gym.harness.provenance import env_versions, run_metadata
from agemem_gym.harness.runner import run_panel
from agemem_gym.harness.suites import METRICS, Benchmark, metric_value, resolve_suites

__all__ = ["evaluate_suite", "SCHEMA"]

SCHEMA = "agemem-eval/1"


class _Progress:
    """One tqdm bar over every episode of the run (stderr), or nothing."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="ep", file=sys.stderr, dynamic_ncols=True)

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)

    def update(self, *_: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate_suite(
    policy_names: Sequence[str],
    *,
    suites: Sequence[str] = ("paper",),
    env_ids: Sequence[str] = (),
    episodes: int = 20,
    seed: int = 0,
    num_envs: int = 1,
    vector_mode: str = "sync",
    judge: str | JudgeSpec = "f1",
    judge_base_url: str | None = None,
    policy_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    command: str = "",
) -> dict[str, Any]:
    """Evaluate each policy on each benchmark over the same seeded panel.

    Args:
        policy_names: Names for :func:`agemem_gym.policies.make` (one column each).
        suites: Suite names (:data:`~agemem_gym.harness.suites.SUITES`).
        env_ids: Extra env ids to run too.
        episodes: Panel length per benchmark.
        seed: Base seed; episode ``i`` plays task ``i`` with seed ``seed + i``.
        num_envs: Sub-environments of the vector env per benchmark.
        vector_mode: ``"sync"`` or ``"async"`` (worker processes).
        judge: ``"f1"`` (offline default), ``"em"``, ``"hf:MODEL"`` or ``"openai:MODEL"``.
        judge_base_url: Endpoint for ``openai:`` judges (default ``$OPENAI_BASE_URL``).
        policy_kwargs: Per policy name, constructor arguments.
        env_kwargs: ``gym.make`` arguments for every benchmark (on top of the suite's).
        progress: Show a progress bar on stderr.
        command: The command line, stored with the result.

    Returns:
        A JSON-serialisable dict: ``meta``, ``config``, ``benchmarks``, ``results``
        (label → policy → summary), ``scores`` (label → policy → main metric),
        ``episodes`` and ``errors`` (benchmarks that could not run, with the reason).
    """
    if not policy_names:
        raise InvalidConfig("give at least one --policy")
    if len(set(policy_names)) != len(policy_names):
        raise InvalidConfig(f"a policy is listed twice: {list(policy_names)}")
    for name in policy_names:
        if name not in policies.POLICIES:
            policies.make(name)  # raises the "did you mean" error
    benches = resolve_suites(suites, env_ids)
    answer_judge, memory_judge, judge_info = make_judges(judge, base_url=judge_base_url)
    per_policy = {k: dict(v) for k, v in (policy_kwargs or {}).items()}
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "meta": {
            **run_metadata(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "config": {
            "command": command,
            "suites": list(suites),
            "policies": list(policy_names),
            "policy_kwargs": per_policy,
            "episodes": int(episodes),
            "seed": int(seed),
            "seeds": [int(seed) + i for i in range(episodes)],
            "num_envs": int(num_envs),
            "vector_mode": vector_mode,
            "env_kwargs": dict(env_kwargs or {}),
            "judge": judge_info,
        },
        "benchmarks": [],
        "results": {},
        "scores": {},
        "episodes": {},
        "errors": {},
    }
    bar = _Progress(len(benches) * len(policy_names) * episodes, progress)
    try:
        for bench in benches:
            result["benchmarks"].append(_describe(bench))
            for name in policy_names:
                bar.describe(f"{bench.label} | {name}")
                kwargs = {**dict(bench.env_kwargs), **dict(env_kwargs or {})}
                if answer_judge is not None:
                    kwargs.setdefault("judge", answer_judge)
                if memory_judge is not None:
                    kwargs.setdefault("memory_judge", memory_judge)
                try:
                    episodes_out = run_panel(
                        bench.env_id,
                        lambda name=name: policies.make(name, **per_policy.get(name, {})),
                        episodes=episodes,
                        seed=seed,
                        env_kwargs=kwargs,
                        num_envs=num_envs,
                        vector_mode=vector_mode,
                        on_episode=bar.update,
                    )
                except Error as exc:  # a missing optional package or data file: report it, run the rest
                    result["errors"].setdefault(bench.label, {})[name] = f"{type(exc).__name__}: {exc}"
                    for _ in range(episodes):
                        bar.update()
                    continue
                summary = summarize(episodes_out)
                result["results"].setdefault(bench.label, {})[name] = summary
                result["scores"].setdefault(bench.label, {})[name] = metric_value(bench, summary)
                result["episodes"].setdefault(bench.label, {})[name] = [dataclasses.asdict(e) for e in episodes_out]
    finally:
        bar.close()
    return result


def _describe(bench: Benchmark) -> dict[str, Any]:
    info = env_versions([bench.env_id])[bench.env_id]
    return {
        "label": bench.label,
        "env_id": bench.env_id,
        "metric": bench.metric,
        "metric_description": METRICS[bench.metric][1],
        "env_kwargs": dict(bench.env_kwargs),
        **info,
    }
