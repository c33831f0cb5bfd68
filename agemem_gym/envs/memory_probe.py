"""``AgeMem/MemoryProbe-v0``: one flagged fact among chit-chat; a probe for memory controllers."""

from __future__ import annotations

from typing import Any

import numpy as np

from agemem_gym.core import MemoryEnv
from agemem_gym.error import InvalidConfig
from agemem_gym.graders.qa import answer_scores
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["MemoryProbeEnv"]

_COLORS = "red blue green yellow purple orange black white silver golden brown grey".split()
_OBJECTS = ("locker", "safe", "gate", "suitcase", "bike lock", "garage door", "cabinet", "mailbox")
_FLAGS = (
    "Please remember this.",
    "Important, keep this one.",
    "Note this down for later.",
    "Don't let me forget this.",
    "This one matters, remember it.",
)
_NAMES = "Maya Tom Priya Lucas Aiko Omar Elena Jonas Sofia Kwame".split()
_FOODS = "pasta curry ramen tacos soup pizza salad dumplings".split()
_MOODS = ("great", "okay", "bland", "amazing", "too salty", "surprisingly good")
_RELATIVES = "sister cousin uncle grandmother nephew aunt".split()
_MONTHS = "January March May July September November".split()
_CITIES = "Lisbon Osaka Nairobi Denver Oslo Lima Hanoi Perth".split()
_WEATHER = "rainy sunny foggy windy freezing humid".split()
_TOPICS = "whales volcanoes jazz chess glaciers bees".split()
# Chit-chat the question never asks about; several carry numbers so "store anything with a
# number in it" is not a winning rule.
_FILLERS = (
    "{name}'s lucky number is {n}.",
    "I had {food} for lunch and it was {mood}.",
    "My {relative} turned {age} last {month}.",
    "The weather in {city} was {weather} this morning.",
    "We watched a film about {topic} yesterday; it lasted {minutes} minutes.",
    "By the way, the {color} {object} is next to the stairs.",
)


def _pick(rng: np.random.Generator, items: Any) -> Any:
    return items[int(rng.integers(len(items)))]


class MemoryProbeEnv(MemoryEnv):
    """A flagged fact among chit-chat: store it, ignore the rest, answer from memory.

    A small synthetic probe whose reward depends directly on the memory decisions, sized
    for learning memory *controllers* (e.g. PPO through
    :class:`agemem_gym.adapters.sb3.MemoryControlWrapper`) in seconds.

    ## Description

    Stage 1 sends ``num_fillers + 1`` short user messages in a random order: one flagged
    key fact ("Please remember this. The red locker opens with the number 4821.") and
    chit-chat that is never asked about, some of it with numbers of its own. The context
    is then reset while the long-term memory persists; Stage 2 sends ``num_distractors``
    unrelated messages; Stage 3 asks for the key fact ("Which number opens the red
    locker?"). Storing only the flagged fact maximises both the answer score and the
    memory reward (storage precision, retrieval relevance); storing nothing fails the
    question.

    ## Action Space

    One assistant turn as text (``UnicodeText``) in the turn grammar, or a structured
    action; the six memory tools, as in every ``AgeMem/*`` task.

    ## Observation Space

    The packed context as a tuple of chat messages ``{"role", "content"}``.

    ## Rewards

    The paper's trajectory reward on the last step (answer F1, context reward, memory
    reward against the single gold fact, penalties); 0 before.

    ## Starting State

    The system prompt and the first Stage-1 message; the task is drawn with ``np_random``
    or pinned with ``reset(options={"task_id": index or "probe-<index>"})``.

    ## Episode End

    Terminated when the agent answers in Stage 3, or after ``max_rounds`` Stage-3 turns
    without an answer. ``info`` then holds ``answer``, ``task_score``, ``em``, ``f1``,
    ``success`` and ``memory_quality``.

    ## Arguments

    * ``num_tasks``: size of the task panel (default 1000; task ``i`` is generated from
      ``i`` alone).
    * ``num_fillers``: chit-chat messages around the key fact (default 5).
    * Every :class:`~agemem_gym.config.EnvConfig` / :class:`~agemem_gym.config.MemoryConfig`
      field and the :class:`~agemem_gym.core.MemoryEnv` arguments.

    ## Registered Configurations

    * ``AgeMem/MemoryProbe-v0``: 5 fillers, 2 Stage-2 distractors.

    ## Version History

    * v0: initial release.
    """

    def __init__(self, num_tasks: int = 1000, num_fillers: int = 5, **kwargs: Any) -> None:
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise InvalidConfig(f"num_tasks must be a positive int, got {num_tasks!r}")
        if not isinstance(num_fillers, int) or not 0 <= num_fillers <= 50:
            raise InvalidConfig(f"num_fillers must be an int in [0, 50], got {num_fillers!r}")
        self.num_tasks = num_tasks
        self.num_fillers = num_fillers
        super().__init__(**kwargs)

    def _num_tasks(self) -> int:
        return self.num_tasks

    def _task_key(self, index: int) -> str:
        return f"probe-{index}"

    def _make_task(self, index: int) -> Task:
        rng = np.random.default_rng(stable_seed("memory-probe", index))
        color, obj = _pick(rng, _COLORS), _pick(rng, _OBJECTS)
        code = str(int(rng.integers(1000, 10000)))
        fact = f"The {color} {obj} opens with the number {code}."
        others = [c for c in _COLORS if c != color]
        fillers = [
            _pick(rng, _FILLERS).format(
                name=_pick(rng, _NAMES),
                n=int(rng.integers(1, 100)),
                food=_pick(rng, _FOODS),
                mood=_pick(rng, _MOODS),
                relative=_pick(rng, _RELATIVES),
                age=int(rng.integers(5, 90)),
                month=_pick(rng, _MONTHS),
                city=_pick(rng, _CITIES),
                weather=_pick(rng, _WEATHER),
                topic=_pick(rng, _TOPICS),
                minutes=int(rng.integers(60, 180)),
                color=_pick(rng, others),
                object=_pick(rng, _OBJECTS),
            )
            for _ in range(self.num_fillers)
        ]
        position = int(rng.integers(self.num_fillers + 1))
        material = fillers[:position] + [f"{_pick(rng, _FLAGS)} {fact}"] + fillers[position:]
        return Task(
            task_id=self._task_key(index),
            query=f"Which number opens the {color} {obj}?",
            answers=(code,),
            material=tuple(material),
            facts=(fact,),
            extra={"key_position": position},
        )

    def _grade(self, task: Task, answer: str) -> dict[str, float]:
        return {
            "task_score": float(self.judge.score(answer, task.answers, task.query)),
            **answer_scores(answer, task.answers),
        }
