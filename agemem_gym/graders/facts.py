"""Offline memory grading: how well stored or retrieved text covers gold supporting facts.

A memory is split into sentences; a sentence *matches* a gold fact when their content
words overlap with F1 >= 0.5, or when it contains at least 80% of the fact's content words
(a memory that stores a whole paragraph covers the facts inside it). These give the
paper's memory quality (MQ) as a sentence-level F1, and the storage and relevance terms
of the memory reward, without an LLM judge.

The memory reward grades *how much* of a memory is gold, not whether some sentence of it is
(:func:`gold_share`): a sentence that states gold facts earns credit up to the length of those
facts, so a memory that pads one gold sentence with a whole paragraph (or dumps every
paragraph into one run-on sentence) earns the gold fraction of its words, not full credit.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Sequence

from agemem_gym.text import content_words, split_sentences

__all__ = [
    "FactMatch",
    "covered_facts",
    "gold_share",
    "holds_stale",
    "memory_quality",
    "retrieval_relevance",
    "sentence_matches",
    "storage_quality",
]

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


def gold_share(text: str, facts: Sequence[str], exclude: Collection[int] = ()) -> tuple[float, set[int]]:
    """The share of ``text`` that states gold facts, and which facts it states.

    Each sentence that states some facts (not in ``exclude``, nor stated by an earlier
    sentence of ``text``) earns credit for at most as many content words as those facts
    have; the share is the credited words over all of ``text``'s content words. A concise
    note of a fact scores 1, the fact inside its whole paragraph the paragraph's gold
    fraction, a repeat of an excluded fact 0.

    Args:
        text: A memory's content.
        facts: Gold supporting-fact sentences.
        exclude: Indices of facts that earn nothing here (stated by earlier memories).

    Returns:
        ``(share in [0, 1], indices of the new facts it states)``; ``(0.0, set())`` for
        text without content words.

    Example:
        >>> fact = "Brothers in Arms is a 1985 album by Dire Straits."
        >>> gold_share("Brothers in Arms: a 1985 Dire Straits album.", [fact])
        (1.0, {0})
        >>> round(gold_share(fact + " It was recorded at AIR Studios on Montserrat island.", [fact])[0], 2)
        0.55
    """
    fact_bags = [_bag(f) for f in facts]
    seen = set(exclude)
    credited = total = 0
    for bag in (b for b in map(_bag, split_sentences(text)) if b):
        size = sum(bag.values())
        total += size
        new = {j for j, fb in enumerate(fact_bags) if j not in seen and _bags_match(bag, fb)}
        if new:
            stated: Counter[str] = Counter()
            for j in new:
                stated |= fact_bags[j]
            credited += min(size, sum(stated.values()))  # gold credit, never more than the facts' length
            seen |= new
    return (credited / total if total else 0.0), seen - set(exclude)


def storage_quality(added: Sequence[str], facts: Sequence[str]) -> float:
    """R_storage = N_high_quality / max(1, N_total) over the memories added in Stage 1.

    Each memory counts by its :func:`gold_share` of facts no earlier memory stated: a memory
    of one new fact counts 1, a repeat 0, a paragraph around a fact its gold fraction. (A
    whole memory counted as high quality whenever one sentence of it stated a fact, which
    paid an agent for dumping every paragraph into one memory.)
    """
    seen: set[int] = set()
    good = 0.0
    for text in added:
        share, new = gold_share(text, facts, exclude=seen)
        good += share
        seen |= new
    return good / max(1, len(added))


def retrieval_relevance(retrieved: Sequence[str], facts: Sequence[str]) -> float:
    """R_relevance: the mean :func:`gold_share` of the retrieved memories (0 if none)."""
    if not retrieved:
        return 0.0
    return sum(gold_share(t, facts)[0] for t in retrieved) / len(retrieved)


def holds_stale(text: str, stale: Sequence[str], facts: Sequence[str]) -> bool:
    """Whether ``text`` still states one of the ``stale`` statements (the environment superseded them).

    A sentence holds a stale statement when it matches it (:func:`sentence_matches`) and
    has the words that set it apart from the current ``facts`` (an old and a new value
    differ in a word or two, which sentence matching alone cannot tell).

    Example:
        >>> holds_stale("Ann's dog is called Rex.", ["Ann's dog is called Rex."], ["Ann's dog is now called Max."])
        True
        >>> holds_stale("Ann's dog is now called Max.", ["Ann's dog is called Rex."], ["Ann's dog is now called Max."])
        False
    """
    current: set[str] = set().union(*(_bag(f) for f in facts)) if facts else set()
    olds = [(_bag(s), set(_bag(s)) - current) for s in stale]
    for bag in (b for b in map(_bag, split_sentences(text)) if b):
        if any(_bags_match(bag, old) and distinct <= set(bag) for old, distinct in olds):
            return True
    return False
