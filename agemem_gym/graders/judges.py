"""Judges: injectable scorers for answers and memories (offline defaults, LLM rubric option)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.graders.facts import memory_quality
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
    """Offline MQ: sentence-level F1 of stored memories against gold facts."""

    name = "fact-f1"

    def score(self, memories: Sequence[str], facts: Sequence[str], question: str = "", answer: str = "") -> float:
        """Sentence-level F1 (see :func:`agemem_gym.graders.facts.memory_quality`)."""
        return memory_quality(memories, facts).f1


class LLMMemoryJudge:
    """The paper's MQ rubric with a chat callable."""

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


_ANSWER_JUDGES: dict[str, Callable[[], AnswerJudge]] = {"f1": F1Judge, "em": ExactMatchJudge}


def make_judge(spec: str | AnswerJudge | None) -> AnswerJudge:
    """An answer judge from a name (``"f1"``, ``"em"``) or an object; ``None`` gives F1."""
    if spec is None:
        return F1Judge()
    if isinstance(spec, str):
        if spec not in _ANSWER_JUDGES:
            raise unknown_name("judge", spec, _ANSWER_JUDGES)
        return _ANSWER_JUDGES[spec]()
    if hasattr(spec, "score"):
        return spec
    raise InvalidConfig(f"judge must be 'f1', 'em' or an object with score(); got {type(spec).__name__}")
