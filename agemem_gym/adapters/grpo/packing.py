"""The trainer's row packer: variable-length sequences into fixed-size rows.

:func:`pack_rows` is a numba first-fit-decreasing kernel; :func:`pack_rows_reference` is
its pure-Python reference with the same signature, and the test suite checks they agree on
edge cases and random inputs. :mod:`agemem_gym.adapters.grpo.batching` uses it to build
micro-batches with little padding. Needs only numba and numpy (no torch).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["pack_rows", "pack_rows_reference"]


def pack_rows_reference(lengths: np.ndarray, row_len: int) -> np.ndarray:
    """Pure-Python reference of :func:`pack_rows` (same signature, same result).

    Args:
        lengths: ``(n,)`` sequence lengths, each in ``[1, row_len]``.
        row_len: Capacity of one row in tokens.

    Returns:
        ``(n,)`` int64 row index of each sequence.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    free: list[int] = []
    rows = [0] * len(lengths)
    for i in order:
        need = int(lengths[i])
        for r, space in enumerate(free):
            if need <= space:
                free[r] -= need
                rows[i] = r
                break
        else:
            free.append(row_len - need)
            rows[i] = len(free) - 1
    return np.array(rows, dtype=np.int64)


@nb.njit(cache=True)
def _pack_rows(lengths, row_len):  # pragma: no cover - compiled
    n = lengths.shape[0]
    rows = np.zeros(n, dtype=np.int64)
    if n == 0:
        return rows
    # Stable descending order: sort on (-length, index) packed into one float key.
    keys = np.empty(n, dtype=np.float64)
    for i in range(n):
        keys[i] = -float(lengths[i]) * (n + 1.0) + i
    order = np.argsort(keys, kind="mergesort")
    # A max segment tree over the free space of n rows. Rows not opened yet count as empty
    # rows; since rows open left to right, "the leftmost row with room" is exactly first fit
    # (an open row if one fits, else the next new row), found in O(log n) per sequence.
    size = 1
    while size < n:
        size *= 2
    tree = np.zeros(2 * size, dtype=np.int64)
    for leaf in range(n):
        tree[size + leaf] = row_len
    for node in range(size - 1, 0, -1):
        tree[node] = max(tree[2 * node], tree[2 * node + 1])
    for j in range(n):
        i = order[j]
        need = lengths[i]
        node = 1
        while node < size:
            node = 2 * node if tree[2 * node] >= need else 2 * node + 1
        rows[i] = node - size
        tree[node] -= need
        node //= 2
        while node >= 1:
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
            node //= 2
    return rows


def pack_rows(lengths: np.ndarray, row_len: int) -> np.ndarray:
    """First-fit-decreasing packing of variable-length sequences into fixed-size rows.

    Sequences are visited longest first (ties: lower index first) and each goes into the
    first row with room. The trainer uses it to build micro-batches with little padding.

    Args:
        lengths: ``(n,)`` sequence lengths, each ``1 <= length <= row_len``.
        row_len: Capacity of one row in tokens.

    Returns:
        ``(n,)`` int64 row index of each sequence; rows are numbered from 0 and every row
        index below the largest one is used.

    Raises:
        ValueError: A length is out of range.

    Example:
        >>> pack_rows(np.array([6, 3, 4, 2]), 8).tolist()
        [0, 1, 1, 0]
    """
    arr = np.ascontiguousarray(lengths, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be 1-D, got shape {arr.shape}")
    if row_len < 1:
        raise ValueError(f"row_len must be >= 1, got {row_len}")
    if arr.size and (arr.min() < 1 or arr.max() > row_len):
        raise ValueError(f"every length must be in [1, row_len={row_len}]; got min {arr.min()}, max {arr.max()}")
    return _pack_rows(arr, int(row_len))
