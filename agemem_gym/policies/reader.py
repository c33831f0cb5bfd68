"""A small deterministic extractive reader for the scripted policies.

It answers from the passages a policy can see (retrieved memories, the visible context):
yes/no questions with "yes", "A or B" comparisons by the years or evidence around each
option, "how many" with a number, and everything else with the best-supported name or
number in the sentences that share the most words with the question. It is a fixed
reader, not a language model: its score is a floor that memory behaviour moves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agemem_gym.text import STOPWORDS, content_words, split_sentences

__all__ = ["ExtractiveReader"]

_YES_NO = frozenset("is are was were do does did can could has have had will would should".split())
_PHRASE = re.compile(
    r"[A-Z][\w'’\-.]*(?:(?:\s+(?:of|the|de|da|del|di|du|von|van|der|and|&|la|le))*\s+[A-Z0-9][\w'’\-.]*)*"
)
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_OPTIONS = re.compile(r"(?:,|:|between)\s*(?:the\s+)?(.+?)\s+(?:or|and)\s+(?:the\s+)?(.+?)\s*\??$", re.I)
_EARLY = ("first", "earlier", "older", "oldest", "before", "earliest")
_LATE = ("later", "younger", "youngest", "recent", "newer", "last", "latest")
_LEADING = STOPWORDS | {
    "which",
    "who",
    "what",
    "when",
    "where",
    "how",
    "in",
    "on",
    "at",
    "after",
    "during",
    "this",
    "that",
    "these",
    "his",
    "her",
    "its",
    "their",
    "as",
    "from",
    "by",
    "with",
    "born",
}


def _clean_phrase(phrase: str) -> str:
    words = phrase.strip(" .,'’").split()
    while words and words[0].lower() in _LEADING:
        words = words[1:]
    return " ".join(words).strip(" .,")


def _answer_type(question: str) -> str:
    """The noun a wh-question asks for ("Which *band* ...", "What *city* ..."), or ""."""
    m = re.match(r"\s*(?:which|what)\s+(?:type|kind|sort|name)?\s*(?:of\s+)?(?:the\s+)?([a-z]+)", question, re.I)
    if not m:
        return ""
    word = m.group(1).lower()
    return "" if word in STOPWORDS or word in ("is", "was", "are", "were", "did", "does") else word


class ExtractiveReader:
    """Answer a question from passages without a model.

    Example:
        >>> ExtractiveReader().answer(
        ...     "Which band released the album Brothers in Arms?",
        ...     ["Brothers in Arms is the fifth studio album by the British rock band Dire Straits."])
        'Dire Straits'
    """

    def answer(self, question: str, passages: Sequence[str]) -> str:
        """The answer text ("" never: falls back to the best sentence's first words)."""
        q = question.strip()
        first = q.split()[0].lower() if q.split() else ""
        sentences = [s for p in passages for s in split_sentences(p)]
        if first in _YES_NO:
            return "yes"
        ranked = self._rank(q, sentences)
        options = _OPTIONS.search(q)
        if options:
            return self._choose_option(q, options.group(1), options.group(2), ranked)
        if not ranked:
            return "unknown"
        if q.lower().startswith("how many") or q.lower().startswith("how much"):
            for s in ranked[:3]:
                nums = _NUMBER.findall(s)
                if nums:
                    return nums[0]
        if first == "when" or "what year" in q.lower() or "which year" in q.lower():
            for s in ranked[:3]:
                years = _YEAR.findall(s)
                if years:
                    return years[0]
        return self._best_entity(q, ranked) or " ".join(ranked[0].split()[:5])

    def _rank(self, question: str, sentences: Sequence[str]) -> list[str]:
        qw = set(content_words(question))

        def score(item: tuple[int, str]) -> tuple[int, int]:
            i, s = item
            return (-len(qw & set(content_words(s))), i)

        scored = sorted(enumerate(sentences), key=score)
        return [s for _, s in scored if qw & set(content_words(s))] or [s for _, s in scored]

    def _best_entity(self, question: str, ranked: Sequence[str]) -> str:
        qwords = set(w.lower() for w in re.findall(r"\w+", question))
        anchor = _answer_type(question)
        for s in ranked[:4]:
            found = []
            for m in _PHRASE.finditer(s):
                phrase = _clean_phrase(m.group())
                words = set(w.lower() for w in re.findall(r"\w+", phrase))
                if phrase and words and not words <= qwords:
                    found.append((s.find(phrase), phrase))
            if found:
                at = s.lower().find(f" {anchor}") if anchor else -1
                if at >= 0:
                    # the answer usually follows the question's type word ("... the band Dire Straits")
                    after = [f for f in found if f[0] > at]
                    return min(after or found, key=lambda f: abs(f[0] - at))[1]
                return found[0][1]
            for n in _NUMBER.findall(s):
                if n not in qwords:
                    return n
        return ""

    def _choose_option(self, question: str, a: str, b: str, ranked: Sequence[str]) -> str:
        a, b = a.strip(" ?,."), b.strip(" ?,.")
        ql = question.lower()
        years = {opt: self._year_near(opt, ranked) for opt in (a, b)}
        if all(years.values()):
            if any(w in ql for w in _EARLY):
                return min((a, b), key=lambda o: years[o])
            if any(w in ql for w in _LATE):
                return max((a, b), key=lambda o: years[o])
        support = {opt: sum(opt.lower() in s.lower() for s in ranked[:6]) for opt in (a, b)}
        return a if support[a] >= support[b] else b

    def _year_near(self, option: str, sentences: Sequence[str]) -> int:
        key = option.lower()
        for s in sentences:
            if key in s.lower():
                found = _YEAR.findall(s)
                if found:
                    return int(found[0])
        return 0
