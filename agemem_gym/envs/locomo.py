"""``AgeMem/LoCoMo-v0``: questions about very long multi-session conversations (data by path only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from agemem_gym.core import MemoryEnv
from agemem_gym.data.locomo import CATEGORY_NAMES, LoCoMoConversation, LoCoMoSession, load_locomo
from agemem_gym.error import InvalidConfig
from agemem_gym.graders.locomo import REFUSAL, locomo_normalize, locomo_score
from agemem_gym.task import Task
from agemem_gym.text import content_words, split_sentences

__all__ = ["LoCoMoEnv"]


def _session_parts(session: LoCoMoSession, speakers: tuple[str, str], max_chars: int) -> list[str]:
    """A session as user messages of at most ~``max_chars`` each, cut between turns."""
    lines = [f"{t.speaker}: {t.text}" for t in session.turns]
    chunks: list[list[str]] = [[]]
    for line in lines:
        if chunks[-1] and sum(len(x) + 1 for x in chunks[-1]) + len(line) > max_chars:
            chunks.append([])
        chunks[-1].append(line)
    when = f", {session.date_time}" if session.date_time else ""
    out = []
    for k, chunk in enumerate(chunks, 1):
        part = f" (part {k} of {len(chunks)})" if len(chunks) > 1 else ""
        head = f"Conversation between {speakers[0]} and {speakers[1]}, session {session.index}{when}{part}:"
        out.append(head + "\n" + "\n".join(chunk))
    return out


def _evidence_sentences(conv: LoCoMoConversation, evidence: Sequence[str]) -> tuple[str, ...]:
    """The gold facts: the sentences of the evidence turns (the first keeps the speaker's name)."""
    turns = conv.turn_text()
    out: list[str] = []
    for dia_id in evidence:
        line = turns.get(dia_id)
        if line is None:  # a few official annotations point at ids that do not exist
            continue
        out += [s for s in split_sentences(line) if len(content_words(s)) >= 2]
    return tuple(dict.fromkeys(out))


def _gold(answer: str, category: int) -> str:
    """The answer graded against: the refusal (adversarial), the text before ``;`` (open-domain)."""
    if category == 5:
        return REFUSAL
    return answer.split(";")[0].strip() if category == 3 else answer


class LoCoMoEnv(MemoryEnv):
    """Question answering over LoCoMo's very long two-person conversations, with memory tools.

    ## Description

    LoCoMo (Maharana et al., ACL 2024) has ten conversations of 19–32 dated sessions each
    and about 2,000 annotated questions. It is licensed CC BY-NC 4.0, so it is never
    bundled: pass ``data_path`` to ``locomo10.json`` (or set ``AGEMEM_LOCOMO_PATH``).

    * **Stage 1**: the whole conversation, session by session, as user messages (a session
      longer than ``max_message_chars`` is cut between turns into parts); each message
      names the session and its date. A shared photo appears as its caption.
    * **Stage 2**: ``num_distractors`` unrelated messages.
    * **Stage 3**: one question per episode (every question of the file is a task).

    ``Task.facts`` (for memory quality) are the sentences of the annotated evidence turns.

    ## Action Space

    One assistant turn as text (``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` or
    ``<answer>…</answer>``), or a structured action; the six memory tools.

    ## Observation Space

    The packed context as a tuple of chat messages ``{"role", "content"}``.

    ## Rewards

    The paper's trajectory reward on the last step; ``task_score`` is LoCoMo's QA score for
    the question's category (token F1; multi-hop: comma-split partial F1; open-domain: the
    gold text before ``;``; adversarial: 1 for declining, e.g. "Not mentioned in the
    conversation").

    ## Starting State

    The system prompt and the first session; tasks are drawn with ``np_random`` or pinned
    with ``reset(options={"task_id": index or "conv-26/q0"})``.

    ## Episode End

    Terminated when the agent answers in Stage 3 or spends ``max_rounds`` turns there.
    ``info`` then holds ``answer``, ``f1`` (= ``task_score``), ``em``, ``success`` (exact
    match; declining for adversarial questions), ``category``, ``category_name`` and
    ``memory_quality``. :func:`agemem_gym.graders.locomo.scores_by_category` averages by
    category.

    ## Arguments

    * ``data_path``: the LoCoMo JSON file (required unless ``AGEMEM_LOCOMO_PATH`` is set);
      a missing file raises :class:`~agemem_gym.error.DataNotFound` naming where to get it.
    * ``categories``: keep only these categories (default all five).
    * ``max_message_chars``: longest Stage-1 message before a session is split (default 3000).
    * Every :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Version History

    * v0: initial release.
    """

    task_note: ClassVar[str] = (
        "The questions are about the conversation you were shown; dates are relative to each session's date. "
        f"If the conversation does not say, answer: {REFUSAL}."
    )

    def __init__(
        self,
        data_path: str | os.PathLike[str] | None = None,
        categories: Sequence[int] | None = None,
        max_message_chars: int = 3000,
        **kwargs: Any,
    ) -> None:
        wanted = tuple(CATEGORY_NAMES) if categories is None else tuple(int(c) for c in categories)
        if not wanted or set(wanted) - set(CATEGORY_NAMES):
            raise InvalidConfig(
                f"categories must be a non-empty subset of {sorted(CATEGORY_NAMES)}, got {categories!r}"
            )
        if not isinstance(max_message_chars, int) or max_message_chars < 200:
            raise InvalidConfig(f"max_message_chars must be an int >= 200, got {max_message_chars!r}")
        self.conversations = load_locomo(data_path)
        self.max_message_chars = max_message_chars
        self.items = [
            (c, j) for c, conv in enumerate(self.conversations) for j, q in enumerate(conv.qa) if q.category in wanted
        ]
        if not self.items:
            raise InvalidConfig(f"the LoCoMo file has no questions in categories {sorted(wanted)}")
        self._material: dict[int, tuple[str, ...]] = {}
        super().__init__(**kwargs)

    def _num_tasks(self) -> int:
        return len(self.items)

    def _task_key(self, index: int) -> str:
        c, j = self.items[index]
        return f"{self.conversations[c].sample_id}/q{j}"

    def _sessions(self, c: int) -> tuple[str, ...]:
        if c not in self._material:
            conv = self.conversations[c]
            self._material[c] = tuple(
                part for s in conv.sessions for part in _session_parts(s, conv.speakers, self.max_message_chars)
            )
        return self._material[c]

    def _make_task(self, index: int) -> Task:
        c, j = self.items[index]
        conv = self.conversations[c]
        qa = conv.qa[j]
        material = self._sessions(c)
        facts = _evidence_sentences(conv, qa.evidence)
        return Task(
            task_id=self._task_key(index),
            query=qa.question,
            answers=(_gold(qa.answer, qa.category),),
            material=material,
            single_material="\n\n".join(material),
            facts=facts or None,
            extra={"category": qa.category, "category_name": CATEGORY_NAMES[qa.category], "sample_id": conv.sample_id},
        )

    def _grade(self, task: Task, answer: str) -> dict[str, Any]:
        category = int(task.extra["category"])
        score = locomo_score(answer, task.answers[0], category)
        exact = score if category == 5 else float(locomo_normalize(answer) == locomo_normalize(task.answers[0]))
        return {
            "task_score": score,
            "f1": score,
            "em": exact,
            "success": exact,
            "category": category,
            "category_name": CATEGORY_NAMES[category],
            "groups": [CATEGORY_NAMES[category]],  # agemem eval / run report scores by category
        }

    def _grade_unanswered(self, task: Task) -> dict[str, Any]:
        category = int(task.extra["category"])
        name = CATEGORY_NAMES[category]
        return {"task_score": None, "success": 0.0, "category": category, "category_name": name, "groups": [name]}
