"""Rollouts for ``credit = "memory-state"``: play Stage 1 once, then ``M`` continuations from its memory state.

Two lockstep phases on the trainer's existing machinery:

1. the ``B·K`` rollouts play until the fork (the first step whose ``info["stage"]`` reaches
   ``fork_stage``, i.e. right before the first Stage-2 turn by default:
   :func:`~agemem_gym.adapters.grpo.rollout.collect_groups` with a ``stop_when``); each slot is
   then snapshotted (:meth:`~agemem_gym.vector.EpisodeSlot.slot_state`: the env's exact
   memory state plus the observation and ``info`` of the next turn);
2. a second vector env of ``B·K·M`` slots restores each snapshot ``M`` times and plays the
   continuations to the end of the episode; the policy samples them independently.

The original rollout is *replaced* by its continuations: it stops at the fork, and its
``M`` continuations (all restored from the same snapshot, none privileged) make ``M`` full
trajectories that share its Stage-1 prefix. So a step trains ``B·K`` Stage-1 prefixes and
``B·K·M`` continuations, and generates about ``(1 + (M − 1)·f)`` times the tokens of
trajectory credit, ``f`` the post-fork share of the generated tokens (``perf/generated_tokens``
logs it in both modes, to compare them at matched budgets). The HF policy's prefix cache is
keyed by token prefixes and cleared when the weights change, so it may (and should) reuse
the Stage-1 prefill across the phases: both phases sample from the same weights.

A rollout that ended before the fork has no continuation: its ``M`` trajectories are its own
return ``M`` times (no local spread). Trajectory ``t = i·M + c`` is continuation ``c`` of rollout
``i``; the advantages are :func:`~agemem_gym.adapters.grpo.credit.fork_step_advantages`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import gymnasium as gym
import torch

from agemem_gym.adapters.grpo.credit import fork_step_advantages
from agemem_gym.adapters.grpo.losses import AdvantageNorm
from agemem_gym.adapters.grpo.rollout import RolloutBatch, Trajectory, _Turns, collect_groups
from agemem_gym.runner import EpisodeEnd, SlotEnvs, play_episodes

__all__ = ["ForkedBatch", "collect_forked", "attach_fork_advantages", "fork_returns"]


@dataclasses.dataclass
class ForkedBatch(RolloutBatch):
    """A :class:`RolloutBatch` of ``B·K·M`` full trajectories that share ``B·K`` Stage-1 prefixes.

    Attributes:
        continuations: ``M``.
        prefix: Per sample: a Stage-1 (pre-fork) step, shared by its rollout's ``M`` trajectories.
        stage1_samples: How many samples are Stage-1 steps (the rest are continuation steps).
    """

    continuations: int = 1
    prefix: list[bool] = dataclasses.field(default_factory=list)
    stage1_samples: int = 0


def collect_forked(
    envs: gym.vector.VectorEnv,
    fork_envs: gym.vector.VectorEnv,
    policy: Any,
    task_ids: Sequence[Any],
    group_size: int,
    continuations: int,
    seed: int,
    fork_stage: int = 2,
    on_turns: Callable[[int], Any] | None = None,
) -> ForkedBatch:
    """Play ``len(task_ids)·K`` prefixes up to the fork and ``M`` continuations of each.

    Args:
        envs: ``B·K`` slots (:func:`~agemem_gym.adapters.grpo.rollout.make_rollout_envs`).
        fork_envs: ``B·K·M`` slots made with the same env id and arguments.
        policy: As for :func:`~agemem_gym.adapters.grpo.rollout.collect_groups`.
        task_ids: One task per group.
        group_size: ``K``.
        continuations: ``M``.
        seed: Prefix ``i`` resets with ``seed + i`` (as in ``collect_groups``).
        fork_stage: The fork is right before the first turn of this stage.
        on_turns: Progress callback (turns generated).

    Returns:
        The merged batch: prefix samples first, then the continuation samples.
    """
    n, m = len(task_ids) * group_size, continuations
    if fork_envs.num_envs != n * m:
        raise ValueError(f"the fork env has {fork_envs.num_envs} sub-envs; {n} rollouts x {m} need {n * m}")
    start = time.perf_counter()

    def at_fork(info: dict[str, Any]) -> bool:
        return int(info.get("stage", 1)) >= fork_stage

    first = collect_groups(envs, policy, task_ids, group_size, seed, on_turns=on_turns, stop_when=at_fork)
    states = cast(Any, envs).call("slot_state")  # gymnasium types call on Sync/AsyncVectorEnv only
    forked = [i for i, t in enumerate(first.trajectories) if t.stopped and states[i] is not None]
    plan = [(first.trajectories[i].task_id, seed + i) for i in forked for _ in range(m)]
    cast(SlotEnvs, fork_envs).set_attr(
        "pinned_state", [states[i] for i in forked for _ in range(m)] + [None] * (n * m - len(plan))
    )
    turns = _Turns(policy, [[] for _ in range(n * m)], on_turns)
    # a rollout that ended before the fork leaves its M slots idle (and none may be left at all)
    ends = play_episodes(cast(SlotEnvs, fork_envs), plan, turns.act, idle_slots=True) if plan else []
    return _merge(first, turns, _continuation_ends(ends, forked, m, n), m, time.perf_counter() - start)


def _continuation_ends(ends: list[EpisodeEnd], forked: list[int], m: int, n: int) -> list[EpisodeEnd | None]:
    """Per trajectory ``i·M + c``: the end of its continuation (``None``: rollout ``i`` was not forked)."""
    out: list[EpisodeEnd | None] = [None] * (n * m)
    for end in ends:
        out[forked[end.index // m] * m + end.index % m] = end
    return out


def _merge(first: RolloutBatch, turns: _Turns, ends: list[EpisodeEnd | None], m: int, seconds: float) -> ForkedBatch:
    """Prefix samples (trajectory ``i·M``), then continuation samples (trajectory ``i·M + c``)."""
    prefix_count = len(first.samples)
    for s in first.samples:
        s.traj = s.traj * m
    plan_slot = [t for t, end in enumerate(ends) if end is not None]  # plan index -> trajectory
    trajectories = []
    for t, end in enumerate(ends):
        before = first.trajectories[t // m]
        own = [prefix_count + j for j in turns.owned[end.slot]] if end is not None else []
        reward = before.reward + (end.episode_return if end is not None else 0.0)
        info = (end.info if end.finished else {}) if end is not None else before.info
        trajectories.append(Trajectory(before.group, before.task_id, reward, info, before.samples + own))
    for s in turns.samples:
        s.traj = plan_slot[s.traj]  # the continuation's slot is its plan index
    return ForkedBatch(
        samples=first.samples + turns.samples,
        trajectories=trajectories,
        group_size=first.group_size * m,
        rollout_logprobs=first.rollout_logprobs + turns.logprobs,
        generated_tokens=first.generated_tokens + turns.generated,
        seconds=seconds,
        continuations=m,
        prefix=[True] * prefix_count + [False] * len(turns.samples),
        stage1_samples=prefix_count,
    )


def fork_returns(batch: ForkedBatch, group_size: int) -> torch.Tensor:
    """``(G, K, M)`` full-episode returns of the batch's trajectories."""
    rewards = torch.tensor([t.reward for t in batch.trajectories], dtype=torch.float64)
    return rewards.view(-1, group_size, batch.continuations)


def attach_fork_advantages(batch: ForkedBatch, group_size: int, weight: float, norm: AdvantageNorm) -> torch.Tensor:
    """Set every sample's memory-state advantage; return the ``(G, K, M)`` returns."""
    returns = fork_returns(batch, group_size)
    step_traj = torch.tensor([s.traj for s in batch.samples], dtype=torch.long)
    prefix = torch.tensor(batch.prefix, dtype=torch.bool)
    for sample, adv in zip(batch.samples, fork_step_advantages(returns, step_traj, prefix, weight, norm).tolist()):
        sample.advantage = float(adv)
    return returns
