"""The long-term memory's entries and the items it returns, built cheaply on the search path.

A search at 10k entries spends most of its Python time building its ``k`` results right
after the HNSW walk has pushed the entries' objects out of the CPU caches, so
:func:`_hits` does the least per hit that keeps the items equal to normally built ones:

* it fills each frozen item's ``__dict__`` in one assignment, skipping the generated
  ``__init__`` (one ``object.__setattr__`` call per field);
* it does not copy the entry's metadata dict: the item keeps a reference to the stored
  dict and copies it the first time ``item.metadata`` is read (:class:`_MetadataOnRead`).
  That is safe because the store never mutates a stored metadata dict
  (``LongTermMemory.update`` replaces it with a merged copy), so the reference stays the
  snapshot taken at search time, and a caller only ever sees its own copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MemoryItem"]


@dataclasses.dataclass(frozen=True)
class MemoryItem:
    """One memory as returned by ``get``, ``search`` and iteration.

    Attributes:
        id: The stable memory id.
        content: The stored text.
        metadata: A copy of the entry's metadata (the caller may change it freely).
        score: Cosine similarity to the query (``search``); 0.0 otherwise.
    """

    id: str
    content: str
    metadata: dict[str, Any]
    score: float = 0.0


_STORED = "_stored_metadata"


class _MetadataOnRead:
    """``MemoryItem.metadata`` of an item built by a search: a copy of the stored dict, made on first read.

    A non-data descriptor, so an item whose ``__dict__`` holds ``metadata`` (every item built
    by ``__init__``, and a search item once read) never reaches it. ``setdefault`` makes the
    first read atomic: two threads reading at once both get the one copy that was stored.
    """

    def __get__(self, item: MemoryItem | None, owner: type | None = None) -> dict[str, Any]:
        if item is None:  # class access: there is no class-level default, as before
            raise AttributeError("metadata")
        fields = item.__dict__
        return fields.setdefault("metadata", fields[_STORED].copy())


# Installed after the dataclass machinery ran, so fields, __init__, __eq__ and __repr__ are
# the generated ones (they read ``self.metadata`` and so go through the descriptor).
setattr(MemoryItem, "metadata", _MetadataOnRead())  # noqa: B010 - mypy must keep the field's declared type


@dataclasses.dataclass(slots=True)
class _Entry:
    id: str
    content: str
    metadata: dict[str, Any]  # never mutated once stored: items built by _hits share it
    label: int


def _item(entry: _Entry, score: float) -> MemoryItem:
    return MemoryItem(entry.id, entry.content, dict(entry.metadata), score)


_new_object = object.__new__
_set_attribute = object.__setattr__


def _hits(
    by_label: Mapping[int, _Entry] | Sequence[_Entry | None], labels: list[int], scores: list[float]
) -> list[MemoryItem]:
    """The search results as items, equal to ``_item(by_label[label], score)`` for each hit."""
    items = []
    for label, score in zip(labels, scores):
        entry = by_label[label]
        item = _new_object(MemoryItem)
        _set_attribute(
            item,
            "__dict__",
            {"id": entry.id, "content": entry.content, _STORED: entry.metadata, "score": score},  # type: ignore[union-attr]
        )
        items.append(item)
    return items
