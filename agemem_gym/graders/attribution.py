"""Per-memory attribution at the end of an episode: what was stored, read back, and useful.

The final ``info["memory_attribution"]`` lists every memory of the episode with where it
came from (the step and stage it was added in), whether Stage 3 retrieved it and whether it
holds a gold supporting fact (the offline fact matcher of :mod:`agemem_gym.graders.facts`).
It answers "which stored memories did the answer draw on, and were they the right ones?"
without re-running the episode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agemem_gym.graders.facts import covered_facts

__all__ = ["memory_attribution"]


def memory_attribution(
    memories: Iterable[Any],
    retrieved_stage3: Mapping[str, str],
    facts: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """One record per memory of the episode, in insertion order.

    Args:
        memories: The live memories at the end (``MemoryItem``-like: ``id``, ``content``,
            ``metadata`` with the ``stage`` and ``step`` the Add tool records).
        retrieved_stage3: Memory id -> content of every memory retrieved in Stage 3 (the
            episode trace's ``retrieved_stage3``).
        facts: The task's gold facts (``None`` or empty: ``holds_gold_fact`` is ``None``).

    Returns:
        ``{"id", "added_step", "stage", "updated_step", "live", "retrieved_in_stage3",
        "holds_gold_fact", "gold_facts"}`` per memory; ``gold_facts`` are the indices of the
        facts it covers. A memory retrieved in Stage 3 and deleted later is listed with
        ``live=False`` and its retrieved content judged (its origin is unknown: ``None``).
    """
    records = []
    seen = set()
    for item in memories:
        meta = item.metadata
        seen.add(item.id)
        records.append(
            _record(
                item.id,
                item.content,
                meta.get("step"),
                meta.get("stage"),
                meta.get("updated_step"),
                True,
                item.id in retrieved_stage3,
                facts,
            )
        )
    for mid, content in retrieved_stage3.items():
        if mid not in seen:
            records.append(_record(mid, content, None, None, None, False, True, facts))
    return records


def _record(
    mid: str,
    content: str,
    step: Any,
    stage: Any,
    updated: Any,
    live: bool,
    retrieved: bool,
    facts: Sequence[str] | None,
) -> dict[str, Any]:
    covered = sorted(covered_facts(content, facts)) if facts else []
    return {
        "id": mid,
        "added_step": step,
        "stage": stage,
        "updated_step": updated,
        "live": live,
        "retrieved_in_stage3": retrieved,
        "holds_gold_fact": bool(covered) if facts else None,
        "gold_facts": covered,
    }
