"""The numba context packer: fit a context into a token budget.

The kernel has a pure-Python reference with the same signature; the test suite checks
they agree on edge cases and random inputs. (The trainer's row packer lives beside the
trainer, in :mod:`agemem_gym.adapters.grpo.packing`.)

Context packing rule (:func:`pack_context`):

1. Pinned messages (the system prompt, the live query) always stay, even when they alone
   exceed the budget; the caller records the overflow.
2. The other messages are visited by priority (higher first), then recency (newer first).
   Each one that fits in the remaining budget stays whole.
3. The first one that does not fit is *cut* to the remaining budget (if at least
   ``min_cut`` tokens remain; otherwise it is dropped), and every message after it in the
   visiting order is dropped. Stopping there keeps what the policy sees a contiguous,
   most-recent slice of each priority level instead of a context full of holes.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["pack_context", "pack_context_reference"]

# Priority ranges up to this width are ordered by a counting sort (O(n + range));
# wider ones fall back to a comparison sort.
_COUNTING_RANGE = 4096


def _visit_order_reference(priority: list[int]) -> list[int]:
    return sorted(range(len(priority)), key=lambda i: (-priority[i], -i))


def pack_context_reference(
    token_counts: np.ndarray,
    pinned: np.ndarray,
    priority: np.ndarray,
    budget: int,
    min_cut: int = 1,
) -> tuple[np.ndarray, int, int]:
    """Pure-Python reference of :func:`pack_context` (same signature, same result).

    Args:
        token_counts: ``(n,)`` non-negative token count of each message.
        pinned: ``(n,)`` bool, messages that must stay.
        priority: ``(n,)`` int, higher is kept first among unpinned messages.
        budget: Token budget for the whole context.
        min_cut: Smallest useful cut; a smaller remainder drops the message instead.

    Returns:
        ``(keep_mask, cut_index, cut_tokens)``: a bool mask of messages kept whole, the index
        of the single message cut to fit (``-1`` if none) and its token allowance (``0`` if none).
    """
    counts = [int(c) for c in token_counts]
    pins = [bool(p) for p in pinned]
    prios = [int(p) for p in priority]
    keep = [False] * len(counts)
    remaining = int(budget)
    for i, c in enumerate(counts):
        if pins[i]:
            keep[i] = True
            remaining -= c
    cut_index, cut_tokens = -1, 0
    if remaining < 0:
        remaining = 0
    order = [i for i in _visit_order_reference(prios) if not pins[i]]
    for i in order:
        if counts[i] <= remaining:
            keep[i] = True
            remaining -= counts[i]
        else:
            if remaining >= min_cut and remaining > 0:
                cut_index, cut_tokens = i, remaining
            break
    return np.array(keep, dtype=np.bool_), cut_index, cut_tokens


@nb.njit(cache=True)
def _visit_order(priority):  # pragma: no cover - compiled
    n = priority.shape[0]
    order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    lo = priority[0]
    hi = priority[0]
    for i in range(n):
        lo = min(lo, priority[i])
        hi = max(hi, priority[i])
    width = hi - lo + 1
    if width <= _COUNTING_RANGE:
        # Counting sort: bucket b holds priority hi - b; inside a bucket, newest first.
        starts = np.zeros(width + 1, dtype=np.int64)
        for i in range(n):
            starts[hi - priority[i] + 1] += 1
        for b in range(width):
            starts[b + 1] += starts[b]
        fill = starts[:width].copy()
        for i in range(n - 1, -1, -1):
            b = hi - priority[i]
            order[fill[b]] = i
            fill[b] += 1
        return order
    # Wide priorities: sort on a composite key (priority desc, index desc).
    keys = np.empty(n, dtype=np.float64)
    for i in range(n):
        keys[i] = -(float(priority[i]) * (n + 1.0) + i)
    return np.argsort(keys, kind="mergesort")


@nb.njit(cache=True)
def _pack_context(token_counts, pinned, priority, budget, min_cut):  # pragma: no cover
    n = token_counts.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    remaining = budget
    for i in range(n):
        if pinned[i]:
            keep[i] = True
            remaining -= token_counts[i]
    if remaining < 0:
        remaining = 0
    cut_index = -1
    cut_tokens = 0
    order = _visit_order(priority)
    for j in range(n):
        i = order[j]
        if pinned[i]:
            continue
        if token_counts[i] <= remaining:
            keep[i] = True
            remaining -= token_counts[i]
        else:
            if remaining >= min_cut and remaining > 0:
                cut_index = i
                cut_tokens = remaining
            break
    return keep, cut_index, cut_tokens


def pack_context(
    token_counts: np.ndarray,
    pinned: np.ndarray,
    priority: np.ndarray,
    budget: int,
    min_cut: int = 1,
) -> tuple[np.ndarray, int, int]:
    """Decide which messages of a context stay whole, which one is cut, which drop.

    See the module docstring for the rule. One pass over arrays, compiled with numba.

    Args:
        token_counts: ``(n,)`` non-negative token count of each message.
        pinned: ``(n,)`` bool, messages that must stay.
        priority: ``(n,)`` int, higher is kept first among unpinned messages.
        budget: Token budget for the whole context.
        min_cut: Smallest useful cut; a smaller remainder drops the message instead.

    Returns:
        ``(keep_mask, cut_index, cut_tokens)`` as in :func:`pack_context_reference`.

    Example:
        >>> keep, cut, allowance = pack_context(
        ...     np.array([10, 50, 30]), np.array([True, False, False]), np.zeros(3, np.int64), 60)
        >>> keep.tolist(), cut, allowance
        ([True, False, True], 1, 20)
    """
    counts = np.ascontiguousarray(token_counts, dtype=np.int64)
    pins = np.ascontiguousarray(pinned, dtype=np.bool_)
    prios = np.ascontiguousarray(priority, dtype=np.int64)
    if not (counts.shape == pins.shape == prios.shape) or counts.ndim != 1:
        raise ValueError(
            f"token_counts, pinned and priority must be 1-D of one length; got shapes "
            f"{counts.shape}, {pins.shape}, {prios.shape}"
        )
    if counts.size and counts.min() < 0:
        raise ValueError("token_counts must be non-negative")
    keep, cut_index, cut_tokens = _pack_context(counts, pins, prios, int(budget), int(min_cut))
    return keep, int(cut_index), int(cut_tokens)
