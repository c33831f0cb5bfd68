"""End-of-episode scoring of a team: the paper's reward for the team, then one reward per agent.

The team's trajectory is scored as one ``MemoryEnv`` episode would be
(:func:`agemem_gym.rewards.compute_reward`): what the cooperative readers stored is the
Stage-1 storage, the answerer's retrievals and context are Stage 3. Invalid calls are
charged to the agent that made them, not to the whole team. A saboteur is paid the
negative of the team's task term.

The env knows who last wrote each memory. A memory last written by a saboteur counts as
stating no gold fact, both in memory quality and in the relevance of what the answerer
retrieved (the offline fact matcher cannot see a swapped name by itself, so without this a
planted copy of a fact would be scored as the fact).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from agemem_gym.config import RewardConfig
from agemem_gym.graders.facts import memory_quality, storage_quality
from agemem_gym.graders.memory_terms import MemoryTerms, judge_memory_terms
from agemem_gym.rewards import EpisodeTrace, RewardBreakdown, compute_reward

__all__ = ["AgentRecord", "TeamOutcome", "score_team", "PLANTED"]

PLANTED = "This memory was planted by a saboteur."
"""What a saboteur's memory is graded as: a sentence that states no gold fact."""


@dataclasses.dataclass
class AgentRecord:
    """What one agent did during an episode (the team env fills it in)."""

    role: str
    added: list[str] = dataclasses.field(default_factory=list)
    updates: int = 0
    noop_updates: int = 0
    deletes: int = 0
    revisions: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    invalid_calls: int = 0
    tool_calls: Counter[str] = dataclasses.field(default_factory=Counter)
    turns: int = 0
    retrieved: dict[str, str] = dataclasses.field(default_factory=dict)
    reductions: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    first_overflow: int | None = None
    answer_context_tokens: int = 0
    answer_context: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class TeamOutcome:
    """The scored episode: the team breakdown, per-agent rewards and the shared ``info`` keys."""

    breakdown: RewardBreakdown
    rewards: dict[str, float]
    team_reward: float
    info: dict[str, Any]


def _invalid_penalty(config: RewardConfig, n: int) -> float:
    return max(config.invalid_penalty_floor, config.invalid_call_penalty * n) if n else 0.0


def _team_trace(
    records: Mapping[str, AgentRecord], answerer: str, answer: str | None, cycles: int, planted: set[str]
) -> EpisodeTrace:
    coop = [r for r in records.values() if r.role != "saboteur"]
    ans = records[answerer]
    trace = EpisodeTrace(answer=answer, turns=cycles, stage3_rounds=ans.turns)
    trace.stage1_added = [c for r in coop if r.role == "reader" for c in r.added]
    trace.updates = sum(r.updates for r in coop)
    trace.noop_updates = sum(r.noop_updates for r in coop)
    trace.deletes = sum(r.deletes for r in coop)
    trace.revisions = [rev for r in coop for rev in r.revisions]
    trace.retrieved_stage3 = {mid: PLANTED if mid in planted else c for mid, c in ans.retrieved.items()}
    trace.reductions = list(ans.reductions)
    trace.first_overflow_step = ans.first_overflow
    trace.answer_context_tokens = ans.answer_context_tokens
    trace.answer_context = list(ans.answer_context)
    trace.rounds_exceeded = answer is None
    for r in coop:
        trace.tool_calls.update(r.tool_calls)
    return trace


def score_team(
    records: Mapping[str, AgentRecord],
    *,
    answerer: str,
    answer: str | None,
    grade: Mapping[str, Any],
    question: str,
    facts: Sequence[str] | None,
    memories: Sequence[tuple[str, str]],
    retrieved_writers: Mapping[str, str],
    config: RewardConfig,
    max_context_tokens: int,
    max_rounds: int,
    cycles: int,
    team_weight: float,
    memory_judge: Any = None,
    answers: Sequence[str] = (),
    stale: Sequence[str] | None = None,
) -> TeamOutcome:
    """Score an ended team episode.

    Args:
        records: Per-agent records.
        answerer: The answering agent's name.
        answer: The team's answer (``None`` when time ran out).
        grade: The task's grade of the answer (``task_score`` etc.).
        question: The question.
        facts: Gold supporting facts (``None`` if the task has none).
        memories: ``(content, last writer)`` of each memory in the shared store at the end.
        retrieved_writers: Last writer of each memory the answerer retrieved.
        config: Reward weights and penalties.
        max_context_tokens: T_max.
        max_rounds: Round cap (tool-efficiency term).
        cycles: Cycles played.
        team_weight: A cooperative agent's share of the team reward; the rest is its own term (storage or task).
        memory_judge: Scores storage and relevance (``None``: the gold facts); failures go to ``judge_notes``.
        answers: The gold answers, for the memory judge.
        stale: Statements the task superseded (``Task.stale``), for R_maintenance.

    Returns:
        The outcome.
    """
    saboteurs = {n for n, r in records.items() if r.role == "saboteur"}
    planted = {mid for mid, w in retrieved_writers.items() if w in saboteurs}
    trace = _team_trace(records, answerer, answer, cycles, planted)
    terms = _judged_terms(memory_judge, trace, question, answers, facts)
    breakdown = compute_reward(
        trace,
        config,
        task_score=grade.get("task_score"),
        question=question,
        facts=facts,
        max_context_tokens=max_context_tokens,
        max_rounds=max_rounds,
        memory_terms=terms,
        stale=stale,
    )
    outcome = _outcome(records, breakdown, answer, grade, facts, memories, saboteurs, planted, config, team_weight)
    outcome.info.update({"judge_notes": list(terms.notes)} if terms.notes else {})
    return outcome


def _judged_terms(
    judge: Any, trace: EpisodeTrace, question: str, answers: Sequence[str], facts: Sequence[str] | None
) -> MemoryTerms:
    """The team's storage and relevance terms as ``judge`` scores them (from the gold facts without one)."""
    retrieved = list(trace.retrieved_stage3.values())
    return judge_memory_terms(judge, trace.stage1_added, retrieved, question=question, answers=answers, facts=facts)


def _outcome(
    records: Mapping[str, AgentRecord],
    breakdown: RewardBreakdown,
    answer: str | None,
    grade: Mapping[str, Any],
    facts: Sequence[str] | None,
    memories: Sequence[tuple[str, str]],
    saboteurs: set[str],
    planted: set[str],
    config: RewardConfig,
    team_weight: float,
) -> TeamOutcome:
    """The per-agent rewards and the ``info`` keys every agent gets at the end."""
    rewards, individual = _agent_rewards(records, breakdown, config, facts, team_weight)
    coop_penalty = sum(_invalid_penalty(config, r.invalid_calls) for r in records.values() if r.role != "saboteur")
    team_reward = breakdown.total + coop_penalty
    info = {
        "answer": answer,
        **dict(grade),
        **_memory_info(memories, saboteurs, facts),
        "reward_components": breakdown.components(),
        "penalties": {**breakdown.penalties(), "invalid": coop_penalty},
        "team_reward": team_reward,
        "individual_rewards": individual,
        "ltm_final_size": len(memories),
        "misleading_memories": sum(writer in saboteurs for _, writer in memories),
        "misleading_retrieved": len(planted),
    }
    return TeamOutcome(breakdown, rewards, team_reward, info)


def _memory_info(
    memories: Sequence[tuple[str, str]], saboteurs: set[str], facts: Sequence[str] | None
) -> dict[str, float | None]:
    """Memory quality of the shared store, a saboteur's memories graded as :data:`PLANTED`."""
    graded = [PLANTED if writer in saboteurs else content for content, writer in memories]
    mq = memory_quality(graded, facts) if facts else None
    return {
        "memory_quality": None if mq is None else mq.f1,
        "mq_precision": None if mq is None else mq.precision,
        "mq_recall": None if mq is None else mq.recall,
    }


def _agent_rewards(
    records: Mapping[str, AgentRecord],
    breakdown: RewardBreakdown,
    config: RewardConfig,
    facts: Sequence[str] | None,
    team_weight: float,
) -> tuple[dict[str, float], dict[str, float]]:
    """Each agent's reward, and the individual terms of the cooperative ones.

    A saboteur gets the negative of the team's task term; a cooperative agent the team reward
    mixed by ``team_weight`` with its own term (a reader's storage quality, the answerer's
    task term). Each pays its own invalid-call penalty.
    """
    rewards: dict[str, float] = {}
    individual: dict[str, float] = {}
    for name, rec in records.items():
        penalty = _invalid_penalty(config, rec.invalid_calls)
        if rec.role == "saboteur":
            rewards[name] = -breakdown.task + penalty
            continue
        own = storage_quality(rec.added, facts) if rec.role == "reader" and facts else breakdown.task
        individual[name] = own
        rewards[name] = team_weight * breakdown.total + (1.0 - team_weight) * own + penalty
    return rewards, individual
