"""``InteractiveMemoryEnv``: the base of tasks whose Stage 3 is a world to act in.

Stage 1 shows prior material worth storing (an earlier episode in the same world, the
walkthrough of a related task, a manual); Stage 2 the distractors; Stage 3 is the task
itself: the goal (pinned) and the world's first observation, then one ``<action>…</action>``
per turn. Memory tool calls never advance the world but spend a round. ``plain=True``
skips Stages 1 and 2 (the task alone, memory tools available: how the paper evaluates
zero-shot).

A subclass implements the world hooks: :meth:`_world_reset`, :meth:`_world_step`,
:meth:`_valid_actions`, :meth:`_world_grade` and optionally :meth:`_expert_action` (shown to
oracle policies through ``info["privileged"]``) and :meth:`_world_close`.

Episode end: the world finishes (won or lost) → terminated; ``max_world_steps`` actions
without finishing → truncated (the reward is still given); ``<answer>`` in Stage 3 →
terminated (the agent declares it is done) and the world state is graded; ``max_rounds``
turns without an action → terminated with the rounds penalty.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from agemem_gym.core import MemoryEnv
from agemem_gym.error import InvalidConfig
from agemem_gym.task import Task

__all__ = ["InteractiveMemoryEnv", "WorldStep"]


@dataclasses.dataclass(frozen=True)
class WorldStep:
    """What one action did to the world.

    Attributes:
        observation: Text the world returns.
        done: The world's episode is over (won, or lost for good).
        success: The task was solved.
        score: Task progress in [0, 1] when the task defines one.
    """

    observation: str
    done: bool = False
    success: bool = False
    score: float | None = None


class InteractiveMemoryEnv(MemoryEnv):
    """Base for interactive tasks (see the module docstring for the episode structure).

    Args:
        plain: Skip Stages 1 and 2.
        max_world_steps: Actions allowed in Stage 3 before the episode is truncated.
        show_valid_actions: List the valid actions in each observation (when the world has them).
        max_listed_actions: Longest list of valid actions shown (the rest are summarised).
        max_action_chars: Optional cap on the ``<action>`` length (``None``: the turn's own cap,
            ``max_response_tokens``, bounds it). Longer actions, and actions with lone surrogates
            (text no engine can encode: ScienceWorld's Java bridge raised on them), are answered
            with a format error and counted as invalid instead of reaching the world. Other odd
            text (NUL, unknown commands) reaches the world, which answers it as a no-op.
        **kwargs: See :class:`~agemem_gym.core.MemoryEnv`.
    """

    interactive: ClassVar[bool] = True
    _snapshot_fields: ClassVar[tuple[str, ...]] = ("_world_steps",)

    def __init__(
        self,
        *,
        plain: bool = False,
        max_world_steps: int = 50,
        show_valid_actions: bool = True,
        max_listed_actions: int = 60,
        max_action_chars: int | None = None,
        **kwargs: Any,
    ) -> None:
        if max_world_steps < 1:
            raise InvalidConfig(f"max_world_steps must be >= 1, got {max_world_steps}")
        if max_listed_actions < 1:
            raise InvalidConfig(f"max_listed_actions must be >= 1, got {max_listed_actions}")
        self.plain = bool(plain)
        self.max_world_steps = int(max_world_steps)
        self.show_valid_actions = bool(show_valid_actions)
        if max_action_chars is not None and max_action_chars < 1:
            raise InvalidConfig(f"max_action_chars must be None or >= 1, got {max_action_chars}")
        self.max_listed_actions = int(max_listed_actions)
        self.max_action_chars = None if max_action_chars is None else int(max_action_chars)
        self._world_steps = 0
        super().__init__(**kwargs)

    # ================================================================ world hooks
    def _world_reset(self, task: Task) -> str:
        """Start the world for ``task``; return its first observation text."""
        raise NotImplementedError

    def _world_step(self, action: str) -> WorldStep:
        """Apply one action (any string: unknown actions must not raise)."""
        raise NotImplementedError

    def _valid_actions(self) -> list[str] | None:
        """The actions valid now, or ``None`` when the world cannot list them."""
        return None

    def _world_grade(self) -> dict[str, Any]:
        """Grade the world's current state: ``{"task_score", "success", ...}``."""
        raise NotImplementedError

    def _expert_action(self) -> str | None:
        """A good next action (for oracle policies), or ``None``."""
        return None

    def _world_close(self) -> None:
        """Release engine resources (processes, JVMs)."""

    # ================================================================ MemoryEnv hooks
    def _stage1_messages(self, task: Task) -> list[str]:
        return [] if self.plain else super()._stage1_messages(task)

    def _distractor_messages(self, task: Task) -> list[str]:
        return [] if self.plain else super()._distractor_messages(task)

    def _begin_stage3(self, task: Task) -> None:
        self._world_steps = 0
        self.stm.append("user", task.query, pinned=True, kind="query", stage=3)
        self._show(self._world_reset(task))

    def _show(self, observation: str) -> None:
        text = f"Observation: {observation.strip()}"
        actions = self._valid_actions() if self.show_valid_actions else None
        if actions:
            listed = ", ".join(actions[: self.max_listed_actions])
            more = len(actions) - self.max_listed_actions
            text += f"\nValid actions: {listed}" + (f" (and {more} more)" if more > 0 else "")
        self.stm.append("user", text, kind="observation", stage=3)

    def _on_action(self, action: str) -> bool:
        if self._stage < 3:
            self._reject(
                "[format error] there is no world to act in yet: store what matters with the memory tools "
                "and reply with <answer>...</answer>."
            )
            return False
        if not action.strip():
            self._reject("[format error] empty <action>; write one action, e.g. one of the valid actions listed.")
            return False
        problem = self._action_problem(action.strip())
        if problem:
            self._reject(f"[format error] {problem}; write one action, e.g. one of the valid actions listed.")
            return False
        result = self._world_step(action.strip())
        self._world_steps += 1
        self._round = 0  # the observation is a new incoming message
        self._show(result.observation)
        if result.done:
            self._finish("")  # graded on the world state (see _grade)
            return True
        if self._world_steps >= self.max_world_steps:
            self._truncated = True
            self._finish("")
            return True
        return False

    def _action_problem(self, action: str) -> str | None:
        """Why ``action`` must not reach the world engine, or ``None``."""
        if self.max_action_chars is not None and len(action) > self.max_action_chars:
            return f"the <action> has {len(action)} characters, more than the limit of {self.max_action_chars}"
        try:
            action.encode("utf-8")
        except UnicodeEncodeError:
            return "the <action> contains characters that are not valid Unicode text (lone surrogates)"
        return None

    def _grade(self, task: Task, answer: str) -> dict[str, Any]:
        return self._world_grade()

    def _grade_unanswered(self, task: Task) -> dict[str, Any]:
        return self._world_grade()

    def _info(self, step_invalid: int) -> dict[str, Any]:
        info = super()._info(step_invalid)
        info["world_steps"] = self._world_steps
        if self._stage == 3 and self._task is not None:
            actions = self._valid_actions()
            if actions is not None:
                info["valid_actions"] = list(actions)
        if self.config.privileged_info and self._stage == 3 and self._task is not None:
            info.setdefault("privileged", {})["expert_action"] = self._expert_action()
        return info

    def close(self) -> None:
        """Release the world's resources."""
        self._world_close()
        super().close()
