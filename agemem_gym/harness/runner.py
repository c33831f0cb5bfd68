"""Play a fixed, seeded panel of episodes on a Gymnasium vector env.

Episode ``i`` of a panel plays task ``i % n_tasks`` with seed ``seed + i`` — the same panel as
:func:`agemem_gym.evaluation.run_episodes`. ``num_envs`` sub-environments (``sync`` in this
process, ``async`` in worker processes) each take the next unplayed episode when they finish
one; autoreset is off and every sub-env is wrapped in :class:`PanelSlot`, which pins the task
and seed of its next episode (set through ``set_attr``) and idles once the panel is used up.

Policies: a policy with ``batched = True`` (the HF policy) is one shared instance acting on
all sub-envs with ``act_batch``; any other policy gets one instance per sub-env, built by the
factory, and is reseeded (``reseed(seed + i)``) at the start of each episode when it can be,
so results do not depend on ``num_envs``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.error import InvalidConfig
from agemem_gym.evaluation import EpisodeResult
from agemem_gym.policies.base import Policy
from agemem_gym.vector import unbatch_info

__all__ = ["PanelSlot", "run_panel", "unbatch_info"]

_IDLE_ACTION = "<think>idle</think><answer>idle</answer>"


class PanelSlot(gym.Wrapper):
    """A sub-env that plays the episode named in :attr:`episode` at each reset.

    Attributes:
        episode: ``(task_index, seed)`` for the next reset, or ``None``: the slot idles (a
            reset returns the last observation, a step changes nothing and ends nothing) so
            a vector env can keep stepping while other slots finish.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episode: tuple[int, int] | None = None
        self._last_obs: Any = ()
        self._idle = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start the pinned episode (ignores ``seed``; ``options`` other than ``task_id`` pass through)."""
        if self.episode is None:
            self._idle = True
            return self._last_obs, {}
        task, episode_seed = self.episode
        self._idle = False
        self._last_obs, info = self.env.reset(seed=episode_seed, options={**(options or {}), "task_id": task})
        return self._last_obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the episode (an idle slot returns its last observation, reward 0, empty info)."""
        if self._idle:
            return self._last_obs, 0.0, False, False, {}
        self._last_obs, reward, terminated, truncated, info = self.env.step(action)
        return self._last_obs, reward, terminated, truncated, info


def _make_vector(env_id: str, env_kwargs: Mapping[str, Any], num_envs: int, mode: str) -> gym.vector.VectorEnv:
    def make() -> gym.Env:
        return PanelSlot(gym.make(env_id, **env_kwargs))

    fns = [make] * num_envs
    autoreset = gym.vector.AutoresetMode.DISABLED
    if mode == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset)
    if mode == "async":
        # text observations have no fixed shape: workers send them through pipes
        return gym.vector.AsyncVectorEnv(fns, shared_memory=False, autoreset_mode=autoreset)
    raise InvalidConfig(f"vector mode must be 'sync' or 'async', got {mode!r}")


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
        vector_mode: ``"sync"`` or ``"async"``.
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
    run = _Panel(env_id, policy_factory, int(episodes), int(seed), dict(env_kwargs or {}), min(num_envs, episodes))
    try:
        return run.play(vector_mode, on_episode, max_steps)
    finally:
        run.close()


class _Panel:
    """The bookkeeping of one :func:`run_panel` call: which slot plays which episode."""

    def __init__(
        self, env_id: str, factory: Callable[[], Policy], episodes: int, seed: int, kwargs: dict[str, Any], n: int
    ) -> None:
        self.env_id, self.episodes, self.seed, self.n = env_id, episodes, seed, n
        first = factory()
        self.batched = bool(getattr(first, "batched", False))
        self.agents: list[Any] = [first] * n if self.batched else [first, *(factory() for _ in range(n - 1))]
        if getattr(first, "needs_privileged_info", False):
            kwargs["privileged_info"] = True
        if getattr(first, "tokenizer", None) is not None:
            kwargs.setdefault("tokenizer", first.tokenizer)
        self.kwargs = kwargs
        probe = gym.make(env_id, **kwargs)
        try:
            self.n_tasks = len(probe.unwrapped.task_ids)  # type: ignore[attr-defined]
        finally:
            probe.close()
        self.envs: Any = None
        self.results: list[EpisodeResult | None] = [None] * episodes
        self.current: list[int | None] = [None] * n  # the panel index each slot plays
        self.steps = [0] * n
        self.next_episode = 0

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()

    def _start(self, j: int) -> tuple[int, int] | None:
        """Give slot ``j`` the next episode; ``None`` when the panel is used up."""
        if self.next_episode >= self.episodes:
            self.current[j] = None
            return None
        index = self.next_episode
        self.next_episode += 1
        self.current[j], self.steps[j] = index, 0
        agent = self.agents[j]
        if not self.batched:
            if hasattr(agent, "reseed"):
                agent.reseed(self.seed + index)
            if hasattr(agent, "reset"):
                agent.reset()
        return index % self.n_tasks, self.seed + index

    def _reset(self, mask: np.ndarray) -> tuple[Any, list[dict[str, Any]]]:
        plan = [self._start(j) if mask[j] else (0, 0) for j in range(self.n)]
        self.envs.set_attr("episode", plan)
        obs, infos = self.envs.reset(options={"reset_mask": np.asarray(mask, dtype=np.bool_)})
        return obs, [unbatch_info(infos, j) for j in range(self.n)]

    def _actions(self, obs: Any, infos: list[dict[str, Any]]) -> list[str]:
        active = [j for j in range(self.n) if self.current[j] is not None]
        actions = [_IDLE_ACTION] * self.n
        if self.batched:
            turns = self.agents[0].act_batch([obs[j] for j in active], [infos[j] for j in active])
            for j, turn in zip(active, turns):
                actions[j] = turn
        else:
            for j in active:
                actions[j] = self.agents[j].act(obs[j], infos[j])
        return actions

    def play(
        self, vector_mode: str, on_episode: Callable[[EpisodeResult], None] | None, max_steps: int
    ) -> list[EpisodeResult]:
        self.envs = _make_vector(self.env_id, self.kwargs, self.n, vector_mode)
        obs, infos = self._reset(np.ones(self.n, dtype=np.bool_))
        if self.batched and hasattr(self.agents[0], "reset"):
            self.agents[0].reset()
        while any(c is not None for c in self.current):
            active = [j for j in range(self.n) if self.current[j] is not None]
            obs, rewards, terminated, truncated, batch_infos = self.envs.step(tuple(self._actions(obs, infos)))
            infos = [unbatch_info(batch_infos, j) for j in range(self.n)]
            done = np.zeros(self.n, dtype=np.bool_)
            for j in active:
                self.steps[j] += 1
                if terminated[j] or truncated[j] or self.steps[j] >= max_steps:
                    index = self.current[j]
                    assert index is not None
                    result = EpisodeResult.from_info(self.env_id, self.seed + index, float(rewards[j]), infos[j])
                    self.results[index] = result
                    if on_episode is not None:
                        on_episode(result)
                    done[j] = True
            if done.any():
                reset_obs, reset_infos = self._reset(done)
                obs = tuple(reset_obs[j] if done[j] else obs[j] for j in range(self.n))
                infos = [reset_infos[j] if done[j] else infos[j] for j in range(self.n)]
        return [r for r in self.results if r is not None]
