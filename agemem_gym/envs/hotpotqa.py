"""``AgeMem/HotpotQA-v0``: multi-hop QA where the evidence arrives before the question."""

from __future__ import annotations

import os
from typing import Any

from agemem_gym.core import MemoryEnv
from agemem_gym.data import HotpotRecord, load_hotpotqa
from agemem_gym.error import InvalidConfig
from agemem_gym.graders.qa import answer_scores
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["HotpotQAEnv"]

# Casual framings for Stage-1 paragraphs (the paper's "casual conversational setting").
_FRAMINGS = (
    "I was reading about {title} earlier. {text}",
    "Here's something I came across about {title}: {text}",
    "A friend told me about {title}. {text}",
    "Some notes I took on {title}: {text}",
    "Random thing I learned today, about {title}. {text}",
    "Been looking into {title} lately. {text}",
)
_SINGLE_INTRO = "Just chatting about several topics together. Here are the related contents grouped by title:"


class HotpotQAEnv(MemoryEnv):
    """Multi-hop question answering over HotpotQA with memory tools (the paper's training task).

    ## Description

    Stage 1 shows the question's ten context paragraphs (two gold, eight distractor
    paragraphs) as casual user messages, one per message with an automatic retrieval of
    related stored memories (the paper's Algorithm 3), or all in one message
    (``stage1_mode="single"``, the released code). The context is then reset while the
    long-term memory persists. Stage 2 sends ``num_distractors`` unrelated casual messages,
    fixed per task. Stage 3 appends the question; the agent must retrieve what it stored
    and answer.

    ## Action Space

    One assistant turn as text (``UnicodeText``): ``<think>…</think>`` then one of
    ``<tool_call>[…]</tool_call>`` or ``<answer>…</answer>``; or a structured action (a dict
    or list of ``{"name", "arguments"}``, or ``{"answer": ...}``). Tools: ``Add_memory``,
    ``Update_memory``, ``Delete_memory``, ``Retrieve_memory``, ``Summary_context``,
    ``Filter_context``.

    ## Observation Space

    The packed context as a tuple of chat messages ``{"role", "content"}`` (roles
    ``system``, ``user``, ``assistant``, ``tool``), ready for a chat template. When the full
    context exceeds ``max_context_tokens`` the numba packer keeps the pinned system prompt
    and question and the newest messages, and ``info["overflow"]`` is set.

    ## Rewards

    0 on every step but the last, which returns the paper's trajectory reward: the answer's
    judge score (offline default: HotpotQA F1; −1 without an answer), the context reward
    (compression, preventive, preservation) and the memory reward (the gold share of the
    stored and of the retrieved memories; maintenance is not scored, since no fact here goes
    stale), weighted 1/2, 1/4, 1/4, plus penalties (−1 when Stage 3 runs out of rounds, −0.5
    on overflow, −0.05 per invalid call). ``reward="paper"`` (weights 1/3 each),
    ``"released_code"`` / ``"answer_only"`` select the other presets;
    ``RewardConfig(mode="dense")`` spreads it over the steps with the same episode total.

    ## Starting State

    The system prompt (instructions and tool schemas) and the first Stage-1 message. The
    task is drawn from the panel with ``np_random``, or pinned with
    ``reset(options={"task_id": index_or_hotpotqa_id})``.

    ## Episode End

    Terminated when the agent answers in Stage 3 or spends ``max_rounds`` turns there
    without answering. ``info`` then holds ``answer``, ``task_score``, ``em``, ``f1``,
    ``success`` (exact match), ``memory_quality`` (MQ), the reward components and penalties.

    ## Arguments

    * ``data_path``: an official HotpotQA JSON file (``hotpot_dev_distractor_v1.json``,
      ``hotpot_train_v1.1.json``) or JSON Lines in that schema; default: the bundled sample
      of 300 dev/distractor questions (CC BY-SA 4.0).
    * ``num_tasks``: keep only the first N questions.
    * Every :class:`~agemem_gym.config.EnvConfig` / :class:`~agemem_gym.config.MemoryConfig`
      field (``num_distractors=5``, ``max_rounds=5``, ``stage1_mode``, ``max_context_tokens``,
      ``filter_threshold``...), and ``reward``, ``embedder``, ``judge``, ``tokenizer``,
      ``render_mode`` (see :class:`~agemem_gym.core.MemoryEnv`).

    ## Registered Configurations

    * ``AgeMem/HotpotQA-v0``: the paper's setting (per-paragraph Stage 1, 5 distractors).
    * ``AgeMem/HotpotQA-Single-v0``: the released code's setting (one Stage-1 message).
    * ``AgeMem/HotpotQA-NoDistractors-v0``: Stage 2 off (the released code's evaluation).

    ## Version History

    * v0: initial release.
    """

    def __init__(
        self, data_path: str | os.PathLike[str] | None = None, num_tasks: int | None = None, **kwargs: Any
    ) -> None:
        if num_tasks is not None and (not isinstance(num_tasks, int) or num_tasks < 1):
            raise InvalidConfig(f"num_tasks must be a positive int or None, got {num_tasks!r}")
        self.data_path = None if data_path is None else str(data_path)
        self.records: list[HotpotRecord] = load_hotpotqa(data_path, limit=num_tasks)
        super().__init__(**kwargs)

    def _num_tasks(self) -> int:
        return len(self.records)

    def _task_key(self, index: int) -> str:
        return self.records[index].id

    def _make_task(self, index: int) -> Task:
        rec = self.records[index]
        paragraphs = rec.paragraphs()
        material = tuple(
            _FRAMINGS[stable_seed(rec.id, j) % len(_FRAMINGS)].format(title=title, text=text)
            for j, (title, text) in enumerate(paragraphs)
        )
        single = _SINGLE_INTRO + "\n" + "\n".join(f"{title}: {text}" for title, text in paragraphs)
        return Task(
            task_id=rec.id,
            query=rec.question,
            answers=(rec.answer,),
            material=material,
            single_material=single,
            facts=rec.fact_sentences(),
            extra={"type": rec.type, "level": rec.level},
        )

    def _grade(self, task: Task, answer: str) -> dict[str, float]:
        return {
            "task_score": float(self.judge.score(answer, task.answers, task.query)),
            **answer_scores(answer, task.answers),
        }
