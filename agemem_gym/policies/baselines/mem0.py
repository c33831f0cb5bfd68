"""``mem0-style`` and ``mem0g-style``: Mem0's extract–retrieve–decide pipeline on our LTM.

Per new message: extract candidate facts; retrieve the memories similar to each
(``Retrieve_memory``, one call per fact); choose ADD / UPDATE / DELETE / NOOP per fact
(LLM tool choice in Mem0; here the LLM or the heuristic of
:func:`~agemem_gym.policies.baselines.engine.heuristic_decision`) and apply it with the LTM
tools. The graph variant also stores entity–relation triples (``metadata={"kind": "triple"}``)
and, at question time, expands retrieval through the entities of the retrieved triples.
"""

from __future__ import annotations

from typing import Any

from agemem_gym.policies.base import Observation
from agemem_gym.policies.baselines import heuristics as H
from agemem_gym.policies.baselines.engine import Answer, MemorySystemPolicy, Program, call, chunks, parse_retrievals
from agemem_gym.tools import ADD_MEMORY, DELETE_MEMORY, RETRIEVE_MEMORY, UPDATE_MEMORY

__all__ = ["Mem0Policy", "Mem0GraphPolicy"]


class Mem0Policy(MemorySystemPolicy):
    """Mem0-style memory: extract facts, retrieve similar memories, ADD / UPDATE / DELETE / NOOP."""

    name = "mem0-style"
    graph = False

    def memorize(self, stage: int, message: str, observation: Observation) -> Program:
        """Extract → retrieve per fact → one turn of operations."""
        facts = self.extract(message)
        if not facts:
            return
        results = yield [call(RETRIEVE_MEMORY, query=f, top_k=self.top_k) for f in facts]
        groups = parse_retrievals(results)
        groups += [[]] * (len(facts) - len(groups))
        retraction = H.has_delete_cue(message)
        calls: list[dict[str, Any]] = []
        touched: set[str] = set()
        for fact, candidates in zip(facts, groups):
            candidates = [(i, c) for i, c in candidates if i not in touched]
            op, target = self.decide(fact, candidates, retraction)
            if op == "ADD":
                calls.append(call(ADD_MEMORY, content=fact, memory_type="knowledge", metadata={"kind": "fact"}))
            elif op == "UPDATE" and target:
                calls.append(call(UPDATE_MEMORY, memory_id=target, content=fact))
            elif op == "DELETE" and target:
                calls.append(call(DELETE_MEMORY, memory_id=target, confirmation=True))
            if target:
                touched.add(target)
            if self.graph and op in ("ADD", "UPDATE"):
                calls += [
                    call(ADD_MEMORY, content=f"{s} | {r} | {o}", memory_type="knowledge", metadata={"kind": "triple"})
                    for s, r, o in H.triples(fact)[:2]
                ]
        for turn in chunks(calls):  # noqa: UP028 - tool results are sent back in; a list iterator cannot take send()
            yield turn


class Mem0GraphPolicy(Mem0Policy):
    """Mem0g-style: Mem0 plus entity–relation triples and retrieval expanded through them."""

    name = "mem0g-style"
    graph = True

    def recall(self, query: str) -> Program:
        """Retrieve facts and triples; retrieve again for the entities the triples connect; answer."""
        results = yield [
            call(RETRIEVE_MEMORY, query=query, top_k=self.top_k),
            call(RETRIEVE_MEMORY, query=query, top_k=self.top_k, metadata_filter={"kind": "triple"}),
        ]
        found = [c for group in parse_retrievals(results) for _, c in group]
        entities = []
        for content in found:
            parts = [p.strip() for p in content.split(" | ")]
            if len(parts) == 3:
                entities += [parts[0], parts[2]]
        entities = [e for e in dict.fromkeys(entities) if e.lower() not in query.lower()][:3]
        if entities:
            more = yield [call(RETRIEVE_MEMORY, query=e, top_k=2, metadata_filter={"kind": "fact"}) for e in entities]
            found += [c for group in parse_retrievals(more) for _, c in group]
        facts = [c.replace(" | ", " ") if c.count(" | ") == 2 else c for c in dict.fromkeys(found)]
        yield Answer(self.read(query, facts))
