"""The paper's trajectory reward (Eqs. 16–26), computed from an :class:`EpisodeTrace`.

``R = w_task·R_task + w_context·R_context + w_memory·R_memory [+ w_te·R_tool_efficiency] + P``

* ``R_task``: the judge's score of the answer (offline default: HotpotQA F1), or the
  no-answer value (−1).
* ``R_context = α·(R_compression, R_preventive, R_preservation)``:
  compression ``max(0, 1 − T_used/T_max)`` with T_used the context tokens when answering;
  preventive 1 if, before any overflow, a Summary/Filter call *reduced* the context while
  it was under pressure: the messages the environment delivered unasked (system prompt and
  user messages) held at least ``RewardConfig.preventive_threshold`` × T_max tokens (a call
  that removes nothing, or trims a near-empty context, prevents no overflow); preservation 1
  if at least half of the query's key terms appear, when answering, in what the
  *environment* put in the context: user and tool messages, and the environment's words in
  retrieved memories and summaries (:class:`~agemem_gym.turns.TurnEngine` tracks which words
  of a memory the agent copied from the environment). Never the agent's own words: an agent
  that repeats the question, in a turn or through a memory it wrote, has not preserved it;
  and never the live query message (pinned here, so checking it would always give 1).
* ``R_memory = β·(R_storage, R_maintenance, R_relevance)``: storage is the mean gold share
  (:func:`~agemem_gym.graders.facts.gold_share`: the part of a memory that states a gold fact
  no earlier memory stated) of the memories added in Stage 1, as they stood when Stage 1
  ended; relevance the mean gold share of the memories retrieved in Stage 3; maintenance 1
  if an update or delete removed a statement the environment had made stale (the task's
  ``stale`` statements; not scored on a task where nothing goes stale).
  ``RewardConfig.maintenance`` offers the looser ``"changed"`` (any update that changes a
  memory's words, or any delete) and the paper's literal ``"any_update"``. A memory judge
  can score storage and relevance instead (the paper's LLM, Eqs. 23 and 25: pass its
  :class:`~agemem_gym.graders.memory_terms.MemoryTerms`). A term with no score (no gold
  facts and no judge; maintenance with nothing stale) is left out, its weight spread over
  the others.
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
from agemem_gym.graders.facts import holds_stale, retrieval_relevance, storage_quality
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

    ``stage1_added`` holds the memories added in Stage 1 as they stood when Stage 1 ended
    (a Stage-1 update rewrites its entry; ``stage1_ids`` maps each id to its entry).
    ``updates`` counts the updates that changed a memory's words, ``noop_updates`` the others;
    ``revisions`` lists ``(content before, content after)`` of each of those changing updates
    and of each delete (``None`` after). ``reductions`` lists ``(step, pressure)`` of each
    Summary/Filter call that reduced the context, pressure being the tokens the environment
    had delivered unasked over T_max. ``rounds_exceeded`` is Stage 3 running out of rounds
    without an answer (P_rounds); ``rounds_exceeded_stages`` lists, once each, every stage in
    which some message's round cap was hit without an ``<answer>`` (Stage 3 included).
    """

    answer: str | None = None
    stage1_added: list[str] = dataclasses.field(default_factory=list)
    stage1_ids: dict[str, int] = dataclasses.field(default_factory=dict)
    updates: int = 0
    noop_updates: int = 0
    deletes: int = 0
    revisions: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    retrieved_stage3: dict[str, str] = dataclasses.field(default_factory=dict)
    reductions: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    first_overflow_step: int | None = None
    answer_context_tokens: int = 0
    answer_context: list[str] = dataclasses.field(default_factory=list)
    rounds_exceeded: bool = False
    rounds_exceeded_stages: list[int] = dataclasses.field(default_factory=list)
    stage3_rounds: int = 0
    invalid_calls: int = 0
    tool_calls: Counter[str] = dataclasses.field(default_factory=Counter)
    turns: int = 0


def record_call(trace: EpisodeTrace, result: ToolResult, *, stage: int, step: int, pressure: float) -> None:
    """Note in the episode trace what one call did, for the reward.

    Reads only what the result says it did (``ok``, ``memory_op``, ``reduced``...), never the
    tool's name: Stage-1 additions and their Stage-1 rewrites (storage), changing updates and
    deletions (maintenance), memories read in Stage 3 (relevance) and context reductions
    (preventive).

    Args:
        trace: The episode's trace.
        result: What the call did.
        stage: The stage it ran in.
        step: The env step.
        pressure: Tokens the environment had delivered unasked (system prompt, user
            messages) when the turn began, over T_max.
    """
    if not result.ok:
        return
    if result.memory_op == "added":
        if stage == 1 and result.memory_id is not None:
            trace.stage1_ids[result.memory_id] = len(trace.stage1_added)
            trace.stage1_added.append(str(result.content))
    elif result.memory_op == "updated":
        _record_update(trace, result, stage)
    elif result.memory_op == "deleted":
        trace.deletes += 1
        trace.revisions.append((result.previous or "", None))
    elif "ltm_read" in result.touches:
        if stage == 3:
            for item in result.retrieved:
                trace.retrieved_stage3.setdefault(item.id, item.content)
    elif "context" in result.touches and result.reduced:
        trace.reductions.append((step, pressure))


def _record_update(trace: EpisodeTrace, result: ToolResult, stage: int) -> None:
    if not result.changed:
        trace.noop_updates += 1
        return
    trace.updates += 1
    trace.revisions.append((result.previous or "", str(result.content)))
    if stage == 1 and result.memory_id in trace.stage1_ids:
        trace.stage1_added[trace.stage1_ids[result.memory_id]] = str(result.content)


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
    maintenance: float | None
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


def _preventive(trace: EpisodeTrace, threshold: float) -> float:
    """1.0 if a call reduced the context under pressure (``>= threshold``) before it first overflowed."""
    overflowed = trace.first_overflow_step
    return float(any(p >= threshold and (overflowed is None or step < overflowed) for step, p in trace.reductions))


def _context_terms(
    trace: EpisodeTrace, config: RewardConfig, question: str, max_context_tokens: int, answered: bool
) -> tuple[float, float, float]:
    """Compression, preventive and preservation; compression and preservation need an answer."""
    preventive = _preventive(trace, config.preventive_threshold)
    if not answered:
        return 0.0, preventive, 0.0
    compression = max(0.0, 1.0 - trace.answer_context_tokens / max_context_tokens)
    return compression, preventive, preservation(question, trace.answer_context)


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


def _maintenance(
    trace: EpisodeTrace, config: RewardConfig, stale: Sequence[str] | None, facts: Sequence[str] | None
) -> float | None:
    """R_maintenance (Eq. 24) under ``config.maintenance`` (see :class:`~agemem_gym.config.RewardConfig`).

    ``"current"``: 1 if an update or delete took a memory from stating a ``stale`` statement
    to not stating it; ``None`` (not scored) when the task has no stale statements.
    ``"changed"``: 1 if any delete or word-changing update ran. ``"any_update"``: also a
    no-op update (the paper's literal indicator).
    """
    if config.maintenance == "current":
        if not stale:
            return None
        facts = facts or ()
        return float(
            any(
                holds_stale(before, stale, facts) and (after is None or not holds_stale(after, stale, facts))
                for before, after in trace.revisions
            )
        )
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
    stale: Sequence[str] | None = None,
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
        stale: Statements the environment superseded during the episode (``Task.stale``),
            for R_maintenance; ``None`` or empty: nothing went stale.

    Returns:
        The breakdown; ``total`` is what the last step returns.
    """
    answered = task_score is not None
    task = config.no_answer if task_score is None else float(task_score)
    compression, preventive, preserved = _context_terms(trace, config, question, max_context_tokens, answered)
    storage, relevance = _memory_terms(trace, facts, memory_terms)
    maintenance = _maintenance(trace, config, stale, facts)
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
