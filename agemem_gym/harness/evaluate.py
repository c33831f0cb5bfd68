"""Run every benchmark of a suite for several policies and collect one JSON-ready result.

>>> from agemem_gym.harness import evaluate_suite
>>> result = evaluate_suite(["no-memory", "oracle"], suites=[], env_ids=["AgeMem/Probe-Recall-v0"],
...                         episodes=2, progress=False)
>>> sorted(result["results"]["Probe-Recall"])
['no-memory', 'oracle']
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agemem_gym import policies
from agemem_gym.error import EndpointError, Error, InvalidConfig
from agemem_gym.evaluation import summarize
from agemem_gym.harness.judging import JudgeSpec, make_judges
from agemem_gym.harness.provenance import env_versions, redact_secrets, run_metadata
from agemem_gym.harness.runner import run_panel
from agemem_gym.harness.suites import METRICS, Benchmark, metric_value, resolve_suites

__all__ = ["evaluate_suite", "plan_suite", "run_plan", "SuitePlan", "SCHEMA"]

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

    def discard(self) -> None:
        """Clear the bar when it closes (after Ctrl-C the caller's one line replaces it)."""
        if self.bar is not None:
            self.bar.leave = False

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

    The same as ``run_plan(plan_suite(...))``; use those two to save as you go or to resume.

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
        ``episodes``, ``errors`` (benchmarks that could not run, with the reason),
        ``status`` (``"complete"``, or ``"failed"`` when a panel could not run) and ``missing``
        (``[]``); ``usage`` (label → policy → token and request counts) when a policy reports
        them (served models).
    """
    plan = plan_suite(
        policy_names,
        suites=suites,
        env_ids=env_ids,
        episodes=episodes,
        seed=seed,
        num_envs=num_envs,
        vector_mode=vector_mode,
        judge=judge,
        judge_base_url=judge_base_url,
        policy_kwargs=policy_kwargs,
        env_kwargs=env_kwargs,
        command=command,
    )
    return run_plan(plan, progress=progress)


@dataclasses.dataclass(frozen=True)
class _PanelSpec:
    """The seeded panel every (benchmark, policy) pair plays."""

    episodes: int
    seed: int
    num_envs: int
    vector_mode: str


@dataclasses.dataclass(frozen=True)
class SuitePlan:
    """Everything a suite run needs, decided before any episode is played.

    Attributes:
        result: The result before any panel ran (meta, config, every benchmark, empty tables).
        benches: The benchmarks, in report order.
        judges: ``gym.make`` judge arguments (``judge``, ``memory_judge``).
        per_policy: Constructor arguments per policy name.
        panel: The seeded panel every (benchmark, policy) pair plays.
        env_kwargs: The user's ``gym.make`` arguments for every benchmark.
    """

    result: dict[str, Any]
    benches: list[Benchmark]
    judges: dict[str, Any]
    per_policy: dict[str, dict[str, Any]]
    panel: _PanelSpec
    env_kwargs: dict[str, Any]


def plan_suite(
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
    command: str = "",
) -> SuitePlan:
    """Check the arguments, build the judges and the empty result; plays no episode.

    Each policy is built once (and dropped), so that one that cannot be built (no endpoint,
    a bad argument value, a missing package) fails here, before any panel runs or anything
    is written. Takes the arguments of :func:`evaluate_suite` except ``progress``.

    Returns:
        The plan for :func:`run_plan`; ``plan.result`` holds the settings an output folder records.
    """
    _check_policies(policy_names)
    benches = resolve_suites(suites, env_ids)
    answer_judge, memory_judge, judge_info = make_judges(judge, base_url=judge_base_url)
    per_policy = {k: dict(v) for k, v in (policy_kwargs or {}).items()}
    _check_policies_build(policy_names, per_policy)
    panel = _PanelSpec(int(episodes), int(seed), int(num_envs), vector_mode)
    result = _new_result(command, suites, policy_names, per_policy, panel, env_kwargs, judge_info)
    result["benchmarks"] = [_describe(bench) for bench in benches]
    judges = {"judge": answer_judge, "memory_judge": memory_judge}
    return SuitePlan(result, benches, judges, per_policy, panel, dict(env_kwargs or {}))


def run_plan(
    plan: SuitePlan,
    *,
    reuse: Mapping[str, Any] | None = None,
    on_save: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Play every (benchmark, policy) panel of a plan that ``reuse`` does not already hold.

    Args:
        plan: From :func:`plan_suite`.
        reuse: An earlier result of the same settings; its finished panels are copied, not rerun
            (failed ones are played again).
        on_save: Called with the result before the first panel and after each finished one
            (``status`` ``"partial"`` with the ``missing`` ``[label, policy]`` panels, at the
            end ``"complete"``, or ``"failed"`` when a panel failed: see ``errors``), so that
            an interrupted run keeps what it finished.
        progress: Show a progress bar on stderr.

    Returns:
        The result, as :func:`evaluate_suite` describes it.
    """
    result = copy.deepcopy(plan.result)
    names = result["config"]["policies"]
    pending = [(b, n) for b in plan.benches for n in names if not _reuse(result, reuse, b.label, n)]
    result["missing"] = [[b.label, n] for b, n in pending]
    save = on_save or (lambda _: None)
    _set_status(result)
    save(result)
    bar = _Progress(len(pending) * plan.panel.episodes, progress)
    try:
        for bench, name in pending:
            bar.describe(f"{bench.label} | {name}")
            kwargs = _bench_env_kwargs(bench, plan.env_kwargs, plan.judges)
            _evaluate_one(result, bench, name, plan.per_policy.get(name, {}), kwargs, plan.panel, bar)
            result["missing"].remove([bench.label, name])
            _set_status(result)
            save(result)
    except KeyboardInterrupt:
        bar.discard()
        raise
    finally:
        bar.close()
    return result


_TABLES = ("results", "scores", "episodes", "errors", "usage")


def _reuse(result: dict[str, Any], previous: Mapping[str, Any] | None, label: str, name: str) -> bool:
    """Copy the panel ``(label, name)`` of ``previous`` into ``result``; whether it had finished there."""
    if previous is None:
        return False
    if name not in previous.get("results", {}).get(label, {}):
        return False  # never played, or failed: play it again
    for table in _TABLES:
        per = previous.get(table, {}).get(label, {})
        if name in per and table != "errors":
            result.setdefault(table, {}).setdefault(label, {})[name] = copy.deepcopy(per[name])
    return True


def _set_status(result: dict[str, Any]) -> None:
    """``partial`` while panels are missing; then ``failed`` when a panel failed, else ``complete``."""
    failed = any(result.get("errors", {}).values())
    result["status"] = "partial" if result["missing"] else ("failed" if failed else "complete")


def _bench_env_kwargs(
    bench: Benchmark, env_kwargs: Mapping[str, Any] | None, judges: Mapping[str, Any]
) -> dict[str, Any]:
    """The suite's ``gym.make`` arguments, the user's on top, and the judges unless given."""
    kwargs = {**dict(bench.env_kwargs), **dict(env_kwargs or {})}
    for key, judge in judges.items():
        if judge is not None:
            kwargs.setdefault(key, judge)
    return kwargs


def _check_policies(policy_names: Sequence[str]) -> None:
    if not policy_names:
        raise InvalidConfig("give at least one --policy")
    if len(set(policy_names)) != len(policy_names):
        raise InvalidConfig(f"a policy is listed twice: {list(policy_names)}")
    for name in policy_names:
        if policies.split_name(name)[0] not in policies.POLICIES:
            policies.make(name)  # raises the "did you mean" error


def _check_policies_build(policy_names: Sequence[str], per_policy: Mapping[str, Mapping[str, Any]]) -> None:
    """Build each policy once, so that one that cannot be built fails before any panel runs.

    A policy that cannot be built (no endpoint, an unreachable one, a bad argument value, a
    missing package) is the user's mistake, not a benchmark's failure: every panel of it would
    fail alike. The instance is dropped; each panel builds its own.

    Raises:
        Error: The first policy that cannot be built, named in the message.
    """
    for name in policy_names:
        try:
            policies.make(name, **per_policy.get(name, {}))
        except Error as exc:
            raise type(exc)(f"policy {name!r} cannot be built: {exc}") from exc


def _new_result(
    command: str,
    suites: Sequence[str],
    policy_names: Sequence[str],
    per_policy: dict[str, dict[str, Any]],
    panel: _PanelSpec,
    env_kwargs: Mapping[str, Any] | None,
    judge_info: Any,
) -> dict[str, Any]:
    """The result dict before any benchmark ran: meta, config and empty tables."""
    return {
        "schema": SCHEMA,
        "meta": {
            **run_metadata(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "config": {
            "command": redact_secrets(command),
            "suites": list(suites),
            "policies": list(policy_names),
            "policy_kwargs": redact_secrets(per_policy),
            "episodes": panel.episodes,
            "seed": panel.seed,
            "seeds": [panel.seed + i for i in range(panel.episodes)],
            "num_envs": panel.num_envs,
            "vector_mode": panel.vector_mode,
            "env_kwargs": dict(env_kwargs or {}),
            "judge": judge_info,
        },
        "benchmarks": [],
        "results": {},
        "scores": {},
        "episodes": {},
        "errors": {},
    }


def _evaluate_one(
    result: dict[str, Any],
    bench: Benchmark,
    name: str,
    policy_kwargs: Mapping[str, Any],
    env_kwargs: dict[str, Any],
    panel: _PanelSpec,
    bar: _Progress,
) -> None:
    """Play the panel of one (benchmark, policy) pair and file its summary into ``result``.

    A policy with a ``usage`` mapping (served models: tokens and requests) adds it, summed over
    its instances, to ``result["usage"][label][name]``.
    """
    made: list[Any] = []
    try:
        episodes_out = run_panel(
            bench.env_id,
            functools.partial(_make_policy, name, policy_kwargs, made),
            episodes=panel.episodes,
            seed=panel.seed,
            env_kwargs=env_kwargs,
            num_envs=panel.num_envs,
            vector_mode=panel.vector_mode,
            on_episode=bar.update,
        )
    except EndpointError:
        raise  # the endpoint, not this benchmark: every later panel would fail alike
    except Error as exc:  # a missing optional package or data file: report it, run the rest
        result["errors"].setdefault(bench.label, {})[name] = f"{type(exc).__name__}: {exc}"
        for _ in range(panel.episodes):
            bar.update()
        return
    summary = summarize(episodes_out)
    result["results"].setdefault(bench.label, {})[name] = summary
    result["scores"].setdefault(bench.label, {})[name] = metric_value(bench, summary)
    result["episodes"].setdefault(bench.label, {})[name] = [dataclasses.asdict(e) for e in episodes_out]
    usage = _summed_usage(made)
    if usage is not None:
        result.setdefault("usage", {}).setdefault(bench.label, {})[name] = usage


def _make_policy(name: str, kwargs: Mapping[str, Any], made: list[Any]) -> Any:
    """``policies.make(name, **kwargs)``, remembering the instance in ``made``."""
    policy = policies.make(name, **kwargs)
    made.append(policy)
    return policy


def _summed_usage(made: Sequence[Any]) -> dict[str, int] | None:
    """The ``usage`` counters of the distinct policy instances, summed; ``None`` when none has any."""
    total: dict[str, int] = {}
    for policy in {id(p): p for p in made}.values():
        usage = getattr(policy, "usage", None)
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                total[key] = total.get(key, 0) + int(value)
    return total or None


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
