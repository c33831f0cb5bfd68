"""``AgeMem/LongMemEval-v0``: questions about a user's long chat history with an assistant (data by path only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from agemem_gym.core import MemoryEnv
from agemem_gym.data.longmemeval import QUESTION_TYPES, LongMemEvalQuestion, LongMemEvalSession, load_longmemeval
from agemem_gym.error import InvalidConfig
from agemem_gym.graders.abstention import ABSTAIN, declines
from agemem_gym.graders.qa import answer_scores
from agemem_gym.task import Task
from agemem_gym.text import content_words, split_sentences

__all__ = ["LongMemEvalEnv"]

# lower-case role labels, as in LongMemEval's JSON history format (and no capitalised word
# for an extractive reader to mistake for an answer)
_ROLE = {"user": "user", "assistant": "assistant"}


def _session_parts(session: LongMemEvalSession, number: int, total: int, max_chars: int) -> list[str]:
    """A session as user messages of at most ~``max_chars`` each, cut between turns (ids never shown).

    The official session ids mark the evidence sessions (``answer_…``), so only the position
    and the date head each message.
    """
    chunks: list[list[str]] = [[]]
    for turn in session.turns:
        line = f"{_ROLE[turn.role]}: {turn.content}"
        if chunks[-1] and sum(len(x) + 1 for x in chunks[-1]) + len(line) > max_chars:
            chunks.append([])
        chunks[-1].append(line)
    when = f", {session.date}" if session.date else ""
    out = []
    for k, chunk in enumerate(chunks, 1):
        part = f" (part {k} of {len(chunks)})" if len(chunks) > 1 else ""
        out.append(f"Chat session {number} of {total}{when}{part}:\n" + "\n".join(chunk))
    return out


def _evidence_sentences(question: LongMemEvalQuestion) -> tuple[str, ...]:
    """The gold facts: the sentences of the ``has_answer`` turns (the first keeps the role)."""
    out: list[str] = []
    for session in question.sessions:
        for turn in session.turns:
            if turn.has_answer:
                line = f"{_ROLE[turn.role]}: {turn.content}"
                out += [s for s in split_sentences(line) if len(content_words(s)) >= 2]
    return tuple(dict.fromkeys(out))


class LongMemEvalEnv(MemoryEnv):
    """Question answering over LongMemEval's timestamped user–assistant chat histories, with memory tools.

    ## Description

    LongMemEval (Wu et al., ICLR 2025; MIT licence) has 500 questions, each with its own
    history of dated chat sessions: only the evidence sessions (``longmemeval_oracle.json``),
    ~50 sessions / ~115k tokens (``longmemeval_s.json``) or ~500 sessions
    (``longmemeval_m.json``). Nothing is bundled: pass ``data_path`` to one file (or set
    ``AGEMEM_LONGMEMEVAL``).

    * **Stage 1**: the history, oldest session first, one user message per session (a session
      longer than ``max_message_chars`` is cut between turns into parts); each message gives
      the session's position and date, and its turns as ``user: …`` / ``assistant: …``.
    * **Stage 2**: ``num_distractors`` unrelated messages.
    * **Stage 3**: ``Current date: <question_date>``, then the question (both pinned).

    ``Task.facts`` (for memory quality) are the sentences of the evidence turns
    (``has_answer``); abstention questions have none (as in LongMemEval's retrieval metrics).

    ## Action Space

    One assistant turn as text (``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` or
    ``<answer>…</answer>``), or a structured action; the six memory tools.

    ## Observation Space

    The packed context as a tuple of chat messages ``{"role", "content"}``.

    ## Rewards

    The paper's trajectory reward on the last step. ``task_score`` is the answer judge's score
    against the official answer (offline token F1 by default; an LLM rubric with
    ``judge="openai:…"`` or ``"hf:…"``). An abstention question (id ending in ``_abs``) scores
    1 iff the answer declines (:func:`agemem_gym.graders.abstention.declines`: "not
    mentioned", "I don't know", …), whatever the judge.

    ## Starting State

    The system prompt and the first session; tasks are drawn with ``np_random`` or pinned
    with ``reset(options={"task_id": index or question_id})``.

    ## Episode End

    Terminated when the agent answers in Stage 3 or spends ``max_rounds`` turns there.
    ``info`` then holds ``answer``, ``task_score``, ``f1``, ``em``, ``success`` (exact match;
    declining for abstention questions), ``question_type``, ``abstention``, ``groups``
    (``[question_type]``, plus ``"abstention"``; ``agemem eval`` and ``agemem run`` report
    scores by group) and ``memory_quality``.

    ## Arguments

    * ``data_path``: a LongMemEval JSON file (required unless ``AGEMEM_LONGMEMEVAL`` is set);
      a missing file raises :class:`~agemem_gym.error.DataNotFound` naming where to get it.
    * ``question_types``: keep only these types (default all six).
    * ``abstention``: ``True`` keeps only abstention questions, ``False`` drops them,
      ``None`` (default) keeps both.
    * ``max_message_chars``: longest Stage-1 message before a session is split (default 3000).
    * Every :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Version History

    * v0: initial release.
    """

    task_note: ClassVar[str] = (
        "The questions are about your earlier chat sessions with the user; each session shows its date and the "
        f"question shows today's date. If the sessions do not say, answer: {ABSTAIN}"
    )

    def __init__(
        self,
        data_path: str | os.PathLike[str] | None = None,
        question_types: Sequence[str] | None = None,
        abstention: bool | None = None,
        max_message_chars: int = 3000,
        **kwargs: Any,
    ) -> None:
        wanted = QUESTION_TYPES if question_types is None else tuple(question_types)
        if isinstance(question_types, str) or not wanted or set(wanted) - set(QUESTION_TYPES):
            raise InvalidConfig(
                f"question_types must be a non-empty list drawn from {list(QUESTION_TYPES)}, got {question_types!r}"
            )
        if abstention not in (None, True, False):
            raise InvalidConfig(f"abstention must be None, True or False, got {abstention!r}")
        if not isinstance(max_message_chars, int) or max_message_chars < 200:
            raise InvalidConfig(f"max_message_chars must be an int >= 200, got {max_message_chars!r}")
        self.max_message_chars = max_message_chars
        self.questions = [
            q
            for q in load_longmemeval(data_path)
            if q.question_type in wanted and (abstention is None or q.abstention == abstention)
        ]
        if not self.questions:
            raise InvalidConfig(
                f"the LongMemEval file has no questions of types {list(wanted)} with abstention={abstention}"
            )
        self._cached: tuple[int, tuple[str, ...]] | None = None  # a GRPO group replays one task
        super().__init__(**kwargs)

    def _num_tasks(self) -> int:
        return len(self.questions)

    def _task_key(self, index: int) -> str:
        return self.questions[index].question_id

    def _history(self, index: int) -> tuple[str, ...]:
        if self._cached is None or self._cached[0] != index:
            sessions = self.questions[index].sessions
            parts = tuple(
                part
                for n, s in enumerate(sessions, 1)
                for part in _session_parts(s, n, len(sessions), self.max_message_chars)
            )
            self._cached = (index, parts)
        return self._cached[1]

    def _make_task(self, index: int) -> Task:
        q = self.questions[index]
        material = self._history(index)
        facts = () if q.abstention else _evidence_sentences(q)
        return Task(
            task_id=q.question_id,
            query=q.question,
            answers=(ABSTAIN if q.abstention else q.answer,),
            material=material,
            single_material="\n\n".join(material),
            facts=facts or None,
            extra={
                "question_id": q.question_id,
                "question_type": q.question_type,
                "question_date": q.question_date,
                "abstention": q.abstention,
                "official_answer": q.answer,
                "answer_session_ids": list(q.answer_session_ids),
            },
        )

    def _begin_stage3(self, task: Task) -> None:
        """The question date (pinned), then the question: the question stays the last user message."""
        date = str(task.extra.get("question_date") or "")
        if date:
            self.stm.append("user", f"Current date: {date}", pinned=True, kind="query", stage=3)
        super()._begin_stage3(task)

    def _labels(self, task: Task) -> dict[str, Any]:
        qtype, abstention = str(task.extra["question_type"]), bool(task.extra["abstention"])
        return {
            "question_type": qtype,
            "abstention": abstention,
            "groups": [qtype, "abstention"] if abstention else [qtype],
        }

    def _grade(self, task: Task, answer: str) -> dict[str, Any]:
        if task.extra["abstention"]:
            score = float(declines(answer))
            return {"task_score": score, "f1": score, "em": score, "success": score, **self._labels(task)}
        return {
            "task_score": float(self.judge.score(answer, task.answers, task.query)),
            **answer_scores(answer, task.answers),
            **self._labels(task),
        }

    def _grade_unanswered(self, task: Task) -> dict[str, Any]:
        return {"task_score": None, "success": 0.0, **self._labels(task)}
