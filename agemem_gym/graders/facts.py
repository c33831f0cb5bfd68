"""Offline memory grading: how well stored or retrieved text covers gold supporting facts.

A memory is split into sentences; a sentence *matches* a gold fact when their content
words overlap with F1 >= 0.5, or when it contains at least 80% of the fact's content words
(a memory that stores a whole paragraph covers the facts inside it). These give the
paper's memory quality (MQ) as a sentence-level F1, and the storage and relevance terms
of the memory reward, without an LLM judge.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from agemem_gym.text import content_words, split_sentences

__all__ = ["FactMatch", "sentence_matches", "memory_quality", "storage_quality", "retrieval_relevance", "covered_facts"]

F1_THRESHOLD = 0.5
CONTAINMENT_THRESHOLD = 0.8


def _bag(text: str) -> Counter[str]:
    return Counter(content_words(text))


def sentence_matches(sentence: str, fact: str) -> bool:
    """Whether a memory sentence states a gold fact (see module docstring).

    Example:
        >>> sentence_matches("Gutzon Borglum designed Mount Rushmore's sculpture.",
        ...                  "Sculptor Gutzon Borglum created the sculpture's design of Mount Rushmore.")
        True
    """
    return _bags_match(_bag(sentence), _bag(fact))


def _bags_match(a: Counter[str], b: Counter[str]) -> bool:
    if not a or not b:
        return False
    overlap = sum((a & b).values())
    if overlap == 0:
        return False
    precision, recall = overlap / sum(a.values()), overlap / sum(b.values())
    f1 = 2 * precision * recall / (precision + recall)
    return f1 >= F1_THRESHOLD or recall >= CONTAINMENT_THRESHOLD


def _match_table(texts: Sequence[str], facts: Sequence[str]) -> list[list[bool]]:
    """``table[i][j]``: whether sentence i of ``texts`` states fact j.

    Each sentence and fact is tokenized once (grading used to redo it for every pair).
    """
    fact_bags = [_bag(f) for f in facts]
    sentence_bags = [b for t in texts for b in map(_bag, split_sentences(t)) if b]
    return [[_bags_match(a, b) for b in fact_bags] for a in sentence_bags]


def covered_facts(text: str, facts: Sequence[str]) -> set[int]:
    """Indices of the gold facts some sentence of ``text`` matches."""
    table = _match_table([text], facts)
    return {j for j in range(len(facts)) if any(row[j] for row in table)}


@dataclasses.dataclass(frozen=True)
class FactMatch:
    """Sentence-level precision, recall and F1 of stored text against gold facts."""

    precision: float
    recall: float
    f1: float


def memory_quality(memories: Sequence[str], facts: Sequence[str]) -> FactMatch:
    """The paper's MQ, offline: sentence-level F1 of stored memories against the gold facts.

    Args:
        memories: Contents of the memories (each may hold several sentences).
        facts: Gold supporting-fact sentences.

    Returns:
        Precision (stored sentences that state a gold fact), recall (gold facts stated by
        some stored sentence) and their F1; all 0 when nothing is stored.
    """
    hits = _match_table(memories, facts)
    if not hits or not facts:
        return FactMatch(0.0, 0.0, 0.0)
    precision = sum(any(row) for row in hits) / len(hits)
    recall = sum(any(row[j] for row in hits) for j in range(len(facts))) / len(facts)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return FactMatch(precision, recall, f1)


def storage_quality(added: Sequence[str], facts: Sequence[str]) -> float:
    """R_storage = N_high_quality / max(1, N_total) over the memories added in Stage 1.

    A memory is high quality when it states a gold fact that no earlier added memory
    stated (useful and not redundant).
    """
    seen: set[int] = set()
    good = 0
    for text in added:
        new = covered_facts(text, facts) - seen
        if new:
            good += 1
            seen |= new
    return good / max(1, len(added))


def retrieval_relevance(retrieved: Sequence[str], facts: Sequence[str]) -> float:
    """R_relevance: the fraction of retrieved memories that state a gold fact (0 if none)."""
    if not retrieved:
        return 0.0
    return sum(bool(covered_facts(t, facts)) for t in retrieved) / len(retrieved)
