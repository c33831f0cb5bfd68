"""The judged terms of the memory reward: storage quality (Eq. 23) and retrieval relevance (Eq. 25).

The paper asks an LLM two questions at the end of an episode: which of the memories added
in Stage 1 are high quality given the query q and its answer A_q
(``R_storage = N_high_quality / max(1, N_total)``, Eq. 23), and how relevant the set R of
memories retrieved in Stage 3 is to q (``R_relevance = S_LLM(R, q)``, Eq. 25). A
:class:`MemoryTermsJudge` answers both. The offline default,
:class:`~agemem_gym.graders.judges.FactOverlapJudge`, answers them from the gold supporting
facts and has no answer (``None``) on tasks without them; an LLM judge
(:class:`~agemem_gym.graders.judges.LLMMemoryJudge`) answers from q and A_q alone, so the
terms stay in the reward there.

:func:`judge_memory_terms` is what the environments call. A judge that raises, or returns
something that is not a number in [0, 1] (an LLM reply with no readable score, say), never
ends the episode: that term falls back to the gold-fact score (``None`` without gold facts,
which leaves it out of the weighted mean) and :attr:`MemoryTerms.notes` says why.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agemem_gym.graders.facts import retrieval_relevance, storage_quality

__all__ = [
    "JudgeReplyError",
    "MemoryTerms",
    "MemoryTermsJudge",
    "gold_fact_terms",
    "judge_memory_terms",
    "parse_unit_score",
    "relevance_prompt",
    "storage_prompt",
]

MAX_ENTRIES = 20
"""Entries shown to an LLM judge; the storage share is over the entries shown (as the released code's)."""
MAX_CHARS = 300
"""Characters kept of each entry shown to an LLM judge (the released code's cut)."""

STORAGE_RUBRIC = """An agent read some material and chose what to save in its long-term memory, knowing that
it would be asked a question about the material later. Grade what it saved.

Question: {question}
Correct answer: {answers}
{facts}Saved memories, in the order they were saved:
{entries}

A saved memory is high quality when it holds information that helps to answer the question
(the answer itself, or a fact on the way to it) and does not repeat what an earlier memory in
the list already says. Memories about unrelated things, and near copies of earlier ones, are
low quality. Reply with the share of saved memories that are high quality, a number from 0.0
to 1.0 (two good memories out of four is 0.5). Reply with the number only."""

RELEVANCE_RUBRIC = """An agent searched its long-term memory while answering a question. Grade what the search
returned.

Question: {question}
Correct answer: {answers}
{facts}Retrieved memories:
{entries}

Taken together, how relevant are the retrieved memories to answering the question? 1.0: they
hold what is needed and little else. 0.5: some help, many are off the topic. 0.0: none of them
helps. Reply with a number from 0.0 to 1.0 only."""

# a number, optionally a percentage or the numerator of "a/b" / "a out of b"
_SCORE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(?:(%)|(?:/|\bout of\b)\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)


class JudgeReplyError(ValueError):
    """An LLM judge's reply held no score in [0, 1]."""


@runtime_checkable
class MemoryTermsJudge(Protocol):
    """Scores the storage and relevance terms of the memory reward, each in [0, 1] or ``None``.

    ``None`` means "cannot score this here" (the gold-fact judge on a task without gold
    facts): the term is left out of the weighted mean of ``R_memory``.
    """

    name: str

    def storage(
        self, memories: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
    ) -> float | None:
        """Share of the Stage-1 additions ``memories`` that are high quality (Eq. 23)."""
        ...

    def relevance(
        self, retrieved: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
    ) -> float | None:
        """Relevance of the Stage-3 retrieved set ``retrieved`` to ``question`` (Eq. 25)."""
        ...


@dataclasses.dataclass(frozen=True)
class MemoryTerms:
    """The storage and relevance terms of one episode, and what went wrong judging them.

    Attributes:
        storage: R_storage, ``None`` when it cannot be scored.
        relevance: R_relevance, ``None`` when it cannot be scored.
        notes: One line per term whose judge failed (the gold-fact score was used instead).
    """

    storage: float | None
    relevance: float | None
    notes: tuple[str, ...] = ()


def gold_fact_terms(
    added: Sequence[str], retrieved: Sequence[str], facts: Sequence[str] | None
) -> tuple[float | None, float | None]:
    """``(storage, relevance)`` from the gold facts (both ``None`` without them)."""
    if not facts:
        return None, None
    return storage_quality(added, facts), retrieval_relevance(retrieved, facts)


def parse_unit_score(reply: str) -> float | None:
    """The first score in [0, 1] in an LLM reply, or ``None`` when there is none.

    A ``<think>`` block is skipped. ``"85%"`` reads as 0.85 and ``"3/4"`` or ``"3 out of 4"`` as
    0.75; numbers outside [0, 1] ("3 entries...") are passed over, not clipped, so a count
    or a 0–10 grade is never mistaken for a share.

    Example:
        >>> parse_unit_score("Of the 3 memories, 2 help: 0.67")
        0.67
        >>> parse_unit_score("Score: 8") is None
        True
    """
    for match in _SCORE.finditer(_THINK.sub(" ", str(reply))):
        value = float(match.group(1))
        if match.group(2):
            value /= 100.0
        elif match.group(3):
            denominator = float(match.group(3))
            if denominator <= 0:
                continue
            value /= denominator
        if 0.0 <= value <= 1.0:
            return value
    return None


def _entries(texts: Sequence[str]) -> str:
    shown = [" ".join(str(t).split())[:MAX_CHARS] for t in texts[:MAX_ENTRIES]]
    return "\n".join(f"[{i + 1}] {t}" for i, t in enumerate(shown)) or "(none)"


def _facts_block(facts: Sequence[str] | None) -> str:
    if not facts:
        return ""
    return "Reference facts that support the answer:\n" + "\n".join(f"- {f}" for f in facts[:MAX_ENTRIES]) + "\n"


def storage_prompt(memories: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None) -> str:
    """The storage rubric (Eq. 23) filled in; gold facts are shown when the task has them."""
    return _fill(STORAGE_RUBRIC, memories, question, answers, facts)


def relevance_prompt(
    retrieved: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
) -> str:
    """The relevance rubric (Eq. 25) filled in; gold facts are shown when the task has them."""
    return _fill(RELEVANCE_RUBRIC, retrieved, question, answers, facts)


def _fill(rubric: str, texts: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None) -> str:
    return rubric.format(
        question=question,
        answers=" | ".join(answers) or "(not given)",
        facts=_facts_block(facts),
        entries=_entries(texts),
    )


def _checked(value: object) -> float | None:
    """``value`` as a float in [0, 1], or ``None``; raises :class:`JudgeReplyError` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JudgeReplyError(f"returned {type(value).__name__} {value!r}, not a number")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise JudgeReplyError(f"returned {value!r}, outside [0, 1]")
    return float(value)


def judge_memory_terms(
    judge: object,
    added: Sequence[str],
    retrieved: Sequence[str],
    *,
    question: str,
    answers: Sequence[str],
    facts: Sequence[str] | None,
) -> MemoryTerms:
    """Score R_storage and R_relevance with ``judge``; a failing judge never raises.

    Args:
        judge: A :class:`MemoryTermsJudge`. An object without ``storage``/``relevance`` (a
            memory-quality judge with only ``score``) gets the gold-fact terms.
        added: Contents of the memories added in Stage 1.
        retrieved: Contents of the distinct memories retrieved in Stage 3.
        question: The query q.
        answers: The gold answers A_q.
        facts: Gold supporting facts, ``None`` or empty when the task has none.

    Returns:
        The two terms. A term whose judge raised or returned something other than ``None``
        or a number in [0, 1] gets the gold-fact score instead, with a line in ``notes``.
    """
    gold = gold_fact_terms(added, retrieved, facts)
    storage, relevance = getattr(judge, "storage", None), getattr(judge, "relevance", None)
    if not (callable(storage) and callable(relevance)):
        return MemoryTerms(*gold)
    name = getattr(judge, "name", type(judge).__name__)
    values: list[float | None] = []
    notes: list[str] = []
    for term, method, texts, fallback in zip(("storage", "relevance"), (storage, relevance), (added, retrieved), gold):
        try:
            values.append(_checked(method(list(texts), question, list(answers), facts)))
        except Exception as exc:  # a judge (a model, an endpoint, user code) must never end the episode
            values.append(fallback)
            used = "left out (no gold facts)" if fallback is None else f"the gold-fact score {fallback:.3f} used"
            notes.append(f"{name}: {term} judge failed ({type(exc).__name__}: {exc}); {used}")
    return MemoryTerms(values[0], values[1], tuple(notes))
