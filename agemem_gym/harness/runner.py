"""Play a fixed, seeded panel of episodes on a Gymnasium vector env.

Episode ``i`` of a panel plays task ``i % n_tasks`` with seed ``seed + i`` — the same panel as
:func:`agemem_gym.evaluation.run_episodes`. ``num_envs`` sub-environments (``sync`` in this
process, ``async`` in worker processes, ``ray`` in Ray actors) each take the next unplayed episode when they finish
one (:func:`agemem_gym.runner.play_episodes` on :class:`~agemem_gym.vector.EpisodeSlot`
slots).

Policies: a policy with ``batched = True`` (the HF policy) is one shared instance acting on
all sub-envs with ``act_batch``; any other policy gets one instance per sub-env, built by the
factory, and is reseeded (``reseed(seed + i)``) at the start of each episode when it can be,
so results do not depend on ``num_envs``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.error import InvalidConfig
from agemem_gym.evaluation import EpisodeResult
from agemem_gym.policies.base import Policy
from agemem_gym.runner import EpisodeEnd, env_kwargs_for, play_episodes
from agemem_gym.vector import EnvFactory, close_quietly, make_slot_envs

__all__ = ["run_panel"]


def run_panel(
    env_id: str,
    policy_factory: Callable[[], Policy],
    *,
    episodes: int,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    num_envs: int = 1,
    vector_mode: str = "sync",
    on_episode: Callable[[EpisodeResult], None] | None = None,
    max_steps: int = 10_000,
) -> list[EpisodeResult]:
    """Run the panel's first ``episodes`` episodes on ``num_envs`` sub-envs.

    Args:
        env_id: A registered id.
        policy_factory: Builds a policy (called once for a batched policy, else once per sub-env).
        episodes: Panel length.
        seed: Base seed (episode ``i`` uses ``seed + i``).
        env_kwargs: ``gym.make`` arguments (``privileged_info`` is turned on for policies that
            declare ``needs_privileged_info``).
        num_envs: Sub-environments (capped at ``episodes``).
        vector_mode: ``"sync"``, ``"async"`` (worker processes) or ``"ray"`` (Ray actors).
        on_episode: Called with each finished episode (progress bars).
        max_steps: Safety cap on steps per episode.

    Returns:
        One result per episode, in panel order.
    """
    if episodes < 1:
        raise InvalidConfig(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise InvalidConfig(f"num_envs must be >= 1, got {num_envs}")
    if max_steps < 1:
        raise InvalidConfig(f"max_steps must be >= 1, got {max_steps}")
    panel = _Panel(env_id, policy_factory, int(seed), env_kwargs, min(num_envs, episodes), on_episode)
    # a picklable recipe: worker processes and Ray actors must not receive the policies
    envs = make_slot_envs(EnvFactory(env_id, panel.kwargs), panel.n, vector_mode)
    try:
        if panel.batched and hasattr(panel.agents[0], "reset"):
            panel.agents[0].reset()
        plan = [(i % panel.n_tasks, int(seed) + i) for i in range(int(episodes))]
        play_episodes(envs, plan, panel.act, on_start=panel.start, on_end=panel.finish, max_steps=max_steps)
    except BaseException:  # Ctrl-C or a failure: stop the workers without waiting on their step
        close_quietly(envs)
        raise
    envs.close()
    return [panel.results[i] for i in range(len(plan))]


class _Panel:
    """The policies of one :func:`run_panel` call: one per slot, or one batched for all."""

    def __init__(
        self,
        env_id: str,
        factory: Callable[[], Policy],
        seed: int,
        env_kwargs: Mapping[str, Any] | None,
        n: int,
        on_episode: Callable[[EpisodeResult], None] | None,
    ) -> None:
        self.env_id, self.seed, self.n, self.on_episode = env_id, seed, n, on_episode
        first = factory()
        self.batched = bool(getattr(first, "batched", False))
        self.agents: list[Any] = [first] * n if self.batched else [first, *(factory() for _ in range(n - 1))]
        self.kwargs = env_kwargs_for(first, env_kwargs)
        probe = gym.make(env_id, **self.kwargs)
        try:
            self.n_tasks = len(probe.unwrapped.task_ids)  # type: ignore[attr-defined]
        finally:
            probe.close()
        self.results: dict[int, EpisodeResult] = {}  # by panel index

    def start(self, slot: int, index: int) -> None:
        """A per-slot policy starts episode ``index`` reseeded and reset."""
        agent = self.agents[slot]
        if not self.batched:
            if hasattr(agent, "reseed"):
                agent.reseed(self.seed + index)
            if hasattr(agent, "reset"):
                agent.reset()

    def act(self, slots: Sequence[int], observations: Sequence[Any], infos: Sequence[dict[str, Any]]) -> list[str]:
        """One turn for each playing slot."""
        if self.batched:
            return list(self.agents[0].act_batch(list(observations), list(infos)))
        return [self.agents[j].act(obs, info) for j, obs, info in zip(slots, observations, infos)]

    def finish(self, end: EpisodeEnd) -> None:
        """Keep the :class:`EpisodeResult` of a played episode and report it."""
        result = EpisodeResult.from_info(self.env_id, self.seed + end.index, end.reward, end.info)
        self.results[end.index] = result
        if self.on_episode is not None:
            self.on_episode(result)
