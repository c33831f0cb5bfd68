"""``AgeMem/FactUpdate-v0`` and ``AgeMem/LongRecall-v0``: generated dialogues with exact answers."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from agemem_gym.core import MemoryEnv
from agemem_gym.data import load_distractor_corpus
from agemem_gym.envs.synthetic.generator import DIFFICULTIES, Difficulty, Family, generate
from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.graders.qa import answer_scores
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["SyntheticMemoryEnv", "FactUpdateEnv", "LongRecallEnv"]

_NOTE = (
    "Facts may change or be taken back later in the conversation: keep your memory current. If something was "
    "taken back or never said, answer unknown. Answer with the value only (a name, a place or a number)."
)


class SyntheticMemoryEnv(MemoryEnv):
    """Base of the generated families (see :class:`FactUpdateEnv`, :class:`LongRecallEnv`).

    Args:
        horizon: Stage-1 user messages (the dialogue's length).
        difficulty: ``"easy"``, ``"medium"``, ``"hard"`` or a :class:`Difficulty`.
        num_tasks: Size of the task panel (every task is generated from its index).
        **kwargs: See :class:`~agemem_gym.core.MemoryEnv`.
    """

    family: ClassVar[Family] = "fact_update"
    default_horizon: ClassVar[int] = 20
    task_note: ClassVar[str] = _NOTE

    def __init__(
        self,
        horizon: int | None = None,
        difficulty: str | Difficulty = "medium",
        num_tasks: int = 10_000,
        **kwargs: Any,
    ) -> None:
        horizon = self.default_horizon if horizon is None else horizon
        if not isinstance(horizon, int) or horizon < 1:
            raise InvalidConfig(f"horizon must be a positive int, got {horizon!r}")
        if isinstance(difficulty, str):
            if difficulty not in DIFFICULTIES:
                raise unknown_name("difficulty", difficulty, DIFFICULTIES)
            self.difficulty_name, difficulty = difficulty, DIFFICULTIES[difficulty]
        elif isinstance(difficulty, Difficulty):
            self.difficulty_name = "custom"
        else:
            raise InvalidConfig(f"difficulty must be easy/medium/hard or a Difficulty, got {difficulty!r}")
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise InvalidConfig(f"num_tasks must be a positive int, got {num_tasks!r}")
        self.horizon = horizon
        self.difficulty = difficulty
        self.num_tasks = num_tasks
        self._filler = load_distractor_corpus()
        super().__init__(**kwargs)

    def _num_tasks(self) -> int:
        return self.num_tasks

    def _task_key(self, index: int) -> str:
        return f"{self.family}-{self.difficulty_name}-h{self.horizon}-{index}"

    def _make_task(self, index: int) -> Task:
        key = self._task_key(index)
        seed = stable_seed("synthetic", key, dataclasses.astuple(self.difficulty))
        script = generate(self.family, seed, self.horizon, self.difficulty, self._filler)
        return Task(
            task_id=key,
            query=script.question,
            answers=(script.answer,),
            material=script.messages,
            single_material="Here is everything I told you over the last while:\n" + "\n".join(script.messages),
            facts=script.facts,
            stale=tuple(r.old for r in script.revisions) or None,
            extra={
                "revisions": tuple(dataclasses.asdict(r) for r in script.revisions),
                "target": script.target,
                "changes": script.changes,
                "retracted": script.retracted,
            },
        )

    def _grade(self, task: Task, answer: str) -> dict[str, float]:
        scores = answer_scores(answer, task.answers)
        return {"task_score": scores["em"], **scores}

    def _info(self, step_invalid: int) -> dict[str, Any]:
        info = super()._info(step_invalid)
        if "privileged" in info and self._task is not None:
            # what an oracle needs to keep memory current: which stored sentence each change replaces
            info["privileged"]["revisions"] = [dict(r) for r in self._task.extra.get("revisions", ())]
        return info


class FactUpdateEnv(SyntheticMemoryEnv):
    """Facts about invented people that change or are withdrawn over a dialogue (UPDATE and DELETE matter).

    ## Description

    Generated from the seed (unbounded, exact): a cast of invented people with a few facts
    each (town, employer, dog, locker, team, office room).

    * **Stage 1**: ``horizon`` casual user messages. Facts are stated one by one between
      small talk; later messages change some of them ("X has moved and now lives in Y") and
      may withdraw the asked one ("Forget what I said about where X lives..."). Keeping the
      memory current needs ``Update_memory`` and ``Delete_memory``; a store-everything
      memory holds stale and current sentences side by side.
    * **Stage 2**: ``num_distractors`` unrelated messages.
    * **Stage 3**: one question about a fact that changed at least once (its current value,
      or ``unknown`` when it was withdrawn).

    ``Task.facts`` is the sentence stating the current truth. With ``privileged_info=True``
    ``info["privileged"]["revisions"]`` lists each change (``trigger``, ``old``, ``new``; ``new``
    is ``None`` for a withdrawal) so the oracle can update or delete what it stored.

    ## Action Space

    One assistant turn as text (``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` or
    ``<answer>…</answer>``), or a structured action; the six memory tools.

    ## Observation Space

    The packed context as a tuple of chat messages ``{"role", "content"}``.

    ## Rewards

    The trajectory reward on the last step; ``task_score`` is the exact match (after answer
    normalisation) with the gold value. ``Task.stale`` lists the target's superseded
    statements: updating or deleting a memory that still states one earns R_maintenance.

    ## Starting State

    The system prompt and the first Stage-1 message; tasks are drawn with ``np_random`` or
    pinned with ``reset(options={"task_id": index or id})``.

    ## Episode End

    Terminated when the agent answers in Stage 3 or spends ``max_rounds`` turns there.
    ``info`` then holds ``answer``, ``em``, ``f1``, ``success`` (= exact match),
    ``memory_quality`` and the reward terms.

    ## Arguments

    * ``horizon``: Stage-1 messages (default 20); fewer than the events packs several
      facts per message.
    * ``difficulty``: ``"easy"`` (3 people, 2 facts each, 1 change to the asked fact),
      ``"medium"`` (default; 5 people, 3 facts, 1–2 changes), ``"hard"`` (8 people with
      shared first names or surnames, 4 facts, 2–3 changes), or a
      :class:`~agemem_gym.envs.synthetic.generator.Difficulty`.
    * ``num_tasks``: size of the panel (default 10,000).
    * Every :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Registered Configurations

    * ``AgeMem/FactUpdate-v0``: horizon 20, medium.

    ## Version History

    * v0: initial release.
    """

    family: ClassVar[Family] = "fact_update"
    default_horizon: ClassVar[int] = 20


class LongRecallEnv(SyntheticMemoryEnv):
    """A fact stated early in a long dialogue, asked about at the very end.

    ## Description

    Generated from the seed like :class:`FactUpdateEnv`, but the asked fact is stated in
    the first quarter of a long dialogue and never changes; some other facts do, and many
    similar facts about other people compete for retrieval.

    * **Stage 1**: ``horizon`` casual user messages (default 60), mostly small talk.
    * **Stage 2**: ``num_distractors`` unrelated messages.
    * **Stage 3**: one question about the early fact.

    ``Task.facts`` is the sentence that states it.

    ## Action Space

    One assistant turn as text (``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` or
    ``<answer>…</answer>``), or a structured action; the six memory tools.

    ## Observation Space

    The packed context as a tuple of chat messages ``{"role", "content"}``.

    ## Rewards

    The paper's trajectory reward on the last step; ``task_score`` is the exact match.

    ## Starting State

    The system prompt and the first Stage-1 message; tasks are drawn with ``np_random`` or
    pinned with ``reset(options={"task_id": index or id})``.

    ## Episode End

    Terminated when the agent answers in Stage 3 or spends ``max_rounds`` turns there;
    ``info`` then holds ``answer``, ``em``, ``f1``, ``success``, ``memory_quality``.

    ## Arguments

    * ``horizon``: Stage-1 messages (default 60).
    * ``difficulty``: ``"easy"``, ``"medium"`` (default) or ``"hard"`` (cast size, facts
      per person, changes to other facts), or a
      :class:`~agemem_gym.envs.synthetic.generator.Difficulty`.
    * ``num_tasks``: size of the panel (default 10,000).
    * Every :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Registered Configurations

    * ``AgeMem/LongRecall-v0``: horizon 60, medium.

    ## Version History

    * v0: initial release.
    """

    family: ClassVar[Family] = "long_recall"
    default_horizon: ClassVar[int] = 60
