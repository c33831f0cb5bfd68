"""Short-term memory: the context as chat messages with token counts, pins and priorities.

The context a policy sees is :meth:`ShortTermMemory.pack` of the full context: when the
full context exceeds the token budget, the numba packer (:mod:`agemem_gym.memory.packer`)
decides which messages the policy sees, and the overflow is reported.

Token counts come from a :class:`TokenCounter`. The default, :class:`ApproxTokenCounter`,
counts one token per four UTF-8 bytes (rounded up), the usual rule of thumb for BPE
tokenizers on English text; pass :class:`HFTokenCounter` to count with a real tokenizer.
Every message also costs ``message_overhead`` tokens for its chat-template markers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agemem_gym.error import InvalidConfig
from agemem_gym.memory.packer import pack_context

__all__ = [
    "ROLES",
    "Message",
    "TokenCounter",
    "ApproxTokenCounter",
    "HFTokenCounter",
    "PackedContext",
    "ShortTermMemory",
]

ROLES = ("system", "user", "assistant", "tool")


@runtime_checkable
class TokenCounter(Protocol):
    """Counts and truncates text in tokens."""

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` with at most ``max_tokens`` tokens."""
        ...


class ApproxTokenCounter:
    """One token per four UTF-8 bytes, rounded up: fast, offline and tokenizer-free.

    Example:
        >>> ApproxTokenCounter().count("hello world!")
        3
    """

    bytes_per_token = 4

    def count(self, text: str) -> int:
        """Approximate token count of ``text``."""
        n = len(text.encode("utf-8", errors="replace"))
        return -(-n // self.bytes_per_token)

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to at most ``max_tokens`` approximate tokens (never mid-character)."""
        if max_tokens <= 0:
            return ""
        raw = text.encode("utf-8", errors="replace")
        limit = max_tokens * self.bytes_per_token
        if len(raw) <= limit:
            return text
        return raw[:limit].decode("utf-8", errors="ignore")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class HFTokenCounter:
    """Counts with a Hugging Face tokenizer (no special tokens).

    Args:
        tokenizer: Any object with ``encode(text, add_special_tokens=False)`` and ``decode``.
    """

    def __init__(self, tokenizer: Any) -> None:
        if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode")):
            raise InvalidConfig("HFTokenCounter expects a tokenizer with encode() and decode()")
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        """Exact token count of ``text`` under the tokenizer."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def truncate(self, text: str, max_tokens: int) -> str:
        """Decode the first ``max_tokens`` tokens of ``text``."""
        if max_tokens <= 0:
            return ""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= max_tokens:
            return text
        return self.tokenizer.decode(ids[:max_tokens])


@dataclasses.dataclass(frozen=True)
class Message:
    """One chat message of the context.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: The text.
        tokens: Token cost, content plus the per-message template overhead.
        pinned: Pinned messages (system prompt, live query) are never dropped, cut,
            summarised or filtered.
        priority: Higher-priority messages are kept first when the context is packed.
        kind: A tag saying where the message came from (``"system"``, ``"query"``,
            ``"material"``, ``"distractor"``, ``"turn"``, ``"tool"``, ``"summary"``,
            ``"retrieval"``, ``"observation"``, ...), for rewards, analysis and viewers.
        stage: The episode stage (1, 2 or 3) in which the message entered the context.
    """

    role: str
    content: str
    tokens: int
    pinned: bool = False
    priority: int = 0
    kind: str = ""
    stage: int = 0

    def as_chat(self) -> dict[str, str]:
        """The message as a chat-template dict ``{"role", "content"}``."""
        return {"role": self.role, "content": self.content}


@dataclasses.dataclass(frozen=True)
class PackedContext:
    """What the policy sees after packing.

    Attributes:
        messages: The kept messages in context order (a cut message is truncated).
        indices: Their indices in the full context.
        cut_index: Index (in the full context) of the message that was cut, or -1.
        tokens: Tokens of the packed context.
        full_tokens: Tokens of the full context.
        dropped: Number of messages left out entirely.
    """

    messages: tuple[Message, ...]
    indices: tuple[int, ...]
    cut_index: int
    tokens: int
    full_tokens: int
    dropped: int

    @property
    def overflow(self) -> bool:
        """Whether the full context exceeded the budget (something was cut or dropped)."""
        return self.cut_index >= 0 or self.dropped > 0 or self.tokens < self.full_tokens

    def as_chat(self) -> tuple[dict[str, str], ...]:
        """The packed messages as chat-template dicts."""
        return tuple(m.as_chat() for m in self.messages)


class ShortTermMemory:
    """The context: an ordered list of :class:`Message` with cached token counts.

    Args:
        token_counter: Counts tokens; :class:`ApproxTokenCounter` when ``None``.
        message_overhead: Tokens added per message for chat-template markers.
    """

    def __init__(self, token_counter: TokenCounter | None = None, message_overhead: int = 4) -> None:
        if message_overhead < 0:
            raise InvalidConfig(f"message_overhead must be >= 0, got {message_overhead}")
        self.counter: TokenCounter = token_counter or ApproxTokenCounter()
        self.message_overhead = int(message_overhead)
        self._messages: list[Message] = []
        self._tokens = 0

    # -- building -------------------------------------------------------------------
    def make(self, role: str, content: str, **fields: Any) -> Message:
        """Build a message (not yet in the context) with its token count."""
        if role not in ROLES:
            raise InvalidConfig(f"role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise InvalidConfig(f"content must be a str, got {type(content).__name__}")
        tokens = self.counter.count(content) + self.message_overhead
        return Message(role=role, content=content, tokens=tokens, **fields)

    def append(self, role: str, content: str, **fields: Any) -> Message:
        """Append a message; ``fields`` are :class:`Message` attributes (``pinned``, ``kind``...)."""
        msg = self.make(role, content, **fields)
        self._messages.append(msg)
        self._tokens += msg.tokens
        return msg

    def clear(self, keep_system: bool = False) -> None:
        """Empty the context, optionally keeping the leading system messages."""
        kept = [m for m in self._messages if keep_system and m.role == "system"]
        self._messages = kept
        self._tokens = sum(m.tokens for m in kept)

    def remove(self, indices: Sequence[int]) -> list[Message]:
        """Remove the messages at ``indices``; return them in context order."""
        drop = sorted(set(int(i) for i in indices))
        for i in drop:
            if not 0 <= i < len(self._messages):
                raise IndexError(f"message index {i} out of range for {len(self._messages)} messages")
        removed = [self._messages[i] for i in drop]
        dropset = set(drop)
        self._messages = [m for i, m in enumerate(self._messages) if i not in dropset]
        self._tokens -= sum(m.tokens for m in removed)
        return removed

    def replace(self, indices: Sequence[int], message: Message) -> None:
        """Replace the messages at ``indices`` with ``message``, placed at the first index."""
        if not indices:
            raise ValueError("replace() needs at least one index")
        first = min(int(i) for i in indices)
        self.remove(indices)
        self._messages.insert(first, message)
        self._tokens += message.tokens

    # -- reading --------------------------------------------------------------------
    @property
    def messages(self) -> tuple[Message, ...]:
        """The full context, oldest first."""
        return tuple(self._messages)

    @property
    def tokens(self) -> int:
        """Tokens of the full context."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(tuple(self._messages))

    def __getitem__(self, index: int) -> Message:
        return self._messages[index]

    def as_chat(self) -> tuple[dict[str, str], ...]:
        """The full context as chat-template dicts."""
        return tuple(m.as_chat() for m in self._messages)

    def pack(self, budget: int, min_cut: int = 16) -> PackedContext:
        """Fit the context into ``budget`` tokens with the numba packer.

        Args:
            budget: Token budget.
            min_cut: A message is cut only if at least this many tokens remain for it.

        Returns:
            The :class:`PackedContext` the policy sees.
        """
        msgs = self._messages
        if self._tokens <= budget:
            return PackedContext(tuple(msgs), tuple(range(len(msgs))), -1, self._tokens, self._tokens, 0)
        counts = np.fromiter((m.tokens for m in msgs), dtype=np.int64, count=len(msgs))
        pinned = np.fromiter((m.pinned for m in msgs), dtype=np.bool_, count=len(msgs))
        prio = np.fromiter((m.priority for m in msgs), dtype=np.int64, count=len(msgs))
        keep, cut_index, cut_tokens = pack_context(counts, pinned, prio, budget, min_cut)
        out: list[Message] = []
        idx: list[int] = []
        total = 0
        for i, m in enumerate(msgs):
            if keep[i]:
                out.append(m)
            elif i == cut_index:
                room = max(0, cut_tokens - self.message_overhead)
                content = self.counter.truncate(m.content, room)
                m = dataclasses.replace(m, content=content, tokens=self.counter.count(content) + self.message_overhead)
                out.append(m)
            else:
                continue
            idx.append(i)
            total += m.tokens
        dropped = len(msgs) - len(out)
        return PackedContext(tuple(out), tuple(idx), cut_index, total, self._tokens, dropped)

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if cached token counts disagree with a recount."""
        recount = 0
        for m in self._messages:
            expected = self.counter.count(m.content) + self.message_overhead
            if m.tokens != expected:
                raise AssertionError(f"message token count {m.tokens} != recount {expected}")
            recount += m.tokens
        if recount != self._tokens:
            raise AssertionError(f"context tokens {self._tokens} != sum of messages {recount}")
