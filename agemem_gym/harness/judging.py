"""Judges of ``agemem eval``: the offline default and the paper's LLM rubric on any chat model.

``"f1"`` (default) and ``"em"`` grade answers offline against the gold answers and MQ with the
sentence-level fact F1; ``"hf:MODEL"`` (a local Hugging Face model, e.g. ``hf:smollm2``) and
``"openai:MODEL"`` (an OpenAI-compatible endpoint) grade both with the paper's 0–1 rubrics
(:class:`~agemem_gym.graders.judges.LLMJudge`, :class:`~agemem_gym.graders.judges.LLMMemoryJudge`).
"""

from __future__ import annotations

from typing import Any

from agemem_gym.error import InvalidConfig
from agemem_gym.graders.judges import ExactMatchJudge, F1Judge, FactOverlapJudge, LLMJudge, LLMMemoryJudge

__all__ = ["JudgeSpec", "make_judges"]

JudgeSpec = str

_OFFLINE = {
    "f1": "offline answer token F1 against the gold answers (HotpotQA official normalisation)",
    "em": "offline exact match against the gold answers (HotpotQA official normalisation)",
}


def make_judges(spec: JudgeSpec, base_url: str | None = None) -> tuple[Any, Any, dict[str, str]]:
    """``(answer_judge, memory_judge, description)`` for a judge spec.

    Args:
        spec: ``"f1"``, ``"em"``, ``"hf:MODEL"`` or ``"openai:MODEL"``.
        base_url: Endpoint for ``openai:`` (default ``$OPENAI_BASE_URL``).

    Returns:
        The judges to pass to ``gym.make`` (objects with ``score``) and a description for reports.
    """
    if spec in _OFFLINE:
        answer = F1Judge() if spec == "f1" else ExactMatchJudge()
        memory = FactOverlapJudge()
        return answer, memory, {"answer": spec, "memory": memory.name, "description": _OFFLINE[spec]}
    if isinstance(spec, str) and spec.split(":", 1)[0] in ("hf", "openai"):
        from agemem_gym.policies.llm.chat import make_chat

        chat = make_chat(spec, base_url=base_url, max_new_tokens=8)
        return (
            LLMJudge(chat, name=chat.name),
            LLMMemoryJudge(chat, name=chat.name),
            {
                "answer": chat.name,
                "memory": chat.name,
                "description": f"LLM-as-judge with the paper's 0-1 rubrics (App. C.2) on {chat.name}",
            },
        )
    raise InvalidConfig(f"judge must be 'f1', 'em', 'hf:MODEL' or 'openai:MODEL', got {spec!r}")
