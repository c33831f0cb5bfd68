"""Collect B tasks × K rollouts through a Gymnasium vector env, one training sample per turn.

Sub-env ``i`` plays task ``task_ids[i // K]`` (pinned through ``options={"task_id": ...}``, so
the K rollouts of a group share the task and its distractors) with seed ``seed + i``.
Every turn of every stage becomes a :class:`~agemem_gym.adapters.grpo.batching.Sample`
whose prompt is that step's packed context and whose loss covers only the generated
tokens. Finished sub-envs are frozen (:class:`GroupSlot`: no reset, no step) until the
whole batch has finished.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from agemem_gym.adapters.grpo.batching import Sample
from agemem_gym.vector import unbatch_info

__all__ = ["GroupSlot", "Trajectory", "RolloutBatch", "make_rollout_envs", "collect_groups"]


class GroupSlot(gym.Wrapper):
    """A vector-env slot: resets to a pinned task and freezes once its episode is over.

    ``pinned_task`` (set per sub-env with ``VectorEnv.set_attr``) is used as
    ``options={"task_id": ...}`` at reset. The end of the episode is reported in ``info``
    (``slot_done``, ``slot_terminated``, ``slot_truncated``) while ``terminated`` and
    ``truncated`` stay False, and later steps repeat the final observation with reward 0:
    a vector env without autoreset may then keep stepping the whole batch until its
    slowest member finishes, without resetting or stepping the finished ones.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.pinned_task: Any = None
        self._final: tuple[Any, dict[str, Any]] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset to the pinned task (if any)."""
        self._final = None
        opts = dict(options or {})
        if self.pinned_task is not None:
            opts.setdefault("task_id", self.pinned_task)
        obs, info = self.env.reset(seed=seed, options=opts)
        return obs, {**info, "slot_done": False}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step, or repeat the final observation once the episode is over."""
        if self._final is not None:
            obs, info = self._final
            return obs, 0.0, False, False, info
        obs, reward, term, trunc, info = self.env.step(action)
        info = {**info, "slot_done": bool(term or trunc), "slot_terminated": bool(term), "slot_truncated": bool(trunc)}
        if term or trunc:
            self._final = (obs, info)
        return obs, reward, False, False, info


def _make_slot(env_id: str, kwargs: Mapping[str, Any], index: int, record: str | None, record_every: int) -> gym.Env:
    import agemem_gym  # noqa: F401 - registers the ids in worker processes
    from agemem_gym.wrappers.record import maybe_record

    env = maybe_record(
        gym.make(env_id, **kwargs),
        record,
        name_prefix=f"env{index}",
        episode_trigger=lambda episode: episode % record_every == 0,
    )
    return GroupSlot(env)


def make_rollout_envs(
    env_id: str,
    num_envs: int,
    env_kwargs: Mapping[str, Any] | None = None,
    asynchronous: bool = False,
    *,
    record: str | None = None,
    record_every: int = 1,
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` :class:`GroupSlot`-wrapped copies of ``env_id`` (no autoreset).

    Args:
        env_id: A registered id.
        num_envs: ``B * K``.
        env_kwargs: Passed to ``gym.make``.
        asynchronous: Subprocess workers (``AsyncVectorEnv``) instead of in-process ones.
        record: Record episodes into this folder (``env{i}-{episode}-{task}.jsonl``; view them
            with ``agemem view``).
        record_every: Record every N-th episode of each sub-env (one episode per training step).

    Returns:
        The vector env.
    """
    kwargs = dict(env_kwargs or {})
    fns: list[Callable[[], gym.Env]] = [
        functools.partial(_make_slot, env_id, kwargs, i, record, max(1, record_every)) for i in range(num_envs)
    ]
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED, shared_memory=False)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)


@dataclasses.dataclass
class Trajectory:
    """One rollout: its group, reward and final ``info``."""

    group: int
    task_id: Any
    reward: float
    info: dict[str, Any]
    samples: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RolloutBatch:
    """The result of :func:`collect_groups`."""

    samples: list[Sample]
    trajectories: list[Trajectory]
    group_size: int
    rollout_logprobs: list[list[float]]
    generated_tokens: int
    seconds: float


def collect_groups(
    envs: gym.vector.VectorEnv,
    policy: Any,
    task_ids: Sequence[Any],
    group_size: int,
    seed: int,
    max_turns: int = 10_000,
) -> RolloutBatch:
    """Play ``len(task_ids) * group_size`` episodes in lockstep, batching generation.

    Args:
        envs: From :func:`make_rollout_envs` with ``num_envs == len(task_ids) * group_size``.
        policy: Has ``generate(observations) -> list[TurnRecord]`` (e.g. ``HFPolicy``).
        task_ids: One task per group.
        group_size: ``K``.
        seed: Sub-env ``i`` resets with ``seed + i``.
        max_turns: Safety cap on turns per sub-env.

    Returns:
        Samples (every turn), trajectories and generation statistics.
    """
    n = len(task_ids) * group_size
    if envs.num_envs != n:
        raise ValueError(f"the vector env has {envs.num_envs} sub-envs; {len(task_ids)} tasks x {group_size} need {n}")
    start = time.perf_counter()
    envs.set_attr("pinned_task", [t for t in task_ids for _ in range(group_size)])
    obs, infos = envs.reset(seed=[seed + i for i in range(n)])
    done = np.zeros(n, dtype=bool)
    returns = np.zeros(n)
    finals: list[dict[str, Any]] = [{} for _ in range(n)]
    samples: list[Sample] = []
    logprobs: list[list[float]] = []
    owned: list[list[int]] = [[] for _ in range(n)]
    generated = 0
    for _ in range(max_turns):
        active = np.flatnonzero(~done)
        if len(active) == 0:
            break
        records = policy.generate([obs[i] for i in active], [unbatch_info(infos, int(i)) for i in active])
        actions = [""] * n
        for i, rec in zip(active, records):
            actions[i] = rec.text
            owned[i].append(len(samples))
            samples.append(Sample(rec.prompt_ids, rec.response_ids, traj=int(i), grammar=rec.grammar))
            logprobs.append(list(rec.logprobs))
            generated += len(rec.response_ids)
        obs, rewards, _, _, infos = envs.step(actions)
        returns[active] += rewards[active]
        ended = np.asarray(infos["slot_done"], dtype=bool)
        for i in active:
            if ended[i]:
                finals[i] = unbatch_info(infos, int(i))
        done |= ended
    trajectories = [
        Trajectory(
            group=i // group_size,
            task_id=task_ids[i // group_size],
            reward=float(returns[i]),
            info=finals[i],
            samples=owned[i],
        )
        for i in range(n)
    ]
    return RolloutBatch(samples, trajectories, group_size, logprobs, generated, time.perf_counter() - start)
