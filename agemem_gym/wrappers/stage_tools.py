"""``ToolCallsByStage``: count an episode's tool calls per stage, in ``info``.

The env's ``info["tool_calls"]`` counts calls over the whole episode. What a trained memory
policy should change is *where* it calls them (the paper's Table 3): ``Add_memory`` while the
facts arrive in Stage 1, ``Retrieve_memory`` when the question comes in Stage 3. This wrapper
reads each step's ``info["turn"]`` and adds ``info["tool_calls_by_stage"]``:
``{"stage": {tool name: calls}}`` for the episode so far (stage numbers as strings, so the dict
survives a vector env's info merging) (every attempted call, valid or not;
``info["turn"]["calls"][i]["ok"]`` says which ran).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

__all__ = ["ToolCallsByStage", "count_calls"]


def count_calls(
    counts: Mapping[str, Mapping[str, int]], stage: int, turn: Mapping[str, Any] | None
) -> dict[str, dict[str, int]]:
    """``counts`` with the calls of one step's ``info["turn"]`` added under ``stage``.

    Args:
        counts: ``{"stage": {tool: calls}}`` so far (not modified).
        stage: The stage the turn was played in.
        turn: The step's ``info["turn"]`` (``None``: nothing to add).

    Returns:
        The new counts.
    """
    out = {s: dict(tools) for s, tools in counts.items()}
    for call in (turn or {}).get("calls", ()):
        per_stage = out.setdefault(str(stage), {})
        per_stage[call["name"]] = per_stage.get(call["name"], 0) + 1
    return out


class ToolCallsByStage(gym.Wrapper[Any, Any, Any, Any]):
    """Adds ``info["tool_calls_by_stage"]`` (``{"stage": {tool: calls}}``) to every step and reset.

    Args:
        env: An AgeMem env (its ``info`` has ``"stage"`` and, after a step, ``"turn"``).
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self._counts: dict[str, dict[str, int]] = {}
        self._stage = 1

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the counts."""
        obs, info = self.env.reset(**kwargs)
        self._counts, self._stage = {}, int(info.get("stage", 1))
        return obs, {**info, "tool_calls_by_stage": {}}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; the turn's calls count under the stage it was played in."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._counts = count_calls(self._counts, self._stage, info.get("turn"))
        self._stage = int(info.get("stage", self._stage))
        return obs, float(reward), terminated, truncated, {**info, "tool_calls_by_stage": self._counts}
