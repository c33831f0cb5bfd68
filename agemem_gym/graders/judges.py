"""Judges: injectable scorers for answers and memories (offline defaults, LLM rubric option)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.graders.facts import memory_quality
from agemem_gym.graders.memory_terms import (
    JudgeReplyError,
    gold_fact_terms,
    parse_unit_score,
    relevance_prompt,
    storage_prompt,
)
from agemem_gym.graders.qa import best_score
from agemem_gym.memory.context_ops import ChatFn

__all__ = [
    "AnswerJudge",
    "F1Judge",
    "ExactMatchJudge",
    "LLMJudge",
    "MemoryJudge",
    "FactOverlapJudge",
    "LLMMemoryJudge",
    "make_judge",
    "make_memory_judge",
]

_NUMBER = re.compile(r"\d+(?:\.\d+)?")

ANSWER_RUBRIC = """Compare the predicted answer with the ground-truth answer and grade it from 0.0 to 1.0.
1.0: perfect or equivalent. 0.8-0.9: minor differences. 0.6-0.7: partially correct or close.
0.4-0.5: some correct elements with significant errors. 0.2-0.3: mostly incorrect. 0.0-0.1: wrong.
Reply with a single number only.

Question: {question}
Ground truth: {gold}
Predicted answer: {prediction}"""

MEMORY_RUBRIC = """Judge how well the predicted supporting facts support answering the question, compared
with the expected supporting facts. Are all expected facts covered? Are the predicted facts relevant?
Are there irrelevant facts? Grade from 0.0 to 1.0: 1.0 perfect match and no irrelevant facts;
0.8-0.9 minor omissions or one irrelevant fact; 0.6-0.7 partially correct, important facts missing;
0.4-0.5 significant errors or omissions; 0.2-0.3 mostly incorrect; 0.0-0.1 completely wrong.
Reply with a single number only.

Question: {question}
Answer: {answer}
Expected supporting facts:
{expected}
Predicted supporting facts:
{predicted}"""


def _parse_score(reply: str) -> float:
    found = _NUMBER.search(str(reply))
    return min(1.0, max(0.0, float(found.group()))) if found else 0.0


@runtime_checkable
class AnswerJudge(Protocol):
    """Scores an answer in [0, 1]."""

    name: str

    def score(self, prediction: str, golds: Sequence[str], question: str = "") -> float:
        """Score ``prediction`` against the acceptable answers ``golds``."""
        ...


class F1Judge:
    """HotpotQA answer F1 (offline default)."""

    name = "f1"

    def score(self, prediction: str, golds: Sequence[str], question: str = "") -> float:
        """Best F1 over the gold answers."""
        return best_score(prediction, golds, "f1")


class ExactMatchJudge:
    """HotpotQA exact match."""

    name = "em"

    def score(self, prediction: str, golds: Sequence[str], question: str = "") -> float:
        """Best exact match over the gold answers."""
        return best_score(prediction, golds, "em")


class LLMJudge:
    """The paper's LLM-as-judge rubric, with any chat callable (HF model, OpenAI-compatible client).

    Args:
        chat: ``list[dict] -> str``.
        name: Label for reports (e.g. the model name).
    """

    def __init__(self, chat: ChatFn, name: str = "llm") -> None:
        if not callable(chat):
            raise InvalidConfig("LLMJudge expects a chat callable list[dict] -> str")
        self.chat = chat
        self.name = name

    def score(self, prediction: str, golds: Sequence[str], question: str = "") -> float:
        """The model's 0–1 grade (0 when the reply holds no number)."""
        prompt = ANSWER_RUBRIC.format(question=question, gold=" | ".join(golds), prediction=prediction)
        return _parse_score(self.chat([{"role": "user", "content": prompt}]))


@runtime_checkable
class MemoryJudge(Protocol):
    """Scores stored memories against gold facts in [0, 1] (the paper's MQ)."""

    name: str

    def score(self, memories: Sequence[str], facts: Sequence[str], question: str = "", answer: str = "") -> float:
        """Memory quality of ``memories``."""
        ...


class FactOverlapJudge:
    """Offline memory judge (the default): everything from the gold supporting facts.

    MQ is the sentence-level F1 of stored memories against the gold facts; the reward's
    storage and relevance terms are :func:`~agemem_gym.graders.facts.storage_quality` and
    :func:`~agemem_gym.graders.facts.retrieval_relevance`, ``None`` on a task without gold
    facts (the term is then left out of ``R_memory``).
    """

    name = "fact-f1"

    def score(self, memories: Sequence[str], facts: Sequence[str], question: str = "", answer: str = "") -> float:
        """Sentence-level F1 (see :func:`agemem_gym.graders.facts.memory_quality`)."""
        return memory_quality(memories, facts).f1

    def storage(
        self, memories: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
    ) -> float | None:
        """Share of ``memories`` that state a gold fact no earlier one stated (``None`` without facts)."""
        return gold_fact_terms(memories, (), facts)[0]

    def relevance(
        self, retrieved: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
    ) -> float | None:
        """Share of ``retrieved`` that state a gold fact (``None`` without facts)."""
        return gold_fact_terms((), retrieved, facts)[1]


class LLMMemoryJudge:
    """The paper's LLM memory judge with a chat callable: MQ (App. C.2) and the reward's Eqs. 23 and 25.

    ``storage`` and ``relevance`` work from the question and its answers alone (gold facts
    are shown when the task has them), so tasks without gold facts keep both terms. An
    empty set scores 0 without asking the model; a reply with no score in [0, 1] raises
    :class:`~agemem_gym.graders.memory_terms.JudgeReplyError`, which the environment turns
    into a fallback and a note (:func:`~agemem_gym.graders.memory_terms.judge_memory_terms`).
    """

    def __init__(self, chat: ChatFn, name: str = "llm") -> None:
        if not callable(chat):
            raise InvalidConfig("LLMMemoryJudge expects a chat callable list[dict] -> str")
        self.chat = chat
        self.name = name

    def score(self, memories: Sequence[str], facts: Sequence[str], question: str = "", answer: str = "") -> float:
        """The model's 0–1 grade."""
        prompt = MEMORY_RUBRIC.format(
            question=question,
            answer=answer,
            expected="\n".join(f"[FACT_{i + 1}] {f}" for i, f in enumerate(facts)),
            predicted="\n".join(f"- {m}" for m in memories) or "(none)",
        )
        return _parse_score(self.chat([{"role": "user", "content": prompt}]))

    def storage(
        self, memories: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
    ) -> float | None:
        """The model's share of high-quality Stage-1 additions (Eq. 23; 0 when nothing was added)."""
        if not memories:
            return 0.0
        return self._ask(storage_prompt(memories, question, answers, facts))

    def relevance(
        self, retrieved: Sequence[str], question: str, answers: Sequence[str], facts: Sequence[str] | None
    ) -> float | None:
        """The model's relevance of the retrieved set to the question (Eq. 25; 0 when nothing was retrieved)."""
        if not retrieved:
            return 0.0
        return self._ask(relevance_prompt(retrieved, question, answers, facts))

    def _ask(self, prompt: str) -> float:
        reply = str(self.chat([{"role": "user", "content": prompt}]))
        value = parse_unit_score(reply)
        if value is None:
            raise JudgeReplyError(f"no score in [0, 1] in the reply {reply[:80]!r}")
        return value


_ANSWER_JUDGES: dict[str, Callable[[], AnswerJudge]] = {"f1": F1Judge, "em": ExactMatchJudge}


_LLM_KINDS = ("hf", "openai")


def _chat_spec(spec: str) -> bool:
    kind, _, rest = spec.partition(":")
    return kind in _LLM_KINDS and bool(rest)


def _judge_chat(spec: str, base_url: str | None, max_new_tokens: int) -> ChatFn:
    """The chat callable of an ``hf:``/``openai:`` judge spec (a short reply: a score is all it needs)."""
    from agemem_gym.policies.llm.chat import make_chat

    return make_chat(spec, base_url=base_url, max_new_tokens=max_new_tokens)


def make_judge(spec: str | AnswerJudge | None, base_url: str | None = None) -> AnswerJudge:
    """An answer judge from a spec or an object; ``None`` gives F1.

    Args:
        spec: ``"f1"``, ``"em"``, ``"hf:MODEL"`` or ``"openai:MODEL"`` (the paper's rubric on
            that chat model, :class:`LLMJudge`), or an object with ``score``.
        base_url: Endpoint for ``openai:`` (default ``$OPENAI_BASE_URL``).

    Returns:
        The judge.
    """
    if spec is None:
        return F1Judge()
    if isinstance(spec, str):
        if _chat_spec(spec):
            chat = _judge_chat(spec, base_url, max_new_tokens=8)
            return LLMJudge(chat, name=getattr(chat, "name", spec))
        if spec not in _ANSWER_JUDGES:
            raise unknown_name("judge", spec, _ANSWER_JUDGES)
        return _ANSWER_JUDGES[spec]()
    if hasattr(spec, "score"):
        return spec
    raise InvalidConfig(
        f"judge must be 'f1', 'em', 'hf:MODEL', 'openai:MODEL' or an object with score(); got {type(spec).__name__}"
    )


def make_memory_judge(spec: str | MemoryJudge | None, base_url: str | None = None) -> MemoryJudge:
    """A memory judge (MQ, and the reward's storage and relevance terms) from a spec or an object.

    Args:
        spec: ``None`` or ``"fact-f1"`` (offline, :class:`FactOverlapJudge`), ``"hf:MODEL"`` or
            ``"openai:MODEL"`` (:class:`LLMMemoryJudge` on that chat model), or an object with
            ``score``. An object that also has ``storage`` and ``relevance``
            (:class:`~agemem_gym.graders.memory_terms.MemoryTermsJudge`) scores those reward
            terms too; otherwise they come from the gold facts.
        base_url: Endpoint for ``openai:`` (default ``$OPENAI_BASE_URL``).

    Returns:
        The judge.
    """
    if spec is None or spec == FactOverlapJudge.name:
        return FactOverlapJudge()
    if isinstance(spec, str):
        if not _chat_spec(spec):
            raise unknown_name("memory judge", spec, [FactOverlapJudge.name, "hf:MODEL", "openai:MODEL"])
        # small models often open with a few words ("The answer is 0.5."): room for them
        chat = _judge_chat(spec, base_url, max_new_tokens=16)
        return LLMMemoryJudge(chat, name=getattr(chat, "name", spec))
    if hasattr(spec, "score"):
        return spec
    raise InvalidConfig(
        "memory_judge must be 'fact-f1', 'hf:MODEL', 'openai:MODEL' or an object with score(); "
        f"got {type(spec).__name__}"
    )
