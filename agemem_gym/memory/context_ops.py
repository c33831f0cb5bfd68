"""Executors behind ``Summary_context`` and ``Filter_context``.

Both are small protocols with an offline, deterministic default and an LLM-backed
version that takes any chat callable (``list[dict] -> str``): the policy's own model, an
HF pipeline, or a client of an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from agemem_gym.error import InvalidConfig
from agemem_gym.memory.embedders import Embedder, make_embedder
from agemem_gym.memory.stm import ApproxTokenCounter, Message, TokenCounter
from agemem_gym.text import content_words, split_sentences

__all__ = [
    "ChatFn",
    "Summarizer",
    "ContextFilter",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "CosineFilter",
    "LLMFilter",
    "SUMMARY_PROMPT",
]

ChatFn = Callable[[list[dict[str, str]]], str]
"""A chat model: takes chat messages, returns the assistant's reply text."""

SUMMARY_PROMPT = (
    "You summarise conversations. Compress the conversation below into a short summary "
    "that keeps every important fact, intention, decision and open question, because the "
    "summary will replace the original messages. Name the main topics, actions, results "
    "and unresolved issues; be factual; leave out greetings, filler and repetition.\n\n"
    "Conversation:\n{conversation}"
)

_FILTER_PROMPT = (
    "Rate from 0 to 1 how closely the message matches the description of content to "
    "remove. Reply with a single number.\n\nDescription: {criteria}\n\nMessage: {message}"
)


@runtime_checkable
class Summarizer(Protocol):
    """Turns a span of messages into one summary text."""

    def summarize(self, messages: Sequence[Message], max_tokens: int) -> str:
        """Summarise ``messages`` in at most ``max_tokens`` tokens."""
        ...


@runtime_checkable
class ContextFilter(Protocol):
    """Decides which messages match a removal criterion."""

    def select(self, messages: Sequence[Message], criteria: str) -> np.ndarray:
        """Return a bool mask: True for messages to remove."""
        ...


def _conversation_text(messages: Sequence[Message]) -> str:
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


class ExtractiveSummarizer:
    """Keeps the most salient sentences of a span within a token budget; offline.

    Salience of a sentence is the summed span frequency of its content words divided by
    the square root of its length, so sentences about what the span keeps returning to
    win, and long sentences are not favoured just for being long. Chosen sentences are
    emitted in their original order, each prefixed with its speaker's role.

    Args:
        token_counter: Counts tokens for the budget.
    """

    name = "extractive"

    def __init__(self, token_counter: TokenCounter | None = None) -> None:
        self.counter = token_counter or ApproxTokenCounter()

    def summarize(self, messages: Sequence[Message], max_tokens: int) -> str:
        """Summarise ``messages`` in at most ``max_tokens`` tokens."""
        sentences: list[tuple[str, str]] = []
        for m in messages:
            for s in split_sentences(m.content):
                sentences.append((m.role, s))
        if not sentences or max_tokens <= 0:
            return ""
        freq = Counter(w for _, s in sentences for w in set(content_words(s)))

        def score(item: tuple[int, tuple[str, str]]) -> tuple[float, int]:
            i, (_, s) = item
            ws = content_words(s)
            value = sum(freq[w] for w in ws) / math.sqrt(len(ws)) if ws else 0.0
            return (-value, i)

        chosen: list[int] = []
        used = 0
        for i, (role, s) in sorted(enumerate(sentences), key=score):
            cost = self.counter.count(f"{role}: {s}\n")
            if used + cost > max_tokens:
                continue
            chosen.append(i)
            used += cost
        if not chosen:  # the single best sentence does not fit: cut it
            role, s = sentences[min(enumerate(sentences), key=score)[0]]
            return self.counter.truncate(f"{role}: {s}", max_tokens)
        return "\n".join(f"{sentences[i][0]}: {sentences[i][1]}" for i in sorted(chosen))


class LLMSummarizer:
    """Summarises with a chat model and the summarisation prompt.

    Args:
        chat: The chat callable.
        token_counter: Used to enforce the token budget on the reply.
        prompt: Template with a ``{conversation}`` slot.
    """

    name = "llm"

    def __init__(self, chat: ChatFn, token_counter: TokenCounter | None = None, prompt: str = SUMMARY_PROMPT) -> None:
        if not callable(chat):
            raise InvalidConfig("LLMSummarizer expects a chat callable list[dict] -> str")
        if "{conversation}" not in prompt:
            raise InvalidConfig("the summary prompt needs a {conversation} placeholder")
        self.chat = chat
        self.prompt = prompt
        self.counter = token_counter or ApproxTokenCounter()

    def summarize(self, messages: Sequence[Message], max_tokens: int) -> str:
        """Summarise ``messages`` with the chat model, cut to ``max_tokens``."""
        request = self.prompt.format(conversation=_conversation_text(messages))
        reply = self.chat([{"role": "user", "content": request}])
        return self.counter.truncate(str(reply).strip(), max_tokens)


class CosineFilter:
    """Marks messages whose embedding cosine to the criterion is at least ``threshold``.

    This is the paper's FILTER (Eq. 15) with θ = 0.6 by default.

    Args:
        embedder: Embedder spec (see :func:`make_embedder`).
        threshold: Cosine threshold θ; messages with similarity ``>= θ`` are removed.
    """

    name = "cosine"

    def __init__(self, embedder: Embedder | str | None = None, threshold: float = 0.6) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise InvalidConfig(f"threshold must be in [-1, 1], got {threshold}")
        self.embedder = make_embedder(embedder)
        self.threshold = float(threshold)

    def similarities(self, messages: Sequence[Message], criteria: str) -> np.ndarray:
        """Cosine similarity of each message to ``criteria``."""
        if not messages:
            return np.zeros(0, dtype=np.float32)
        vecs = self.embedder([criteria] + [m.content for m in messages])
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs[1:] @ vecs[0]

    def select(self, messages: Sequence[Message], criteria: str) -> np.ndarray:
        """True for every message with similarity ``>= threshold``."""
        return self.similarities(messages, criteria) >= self.threshold


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class LLMFilter:
    """Asks a chat model for a 0–1 similarity per message; removes those ``>= threshold``.

    Args:
        chat: The chat callable.
        threshold: Score threshold.
    """

    name = "llm"

    def __init__(self, chat: ChatFn, threshold: float = 0.6) -> None:
        if not callable(chat):
            raise InvalidConfig("LLMFilter expects a chat callable list[dict] -> str")
        self.chat = chat
        self.threshold = float(threshold)

    def score(self, message: Message, criteria: str) -> float:
        """The model's similarity score in [0, 1]; 0 when the reply has no number."""
        reply = self.chat(
            [{"role": "user", "content": _FILTER_PROMPT.format(criteria=criteria, message=message.content)}]
        )
        found = _NUMBER.search(str(reply))
        return min(1.0, max(0.0, float(found.group()))) if found else 0.0

    def select(self, messages: Sequence[Message], criteria: str) -> np.ndarray:
        """True for every message the model scores ``>= threshold``."""
        return np.array([self.score(m, criteria) >= self.threshold for m in messages], dtype=bool)
