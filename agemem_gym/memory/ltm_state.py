"""A long-term memory's complete state as plain picklable data, and putting it back.

Used by env snapshots (:mod:`agemem_gym.snapshot`). Unlike :meth:`LongTermMemory.save`
(a portable, code-free ``.npz`` file) this is an in-memory copy for the same process or a
pickle to another one: everything that decides later ids, searches and graph growth —
entries, vectors, the metadata index, the id generator, issued ids, the HNSW graph — goes
in; the embedder and the lock stay with the store.

Entries are stored as columns (ids, contents, metadata, labels) and only the used rows of
the vector arrays are kept: pickling ten thousand entry objects one by one costs several
times more than their columns.

hnswlib does not serialise its level generator (a loaded graph draws the levels of later
insertions afresh), so :func:`capture` also replaces the store's live graph with a copy
loaded from the captured bytes: the store then grows its graph exactly as every store
given the state by :func:`install` does.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from agemem_gym.memory.ltm import LongTermMemory, _Entry

__all__ = ["capture", "install"]

# attributes rebuilt from the columns, or that belong to the store itself
_DERIVED = ("_entries", "_by_label", "_vectors", "_alive", "_index", "embedder", "_lock")


def capture(ltm: LongTermMemory) -> dict[str, Any]:
    """The store's state (see the module docstring); re-seats its HNSW graph.

    The state refers to live objects (the metadata dicts, the id generator): pickle it
    before the store changes again.
    """
    with ltm._lock.read():
        state = {k: v for k, v in vars(ltm).items() if k not in _DERIVED}
        entries = list(ltm._entries.values())
        rows = ltm._next_label
        state["_columns"] = (
            [e.id for e in entries],
            [e.content for e in entries],
            [e.metadata for e in entries],  # pickled (copied) with the rest of the state
            np.fromiter((e.label for e in entries), dtype=np.int64, count=len(entries)),
        )
        state["_rows"] = (ltm._vectors[:rows].copy(), ltm._alive[:rows].copy(), len(ltm._alive))
        index = ltm._index
        state["_index"] = None if index is None else pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
    if state["_index"] is not None:
        ltm._index = pickle.loads(state["_index"])
    return state


def install(ltm: LongTermMemory, state: dict[str, Any]) -> None:
    """Put a state from :func:`capture` into ``ltm``, which takes over the state's objects.

    Pass a freshly unpickled state (each restore of a snapshot unpickles its own).
    """
    state = dict(state)
    ids, contents, metas, labels = state.pop("_columns")
    vectors, alive, capacity = state.pop("_rows")
    blob = state.pop("_index")
    full_vectors = np.zeros((capacity, vectors.shape[1]), dtype=np.float32)
    full_vectors[: len(vectors)] = vectors
    full_alive = np.zeros(capacity, dtype=bool)
    full_alive[: len(alive)] = alive
    entries = {
        mid: _Entry(mid, content, meta, label)
        for mid, content, meta, label in zip(ids, contents, metas, labels.tolist())
    }
    with ltm._lock.write():
        vars(ltm).update(state)
        ltm._entries = entries
        ltm._by_label = {e.label: e for e in entries.values()}
        ltm._vectors, ltm._alive = full_vectors, full_alive
        ltm._index = None if blob is None else pickle.loads(blob)
