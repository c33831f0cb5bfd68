"""The one episode loop: play a planned list of episodes on a vector env of slots.

``agemem run`` (:func:`agemem_gym.evaluation.run_episodes`), ``agemem eval``
(:func:`agemem_gym.harness.runner.run_panel`) and the GRPO rollouts
(:func:`agemem_gym.adapters.grpo.rollout.collect_groups`) all play episodes with
:func:`play_episodes`; each keeps only what is its own: which episodes to play, how its
policy acts, and what it keeps of each finished episode.

Scheduling: the plan is a list of ``(task_id, seed)`` episodes and the vector env's
sub-envs are :class:`~agemem_gym.vector.EpisodeSlot` slots
(:func:`~agemem_gym.vector.make_slot_envs`). Slot ``j`` starts with episode ``j``; after
each step, every slot whose episode ended takes the next unplayed episode, in slot order,
and those slots are reset together. A slot with nothing left to play idles (it is sent
:class:`~agemem_gym.vector.Idle`). An episode ends when its slot reports ``slot_done`` or
after ``max_steps`` steps (or when the vector env itself ends it: terminated or truncated).

Example:
    >>> import gymnasium as gym
    >>> from agemem_gym.tools import format_answer
    >>> from agemem_gym.vector import make_slot_envs
    >>> envs = make_slot_envs(lambda: gym.make("AgeMem/Probe-Recall-v0"), num_envs=2)
    >>> def act(slots, observations, infos):
    ...     return [format_answer("?") for _ in slots]
    >>> ends = play_episodes(envs, [(0, 0), (1, 1), (2, 2)], act)
    >>> [(end.index, end.finished) for end in ends]
    [(0, True), (1, True), (2, True)]
    >>> envs.close()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from agemem_gym.error import InvalidConfig
from agemem_gym.vector import Idle, unbatch_info

__all__ = ["Act", "EpisodeEnd", "SlotEnvs", "env_kwargs_for", "play_episodes"]

Act = Callable[[Sequence[int], Sequence[Any], Sequence[dict[str, Any]]], Sequence[Any]]
"""``act(slots, observations, infos) -> actions``: one action for each playing slot."""


class SlotEnvs(Protocol):
    """What :func:`play_episodes` needs of a vector env (Sync-, Async- and RayVectorEnv have it)."""

    num_envs: int

    def set_attr(self, name: str, values: list[Any]) -> None:
        """Set an attribute on every sub-env, one value each."""

    def reset(
        self, *, seed: list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the sub-envs ``options["reset_mask"]`` selects, each with its seed."""

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every sub-env."""


@dataclasses.dataclass(frozen=True)
class EpisodeEnd:
    """One played episode of :func:`play_episodes`.

    Attributes:
        index: Its position in the plan.
        slot: The sub-env that played it.
        reward: The reward of its last step (AgeMem tasks pay the episode's reward there).
        episode_return: The sum of its rewards.
        info: The ``info`` of its last step.
        steps: Steps played.
        finished: Whether the env ended it (``False``: ``max_steps`` or ``stop_when`` did).
        stopped: Whether ``stop_when`` ended it (its env is left mid-episode, e.g. to be snapshotted).
    """

    index: int
    slot: int
    reward: float
    episode_return: float
    info: dict[str, Any]
    steps: int
    finished: bool
    stopped: bool = False


def env_kwargs_for(policy: Any, env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``gym.make`` arguments for ``policy``: ``env_kwargs`` plus what the policy needs.

    A policy that declares ``needs_privileged_info`` gets ``privileged_info=True``; one with a
    ``tokenizer`` gets it as the env's tokenizer unless one is given (budgets in the model's
    own tokens).
    """
    kwargs = dict(env_kwargs or {})
    if getattr(policy, "needs_privileged_info", False):
        kwargs["privileged_info"] = True
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is not None:
        kwargs.setdefault("tokenizer", tokenizer)
    return kwargs


def play_episodes(
    envs: SlotEnvs,
    plan: Sequence[tuple[Any, int]],
    act: Act,
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_end: Callable[[EpisodeEnd], None] | None = None,
    max_steps: int = 10_000,
    stop_when: Callable[[dict[str, Any]], bool] | None = None,
    idle_slots: bool = False,
) -> list[EpisodeEnd]:
    """Play every episode of ``plan`` on the slots of ``envs``.

    Args:
        envs: A vector env of :class:`~agemem_gym.vector.EpisodeSlot` sub-envs, autoreset
            off (:func:`~agemem_gym.vector.make_slot_envs`), with at most ``len(plan)`` of them
            unless ``idle_slots``.
        plan: ``(task_id, seed)`` of each episode.
        act: Chooses the actions of the playing slots from their observations and infos.
        on_start: Called with ``(slot, index)`` before a slot resets to episode ``index``
            (reseed or reset a per-slot policy here).
        on_end: Called with each episode as it ends (progress bars).
        max_steps: Safety cap on steps per episode.
        stop_when: Ends an episode early when it returns ``True`` for the ``info`` of one of
            its steps (not the reset's); its slot is then left as it is, mid-episode
            (the GRPO trainer snapshots it there: ``credit = "memory-state"``).
        idle_slots: Allow more slots than episodes: the extra slots idle from the start, never
            reset (their observation space must batch the slot's empty placeholder, as the
            AgeMem envs' message sequences do).

    Returns:
        One :class:`EpisodeEnd` per episode, in plan order.
    """
    if max_steps < 1:
        raise InvalidConfig(f"max_steps must be >= 1, got {max_steps}")
    if envs.num_envs < 1 or (envs.num_envs > len(plan) and not idle_slots):
        raise InvalidConfig(f"{envs.num_envs} sub-envs cannot all play a plan of {len(plan)} episodes")
    loop = _Loop(envs, plan, on_start, stop_when)
    loop.reset(np.ones(envs.num_envs, dtype=np.bool_))
    while loop.playing():
        ended = loop.step(act, max_steps)
        free = np.zeros(envs.num_envs, dtype=np.bool_)
        for end in ended:
            if on_end is not None:
                on_end(end)
            free[end.slot] = True
        if free.any():
            loop.reset(free)
    return [end for end in loop.ends if end is not None]


class _Loop:
    """The state of one :func:`play_episodes` call: which slot plays what, and how far."""

    def __init__(
        self,
        envs: SlotEnvs,
        plan: Sequence[tuple[Any, int]],
        on_start: Callable[[int, int], None] | None,
        stop_when: Callable[[dict[str, Any]], bool] | None = None,
    ):
        self.envs, self.plan, self.on_start, self.stop_when = envs, plan, on_start, stop_when
        n = envs.num_envs
        self.next = 0
        self.current: list[int | None] = [None] * n  # the plan index each slot plays
        self.steps, self.returns = [0] * n, [0.0] * n
        self.tasks: list[Any] = [None] * n
        self.seeds: list[int | None] = [None] * n
        self.obs: list[Any] = [None] * n
        self.infos: list[dict[str, Any]] = [{} for _ in range(n)]
        self.ends: list[EpisodeEnd | None] = [None] * len(plan)

    def playing(self) -> list[int]:
        return [j for j, index in enumerate(self.current) if index is not None]

    def _start(self, j: int) -> bool:
        """Give slot ``j`` the next episode; ``False`` when the plan is used up."""
        if self.next >= len(self.plan):
            self.current[j] = None
            return False
        index, self.next = self.next, self.next + 1
        self.current[j], self.steps[j], self.returns[j] = index, 0, 0.0
        self.tasks[j], self.seeds[j] = self.plan[index]
        if self.on_start is not None:
            self.on_start(j, index)
        return True

    def reset(self, free: np.ndarray) -> None:
        """Start the next episodes on the ``free`` slots and reset those that got one."""
        starting = np.array([bool(free[j]) and self._start(j) for j in range(len(free))], dtype=np.bool_)
        if not starting.any():
            return
        self.envs.set_attr("pinned_task", list(self.tasks))
        obs, infos = self.envs.reset(seed=list(self.seeds), options={"reset_mask": starting})
        for j in np.flatnonzero(starting):
            self.obs[j], self.infos[j] = obs[j], unbatch_info(infos, int(j))

    def step(self, act: Act, max_steps: int) -> list[EpisodeEnd]:
        """Step every playing slot once; return the episodes that ended, in slot order."""
        active = self.playing()
        chosen = act(active, [self.obs[j] for j in active], [self.infos[j] for j in active])
        actions: list[Any] = [Idle()] * len(self.current)
        for j, action in zip(active, chosen):
            actions[j] = action
        obs, rewards, terminated, truncated, infos = self.envs.step(tuple(actions))
        out = []
        for j in active:
            self.obs[j], self.infos[j] = obs[j], unbatch_info(infos, j)
            self.steps[j] += 1
            self.returns[j] += float(rewards[j])
            # slots report their ends in info; a vector env may still end an episode itself
            # (RayVectorEnv truncates one whose lost worker could not be replayed)
            finished = bool(self.infos[j].get("slot_done", False) or terminated[j] or truncated[j])
            stopped = not finished and self.stop_when is not None and bool(self.stop_when(self.infos[j]))
            if finished or stopped or self.steps[j] >= max_steps:
                out.append(self._end(j, float(rewards[j]), finished, stopped))
        return out

    def _end(self, j: int, reward: float, finished: bool, stopped: bool = False) -> EpisodeEnd:
        index = self.current[j]
        assert index is not None  # only playing slots end
        end = EpisodeEnd(index, j, reward, self.returns[j], self.infos[j], self.steps[j], finished, stopped)
        self.ends[index] = end
        return end
