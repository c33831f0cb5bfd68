"""``WipeMemoryBeforeStage3``: the LTM-wiped ablation of a memory policy's score.

A model whose held-out score comes from its memory must lose it when the long-term memory is
gone at question time. This wrapper empties the env's long-term memory on the step that starts
Stage 3 (the first step whose ``info["stage"]`` is 3), before the agent's first Stage-3 turn
and so before any ``Retrieve_memory`` could read it. It acts from outside the env: no tool,
observation or action reaches it, so the agent cannot trigger or avoid it. The step's ``info``
says how many memories went (``info["ltm_wiped"]``).

Used by ``benchmarks/learning.py`` (``--wipe`` panels) and ``benchmarks/sft_warm_start.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

__all__ = ["WipeMemoryBeforeStage3", "wipe_ltm"]


def wipe_ltm(env: gym.Env[Any, Any]) -> int:
    """Delete every long-term memory of ``env`` (an AgeMem env, or a wrapper of one); return how many."""
    ltm = env.unwrapped.ltm  # type: ignore[attr-defined]  # AgeMem envs expose their LTM; gym.Env does not declare it
    ids = list(ltm.ids())
    for memory_id in ids:
        ltm.delete(memory_id)
    return len(ids)


class WipeMemoryBeforeStage3(gym.Wrapper[Any, Any, Any, Any]):
    """Empties the long-term memory as Stage 3 begins (see the module docstring).

    Args:
        env: An AgeMem env whose ``info`` has ``"stage"`` and whose unwrapped env has ``ltm``.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self._wiped = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env; the next Stage-3 start wipes again."""
        obs, info = self.env.reset(**kwargs)
        self._wiped = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step; on the first step into Stage 3, empty the LTM and report the count in ``info``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self._wiped and int(info.get("stage", 0)) == 3 and not (terminated or truncated):
            self._wiped = True
            info = {**info, "ltm_wiped": wipe_ltm(self.env)}
        return obs, float(reward), terminated, truncated, info
