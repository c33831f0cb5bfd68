"""``amem-style``: A-Mem's Zettelkasten notes on our LTM.

Each message becomes one note: its facts plus keywords, tags and a context line, stored as
``content | keywords: … | tags: … | context: … | links: mem_a (kw kw); …``. Before adding,
the system retrieves similar notes and links the new note to those that share enough
keywords; after adding, "memory evolution" rewrites each linked neighbour with a back-link
and the merged tags (``Update_memory``). Retrieval follows links: the notes a retrieved
note links to are retrieved by their keywords and read as well.
"""

from __future__ import annotations

import re
from typing import Any

from agemem_gym.policies.base import Observation
from agemem_gym.policies.baselines import heuristics as H
from agemem_gym.policies.baselines.engine import (
    Answer,
    MemorySystemPolicy,
    Program,
    added_ids,
    call,
    parse_retrievals,
)
from agemem_gym.tools import ADD_MEMORY, RETRIEVE_MEMORY, UPDATE_MEMORY

__all__ = ["AMemPolicy", "make_note", "note_links"]

_LINKS = re.compile(r"\|\s*links:\s*(.*?)(?=\s*\|\s*\w+:|$)", re.S)
_LINK = re.compile(r"(mem_\w+) \(([^)]*)\)")
_TAGS = re.compile(r"\|\s*tags:\s*([^|]*)")


def make_note(content: str, keywords: list[str], tags: list[str], context: str, links: list[str]) -> str:
    """The stored text of a note."""
    note = f"{content} | keywords: {', '.join(keywords)} | tags: {', '.join(tags)} | context: {context}"
    return note + (f" | links: {'; '.join(links)}" if links else "")


def note_links(note: str) -> list[tuple[str, str]]:
    """``(memory_id, keywords)`` of each link in a stored note."""
    found = _LINKS.search(note)
    return _LINK.findall(found.group(1)) if found else []


def _keywords_of(note: str) -> list[str]:
    found = re.search(r"\|\s*keywords:\s*([^|]*)", note)
    return [k.strip() for k in found.group(1).split(",") if k.strip()] if found else H.keywords(note)


class AMemPolicy(MemorySystemPolicy):
    """A-Mem-style notes with links and evolution (see the module docstring).

    Args:
        min_shared_keywords: Keywords a neighbour must share with a new note to be linked.
        max_links: Most links per new note.
        **kwargs: :class:`~agemem_gym.policies.baselines.engine.MemorySystemPolicy` arguments.
    """

    name = "amem-style"

    def __init__(self, min_shared_keywords: int = 1, max_links: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_shared_keywords = int(min_shared_keywords)
        self.max_links = int(max_links)

    def memorize(self, stage: int, message: str, observation: Observation) -> Program:
        """Retrieve neighbours → add the linked note → evolve the neighbours."""
        facts = self.extract(message)
        if not facts:
            return
        content = " ".join(facts)
        keys = H.keywords(content, k=6)
        tags = sorted({s for s in (H.subject(f) for f in facts) if s})[:3]
        results = yield [call(RETRIEVE_MEMORY, query=content[:1500], top_k=max(self.top_k, self.max_links))]
        neighbours = []
        for mid, note in (item for group in parse_retrievals(results) for item in group):
            shared = set(keys) & set(_keywords_of(note))
            if len(shared) >= self.min_shared_keywords:
                neighbours.append((mid, note))
        neighbours = neighbours[: self.max_links]
        links = [f"{mid} ({' '.join(_keywords_of(note)[:3])})" for mid, note in neighbours]
        context = f"about {tags[0]}" if tags else "general note"
        note = make_note(content, keys, tags, context, links)
        results = yield [call(ADD_MEMORY, content=note, memory_type="knowledge", metadata={"tags": ", ".join(tags)})]
        new = added_ids(results)
        if not new or not neighbours:
            return
        evolved = []
        for mid, old in neighbours:
            back = f"{new[0]} ({' '.join(keys[:3])})"
            updated = old + (f"; {back}" if " | links: " in old else f" | links: {back}")
            old_tags = _TAGS.search(old)
            merged = sorted({*(old_tags.group(1).split(", ") if old_tags else []), *tags} - {""})
            if old_tags:
                updated = updated.replace(old_tags.group(0), f"| tags: {', '.join(merged)} ", 1)
            evolved.append(call(UPDATE_MEMORY, memory_id=mid, content=updated))
        yield evolved

    def recall(self, query: str) -> Program:
        """Retrieve notes, follow their links (retrieve the linked notes by keywords), answer."""
        results = yield [call(RETRIEVE_MEMORY, query=query, top_k=self.top_k)]
        found = [item for group in parse_retrievals(results) for item in group]
        have = {mid for mid, _ in found}
        follow = [(mid, kw) for _, note in found for mid, kw in note_links(note) if mid not in have]
        follow = list(dict(follow).items())[:3]
        if follow:
            more = yield [call(RETRIEVE_MEMORY, query=kw or mid, top_k=1) for mid, kw in follow]
            found += [item for group in parse_retrievals(more) for item in group]
        yield Answer(self.read(query, [c for _, c in dict(found).items()]))
