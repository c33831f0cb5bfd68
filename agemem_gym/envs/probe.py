"""``AgeMem/Probe-Recall-v0``: a tiny probe for wiring tests and learning checks."""

from __future__ import annotations

from typing import Any

from agemem_gym.core import MemoryEnv
from agemem_gym.error import InvalidConfig
from agemem_gym.graders.qa import answer_scores
from agemem_gym.task import Task

__all__ = ["ProbeRecallEnv", "COLOURS"]

COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")


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

    The paper's trajectory reward (task score = exact match of the colour); pass
    ``reward="answer_only"`` for the task score alone.

    ## Episode End

    The Stage-3 answer, or ``max_rounds`` turns without one.

    ## Arguments

    * ``num_tasks``: tasks in the panel (task ``i`` asks for colour ``i mod 8``).
    * ``show_in_query``: repeat the fact in the question (memory is then not needed).
    * Every :class:`~agemem_gym.config.EnvConfig` / :class:`~agemem_gym.config.MemoryConfig` field.

    ## Version History

    * v0: initial release.
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
        fact = f"the secret colour is {colour}."
        query = ("Remember: " + fact + " " if self.show_in_query else "") + "What is the secret colour?"
        return Task(
            task_id=self._task_key(index),
            query=query,
            answers=(colour,),
            material=(f"Remember this: {fact}",),
            facts=(fact.capitalize(),),
        )

    def _grade(self, task: Task, answer: str) -> dict[str, float]:
        scores = answer_scores(answer, task.answers)
        return {"task_score": scores["em"], **scores}
