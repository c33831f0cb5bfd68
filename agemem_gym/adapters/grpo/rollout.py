"""Collect B tasks × K rollouts through a Gymnasium vector env, one training sample per turn.

Sub-env ``i`` plays task ``task_ids[i // K]`` (pinned through ``options={"task_id": ...}``, so
the K rollouts of a group share the task and its distractors) with seed ``seed + i``.
Every turn of every stage becomes a :class:`~agemem_gym.adapters.grpo.batching.Sample`
whose prompt is that step's packed context and whose loss covers only the generated
tokens. The episodes are played by :func:`agemem_gym.runner.play_episodes`, the loop of
``agemem run`` and ``agemem eval`` too; finished sub-envs are frozen
(:class:`~agemem_gym.vector.EpisodeSlot`: no reset, no step) until the whole batch has
finished.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import gymnasium as gym

from agemem_gym.adapters.grpo.batching import Sample
from agemem_gym.error import InvalidConfig
from agemem_gym.runner import EpisodeEnd, SlotEnvs, play_episodes
from agemem_gym.vector import VECTOR_MODES, EpisodeSlot, make_slot_envs

__all__ = ["GroupSlot", "Trajectory", "RolloutBatch", "make_rollout_envs", "collect_groups"]

GroupSlot = EpisodeSlot
"""The slot wrapper of the rollout envs: :class:`agemem_gym.vector.EpisodeSlot`, shared by every runner."""


def _make_env(
    env_id: str, kwargs: Mapping[str, Any], index: int, record: str | None, record_every: int, first_episode: int
) -> gym.Env:
    import agemem_gym  # noqa: F401 - registers the ids in worker processes
    from agemem_gym.wrappers.record import RecordEpisode, maybe_record

    # a resumed run overwrites the recordings of the steps after its checkpoint
    extra = {"overwrite": True} if first_episode else {}
    env = maybe_record(
        gym.make(env_id, **kwargs),
        record,
        name_prefix=f"env{index}",
        episode_trigger=lambda episode: episode % record_every == 0,
        **extra,
    )
    if isinstance(env, RecordEpisode):
        env.episode_index = first_episode - 1  # reset() counts up before the episode starts
    return env


def make_rollout_envs(
    env_id: str,
    num_envs: int,
    env_kwargs: Mapping[str, Any] | None = None,
    asynchronous: bool = False,
    *,
    backend: str | None = None,
    record: str | None = None,
    record_every: int = 1,
    first_episode: int = 0,
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` :class:`~agemem_gym.vector.EpisodeSlot` copies of ``env_id`` (no autoreset).

    Args:
        env_id: A registered id.
        num_envs: ``B * K``.
        env_kwargs: Passed to ``gym.make``.
        asynchronous: Alias of ``backend="async"`` (kept for existing callers).
        backend: ``"sync"`` (in this process, the default), ``"async"`` (a subprocess per
            sub-env, ``AsyncVectorEnv``) or ``"ray"`` (a Ray actor per sub-env,
            :class:`~agemem_gym.vector_ray.RayVectorEnv`: for expensive engines, or sub-envs
            spread over a cluster; set ``RAY_ADDRESS`` to use a running one).
        record: Record episodes into this folder (``env{i}-{episode}-{task}.jsonl``; view them
            with ``agemem view``).
        record_every: Record every N-th episode of each sub-env (one episode per training step).
        first_episode: Index of each sub-env's first episode (a resumed run's first step).

    Returns:
        The vector env.
    """
    if backend is None:
        backend = "async" if asynchronous else "sync"
    elif asynchronous and backend != "async":
        raise InvalidConfig(f"asynchronous=True asks for the async backend, but backend={backend!r}")
    if backend not in VECTOR_MODES:
        raise InvalidConfig(f"backend must be one of {', '.join(VECTOR_MODES)}, got {backend!r}")
    kwargs = dict(env_kwargs or {})
    fns: list[Callable[[], gym.Env]] = [
        functools.partial(_make_env, env_id, kwargs, i, record, max(1, record_every), first_episode)
        for i in range(num_envs)
    ]
    return make_slot_envs(fns, mode=backend)


@dataclasses.dataclass
class Trajectory:
    """One rollout: its group, reward and final ``info``.

    ``stopped``: a ``stop_when`` condition ended it mid-episode (``info`` is its last step's).
    """

    group: int
    task_id: Any
    reward: float
    info: dict[str, Any]
    samples: list[int] = dataclasses.field(default_factory=list)
    stopped: bool = False


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
    on_turns: Callable[[int], Any] | None = None,
    stop_when: Callable[[dict[str, Any]], bool] | None = None,
) -> RolloutBatch:
    """Play ``len(task_ids) * group_size`` episodes in lockstep, batching generation.

    Args:
        envs: From :func:`make_rollout_envs` with ``num_envs == len(task_ids) * group_size``.
        policy: Has ``generate(observations, infos) -> list[TurnRecord]`` (e.g. ``HFPolicy``).
        task_ids: One task per group.
        group_size: ``K``.
        seed: Sub-env ``i`` resets with ``seed + i``.
        max_turns: Safety cap on turns per sub-env.
        on_turns: Called with the number of turns after each batch of turns is generated
            (a progress bar's ``update``).
        stop_when: Ends a rollout early, mid-episode, when it is true of a step's ``info``
            (:func:`~agemem_gym.runner.play_episodes`).

    Returns:
        Samples (every turn), trajectories and generation statistics.
    """
    n = len(task_ids) * group_size
    if envs.num_envs != n:
        raise ValueError(f"the vector env has {envs.num_envs} sub-envs; {len(task_ids)} tasks x {group_size} need {n}")
    start = time.perf_counter()
    turns = _Turns(policy, [[] for _ in range(n)], on_turns)
    plan = [(task_ids[i // group_size], seed + i) for i in range(n)]
    # gymnasium types set_attr and per-env seed lists on Sync/AsyncVectorEnv only, not on VectorEnv
    ends = play_episodes(cast(SlotEnvs, envs), plan, turns.act, max_steps=max_turns, stop_when=stop_when)
    trajectories = [_trajectory(end, task_ids, group_size, turns.owned[end.slot]) for end in ends]
    return RolloutBatch(
        turns.samples, trajectories, group_size, turns.logprobs, turns.generated, time.perf_counter() - start
    )


def _trajectory(end: EpisodeEnd, task_ids: Sequence[Any], group_size: int, samples: list[int]) -> Trajectory:
    group = end.index // group_size
    # a rollout cut by max_turns has no final info
    info = end.info if end.finished or end.stopped else {}
    return Trajectory(group, task_ids[group], end.episode_return, info, samples, stopped=end.stopped)


@dataclasses.dataclass
class _Turns:
    """The samples of one :func:`collect_groups` call, one per generated turn."""

    policy: Any
    owned: list[list[int]]  # per sub-env: its samples' indices
    on_turns: Callable[[int], Any] | None = None
    samples: list[Sample] = dataclasses.field(default_factory=list)
    logprobs: list[list[float]] = dataclasses.field(default_factory=list)
    generated: int = 0

    def act(self, slots: Sequence[int], observations: Sequence[Any], infos: Sequence[dict[str, Any]]) -> list[str]:
        """Generate one turn per playing sub-env and keep each as a sample."""
        records = self.policy.generate(list(observations), list(infos))
        for i, rec in zip(slots, records):
            self.owned[i].append(len(self.samples))
            self.samples.append(Sample(rec.prompt_ids, rec.response_ids, traj=int(i), grammar=rec.grammar))
            self.logprobs.append(list(rec.logprobs))
            self.generated += len(rec.response_ids)
        if self.on_turns is not None:
            self.on_turns(len(records))
        return [rec.text for rec in records]
