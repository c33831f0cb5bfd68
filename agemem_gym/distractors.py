"""Stage-2 distractors: casual utterances unrelated to the task's query.

The paper's DistractorGen asks an LLM for short user-style turns that (i) share no entity
or key concept with the question, (ii) are conversationally plausible and (iii) are
topically diverse. :class:`CorpusDistractors` does this offline from a bundled corpus;
:class:`LLMDistractors` asks any chat model. Either way the draw depends only on the seed
the environment derives from the task id, so the K rollouts of a GRPO group see the same
distractors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from agemem_gym.data import load_distractor_corpus
from agemem_gym.error import InvalidConfig
from agemem_gym.memory.context_ops import ChatFn
from agemem_gym.text import content_words

__all__ = ["DistractorSource", "CorpusDistractors", "LLMDistractors", "DISTRACTOR_PROMPT"]

DISTRACTOR_PROMPT = (
    "Write {n} short, casual messages a user might send to an assistant in everyday conversation. "
    "They must be completely unrelated to the question below: share no names, places, dates or key "
    "concepts with it. Make them varied in topic. One message per line, no numbering.\n\n"
    "Question: {query}"
)


@runtime_checkable
class DistractorSource(Protocol):
    """Produces ``n`` distractor utterances for a query, deterministically from ``seed``."""

    def generate(self, query: str, n: int, seed: int) -> list[str]:
        """``n`` utterances unrelated to ``query``."""
        ...


class CorpusDistractors:
    """Draws distractors from a corpus, skipping any that share a content word with the query.

    Args:
        corpus: Utterances, or a path to a text file with one per line; ``None`` for the
            bundled corpus.
    """

    name = "corpus"

    def __init__(self, corpus: Sequence[str] | str | os.PathLike[str] | None = None) -> None:
        if corpus is None or isinstance(corpus, (str, os.PathLike)):
            self.corpus = load_distractor_corpus(corpus)
        else:
            self.corpus = [str(c).strip() for c in corpus if str(c).strip()]
        if not self.corpus:
            raise InvalidConfig("the distractor corpus is empty")
        self._words = [set(content_words(u)) for u in self.corpus]

    def generate(self, query: str, n: int, seed: int) -> list[str]:
        """Draw ``n`` distinct utterances sharing no content word with ``query``."""
        banned = set(content_words(query))
        pool = [i for i, w in enumerate(self._words) if not (w & banned)]
        if len(pool) < n:  # a very wordy query: fall back to the least overlapping ones
            pool = sorted(range(len(self.corpus)), key=lambda i: (len(self._words[i] & banned), i))[: max(n, 1)]
        rng = np.random.default_rng(seed)
        picks = rng.permutation(len(pool))[:n]
        return [self.corpus[pool[i]] for i in picks]


_LINE_PREFIX = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


class LLMDistractors:
    """Asks a chat model for distractors (the paper's DistractorGen); tops up from a corpus.

    The chat callable should be deterministic (greedy decoding) for the K rollouts of a
    group to share distractors; the env only calls it with the task's seed in the prompt
    cache key, so a sampling model makes the env nondeterministic.

    Args:
        chat: ``list[dict] -> str``.
        fallback: Corpus used when the model returns too few usable lines.
    """

    name = "llm"

    def __init__(self, chat: ChatFn, fallback: CorpusDistractors | None = None) -> None:
        if not callable(chat):
            raise InvalidConfig("LLMDistractors expects a chat callable list[dict] -> str")
        self.chat = chat
        self.fallback = fallback or CorpusDistractors()
        self._cache: dict[tuple[str, int, int], list[str]] = {}

    def generate(self, query: str, n: int, seed: int) -> list[str]:
        """``n`` model-written utterances that share no content word with ``query``."""
        key = (query, n, seed)
        if key not in self._cache:
            reply = self.chat([{"role": "user", "content": DISTRACTOR_PROMPT.format(n=n, query=query)}])
            banned = set(content_words(query))
            lines = [_LINE_PREFIX.sub("", ln).strip() for ln in str(reply).splitlines()]
            lines = [ln for ln in lines if ln and not (set(content_words(ln)) & banned)][:n]
            if len(lines) < n:
                extra = [d for d in self.fallback.generate(query, n, seed) if d not in lines]
                lines += extra[: n - len(lines)]
            self._cache[key] = lines
        return list(self._cache[key])
