"""The Ray actor of :class:`~agemem_gym.vector_ray.RayVectorEnv`: one sub-env in its own process.

A plain class (Ray wraps it with ``ray.remote`` when the vector env starts its actors), so
this module imports without Ray.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

__all__ = ["EnvWorker"]


class EnvWorker:
    """Hosts one env; every method is one remote call of the vector env."""

    def __init__(self, make_env: Callable[[], gym.Env]) -> None:
        self.env = make_env()

    def describe(self) -> dict[str, Any]:
        """Spaces, metadata and render mode: what the vector env batches and reports."""
        env = self.env
        return {
            "observation_space": env.observation_space,
            "action_space": env.action_space,
            "metadata": dict(env.metadata),
            "render_mode": env.render_mode,
        }

    def pid(self) -> int:
        """This actor's process id."""
        return os.getpid()

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        """``env.reset``."""
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """``env.step``."""
        return self.env.step(action)

    def replay(
        self,
        attrs: Mapping[str, Any],
        reset: tuple[int | None, dict[str, Any] | None] | None,
        events: Sequence[tuple[str, Any, Any]],
    ) -> tuple[Any, dict[str, Any]] | None:
        """Set ``attrs``, reset with ``(seed, options)`` and play ``events`` again.

        Args:
            attrs: Attributes to set before the reset.
            reset: The reset's seed and options; ``None`` sets the attributes only.
            events: ``("step", action, None)`` and ``("set", name, value)`` in their order.

        Returns:
            The observation and info of the reset or of the last step; ``None`` without a reset.
        """
        for name, value in attrs.items():
            self.env.set_wrapper_attr(name, value)
        if reset is None:
            return None
        last = self.env.reset(seed=reset[0], options=reset[1])
        for kind, first, second in events:
            if kind == "set":
                self.env.set_wrapper_attr(first, second)
            else:
                obs, _, _, _, info = self.env.step(first)
                last = (obs, info)
        return last

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call a method of the env (through its wrappers), or read an attribute."""
        attr = self.env.get_wrapper_attr(name)
        return attr(*args, **kwargs) if callable(attr) else attr

    def set_attr(self, name: str, value: Any) -> None:
        """Set an attribute (on the wrapper that has it, as ``SyncVectorEnv`` does)."""
        self.env.set_wrapper_attr(name, value)

    def close(self) -> None:
        """Close the env."""
        self.env.close()
