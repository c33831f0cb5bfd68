"""The ``Policy`` protocol and helpers for reading observations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agemem_gym.typecheck import checked_init

__all__ = ["Policy", "BasePolicy", "last_message", "messages_since_last_turn"]

Observation = Sequence[Mapping[str, str]]


@runtime_checkable
class Policy(Protocol):
    """Anything that turns an observation and ``info`` into one assistant turn."""

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn (text in the turn grammar)."""
        ...


class BasePolicy:
    """Convenience base: batched acting for vector envs and a per-episode ``reset`` hook.

    Attributes:
        needs_privileged_info: The policy reads ``info["privileged"]`` (gold answers and
            facts); runners then create the env with ``privileged_info=True``.
    """

    name = "base"
    needs_privileged_info = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every policy checks its constructor's arguments against its type hints (:mod:`agemem_gym.typecheck`)."""
        super().__init_subclass__(**kwargs)
        checked_init(cls, lambda policy: f"policy {policy.name!r}")

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        raise NotImplementedError

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        """One turn per environment of a vector env."""
        return [self.act(o, i) for o, i in zip(observations, infos)]

    def reset(self) -> None:
        """Called at the start of each episode (stateless policies ignore it)."""

    def reseed(self, seed: int) -> None:
        """Restart the policy's own random stream (``self.rng``, when it has one) for an episode.

        Panel runners call it with the episode's seed, so an episode's result does not depend
        on which episodes the same instance played before.
        """
        if hasattr(self, "rng"):
            self.rng = np.random.default_rng(int(seed))


def last_message(observation: Observation, role: str) -> str:
    """Content of the last message with ``role`` ("" if none)."""
    for m in reversed(observation):
        if m["role"] == role:
            return m["content"]
    return ""


def messages_since_last_turn(observation: Observation) -> list[Mapping[str, str]]:
    """Messages after the last assistant turn (the results of the policy's own calls)."""
    out: list[Mapping[str, str]] = []
    for m in reversed(observation):
        if m["role"] == "assistant":
            break
        out.append(m)
    return out[::-1]
