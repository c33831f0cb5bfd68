"""Run a policy over a fixed, seeded panel of episodes and summarise what ``info`` reports."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.error import InvalidConfig
from agemem_gym.policies.base import Policy
from agemem_gym.runner import env_kwargs_for, play_episodes
from agemem_gym.tools import histogram_names
from agemem_gym.vector import make_slot_envs
from agemem_gym.wrappers.record import maybe_record

__all__ = ["EpisodeResult", "run_episodes", "summarize", "summarize_groups", "format_summary"]


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    """The final ``info`` of one episode, flattened."""

    env_id: str
    task_id: str
    seed: int
    reward: float
    task_score: float | None
    success: float
    f1: float | None
    em: float | None
    memory_quality: float | None
    prompt_tokens_mean: float
    prompt_tokens_total: int
    turns: int
    invalid_calls: int
    tool_calls: dict[str, int]
    reward_components: dict[str, float | None]
    penalties: dict[str, float]
    answer: str | None
    groups: tuple[str, ...] = ()

    @classmethod
    def from_info(cls, env_id: str, seed: int, reward: float, info: Mapping[str, Any]) -> EpisodeResult:
        """Build from the last step's ``info``."""
        return cls(
            env_id=env_id,
            task_id=str(info.get("task_id", "")),
            seed=seed,
            reward=float(reward),
            task_score=info.get("task_score"),
            success=float(info.get("success") or 0.0),
            f1=info.get("f1"),
            em=info.get("em"),
            memory_quality=info.get("memory_quality"),
            prompt_tokens_mean=float(info.get("prompt_tokens_mean", 0.0)),
            prompt_tokens_total=int(info.get("prompt_tokens_total", 0)),
            turns=int(info.get("turns", 0)),
            invalid_calls=int(info.get("invalid_calls", 0)),
            tool_calls=dict(info.get("tool_calls", {})),
            reward_components=dict(info.get("reward_components", {})),
            penalties=dict(info.get("penalties", {})),
            answer=info.get("answer"),
            groups=tuple(str(g) for g in info.get("groups") or ()),
        )


def run_episodes(
    env_id: str,
    policy: Policy,
    *,
    episodes: int,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
    max_steps: int = 10_000,
    record: str | os.PathLike[str] | None = None,
) -> list[EpisodeResult]:
    """Run ``episodes`` episodes: episode ``i`` uses task ``i`` of the panel and seed ``seed + i``.

    Args:
        env_id: A registered id.
        policy: Anything with ``act(observation, info) -> str``.
        episodes: Number of episodes.
        seed: Base seed.
        env_kwargs: Passed to ``gym.make``; ``privileged_info`` is turned on for policies that
            declare ``needs_privileged_info``.
        progress: Show a tqdm progress bar of episodes, with the turn of the current one.
        max_steps: Safety cap on steps per episode.
        record: A folder to write every episode to as JSON Lines
            (:class:`~agemem_gym.wrappers.record.RecordEpisode`; view with ``agemem view``).

    Returns:
        One result per episode, in order.
    """
    if episodes < 1:
        raise InvalidConfig(f"episodes must be >= 1, got {episodes}")
    kwargs = env_kwargs_for(policy, env_kwargs)
    policy_name = getattr(policy, "name", type(policy).__name__)
    directory = None if record is None else Path(record)

    def make_env() -> gym.Env:
        return maybe_record(gym.make(env_id, **kwargs), directory, metadata={"policy": policy_name})

    envs = make_slot_envs(make_env)
    try:
        n_tasks = len(envs.get_attr("task_ids")[0])
        bar = _progress(episodes, f"{env_id} | {policy_name}", progress)
        plan = [(i % n_tasks, seed + i) for i in range(episodes)]
        turns = _TurnCounter(bar, policy, seed)
        ends = play_episodes(
            envs,
            plan,
            turns.act,
            on_start=turns.start,
            on_end=lambda _end: bar.update(1),
            max_steps=max_steps,
        )
        bar.close()
        return [EpisodeResult.from_info(env_id, seed + end.index, end.reward, end.info) for end in ends]
    finally:
        envs.close()


def _start_episode(policy: Policy, seed: int) -> None:
    # as the vector-env harness does, so `agemem run` and `agemem eval` agree episode by episode
    if hasattr(policy, "reseed") and not getattr(policy, "batched", False):
        policy.reseed(seed)
    if hasattr(policy, "reset"):
        policy.reset()


class _TurnCounter:
    """Acts for the one slot of ``run_episodes`` and shows the turn of the episode on the bar.

    The turn is shown before it is played: a chat model on CPU can take minutes per episode,
    and a bar that moves only per episode looks stuck.
    """

    def __init__(self, bar: Any, policy: Policy, seed: int) -> None:
        self.bar, self.policy, self.seed, self.turn = bar, policy, seed, 0

    def start(self, _slot: int, index: int) -> None:
        self.turn = 0
        _start_episode(self.policy, self.seed + index)

    def act(self, _slots: Any, observations: Sequence[Any], infos: Sequence[Any]) -> list[str]:
        self.turn += 1
        self.bar.set_postfix_str(f"turn {self.turn}", refresh=True)
        return [self.policy.act(observations[0], infos[0])]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ep", leave=False)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def _tool_names(results: Sequence[EpisodeResult]) -> tuple[str, ...]:
    """The six tools, then any tool of a custom table the episodes called."""
    return histogram_names(r.tool_calls for r in results)


def summarize_groups(results: Sequence[EpisodeResult]) -> dict[str, dict[str, float | int | None]]:
    """Per group an env reported (``info["groups"]``: a question type or category), its episodes and means.

    An episode counts in each of its groups (a LongMemEval abstention question in its type and
    in ``abstention``); groups come in first-seen order. Empty when no episode names a group.

    Example:
        >>> r = EpisodeResult.from_info("E", 0, 1.0, {"task_score": 1.0, "success": 1.0, "groups": ["a"]})
        >>> summarize_groups([r])
        {'a': {'episodes': 1, 'task_score': 1.0, 'success': 1.0}}
    """
    names = list(dict.fromkeys(g for r in results for g in r.groups))
    out: dict[str, dict[str, float | int | None]] = {}
    for name in names:
        members = [r for r in results if name in r.groups]
        out[name] = {
            "episodes": len(members),
            "task_score": _mean([r.task_score if r.task_score is not None else 0.0 for r in members]),
            "success": _mean([r.success for r in members]),
        }
    return out


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Means over episodes of every reported metric, tool calls per episode by tool included.

    ``by_group`` (:func:`summarize_groups`) is there only when the env reports groups.
    """
    comps = list(dict.fromkeys(k for r in results for k in r.reward_components))
    groups = summarize_groups(results)
    return {
        "episodes": len(results),
        "reward": _mean([r.reward for r in results]),
        "task_score": _mean([r.task_score if r.task_score is not None else 0.0 for r in results]),
        "f1": _mean([r.f1 for r in results]),
        "em": _mean([r.em for r in results]),
        "success": _mean([r.success for r in results]),
        "memory_quality": _mean([r.memory_quality for r in results]),
        "prompt_tokens": _mean([r.prompt_tokens_mean for r in results]),
        "turns": _mean([r.turns for r in results]),
        "invalid_calls": _mean([r.invalid_calls for r in results]),
        "answered": _mean([float(r.answer is not None) for r in results]),
        "tool_calls": {t: _mean([r.tool_calls.get(t, 0) for r in results]) for t in _tool_names(results)},
        "reward_components": {c: _mean([r.reward_components.get(c) for r in results]) for c in comps},
        "penalties": {p: _mean([r.penalties.get(p, 0.0) for r in results]) for p in ("rounds", "overflow", "invalid")},
        **({"by_group": groups} if groups else {}),
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def format_summary(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown tables (metrics, tool calls per episode, reward components), one column per run."""
    names = list(columns)
    first = next(iter(columns.values()))

    def table(title: str, rows: list[tuple[str, list[Any]]]) -> list[str]:
        out = [f"### {title}", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        out += [f"| {label} | " + " | ".join(_fmt(v) for v in vals) + " |" for label, vals in rows]
        return out + [""]

    metrics = [
        ("episodes", "episodes"),
        ("reward", "reward"),
        ("task score", "task_score"),
        ("F1", "f1"),
        ("EM", "em"),
        ("success", "success"),
        ("memory quality (MQ)", "memory_quality"),
        ("prompt tokens / turn", "prompt_tokens"),
        ("turns / episode", "turns"),
        ("invalid calls / episode", "invalid_calls"),
        ("answered", "answered"),
    ]
    lines = table("Episode metrics", [(label, [columns[n].get(key) for n in names]) for label, key in metrics])
    tool_names = histogram_names(columns[n]["tool_calls"] for n in names)
    tools = [(t, [columns[n]["tool_calls"].get(t) for n in names]) for t in tool_names]
    tools.append(("total", [sum(v or 0.0 for v in columns[n]["tool_calls"].values()) for n in names]))
    lines += table("Tool calls per episode", tools)
    comp_keys = list(first.get("reward_components", {}))
    comps = [(c, [columns[n]["reward_components"].get(c) for n in names]) for c in comp_keys]
    comps += [
        (f"penalty: {p}", [columns[n]["penalties"].get(p) for n in names]) for p in ("rounds", "overflow", "invalid")
    ]
    lines += table("Reward components (means)", comps)
    lines += _group_table(columns, names)
    return "\n".join(lines)


def _group_table(columns: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """Task score by group (question type, category) with the episode count; none without groups."""
    groups = list(dict.fromkeys(g for n in names for g in (columns[n].get("by_group") or {})))
    if not groups:
        return []
    out = ["### Task score by group", "", "| group | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for g in groups:
        cells = [columns[n].get("by_group", {}).get(g) for n in names]
        out.append(
            f"| {g} | "
            + " | ".join("n/a" if c is None else f"{_fmt(c['task_score'])} (n={c['episodes']})" for c in cells)
            + " |"
        )
    return out + [""]
