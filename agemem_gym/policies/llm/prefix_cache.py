"""A prefix cache of key/value states keyed by token ids, so no prompt prefix is prefilled twice.

A memory agent's context grows by a few hundred tokens per turn behind a system prompt of
about a thousand; re-running the whole prompt through the model every turn spends most of
the rollout on tokens whose keys and values are already known. :class:`PrefixCache` keeps,
for each recent sequence (the prompt plus the generated turn), the per-layer key/value
tensors of its tokens. A new prompt reuses the longest common *token* prefix with any
stored sequence, so the fallback after a context rewrite (packing dropped messages,
``Summary_context`` / ``Filter_context``, the Stage-2 reset) is automatic: the match just
ends earlier, at worst after the system prompt.

Keys and values depend only on the tokens before them (causal attention) and on their
absolute positions, so a stored prefix is valid for any prompt that starts with it, as long
as the weights have not changed (:meth:`PrefixCache.clear` on every weight update).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["KV", "PrefixCache", "common_prefix", "slice_kv", "kv_nbytes"]

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, ``(keys, values)`` of one sequence, each ``(1, heads, length, head_dim)``."""


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """Length of the longest common prefix of two 1-d integer tensors."""
    n = min(a.shape[0], b.shape[0])
    diff = (a[:n] != b[:n]).nonzero()
    return int(diff[0, 0]) if diff.shape[0] else n


def slice_kv(kv: KV, start: int, end: int) -> KV:
    """Positions ``start:end`` of every layer (views, no copy)."""
    return [(k[:, :, start:end], v[:, :, start:end]) for k, v in kv]


def kv_nbytes(kv: KV) -> int:
    """Bytes the key/value tensors of ``kv`` take."""
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


@dataclasses.dataclass
class _Entry:
    ids: torch.Tensor  # (length,) int64: the tokens whose keys and values ``kv`` holds
    kv: KV
    used: int  # recency stamp for LRU eviction


class PrefixCache:
    """Recently computed sequences and their key/value states, matched by token prefix.

    Args:
        max_entries: Most sequences kept (least recently used go first). One per stream
            is enough: a sequence that extends a stored one replaces it.

    Example:
        >>> import torch
        >>> cache = PrefixCache(max_entries=4)
        >>> kv = [(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))]
        >>> cache.insert([5, 6, 7], kv)
        >>> n, hit = cache.lookup([5, 6, 9, 9])
        >>> n, hit[0][0].shape[2]
        (2, 2)
    """

    def __init__(self, max_entries: int = 16) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = int(max_entries)
        self._entries: list[_Entry] = []
        self._clock = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes the stored key/value tensors take."""
        return sum(kv_nbytes(e.kv) for e in self._entries)

    def clear(self) -> None:
        """Forget every sequence (the weights changed, or a replay must start cold)."""
        self._entries.clear()

    def lookup(self, ids: Any, limit: int | None = None) -> tuple[int, KV | None]:
        """The longest stored prefix of ``ids``.

        Args:
            ids: The new sequence's token ids.
            limit: Use at most this many tokens of the match (the caller still needs the
                logits after the last prompt token, so it keeps at least one to run).

        Returns:
            ``(n, kv)``: the matched length and the keys and values of those ``n`` tokens
            (views into the stored tensors; never modify them in place), or ``(0, None)``.
        """
        query = torch.as_tensor(ids, dtype=torch.long)
        best, best_n = None, 0
        for entry in self._entries:
            n = common_prefix(entry.ids, query)
            if n > best_n:
                best, best_n = entry, n
        best_n = best_n if limit is None else min(best_n, limit)
        if best is None or best_n <= 0:
            return 0, None
        self._clock += 1
        best.used = self._clock
        return best_n, slice_kv(best.kv, 0, best_n)

    def insert(self, ids: Any, kv: KV) -> None:
        """Store a sequence's keys and values (``kv`` covers exactly ``ids``).

        Stored sequences that are a prefix of ``ids`` are dropped: any prompt they match,
        the new one matches at least as far.
        """
        key = torch.as_tensor(ids, dtype=torch.long).cpu()
        if kv and kv[0][0].shape[2] != key.shape[0]:
            raise ValueError(f"{key.shape[0]} ids but {kv[0][0].shape[2]} cached positions")
        self._entries = [e for e in self._entries if common_prefix(e.ids, key) < e.ids.shape[0]]
        self._clock += 1
        self._entries.append(_Entry(key, kv, self._clock))
        if len(self._entries) > self.max_entries:
            self._entries.sort(key=lambda e: e.used)
            del self._entries[: len(self._entries) - self.max_entries]
