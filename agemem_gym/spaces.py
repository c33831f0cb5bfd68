"""Text spaces that accept any unicode string, and the chat-message observation space."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["UnicodeText", "chat_space", "ROLE_SPACE"]

# What ``sample`` draws from: printable ASCII plus a few multi-byte characters, so random
# actions exercise unicode handling. ``contains`` accepts every str regardless.
_SAMPLE_CHARSET = string.printable + "äöüßéñçøåœ€£¥—–…“”‘’«»°±×÷東京日本語中文한국어😀🚀\x00"


class UnicodeText(spaces.Text):
    """A ``Text`` space whose members are *all* strings within the length bounds.

    Gymnasium's ``Text`` only contains strings over its charset (alphanumeric by default);
    LLM turns and observations hold arbitrary unicode, so ``contains`` here checks type and
    length only. ``sample`` draws from a wide charset with lengths capped at
    ``sample_max_length`` so sampling stays cheap even when ``max_length`` is huge.

    Args:
        max_length: Longest member, in characters.
        min_length: Shortest member.
        sample_max_length: Longest string ``sample`` produces.
        seed: Seed for sampling.
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        sample_max_length: int = 256,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)
        self.sample_max_length = int(sample_max_length)

    def contains(self, x: Any) -> bool:
        """Any ``str`` with ``min_length <= len(x) <= max_length``."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string from the wide sample charset."""
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        hi = max(self.min_length, min(self.max_length, self.sample_max_length))
        length = int(self.np_random.integers(self.min_length, hi + 1))
        chars = self.character_list
        idx = self.np_random.integers(0, len(chars), size=length)
        return "".join(chars[i] for i in idx)

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def __hash__(self) -> int:
        return hash((type(self), self.min_length, self.max_length))


ROLE_SPACE = spaces.Text(9, min_length=4, charset="abcdefghijklmnopqrstuvwxyz")
"""Roles: system, user, assistant, tool."""


def chat_space(max_content_length: int = 10_000_000) -> spaces.Sequence:
    """The observation space: a tuple of ``{"role", "content"}`` chat messages.

    Args:
        max_content_length: Longest message content in characters.

    Returns:
        A ``Sequence`` of ``Dict(role, content)``.
    """
    message = spaces.Dict({"role": ROLE_SPACE, "content": UnicodeText(max_content_length)})
    return spaces.Sequence(message, stack=False)
