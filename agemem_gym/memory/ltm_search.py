"""The long-term memory's search arithmetic: unit vectors, exact top-k and result order.

Pure functions of arrays; :class:`~agemem_gym.memory.ltm.LongTermMemory` holds the state
and the lock. Results are ordered best first, ties to the lower row label (the older
entry), on every path.

Filtered search picks between two plans (:func:`filter_on_graph`):

* exact scoring of the candidate rows with :func:`score_rows` (a numba kernel, linear in
  the number of candidates);
* the HNSW graph with hnswlib's ``filter=``, a Python callback for every node the search
  visits. The search has to visit about ``k / selectivity`` nodes to collect ``k``
  matches, so its cost grows as the filter gets more selective.
"""

from __future__ import annotations

import math
from array import array

import numba as nb
import numpy as np

__all__ = [
    "unit_rows",
    "unit_query",
    "score_rows",
    "score_rows_reference",
    "best_k",
    "order_hits",
    "filter_on_graph",
    "FILTER_GRAPH_FACTOR",
]

FILTER_GRAPH_FACTOR = 2000.0
"""Filtered searches use the graph when ``candidates**2 > FILTER_GRAPH_FACTOR * live``.

Exact scoring costs about ``a * c`` for ``c`` candidates and the graph about
``b * n / c`` for ``n`` live entries, so the crossover is at ``c = sqrt(b / a * n)``.
``benchmarks/bench_ltm.py --filter-crossover 10000`` measured both plans on the 2-core
reference machine (384-d, k=10, ef=64): two runs put the tie at 4,000-5,000 candidates of
10,000 (``b / a`` 1,600-2,500); with 1,000 candidates exact scoring is 13-19x faster.
"""


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Row-normalise; an all-zero row becomes the first basis vector (cosine stays defined).

    Args:
        vectors: ``(n, d)`` array.

    Returns:
        A new float32 ``(n, d)`` array of unit rows.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    # what np.linalg.norm(axis=1) computes, without its argument handling
    norms = np.sqrt(np.add.reduce(vectors * vectors, axis=1, keepdims=True))
    zero = norms[:, 0] == 0.0
    if not zero.any():
        return vectors / norms
    out = vectors / np.where(zero[:, None], np.float32(1.0), norms)
    out[zero] = 0.0
    out[zero, 0] = 1.0
    return out


def unit_query(query: np.ndarray) -> np.ndarray:
    """One ``(d,)`` float32 query as a unit vector; the zero vector becomes the first basis vector.

    Same arithmetic as :func:`unit_rows` on one row, for a fraction of the overhead.
    """
    norm = np.sqrt(np.add.reduce(query * query))
    if norm == 0.0:
        out = np.zeros(len(query), np.float32)
        out[0] = 1.0
        return out
    return query / norm


@nb.njit(cache=True, nogil=True, fastmath=True)
def _score_rows(vectors, rows, query, out):  # pragma: no cover - compiled
    dim = vectors.shape[1]
    for i in range(rows.shape[0]):
        row = vectors[rows[i]]
        acc = np.float32(0.0)
        for j in range(dim):
            acc += row[j] * query[j]
        out[i] = acc


def score_rows(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Dot products of ``query`` with ``vectors[rows]``, without copying those rows.

    numpy's ``vectors[rows] @ query`` copies the rows first and hands big products to a
    multi-threaded BLAS, whose threads stall for milliseconds on a loaded machine; this
    kernel reads each row once on the calling thread (and releases the GIL).

    Args:
        vectors: ``(n, d)`` C-contiguous float32 array.
        rows: ``(m,)`` int64 row indices.
        query: ``(d,)`` float32 vector.

    Returns:
        ``(m,)`` float32 scores (equal to :func:`score_rows_reference` up to rounding).
    """
    out = np.empty(len(rows), dtype=np.float32)
    if len(rows):
        _score_rows(vectors, rows, np.ascontiguousarray(query, dtype=np.float32), out)
    return out


def score_rows_reference(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Pure-numpy reference of :func:`score_rows`."""
    return (vectors[rows] @ query).astype(np.float32)


def best_k(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """The ``k`` best ``(label, score)`` pairs, best first, ties to the lower label.

    Args:
        scores: ``(m,)`` scores; ``-inf`` marks rows that must not be returned.
        labels: ``(m,)`` int64 labels of those scores.
        k: How many at most (callers pass ``k <= `` the number of valid rows).

    Returns:
        Two lists: labels and scores (Python ints and floats).
    """
    if k <= 0 or not len(scores):
        return [], []
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
        # argpartition does not order ties; take every candidate tied with the k-th
        part = np.flatnonzero(scores >= scores[part].min())
    else:
        part = np.arange(len(scores))
    order = part[np.lexsort((labels[part], -scores[part]))][:k]
    return labels[order].tolist(), scores[order].tolist()


def order_hits(labels: np.ndarray, distances: np.ndarray) -> tuple[list[int], list[float]]:
    """One row of hnswlib's ``(labels, cosine distances)`` as lists, best first, ties to the lower label.

    Takes one row (1-d) or ``knn_query``'s ``(1, k)`` output as it is. hnswlib returns the
    row sorted by distance, but orders equal distances arbitrarily; only a row with a tie
    needs sorting.

    The scores are ``1 - distance`` rounded to float32, as numpy's float32 ``1.0 - distances``
    gives them, but computed without a numpy call (right after the graph walk numpy's
    machinery is cache-cold and costs microseconds): for a float32 ``d`` in ``[0, 2]``,
    ``1.0 - d`` is exact in float64 (or, for ``d`` below ``2**-31``, within the float32
    rounding of 1.0), so the one rounding to float32 in ``array("f", ...)`` is numpy's
    correctly rounded result.
    """
    hits = labels.tolist()
    dists = distances.tolist()
    if labels.ndim == 2:
        hits, dists = hits[0], dists[0]
    scores = array("f", [1.0 - d for d in dists]).tolist()
    if len(set(scores)) < len(scores):
        pairs = sorted(zip(scores, hits), key=lambda p: (-p[0], p[1]))
        hits, scores = [p[1] for p in pairs], [p[0] for p in pairs]
    return hits, scores


def filter_on_graph(n_candidates: int, n_live: int, k: int, factor: float = FILTER_GRAPH_FACTOR) -> bool:
    """Whether a filtered search should walk the HNSW graph rather than score its candidates.

    Args:
        n_candidates: Entries that pass the filter.
        n_live: Live entries in the store.
        k: Results wanted.
        factor: The measured cost ratio (see :data:`FILTER_GRAPH_FACTOR`).

    Returns:
        ``True`` for the graph.
    """
    return n_candidates > k and n_candidates > math.sqrt(factor * n_live)
