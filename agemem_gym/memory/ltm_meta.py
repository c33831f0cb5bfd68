"""The long-term memory's metadata: validation and an inverted index for filtered search.

A filtered search (``metadata_filter={"type": "fact"}``) keeps the entries whose metadata has
every filter key with an equal value (``stored == wanted``). Scanning every entry's dict for
that is O(n) Python work per query, so :class:`MetadataIndex` keeps, per key, a map from each
value to the set of row labels holding it. A filter then costs one dict lookup per key (and a
set intersection when it has several keys).

Equality follows Python's ``==`` exactly, as the scan did:

* hashable values go in the value map; dict lookup compares by hash and ``==``, so ``1``,
  ``1.0`` and ``True`` share a bucket, as they are equal;
* unhashable values (lists, dicts) and values unequal to themselves (``nan``, which a dict
  would still find by identity) go in a per-key side set whose entries are compared with
  ``==`` at query time; JSON metadata rarely has them, so the side set is usually empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Set
from typing import Any

import numpy as np

from agemem_gym.error import InvalidConfig

__all__ = ["check_metadata", "matches", "MetadataIndex"]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_EMPTY: frozenset[int] = frozenset()

# Buckets at least this big keep a cached sorted label array (building one costs ~30 ns a label).
_CACHE_MIN = 64


def check_metadata(metadata: Any) -> dict[str, Any]:
    """A validated shallow copy of ``metadata`` (``None`` gives ``{}``).

    Args:
        metadata: What the caller passed.

    Returns:
        A new dict with the same items.

    Raises:
        InvalidConfig: Not a mapping, a non-string key, or not JSON-serialisable.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidConfig(f"metadata must be a dict, got {type(metadata).__name__}")
    out = dict(metadata)
    if not all(isinstance(k, str) for k in out):
        raise InvalidConfig("metadata keys must be strings")
    # Flat dicts of plain scalars always serialise; only nested or unusual values need the
    # (comparatively slow) trial encoding.
    if all(type(v) in _SCALARS for v in out.values()):
        return out
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise InvalidConfig(f"metadata must be JSON-serialisable: {exc}") from exc
    return out


def matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata`` has every key of ``wanted`` with an equal value (the reference rule)."""
    return not wanted or all(k in metadata and metadata[k] == v for k, v in wanted.items())


class _Bucket(set[int]):
    """An index bucket; its own type so that :meth:`MetadataIndex.as_array` knows it may cache it."""

    __slots__ = ()


def _indexable(value: Any) -> bool:
    """Whether ``value`` can live in a hash bucket: hashable and equal to itself."""
    try:
        hash(value)
    except TypeError:
        return False
    return bool(value == value)


class MetadataIndex:
    """key -> value -> set of row labels, kept in step with the store's entries.

    The store calls :meth:`add` / :meth:`remove` under its write lock and :meth:`lookup` /
    :meth:`as_array` under its read lock. Sets returned by :meth:`lookup` may be the index's
    own buckets: read them, never change them.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[Any, _Bucket]] = {}
        self._other: dict[str, set[int]] = {}
        self._arrays: dict[int, tuple[_Bucket, np.ndarray]] = {}  # id(bucket) -> (bucket, sorted labels)

    def __getstate__(self) -> dict[str, Any]:
        # The array cache is keyed by object ids, which do not survive pickling.
        return {"_values": self._values, "_other": self._other, "_arrays": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def add(self, label: int, metadata: Mapping[str, Any]) -> None:
        """Index the entry at row ``label`` with ``metadata``."""
        for key, value in metadata.items():
            if _indexable(value):
                bucket = self._values.setdefault(key, {}).setdefault(value, _Bucket())
                bucket.add(label)
                self._arrays.pop(id(bucket), None)
            else:
                self._other.setdefault(key, set()).add(label)

    def remove(self, label: int, metadata: Mapping[str, Any]) -> None:
        """Forget row ``label``, indexed with ``metadata`` (only the given keys are touched)."""
        for key, value in metadata.items():
            if not _indexable(value):
                other = self._other[key]
                other.discard(label)
                if not other:
                    del self._other[key]
                continue
            values = self._values[key]
            bucket = values[value]
            bucket.discard(label)
            self._arrays.pop(id(bucket), None)
            if not bucket:
                del values[value]
                if not values:
                    del self._values[key]

    def lookup(self, wanted: Mapping[str, Any], metadata_of: Callable[[int], Mapping[str, Any]]) -> Set[int]:
        """Labels whose metadata has every key-value of ``wanted``.

        Args:
            wanted: The filter (non-empty).
            metadata_of: The metadata of a label, to compare side-set entries with ``==``.

        Returns:
            A set of labels; possibly an index bucket, which the caller must not change.
        """
        found: list[Set[int]] = []
        for key, value in wanted.items():
            labels = self._match(key, value, metadata_of)
            if not labels:
                return _EMPTY
            found.append(labels)
        if len(found) == 1:
            return found[0]
        smallest, *rest = sorted(found, key=len)
        return {label for label in smallest if all(label in labels for labels in rest)}

    def _match(self, key: str, value: Any, metadata_of: Callable[[int], Mapping[str, Any]]) -> Set[int]:
        try:
            bucket: Set[int] = self._values.get(key, {}).get(value, _EMPTY)
        except TypeError:  # an unhashable filter value equals no hashable stored value
            bucket = _EMPTY
        other = self._other.get(key)
        if not other:
            return bucket
        extra = {label for label in other if metadata_of(label)[key] == value}
        return bucket | extra if extra else bucket

    def as_array(self, labels: Set[int]) -> np.ndarray:
        """``labels`` as a sorted int64 array; cached for big index buckets until they change."""
        cached = self._arrays.get(id(labels))
        if cached is not None and cached[0] is labels:
            return cached[1]
        arr = np.fromiter(labels, dtype=np.int64, count=len(labels))
        arr.sort()
        # Only index buckets are cached: an intersection is a new set on every query.
        if len(arr) >= _CACHE_MIN and isinstance(labels, _Bucket):
            self._arrays[id(labels)] = (labels, arr)
        return arr

    def snapshot(self) -> dict[str, dict[Any, set[int]]]:
        """A copy of the value map (hashable values only), for consistency checks."""
        return {key: {v: set(b) for v, b in values.items()} for key, values in self._values.items()}

    def side_labels(self) -> dict[str, set[int]]:
        """A copy of the per-key sets of labels with unhashable or self-unequal values."""
        return {key: set(labels) for key, labels in self._other.items()}
