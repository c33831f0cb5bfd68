"""``langmem-style``: LangMem's manage-memory tool in the hot path plus background consolidation.

Hot path: on each message the agent calls the manage tool once: for each extracted fact it
creates, updates or deletes a memory, deciding against the memories the env retrieved
automatically for that message (no extra search round). Background: every
``consolidate_every`` messages a consolidation pass searches the recent topics and merges
near-duplicate memories (the first is rewritten with both contents, the second deleted).
"""

from __future__ import annotations

from typing import Any

from agemem_gym.error import InvalidConfig
from agemem_gym.policies.base import Observation, messages_since_last_turn
from agemem_gym.policies.baselines import heuristics as H
from agemem_gym.policies.baselines.engine import MemorySystemPolicy, Program, call, chunks, parse_retrievals
from agemem_gym.text import content_words
from agemem_gym.tools import ADD_MEMORY, DELETE_MEMORY, RETRIEVE_MEMORY, UPDATE_MEMORY

__all__ = ["LangMemPolicy"]


class LangMemPolicy(MemorySystemPolicy):
    """LangMem-style memory (see the module docstring).

    Args:
        consolidate_every: Messages between background consolidation passes.
        merge_threshold: Content-word overlap at which two memories are merged.
        **kwargs: :class:`~agemem_gym.policies.baselines.engine.MemorySystemPolicy` arguments.
    """

    name = "langmem-style"

    def __init__(self, consolidate_every: int = 4, merge_threshold: float = 0.6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if consolidate_every < 1:
            raise InvalidConfig(f"consolidate_every must be >= 1, got {consolidate_every}")
        self.consolidate_every = int(consolidate_every)
        self.merge_threshold = float(merge_threshold)
        self._seen = 0
        self._recent: list[str] = []

    def reset(self) -> None:
        """Forget the per-episode counters."""
        super().reset()
        self._seen, self._recent = 0, []

    def memorize(self, stage: int, message: str, observation: Observation) -> Program:
        """One manage-memory turn, then a consolidation pass every ``consolidate_every`` messages."""
        self._seen += 1
        facts = self.extract(message)
        auto = [m["content"] for m in messages_since_last_turn(observation) if m["role"] == "tool"]
        candidates = [item for group in parse_retrievals(auto) for item in group]
        retraction = H.has_delete_cue(message)
        calls: list[dict[str, Any]] = []
        for fact in facts:
            op, target = self.decide(fact, candidates, retraction)
            if op == "ADD":
                calls.append(call(ADD_MEMORY, content=fact, memory_type="knowledge"))
            elif op == "UPDATE" and target:
                calls.append(call(UPDATE_MEMORY, memory_id=target, content=fact))
            elif op == "DELETE" and target:
                calls.append(call(DELETE_MEMORY, memory_id=target, confirmation=True))
            candidates = [c for c in candidates if c[0] != target]
        self._recent += facts
        for turn in chunks(calls):  # noqa: UP028 - tool results are sent back in; a list iterator cannot take send()
            yield turn
        if self._seen % self.consolidate_every == 0 and self._recent:
            topic = " ".join(H.keywords(" ".join(self._recent), k=8))
            self._recent = []
            results = yield [call(RETRIEVE_MEMORY, query=topic, top_k=max(8, self.top_k))]
            merges = self.consolidate([item for group in parse_retrievals(results) for item in group])
            if merges:
                yield merges

    def consolidate(self, memories: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Merge pairs of near-duplicate memories: rewrite the first with both, delete the second."""
        calls: list[dict[str, Any]] = []
        gone: set[str] = set()
        for i, (id_a, a) in enumerate(memories):
            if id_a in gone:
                continue
            for id_b, b in memories[i + 1 :]:
                if id_b in gone or H.overlap(a, b) < self.merge_threshold:
                    continue
                subsumed = set(content_words(b)) <= set(content_words(a))
                merged = a if subsumed else f"{a} {b}"
                calls.append(call(UPDATE_MEMORY, memory_id=id_a, content=merged))
                calls.append(call(DELETE_MEMORY, memory_id=id_b, confirmation=True))
                gone |= {id_a, id_b}
                break
        return calls
