"""Deterministic text heuristics the baseline memory systems fall back on without an LLM.

Fact extraction (sentences with a named entity or a number), the subject of a fact, its
relation words, update and deletion cues, entity–relation triples and note keywords.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agemem_gym.text import STOPWORDS, content_words, split_sentences

__all__ = [
    "entities",
    "extract_facts",
    "subject",
    "best_match",
    "relation_words",
    "has_update_cue",
    "has_delete_cue",
    "triples",
    "keywords",
    "overlap",
    "strip_note",
]

_ENTITY = re.compile(r"[A-Z][\w'’\-.]*(?:\s+(?:of|the|de|von|van|and)?\s*[A-Z0-9][\w'’\-.]*)*")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_UPDATE = re.compile(
    r"\b(now|changed?|moved|switched|update[ds]?|instead|no longer|any ?more|new|renamed|became|replaced)\b", re.I
)
_DELETE = re.compile(
    r"\b(ignore what i told you|forget (?:that|what|about)|was wrong|not true|delete|remove that|never mind)\b", re.I
)
_LEAD = {"the", "a", "an", "this", "that", "these", "his", "her", "its", "their", "i", "my", "we", "our"}
_NOTE_META = re.compile(r"\s*\|\s*(?:keywords|tags|context|links|triple):.*$", re.S)


def extract_facts(message: str, max_facts: int = 8) -> list[str]:
    """Sentences worth storing: they name an entity (past the first word) or hold a number."""
    out = []
    for sentence in split_sentences(message):
        words = sentence.split()
        if len(content_words(sentence)) < 3:
            continue
        named = any(_ENTITY.match(w) for w in words[1:]) or bool(_NUMBER.search(sentence))
        if named:
            out.append(sentence.strip())
    return out[:max_facts]


def entities(text: str) -> list[str]:
    """Named entities of ``text``, lower-cased, possessive dropped, in order."""
    out = []
    for m in _ENTITY.finditer(text):
        words = [w for w in m.group().split() if w.lower() not in _LEAD]
        if words:
            out.append(re.sub(r"['’]s$", "", " ".join(words)).lower().strip(" .,"))
    return [e for e in out if e]


def subject(fact: str) -> str:
    """The first named entity of a fact, lower-cased, possessive dropped ("" if none)."""
    found = entities(fact)
    return found[0] if found else ""


def relation_words(fact: str) -> set[str]:
    """Lower-case content words that are not part of a named entity (what is said about the subject)."""
    return {w for w in re.findall(r"\b[a-z][a-z'’]+\b", fact) if w not in STOPWORDS and w not in _LEAD}


def has_update_cue(text: str) -> bool:
    """The text says something changed ("now", "moved", "switched", ...)."""
    return bool(_UPDATE.search(text))


def has_delete_cue(text: str) -> bool:
    """The text retracts something ("ignore what I told you", "forget that", ...)."""
    return bool(_DELETE.search(text))


def overlap(a: str, b: str) -> float:
    """Jaccard overlap of content words."""
    wa, wb = set(content_words(a)), set(content_words(b))
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def triples(fact: str) -> list[tuple[str, str, str]]:
    """Entity–relation–entity triples: the subject, the words between, and each later entity or number."""
    spans = [(m.start(), m.end(), m.group().strip(" .,")) for m in _ENTITY.finditer(fact)]
    spans += [(m.start(), m.end(), m.group()) for m in _NUMBER.finditer(fact)]
    spans.sort()
    spans = [s for s in spans if s[2].lower() not in _LEAD and s[2]]
    if len(spans) < 2:
        return []
    head = spans[0]
    out = []
    for start, _, obj in spans[1:4]:
        relation = " ".join(w for w in fact[head[1] : start].split() if w.lower() not in STOPWORDS)[:60]
        out.append((head[2], relation or "related to", obj))
    return out


def keywords(text: str, k: int = 5) -> list[str]:
    """The ``k`` most frequent content words (ties by first appearance)."""
    words = content_words(text)
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], words.index(w)))[:k]


def strip_note(content: str) -> str:
    """A stored note without the ``| keywords: ... | links: ...`` suffix the baselines append."""
    return _NOTE_META.sub("", content).strip()


def best_match(fact: str, candidates: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The candidate ``(id, content)`` about the same subject and relation as ``fact``, if any."""
    names, rel = entities(fact), relation_words(fact)
    best, best_score = None, 0.0
    for mid, content in candidates:
        text = strip_note(content)
        if subject(text) not in names and not any(" " in n and n in text.lower() for n in names):
            continue
        shared = len(rel & relation_words(text))
        score = shared + overlap(fact, text)
        if shared and score > best_score:
            best, best_score = (mid, content), score
    return best
