"""Consistency checks of the long-term memory's state (``LongTermMemory.check_invariants``).

The store keeps several views of its entries in step: the id -> entry table, the label ->
entry table, the alive-row mask, the unit vectors, the metadata inverted index and the HNSW
graph. These functions recompute what each view should hold from the entries and raise
``AssertionError`` on the first disagreement. The caller holds the store's read lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agemem_gym.memory.ltm_meta import MetadataIndex

if TYPE_CHECKING:
    from agemem_gym.memory.ltm import LongTermMemory

__all__ = ["check_store"]


def check_store(ltm: LongTermMemory) -> None:
    """Raise ``AssertionError`` if any view of ``ltm``'s entries disagrees with the entries."""
    entries = ltm._entries
    live = set(np.flatnonzero(ltm._alive[: ltm._next_label]).tolist())
    labels = {e.label for e in entries.values()}
    if live != labels:
        raise AssertionError(f"alive rows {len(live)} != entry labels {len(labels)}")
    if set(ltm._by_label) != labels or any(ltm._by_label[e.label] is not e for e in entries.values()):
        raise AssertionError("label -> entry table out of sync")
    if any(mid != e.id for mid, e in entries.items()):
        raise AssertionError("an entry is filed under another id")
    if not set(entries) <= ltm._issued:
        raise AssertionError("an entry id was never issued")
    _check_metadata_index(ltm)
    if ltm._index is not None:
        count = ltm._index.element_count - ltm._index_deleted
        if count != len(entries):
            raise AssertionError(f"hnsw holds {count} live points, entries {len(entries)}")
    norms = np.linalg.norm(ltm._vectors[sorted(labels)], axis=1) if labels else np.ones(0)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise AssertionError("a stored vector is not unit-length")


def _check_metadata_index(ltm: LongTermMemory) -> None:
    fresh = MetadataIndex()
    for entry in ltm._entries.values():
        fresh.add(entry.label, entry.metadata)
    if fresh.snapshot() != ltm._meta.snapshot() or fresh.side_labels() != ltm._meta.side_labels():
        raise AssertionError("metadata index out of sync with the entries")
