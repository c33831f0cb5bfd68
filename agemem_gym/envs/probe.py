"""``AgeMem/Probe-Recall-v0``: a tiny probe for wiring tests and learning checks."""

from __future__ import annotations

import re
from typing import Any

from agemem_gym.core import MemoryEnv
from agemem_gym.error import InvalidConfig
from agemem_gym.graders.qa import answer_scores
from agemem_gym.task import Task

__all__ = ["ProbeRecallEnv", "COLOURS", "OBJECTS"]

COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
OBJECTS = ("", "box", "door", "car", "kite", "cup", "hat", "boat")
"""What the secret colour belongs to: task ``i`` uses ``OBJECTS[(i // 8) % 8]`` ("" for the first
eight tasks, whose wording is the original one). Different objects give new prompts with the same
eight answers, so a panel of later tasks is held out from training on earlier ones while guessing
still scores 1/8."""


class ProbeRecallEnv(MemoryEnv):
    """Remember one colour, answer it later: the smallest task where memory decides the reward.

    ## Description

    Stage 1 says "Remember this: the secret colour is <c>." The context is reset (Stage 2
    off by default), Stage 3 asks "What is the secret colour?". A policy that stores the
    fact and retrieves it answers correctly; one that does not can only guess. With
    ``num_tasks=1`` the answer is constant, which gives trainers a signal a tiny random
    model can learn in a few dozen steps (the trainer's learning test uses it).

    ## Action Space

    The turn grammar of :class:`~agemem_gym.core.MemoryEnv`.

    ## Observation Space

    The packed context as chat messages.

    ## Rewards

    The paper's trajectory reward (task score 1 when the answer names the right colour and no
    other, so "The secret colour is red." counts; ``em`` and ``f1`` are in ``info`` too); pass
    ``reward="answer_only"`` for the task score alone.

    ## Episode End

    The Stage-3 answer, or ``max_rounds`` turns without one.

    ## Arguments

    * ``num_tasks``: tasks in the panel (task ``i`` asks for colour ``i mod 8`` of object
      ``OBJECTS[(i // 8) mod 8]``; up to 64 distinct tasks, e.g. train on tasks 0-47 and hold
      out 48-63).
    * ``show_in_query``: repeat the fact in the question (memory is then not needed).
    * Every :class:`~agemem_gym.config.EnvConfig` / :class:`~agemem_gym.config.MemoryConfig` field.

    ## Version History

    * v0: initial release (tasks 8 and later name an object; tasks 0-7 are unchanged).
    """

    def __init__(self, num_tasks: int = 8, show_in_query: bool = False, **kwargs: Any) -> None:
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise InvalidConfig(f"num_tasks must be a positive int, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self.show_in_query = bool(show_in_query)
        kwargs.setdefault("num_distractors", 0)
        super().__init__(**kwargs)

    def _num_tasks(self) -> int:
        return self.num_tasks

    def _task_key(self, index: int) -> str:
        return f"probe-{index}"

    def _make_task(self, index: int) -> Task:
        colour = COLOURS[index % len(COLOURS)]
        thing = OBJECTS[(index // len(COLOURS)) % len(OBJECTS)]
        subject = f"the secret colour of the {thing}" if thing else "the secret colour"
        fact = f"{subject} is {colour}."
        query = ("Remember: " + fact + " " if self.show_in_query else "") + f"What is {subject}?"
        return Task(
            task_id=self._task_key(index),
            query=query,
            answers=(colour,),
            material=(f"Remember this: {fact}",),
            facts=(fact.capitalize(),),
        )

    def _grade(self, task: Task, answer: str) -> dict[str, float]:
        scores = answer_scores(answer, task.answers)
        # "The secret colour is red." is right and exact match would call it wrong; naming
        # several colours is a hedge, not an answer, so it scores 0 (guessing stays at 1/8)
        named = {c for c in COLOURS if re.search(rf"\b{c}\b", answer.lower())}
        score = float(named == set(task.answers))
        return {**scores, "task_score": score, "success": score}
