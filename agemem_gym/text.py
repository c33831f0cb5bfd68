"""Small text utilities shared by graders, summarisers and scripted policies."""

from __future__ import annotations

import re
import string
from collections import Counter

__all__ = [
    "STOPWORDS",
    "normalize_answer",
    "answer_tokens",
    "split_sentences",
    "words",
    "content_words",
    "token_f1",
    "find_stated",
]

STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does for from had has have he her
    hers him his how i if in into is it its me my no nor not of on or our ours she so than that the
    their theirs them then there these they this those to too us was we were what when where which
    while who whom whose why will with would you your yours also just very about after before over
    under more most some any all each other such only own same both few again further once here
    yes ok okay one ever been am""".split()
)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)
_WORD = re.compile(r"\w+", re.UNICODE)
# A sentence ends at . ! or ? followed by whitespace, or at a newline; a period after an
# initial ("J. R. R. Tolkien") or a common abbreviation ("St. Louis", "Warner Bros. Records")
# does not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt ft jr sr bros inc co corp ltd vs etc no vol gen col lt sgt rev fr jan feb mar apr "
    "jun jul aug sep sept oct nov dec u.s e.g i.e approx est dept univ".split()
)


def normalize_answer(text: str) -> str:
    """HotpotQA's official answer normalisation: lower-case, drop punctuation and articles.

    Example:
        >>> normalize_answer("The  Eiffel Tower!")
        'eiffel tower'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    """Tokens of a normalised answer (whitespace split after :func:`normalize_answer`)."""
    return normalize_answer(text).split()


def split_sentences(text: str) -> list[str]:
    r"""Split text into non-empty, stripped sentences.

    Example:
        >>> split_sentences("One. Two!  Three?\nFour")
        ['One.', 'Two!', 'Three?', 'Four']
        >>> split_sentences("J. R. R. Tolkien lived in St. Louis. Not really.")
        ['J. R. R. Tolkien lived in St. Louis.', 'Not really.']
    """
    out: list[str] = []
    glue = False
    for piece in _SENTENCE_END.split(text):
        piece = piece.strip() if piece else ""
        if not piece:
            glue = False
            continue
        if glue and out:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
        last = out[-1].rsplit(None, 1)[-1].rstrip(".").lower() if out[-1].endswith(".") else None
        glue = last is not None and (len(last) == 1 and last.isalpha() or last in _ABBREVIATIONS)
    return out


def words(text: str) -> list[str]:
    """Lower-cased word tokens (unicode letters and digits)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Lower-cased words minus stop words and one-character tokens."""
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-words F1 between two texts after answer normalisation.

    Example:
        >>> round(token_f1("Paris France", "Paris"), 3)
        0.667
    """
    pred = answer_tokens(prediction)
    ref = answer_tokens(reference)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred)
    recall = overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


_FINAL_PUNCT = ".!?;:,"


def find_stated(fact: str, text: str) -> str | None:
    """Where ``text`` states ``fact``: the span of ``text`` itself, or ``None``.

    Gold facts and the messages that state them are written separately (a task may keep its
    facts capitalised as sentences while a message says "... the secret colour is red."), so
    a plain substring test misses facts that are plainly there. Here case, runs of whitespace
    and the fact's final punctuation do not matter; words must match whole.

    Args:
        fact: The fact as the task lists it.
        text: A message.

    Returns:
        The part of ``text`` that states the fact, with its final punctuation when ``text``
        has it (what a policy should store: the fact as the message words it).

    Example:
        >>> find_stated("The secret colour is red.", "Remember this: the secret colour is red.")
        'the secret colour is red.'
    """
    core = fact.strip().rstrip(_FINAL_PUNCT).strip()
    if not core:
        return None
    body = r"\s+".join(re.escape(part) for part in core.split())
    pattern = rf"(?<!\w){body}(?!\w)[{re.escape(_FINAL_PUNCT)}]?"
    found = re.search(pattern, text, re.IGNORECASE)
    return found.group(0) if found else None
