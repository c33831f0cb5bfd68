"""Baseline memory controllers and an evaluation loop, in stable-baselines3's ``predict`` shape.

A *controller* is anything with ``predict(observation, state=None, episode_start=None,
deterministic=False) -> (actions, state)``: a trained SB3 model, or one of the baselines
here, which read the feature vector of
:class:`~agemem_gym.adapters.sb3.wrapper.MemoryControlWrapper`:

* ``random``: a uniformly random action (seeded).
* ``no-memory``: always ``reply``: never stores, answers from what is visible.
* ``store-all``: ``add`` each Stage-1 message, ``retrieve`` once the question arrives, then
  ``reply`` (the scripted ``store-all`` policy, as a controller).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agemem_gym.adapters.sb3.features import ACTIONS, FIXED_FEATURES
from agemem_gym.adapters.sb3.wrapper import MemoryControlWrapper
from agemem_gym.error import InvalidConfig, unknown_name

__all__ = [
    "Controller",
    "RandomController",
    "NoMemoryController",
    "StoreAllController",
    "CONTROLLERS",
    "make_controller",
    "ControlEpisode",
    "evaluate_controller",
    "summarize_episodes",
]

_IX = {name: i for i, name in enumerate(FIXED_FEATURES)}
_A = {name: i for i, name in enumerate(ACTIONS)}


@runtime_checkable
class Controller(Protocol):
    """Anything with stable-baselines3's ``predict``."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for one observation ``(D,)`` or a batch ``(n, D)``."""
        ...


class _RuleController:
    """Applies a per-row rule to one observation or a batch."""

    name = "rule"

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for one observation ``(D,)`` or a batch ``(n, D)``."""
        obs = np.asarray(observation, dtype=np.float32)
        rows = obs[None, :] if obs.ndim == 1 else obs
        actions = np.array([self.decide(row) for row in rows], dtype=np.int64)
        return (actions[0] if obs.ndim == 1 else actions), state

    def decide(self, row: np.ndarray) -> int:
        """The action for one feature vector."""
        raise NotImplementedError


class RandomController(_RuleController):
    """A uniformly random action (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def decide(self, row: np.ndarray) -> int:
        """A random action index."""
        return int(self.rng.integers(len(ACTIONS)))


class NoMemoryController(_RuleController):
    """Always ``reply``: never touches memory."""

    name = "no-memory"

    def decide(self, row: np.ndarray) -> int:
        """Always ``reply``."""
        return _A["reply"]


class StoreAllController(_RuleController):
    """Add every Stage-1 message, retrieve with the question, answer."""

    name = "store-all"

    def decide(self, row: np.ndarray) -> int:
        """``add`` a new Stage-1 message, ``retrieve`` a new question, else ``reply``."""
        new = row[_IX["new_message"]] > 0.5
        if new and row[_IX["stage_1"]] > 0.5:
            return _A["add"]
        if new and row[_IX["stage_3"]] > 0.5:
            return _A["retrieve"]
        return _A["reply"]


CONTROLLERS: dict[str, type[_RuleController]] = {
    "random": RandomController,
    "no-memory": NoMemoryController,
    "store-all": StoreAllController,
}


def make_controller(name: str, **kwargs: Any) -> _RuleController:
    """A baseline controller by name (``random``, ``no-memory``, ``store-all``)."""
    if name not in CONTROLLERS:
        raise unknown_name("controller", name, CONTROLLERS)
    return CONTROLLERS[name](**kwargs)


@dataclasses.dataclass(frozen=True)
class ControlEpisode:
    """One evaluated episode: the final ``info`` flattened."""

    task_id: str
    seed: int
    reward: float
    task_score: float
    f1: float
    memory_quality: float
    steps: int
    invalid_calls: int
    actions: dict[str, int]


def evaluate_controller(
    controller: Controller,
    env: MemoryControlWrapper,
    tasks: Iterable[int],
    *,
    seed: int = 0,
    deterministic: bool = True,
    max_steps: int = 10_000,
) -> list[ControlEpisode]:
    """Run one episode per task index with fixed seeds (task ``tasks[i]``, seed ``seed + i``).

    Args:
        controller: An SB3 model or a baseline controller.
        env: The control env (one, not vectorised).
        tasks: Task indices of the evaluation panel.
        seed: Base seed.
        deterministic: Passed to ``predict``.
        max_steps: Safety cap per episode.

    Returns:
        One record per episode, in panel order.
    """
    out = []
    for i, task in enumerate(tasks):
        obs, info = env.reset(seed=seed + i, options={"task_id": int(task)})
        counts = dict.fromkeys(ACTIONS, 0)
        reward, steps, done = 0.0, 0, False
        while not done:
            if steps >= max_steps:
                raise InvalidConfig(f"episode on task {task} did not end within max_steps={max_steps}")
            action, _ = controller.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            counts[info["control_action"]] += 1
            steps += 1
            done = terminated or truncated
        out.append(_episode(info, seed + i, float(reward), steps, counts))
    return out


def _episode(info: Mapping[str, Any], seed: int, reward: float, steps: int, counts: dict[str, int]) -> ControlEpisode:
    f1 = info.get("f1")
    return ControlEpisode(
        task_id=str(info.get("task_id", "")),
        seed=seed,
        reward=reward,
        task_score=float(info.get("task_score") or 0.0),
        f1=float(f1 if f1 is not None else info.get("task_score") or 0.0),
        memory_quality=float(info.get("memory_quality") or 0.0),
        steps=steps,
        invalid_calls=int(info.get("invalid_calls", 0)),
        actions=counts,
    )


def summarize_episodes(episodes: Iterable[ControlEpisode]) -> dict[str, float]:
    """Means over episodes (reward, task score, F1, MQ, steps, invalid calls) and their count."""
    eps = list(episodes)
    if not eps:
        raise InvalidConfig("no episodes to summarise")
    fields = ("reward", "task_score", "f1", "memory_quality", "steps", "invalid_calls")
    summary = {k: float(np.mean([getattr(e, k) for e in eps])) for k in fields}
    summary["reward_std"] = float(np.std([e.reward for e in eps]))
    summary["episodes"] = float(len(eps))
    return summary
