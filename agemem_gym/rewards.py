"""The paper's trajectory reward (Eqs. 16–26), computed from an :class:`EpisodeTrace`.

``R = w_task·R_task + w_context·R_context + w_memory·R_memory [+ w_te·R_tool_efficiency] + P``

* ``R_task``: the judge's score of the answer (offline default: HotpotQA F1), or the
  no-answer value (−1).
* ``R_context = α·(R_compression, R_preventive, R_preservation)``:
  compression ``max(0, 1 − T_used/T_max)`` with T_used the context tokens when answering;
  preventive 1 if a Summary/Filter ran before any overflow; preservation 1 if at least half
  of the query's key terms appear, when answering, in what the *environment* put in the
  context: user and tool messages, retrieved memories and summaries, never the agent's own
  turns (an agent that repeats the question has not preserved it) and never the live query
  message (pinned here, so checking it would always give 1).
* ``R_memory = β·(R_storage, R_maintenance, R_relevance)``: storage is the share of Stage-1
  additions that state a new gold fact; maintenance 1 if any delete or any update that
  changed a memory ran (``RewardConfig.maintenance`` keeps the paper's literal "any update");
  relevance the share of memories retrieved in Stage 3 that state a gold fact. A memory
  judge can score storage and relevance instead (the paper's LLM, Eqs. 23 and 25: pass its
  :class:`~agemem_gym.graders.memory_terms.MemoryTerms`). A term with no score (no gold
  facts and no judge) is left out, its weight spread over the others.
* ``P = P_rounds + P_overflow + P_invalid``: −1 when Stage 3 ran out of rounds (or, with
  ``RewardConfig.rounds_penalty_early_stages``, when any stage's round cap was hit without an
  ``<answer>``; charged once), −0.5 when the context exceeded T_max when answering, and the
  invalid-call penalty (floored).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agemem_gym.config import RewardConfig
from agemem_gym.graders.facts import retrieval_relevance, storage_quality
from agemem_gym.graders.memory_terms import MemoryTerms
from agemem_gym.text import STOPWORDS, content_words
from agemem_gym.tools import ADD_MEMORY, FILTER_CONTEXT, RETRIEVE_MEMORY, SUMMARY_CONTEXT

if TYPE_CHECKING:
    from agemem_gym.tools import ToolResult

__all__ = [
    "EpisodeTrace",
    "RewardBreakdown",
    "compute_reward",
    "key_terms",
    "preservation",
    "record_call",
    "tool_efficiency",
]

_PROPER = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of|the|de|von|van|and)?\s*[A-Z][\w'’-]*)*")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")


@dataclasses.dataclass
class EpisodeTrace:
    """What the environment records during an episode for the reward and the final ``info``.

    ``updates`` counts the updates that changed a memory, ``noop_updates`` those that
    rewrote it as it was. ``rounds_exceeded`` is Stage 3 running out of rounds without an
    answer (P_rounds); ``rounds_exceeded_stages`` lists, once each, every stage in which some
    message's round cap was hit without an ``<answer>`` (Stage 3 included).
    """

    answer: str | None = None
    stage1_added: list[str] = dataclasses.field(default_factory=list)
    updates: int = 0
    noop_updates: int = 0
    deletes: int = 0
    retrieved_stage3: dict[str, str] = dataclasses.field(default_factory=dict)
    first_reduction_step: int | None = None
    first_overflow_step: int | None = None
    answer_context_tokens: int = 0
    answer_context: list[str] = dataclasses.field(default_factory=list)
    rounds_exceeded: bool = False
    rounds_exceeded_stages: list[int] = dataclasses.field(default_factory=list)
    stage3_rounds: int = 0
    invalid_calls: int = 0
    tool_calls: Counter[str] = dataclasses.field(default_factory=Counter)
    turns: int = 0


def record_call(trace: EpisodeTrace, result: ToolResult, *, stage: int, step: int) -> None:
    """Note in the episode trace what one call did, for the reward.

    Reads only what the result says it did (``ok``, ``memory_op``, ``touches``...), never the
    tool's name: Stage-1 additions (storage), updates and deletions (maintenance), memories
    read in Stage 3 (relevance) and the first context reduction (preventive).
    """
    if not result.ok:
        return
    if result.memory_op == "added":
        if stage == 1:
            trace.stage1_added.append(str(result.content))
    elif result.memory_op == "updated":
        if result.changed:
            trace.updates += 1
        else:
            trace.noop_updates += 1
    elif result.memory_op == "deleted":
        trace.deletes += 1
    elif "ltm_read" in result.touches:
        if stage == 3:
            for item in result.retrieved:
                trace.retrieved_stage3.setdefault(item.id, item.content)
    elif "context" in result.touches and trace.first_reduction_step is None:
        trace.first_reduction_step = step


@dataclasses.dataclass(frozen=True)
class RewardBreakdown:
    """Every component of the trajectory reward."""

    total: float
    task: float
    task_score: float | None
    context: float
    compression: float
    preventive: float
    preservation: float
    memory: float
    storage: float | None
    maintenance: float
    relevance: float | None
    tool_efficiency: float
    rounds_penalty: float
    overflow_penalty: float
    invalid_penalty: float

    def components(self) -> dict[str, float | None]:
        """The reward terms, for ``info["reward_components"]``."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.endswith("_penalty") and k != "total"}

    def penalties(self) -> dict[str, float]:
        """The penalty terms, for ``info["penalties"]``."""
        return {"rounds": self.rounds_penalty, "overflow": self.overflow_penalty, "invalid": self.invalid_penalty}


def key_terms(question: str) -> list[str]:
    """The key terms K_q of a question: proper-noun phrases and numbers, else content words.

    Example:
        >>> key_terms("Which city did Gutzon Borglum live in after 1927?")
        ['gutzon borglum', '1927']
    """
    terms: list[str] = []
    for m in _PROPER.finditer(question):
        phrase = m.group().strip()
        words = phrase.split()
        # a capitalised question word at the start is not a name
        while words and words[0].lower() in STOPWORDS | {"which", "who", "what", "when", "where", "how"}:
            words = words[1:]
        if words:
            terms.append(" ".join(words).lower())
    terms += [n.strip(".,") for n in _NUMBER.findall(question)]
    if not terms:
        terms = content_words(question)
    return list(dict.fromkeys(t for t in terms if t))


def preservation(question: str, context_without_query: Sequence[str]) -> float:
    """1.0 if at least half of the question's key terms appear in the other context messages."""
    terms = key_terms(question)
    if not terms:
        return 1.0
    text = "\n".join(context_without_query).lower()
    found = sum(1 for t in terms if t in text)
    return float(found >= 0.5 * len(terms))


def tool_efficiency(trace: EpisodeTrace, max_rounds: int) -> float:
    """The released code's tool-efficiency term (scale, presence and efficiency bonuses), in [−0.5, 1]."""
    calls = sum(trace.tool_calls.values())
    ratio = calls / max(1, trace.turns)
    value = 0.2 if 0.3 <= ratio <= 2 else (-0.1 if ratio > 3 else 0.0)
    value += 0.2 if trace.tool_calls[RETRIEVE_MEMORY] else 0.0
    value += 0.2 if trace.tool_calls[SUMMARY_CONTEXT] or trace.tool_calls[FILTER_CONTEXT] else 0.0
    value += 0.1 if trace.tool_calls[ADD_MEMORY] else 0.0
    value += 0.2 * (1 - min(trace.stage3_rounds, max_rounds) / max_rounds)
    return min(1.0, max(-0.5, value))


def _weighted(values: Sequence[float | None], weights: Sequence[float]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights) if v is not None]
    total_w = sum(w for _, w in pairs)
    if total_w <= 0:
        return 0.0
    # renormalise so a term without gold data does not silently shrink the component
    return sum(v * w for v, w in pairs) * (sum(weights) / total_w)


def _preventive(trace: EpisodeTrace) -> float:
    """1.0 if a Summary/Filter ran before the context first overflowed (or it never did)."""
    reduced, overflowed = trace.first_reduction_step, trace.first_overflow_step
    return float(reduced is not None and (overflowed is None or reduced < overflowed))


def _context_terms(
    trace: EpisodeTrace, question: str, max_context_tokens: int, answered: bool
) -> tuple[float, float, float]:
    """Compression, preventive and preservation; compression and preservation need an answer."""
    if not answered:
        return 0.0, _preventive(trace), 0.0
    compression = max(0.0, 1.0 - trace.answer_context_tokens / max_context_tokens)
    return compression, _preventive(trace), preservation(question, trace.answer_context)


def _memory_terms(
    trace: EpisodeTrace, facts: Sequence[str] | None, judged: MemoryTerms | None = None
) -> tuple[float | None, float | None]:
    """Storage and relevance: from ``judged`` when given, else the gold facts (``None`` without them)."""
    if judged is not None:
        return judged.storage, judged.relevance
    if not facts:
        return None, None
    storage = storage_quality(trace.stage1_added, facts)
    return storage, retrieval_relevance(list(trace.retrieved_stage3.values()), facts)


def _maintenance(trace: EpisodeTrace, config: RewardConfig) -> float:
    """R_maintenance (Eq. 24): 1 if a delete or an update that changed a memory ran.

    A no-op update counts too when ``config.maintenance == "any_update"`` (the paper's literal
    indicator).
    """
    updates = trace.updates + (trace.noop_updates if config.maintenance == "any_update" else 0)
    return float(updates + trace.deletes > 0)


def _rounds_penalty(trace: EpisodeTrace, config: RewardConfig) -> float:
    """P_rounds, charged once: Stage 3 ran out of rounds, or (opt-in) any stage hit its cap."""
    early = config.rounds_penalty_early_stages and any(s < 3 for s in trace.rounds_exceeded_stages)
    return config.rounds_penalty if trace.rounds_exceeded or early else 0.0


def _penalties(
    trace: EpisodeTrace, config: RewardConfig, max_context_tokens: int, answered: bool
) -> tuple[float, float, float]:
    """P_rounds, P_overflow and the floored invalid-call penalty."""
    rounds_p = _rounds_penalty(trace, config)
    overflow_p = config.overflow_penalty if answered and trace.answer_context_tokens > max_context_tokens else 0.0
    invalid_p = 0.0
    if trace.invalid_calls:
        invalid_p = max(config.invalid_penalty_floor, config.invalid_call_penalty * trace.invalid_calls)
    return rounds_p, overflow_p, invalid_p


def _weighted_total(config: RewardConfig, task: float, answered: bool, terms: tuple[float, float, float]) -> float:
    """``w_task·R_task + w_context·R_context + w_memory·R_memory + w_te·R_te`` for ``terms = (context, memory, te)``."""
    context, memory, te = terms
    # the released code adds the no-answer value unweighted (``weight_no_answer=False``)
    task_term = config.w_task * task if (answered or config.weight_no_answer) else task
    return task_term + config.w_context * context + config.w_memory * memory + config.w_tool_efficiency * te


def _clip(total: float, bounds: tuple[float, float] | None) -> float:
    return total if bounds is None else min(bounds[1], max(bounds[0], total))


def compute_reward(
    trace: EpisodeTrace,
    config: RewardConfig,
    *,
    task_score: float | None,
    question: str,
    facts: Sequence[str] | None,
    max_context_tokens: int,
    max_rounds: int,
    memory_terms: MemoryTerms | None = None,
) -> RewardBreakdown:
    """The trajectory reward of an ended episode.

    Args:
        trace: What happened.
        config: Weights and penalties.
        task_score: The judge's score of the answer, ``None`` when there was no answer.
        question: The task query (for the preservation term).
        facts: Gold supporting facts, ``None`` when the task has none.
        max_context_tokens: T_max.
        max_rounds: Stage-3 round cap (for the tool-efficiency term).
        memory_terms: R_storage and R_relevance as a memory judge scored them
            (:func:`~agemem_gym.graders.memory_terms.judge_memory_terms`); ``None``: from ``facts``.

    Returns:
        The breakdown; ``total`` is what the last step returns.
    """
    answered = task_score is not None
    task = config.no_answer if task_score is None else float(task_score)
    compression, preventive, preserved = _context_terms(trace, question, max_context_tokens, answered)
    storage, relevance = _memory_terms(trace, facts, memory_terms)
    maintenance = _maintenance(trace, config)
    context = _weighted([compression, preventive, preserved], config.context_weights)
    memory = _weighted([storage, maintenance, relevance], config.memory_weights)
    te = tool_efficiency(trace, max_rounds) if config.w_tool_efficiency else 0.0
    rounds_p, overflow_p, invalid_p = _penalties(trace, config, max_context_tokens, answered)
    total = _weighted_total(config, task, answered, (context, memory, te)) + (rounds_p + overflow_p + invalid_p)
    return RewardBreakdown(
        total=float(_clip(total, config.clip)),
        task=task,
        task_score=task_score,
        context=context,
        compression=compression,
        preventive=preventive,
        preservation=preserved,
        memory=memory,
        storage=storage,
        maintenance=maintenance,
        relevance=relevance,
        tool_efficiency=te,
        rounds_penalty=rounds_p,
        overflow_penalty=overflow_p,
        invalid_penalty=invalid_p,
    )
