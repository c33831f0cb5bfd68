"""Judges of ``agemem eval``: the offline default and the paper's LLM rubric on any chat model.

``"f1"`` (default) and ``"em"`` grade answers offline against the gold answers, and MQ and the
reward's storage and relevance terms from the gold facts; ``"hf:MODEL"`` (a local Hugging Face
model, e.g. ``hf:smollm2``) and ``"openai:MODEL"`` (an OpenAI-compatible endpoint) grade all of
them with 0–1 rubrics (:class:`~agemem_gym.graders.judges.LLMJudge`,
:class:`~agemem_gym.graders.judges.LLMMemoryJudge`), built by the same factories as
``gym.make(..., judge=..., memory_judge=...)``.
"""

from __future__ import annotations

from typing import Any

from agemem_gym.error import Error, InvalidConfig
from agemem_gym.graders.judges import ExactMatchJudge, F1Judge, FactOverlapJudge, make_judge, make_memory_judge

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
        answer_judge, memory_judge = make_judge(spec, base_url), make_memory_judge(spec, base_url)
        try:
            _check_judge_model(getattr(answer_judge, "chat", None))
        except Error as exc:
            raise type(exc)(f"judge {spec!r} cannot be used: {exc}") from exc
        return (
            answer_judge,
            memory_judge,
            {
                "answer": answer_judge.name,
                "memory": memory_judge.name,
                "description": (
                    f"LLM-as-judge on {answer_judge.name}: the paper's 0-1 rubrics for answers and MQ (App. C.2), "
                    "and rubrics for the reward's storage quality and retrieval relevance (Eqs. 23, 25)"
                ),
            },
        )
    raise InvalidConfig(f"judge must be 'f1', 'em', 'hf:MODEL' or 'openai:MODEL', got {spec!r}")


def _check_judge_model(chat: Any) -> None:
    """Fail before any episode when the judge's model cannot be had (it loads lazily, on the first score).

    A local model is checked by name or folder (nothing loads); an endpoint must answer and,
    when it lists its models, list this one.

    Raises:
        UnknownName: A local model that is neither bundled nor a folder.
        DataNotFound: A folder without a model.
        EndpointError: The endpoint cannot be reached.
        InvalidConfig: The endpoint lists its models and the judge's is not among them.
    """
    from agemem_gym.policies.llm.chat import HFChat, OpenAIChat
    from agemem_gym.policies.llm.models import check_model

    if isinstance(chat, HFChat):
        check_model(chat.model_name)
    elif isinstance(chat, OpenAIChat):
        served = chat.client.models()
        if served and chat.model not in served:
            raise InvalidConfig(
                f"judge: {chat.base_url} does not list model {chat.model!r}; it serves: {', '.join(served)}"
            )
