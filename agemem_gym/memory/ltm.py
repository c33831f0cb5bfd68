"""Long-term memory: an embedding store with exact and hnswlib backends.

Entries are ``(id, content, embedding, metadata)``. Ids look like ``mem_3fa2c1d0`` and are
drawn from a seeded generator, so the same seed and the same operations give the same ids
(no ``uuid4``, no clock). Agent-supplied ids never raise: unknown ids make ``update`` and
``delete`` return ``False``.

Backends:

* ``"exact"``: cosine similarity of the query with every stored unit vector (a numba
  kernel, :func:`~agemem_gym.memory.ltm_search.score_rows`).
* ``"hnsw"``: an hnswlib HNSW graph (cosine space) built single-threaded from a fixed seed
  so results are reproducible. Capacity doubles with ``resize_index``; deletions are
  tombstones whose slots new entries reuse (``allow_replace_deleted``), and the graph is
  rebuilt when tombstones pile up. Labels are never reused between rebuilds, which keeps
  hnswlib's label table consistent.
* ``"auto"`` (default): exact search while the store holds fewer than
  :data:`AUTO_HNSW_THRESHOLD` live entries, HNSW from there on (the graph is built when the
  store first crosses the threshold). ``benchmarks/bench_ltm.py --crossover`` measured it on
  the 2-core reference machine under load (384-d vectors, p50 per query): 2k entries exact
  0.10 ms vs HNSW 0.06 ms, 5k 0.22 vs 0.12 ms, 10k 0.78 vs 0.17 ms; building the graph costs
  0.7–1.7 ms per entry single-threaded there. Below ~5k entries the exact scan costs at most
  a tenth of a millisecond more, needs no build and has perfect recall.

A ``metadata_filter`` search looks the matching rows up in an inverted index
(:mod:`~agemem_gym.memory.ltm_meta`), then scores those rows exactly, or walks the graph with
them as hnswlib's ``filter=`` when the filter is broad (``ltm_search.filter_on_graph``).

All public methods are thread-safe (a readers-writer lock: hnswlib forbids a query
concurrent with an insert). ``save`` is atomic: it writes a temporary file in the target's
folder, fsyncs it and renames it over the target, so a crash leaves the previous snapshot.
Files are NumPy ``.npz`` archives read with ``allow_pickle=False``: loading never runs code
(the format and its checks live in :mod:`agemem_gym.memory.ltm_file`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agemem_gym.error import InvalidConfig, MemoryFull
from agemem_gym.memory import ltm_checks, ltm_file
from agemem_gym.memory.embedders import Embedder, make_embedder
from agemem_gym.memory.ltm_items import MemoryItem, _Entry, _hits, _item
from agemem_gym.memory.ltm_meta import MetadataIndex, check_metadata
from agemem_gym.memory.ltm_search import best_k, filter_on_graph, order_hits, score_rows, unit_query, unit_rows
from agemem_gym.memory.rwlock import RWLock

__all__ = ["MemoryItem", "LongTermMemory", "AUTO_HNSW_THRESHOLD"]

AUTO_HNSW_THRESHOLD = 5000
"""Live-entry count from which ``backend="auto"`` searches with HNSW (see module docstring)."""

_MIN_REBUILD_ROWS = 64
Backend = Literal["auto", "hnsw", "exact"]


class LongTermMemory:
    """An embedding store with stable ids, metadata filters, persistence and two backends.

    Args:
        embedder: ``"hashing"`` (default), ``"minilm"``, an embedder object or a callable
            ``list[str] -> (n, d)`` array.
        backend: ``"auto"``, ``"hnsw"`` or ``"exact"`` (see the module docstring).
        dim: Vector dimension; taken from the embedder when omitted.
        seed: Seeds the id generator and the HNSW graph.
        M: HNSW graph degree.
        ef_construction: HNSW construction beam width.
        ef: HNSW search beam width (raised to ``top_k`` when smaller; re-applied after load).
        auto_threshold: Live entries from which ``"auto"`` switches to HNSW.
        rebuild_fraction: Compact the store and rebuild the graph when dead rows exceed this
            fraction of all rows.
        max_entries: Optional cap on live entries; ``add`` past it raises
            :class:`~agemem_gym.error.MemoryFull` (the environment checks the cap first and
            answers the agent with a message instead).

    Example:
        >>> ltm = LongTermMemory(seed=0)
        >>> mid = ltm.add("Paris is the capital of France.", {"type": "fact"})
        >>> [item.content for item in ltm.search("capital of France", top_k=1)]
        ['Paris is the capital of France.']
    """

    def __init__(
        self,
        embedder: Embedder | str | Callable[[list[str]], Any] | None = None,
        backend: Backend = "auto",
        dim: int | None = None,
        seed: int = 0,
        *,
        M: int = 16,
        ef_construction: int = 200,
        ef: int = 64,
        auto_threshold: int = AUTO_HNSW_THRESHOLD,
        rebuild_fraction: float = 0.5,
        max_entries: int | None = None,
    ) -> None:
        if backend not in ("auto", "hnsw", "exact"):
            raise InvalidConfig(f"backend must be 'auto', 'hnsw' or 'exact', got {backend!r}")
        if not 0.0 < rebuild_fraction <= 1.0:
            raise InvalidConfig(f"rebuild_fraction must be in (0, 1], got {rebuild_fraction}")
        if M < 2 or ef_construction < 1 or ef < 1 or auto_threshold < 1:
            raise InvalidConfig("M must be >= 2 and ef_construction, ef, auto_threshold >= 1")
        if max_entries is not None and max_entries < 1:
            raise InvalidConfig(f"max_entries must be None or >= 1, got {max_entries}")
        self.embedder = make_embedder(embedder)
        emb_dim = int(getattr(self.embedder, "dim", 0) or 0)
        if dim is not None and emb_dim and int(dim) != emb_dim:
            raise InvalidConfig(f"dim={dim} does not match the embedder's dim {emb_dim}")
        self.dim = int(dim or emb_dim)
        if self.dim < 1:
            raise InvalidConfig("could not infer the vector dimension; pass dim=")
        self.backend: Backend = backend
        self.hnsw_params = {"M": int(M), "ef_construction": int(ef_construction), "ef": int(ef)}
        self.auto_threshold = int(auto_threshold)
        self.rebuild_fraction = float(rebuild_fraction)
        self.max_entries = max_entries
        self._lock = RWLock()
        self._reset_state(seed)

    # ------------------------------------------------------------------ state
    def _reset_state(self, seed: int) -> None:
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._entries: dict[str, _Entry] = {}
        self._by_label: dict[int, _Entry] = {}
        self._meta = MetadataIndex()  # metadata key -> value -> labels, for filtered search
        self._issued: set[str] = set()
        self._vectors = np.zeros((64, self.dim), dtype=np.float32)
        self._alive = np.zeros(64, dtype=bool)
        self._next_label = 0
        self._index: Any = None  # hnswlib.Index once built
        self._index_deleted = 0  # tombstones inside the hnsw graph
        self._index_ef = -1  # the ef last given to the graph (load sets it on its own)
        if self.backend == "hnsw":
            self._build_index()

    def _new_id(self) -> str:
        while True:
            mid = f"mem_{int(self._rng.integers(0, 2**32)):08x}"
            if mid not in self._issued:  # never reissue an id, even a deleted one
                self._issued.add(mid)
                return mid

    def _ensure_rows(self, n_new: int) -> None:
        need = self._next_label + n_new
        if need <= len(self._alive):
            return
        cap = max(need, 2 * len(self._alive))
        vectors = np.zeros((cap, self.dim), dtype=np.float32)
        vectors[: self._next_label] = self._vectors[: self._next_label]
        alive = np.zeros(cap, dtype=bool)
        alive[: self._next_label] = self._alive[: self._next_label]
        self._vectors, self._alive = vectors, alive

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vecs = np.asarray(self.embedder(list(texts)), dtype=np.float32)
        if vecs.shape != (len(texts), self.dim):
            raise InvalidConfig(f"embedder returned shape {vecs.shape}, expected ({len(texts)}, {self.dim})")
        return vecs

    # ------------------------------------------------------------------ hnsw index
    def _hnsw_wanted(self) -> bool:
        return self.backend == "hnsw" or (self.backend == "auto" and len(self._entries) >= self.auto_threshold)

    def _build_index(self) -> None:
        import hnswlib

        live = np.flatnonzero(self._alive[: self._next_label])
        index = hnswlib.Index(space="cosine", dim=self.dim)
        index.init_index(
            max_elements=max(64, 2 * len(live)),
            M=self.hnsw_params["M"],
            ef_construction=self.hnsw_params["ef_construction"],
            random_seed=self.seed % (2**31),
            allow_replace_deleted=True,
        )
        index.set_num_threads(1)  # multi-threaded construction is not reproducible
        index.set_ef(self.hnsw_params["ef"])
        self._index_ef = self.hnsw_params["ef"]
        if len(live):
            index.add_items(self._vectors[live], live.astype(np.int64), num_threads=1)
        self._index = index
        self._index_deleted = 0

    def _index_add(self, vectors: np.ndarray, first: int) -> None:
        index = self._index
        for i in range(len(vectors)):
            row, label = vectors[i : i + 1], np.array([first + i])
            if self._index_deleted > 0:
                index.add_items(row, label, num_threads=1, replace_deleted=True)
                self._index_deleted -= 1
                continue
            if index.element_count >= index.get_max_elements():
                index.resize_index(2 * index.get_max_elements())
            index.add_items(row, label, num_threads=1)

    def _graph_searchable(self, n_live: int) -> bool:
        if self._index is None or (self.backend != "hnsw" and n_live < self.auto_threshold):
            return False
        if self._index_ef != self.hnsw_params["ef"]:  # the beam width was changed since the build
            self._index.set_ef(self.hnsw_params["ef"])
            self._index_ef = self.hnsw_params["ef"]
        return True

    def _maybe_compact(self) -> None:
        rows = self._next_label
        dead = rows - len(self._entries)
        if rows >= _MIN_REBUILD_ROWS and dead > self.rebuild_fraction * rows:
            self._compact()

    def _compact(self) -> None:
        """Renumber live entries 0..n-1 in insertion order and rebuild the graph."""
        live = np.flatnonzero(self._alive[: self._next_label])
        cap = max(64, 2 * len(live))
        vectors = np.zeros((cap, self.dim), dtype=np.float32)
        vectors[: len(live)] = self._vectors[live]
        alive = np.zeros(cap, dtype=bool)
        alive[: len(live)] = True
        remap = {int(old): new for new, old in enumerate(live)}
        for entry in self._entries.values():
            entry.label = remap[entry.label]
        self._by_label = {e.label: e for e in self._entries.values()}
        self._meta = self._index_metadata()
        self._vectors, self._alive, self._next_label = vectors, alive, len(live)
        if self._index is not None:
            self._build_index()

    def _index_metadata(self) -> MetadataIndex:
        meta = MetadataIndex()
        for entry in self._entries.values():
            meta.add(entry.label, entry.metadata)
        return meta

    # ------------------------------------------------------------------ writes
    def add(self, content: str, metadata: dict[str, Any] | None = None, *, embedding: np.ndarray | None = None) -> str:
        """Store ``content`` and return its new id.

        Args:
            content: The text to store.
            metadata: JSON-serialisable dict stored with the entry.
            embedding: A precomputed vector (skips the embedder).

        Returns:
            The new id, e.g. ``"mem_3fa2c1d0"``.
        """
        if embedding is None:
            return self.add_many([content], [metadata])[0]
        if not isinstance(content, str):
            raise InvalidConfig("contents must be strings")
        vec = np.asarray(embedding, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise InvalidConfig(f"embeddings must have shape (1, {self.dim}), got {(1, *vec.shape)}")
        return self._add_rows([content], [check_metadata(metadata)], unit_query(vec)[None, :])[0]

    def add_many(
        self,
        contents: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        *,
        embeddings: np.ndarray | None = None,
    ) -> list[str]:
        """Store several entries with one embedder call; return their ids in order.

        Args:
            contents: Texts to store.
            metadatas: One metadata dict (or ``None``) per text.
            embeddings: Optional ``(n, dim)`` precomputed vectors.

        Returns:
            The new ids.
        """
        contents = list(contents)
        if not all(isinstance(c, str) for c in contents):
            raise InvalidConfig("contents must be strings")
        metas = [check_metadata(m) for m in (metadatas or [None] * len(contents))]
        if len(metas) != len(contents):
            raise InvalidConfig(f"got {len(contents)} contents but {len(metas)} metadata dicts")
        if embeddings is None:
            vecs = self._embed(contents) if contents else np.zeros((0, self.dim), np.float32)
        else:
            vecs = np.asarray(embeddings, dtype=np.float32)
            if vecs.shape != (len(contents), self.dim):
                raise InvalidConfig(f"embeddings must have shape ({len(contents)}, {self.dim}), got {vecs.shape}")
        return self._add_rows(contents, metas, unit_rows(vecs))

    def _add_rows(self, contents: list[str], metas: list[dict[str, Any]], vecs: np.ndarray) -> list[str]:
        """Store validated entries with their unit vectors (the write-locked half of ``add_many``)."""
        n = len(contents)
        with self._lock.write():
            if self.max_entries is not None and len(self._entries) + n > self.max_entries:
                raise MemoryFull(f"the memory is full ({self.max_entries} entries)")
            self._ensure_rows(n)
            first = self._next_label
            self._vectors[first : first + n] = vecs
            self._alive[first : first + n] = True
            self._next_label += n
            ids = []
            for label, content, meta in zip(range(first, first + n), contents, metas):
                entry = _Entry(self._new_id(), content, meta, label)
                self._entries[entry.id] = self._by_label[label] = entry
                self._meta.add(label, meta)
                ids.append(entry.id)
            if self._index is not None:
                self._index_add(vecs, first)
            elif self._hnsw_wanted():
                self._build_index()
            return ids

    def update(self, memory_id: str, content: str | None = None, metadata: dict[str, Any] | None = None) -> bool:
        """Replace an entry's content (re-embedding it) and/or merge into its metadata.

        Args:
            memory_id: The id to update; unknown or malformed ids return ``False``.
            content: New content, or ``None`` to keep the old one.
            metadata: Keys to merge into the metadata.

        Returns:
            Whether an entry was updated.
        """
        if not isinstance(memory_id, str) or memory_id not in self._entries:
            return False
        meta = check_metadata(metadata)
        if content is not None and not isinstance(content, str):
            raise InvalidConfig(f"content must be a str or None, got {type(content).__name__}")
        vec = unit_rows(self._embed([content])) if content is not None else None
        with self._lock.write():
            entry = self._entries.get(memory_id)
            if entry is None:  # deleted by another thread meanwhile
                return False
            if content is not None and vec is not None:
                entry.content = content
                self._vectors[entry.label] = vec[0]
                if self._index is not None:
                    # hnswlib updates a live label in place
                    self._index.add_items(vec, np.array([entry.label]), num_threads=1)
            if meta:
                self._meta.remove(entry.label, {k: entry.metadata[k] for k in meta if k in entry.metadata})
                # a merged copy, never an in-place update: search results share the old dict
                entry.metadata = {**entry.metadata, **meta}
                self._meta.add(entry.label, meta)
            return True

    def delete(self, memory_id: str) -> bool:
        """Delete an entry; ``False`` for an unknown id."""
        if not isinstance(memory_id, str):
            return False
        with self._lock.write():
            entry = self._entries.pop(memory_id, None)
            if entry is None:
                return False
            self._alive[entry.label] = False
            self._vectors[entry.label] = 0.0
            del self._by_label[entry.label]
            self._meta.remove(entry.label, entry.metadata)
            if self._index is not None:
                self._index.mark_deleted(entry.label)
                self._index_deleted += 1
            self._maybe_compact()
            return True

    def clear(self, seed: int | None = None) -> None:
        """Remove every entry; with ``seed``, also reseed the id generator and graph."""
        with self._lock.write():
            self._reset_state(self.seed if seed is None else seed)

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, memory_id: object) -> bool:
        return isinstance(memory_id, str) and memory_id in self._entries

    def __iter__(self) -> Iterator[MemoryItem]:
        with self._lock.read():
            items = [_item(e, 0.0) for e in self._entries.values()]
        return iter(items)

    def ids(self) -> list[str]:
        """Live ids in insertion order."""
        with self._lock.read():
            return list(self._entries)

    def get(self, memory_id: str) -> MemoryItem | None:
        """The entry with ``memory_id``, or ``None``."""
        with self._lock.read():
            entry = self._entries.get(memory_id) if isinstance(memory_id, str) else None
            return None if entry is None else _item(entry, 0.0)

    def embedding(self, memory_id: str) -> np.ndarray | None:
        """A copy of the stored unit vector of ``memory_id``, or ``None``."""
        with self._lock.read():
            entry = self._entries.get(memory_id)
            return None if entry is None else self._vectors[entry.label].copy()

    def search(self, query: str, top_k: int = 3, metadata_filter: dict[str, Any] | None = None) -> list[MemoryItem]:
        """The ``top_k`` entries most similar to ``query`` (cosine), best first.

        Args:
            query: The query text.
            top_k: How many entries at most.
            metadata_filter: Keep only entries whose metadata has these exact key-values.

        Returns:
            Up to ``top_k`` items with their scores; ties go to the older entry.
        """
        if not isinstance(query, str):
            raise InvalidConfig(f"query must be a str, got {type(query).__name__}")
        return self.search_vector(self._embed([query])[0], top_k, metadata_filter)

    def search_vector(
        self, vector: np.ndarray, top_k: int = 3, metadata_filter: dict[str, Any] | None = None
    ) -> list[MemoryItem]:
        """Like :meth:`search` with a precomputed query vector."""
        top_k = int(top_k)
        if top_k < 1:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (self.dim,):  # a 1-d query (the usual case) needs no reshaped view
            query = query.reshape(-1)
            if query.shape[0] != self.dim:
                raise InvalidConfig(f"query vector has dim {query.shape[0]}, expected {self.dim}")
        lock = self._lock  # the explicit pair costs less than a with block on this hot path
        lock.acquire_read()
        try:
            labels, scores = self._search_labels(query, top_k, metadata_filter)
            return _hits(self._by_label, labels, scores)
        finally:
            lock.release_read()

    def _search_labels(
        self, query: np.ndarray, top_k: int, metadata_filter: dict[str, Any] | None
    ) -> tuple[list[int], list[float]]:
        """Labels and scores of the best hits for a raw (not yet normalised) ``(dim,)`` query."""
        # The zero vector stands for the first basis vector (``unit_query``); ``_exact``
        # normalises on its own, and the unfiltered graph path checks after the walk.
        if metadata_filter:
            if not np.dot(query, query):
                query = unit_query(query)
            return self._search_filtered(query, top_k, metadata_filter)
        n_live = len(self._entries)
        if top_k >= n_live or not self._graph_searchable(n_live):
            return self._exact(query, top_k, None)
        try:
            # hnswlib normalises the query itself, and searches with max(ef, k): no per-query
            # set_ef (it would race between readers). Positional arguments parse faster.
            labels, dists = self._index.knn_query(query, top_k, 1)
        except RuntimeError:
            # hnswlib cannot fill k results when tombstones cut the graph; fall back.
            return self._exact(query, top_k, None)
        hits, scores = order_hits(labels, dists)
        # A zero query scores exactly 0 against every row, so only a best score of 0 can
        # mean one: testing that costs nothing, unlike a dot product before every walk.
        if scores[0] == 0.0 and not query.any():
            return self._search_labels(unit_query(query), top_k, None)
        return hits, scores

    def _search_filtered(self, query: np.ndarray, top_k: int, wanted: dict[str, Any]) -> tuple[list[int], list[float]]:
        candidates = self._meta.lookup(wanted, lambda label: self._by_label[label].metadata)
        if not candidates:
            return [], []
        n_live = len(self._entries)
        if filter_on_graph(len(candidates), n_live, top_k) and self._graph_searchable(n_live):
            try:
                labels, dists = self._index.knn_query(query, top_k, 1, candidates.__contains__)
                return order_hits(labels, dists)
            except RuntimeError:
                pass  # the walk found fewer than top_k matches: score every candidate instead
        return self._exact(query, top_k, self._meta.as_array(candidates))

    def _exact(self, query: np.ndarray, top_k: int, candidates: np.ndarray | None) -> tuple[list[int], list[float]]:
        query = unit_query(query)
        if candidates is not None:
            return best_k(score_rows(self._vectors, candidates, query), candidates, min(top_k, len(candidates)))
        rows = np.arange(self._next_label)  # score every row, then push dead rows to the bottom
        scores = score_rows(self._vectors, rows, query)
        if len(self._entries) < len(rows):
            scores[~self._alive[: len(rows)]] = -np.inf
        return best_k(scores, rows, min(top_k, len(self._entries)))

    # ------------------------------------------------------------------ checks
    def stats(self) -> dict[str, Any]:
        """Sizes and backend state (for ``info`` and benchmarks)."""
        with self._lock.read():
            return {
                "size": len(self._entries),
                "rows": self._next_label,
                "backend": self.backend,
                "hnsw_built": self._index is not None,
                "hnsw_tombstones": self._index_deleted,
            }

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if the index and the entries disagree."""
        with self._lock.read():
            ltm_checks.check_store(self)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = RWLock()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a snapshot atomically (temporary file, fsync, rename).

        The file format is described in :mod:`agemem_gym.memory.ltm_file`.

        Args:
            path: Target file (conventionally ``*.npz``).

        Returns:
            The path written.
        """
        return ltm_file.save_memory(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        embedder: Embedder | str | Callable[[list[str]], Any] | None = None,
    ) -> LongTermMemory:
        """Load a snapshot written by :meth:`save`.

        Args:
            path: The file.
            embedder: The embedder to use; rebuilt from the file when omitted (a custom
                embedder cannot be rebuilt and must be passed).

        Returns:
            A fully loaded memory; a truncated, corrupt or foreign file raises
            :class:`~agemem_gym.error.MemoryFileError` and nothing half-loaded is returned.
        """
        return ltm_file.load_memory(cls, path, embedder)

    def _install(
        self,
        labels: np.ndarray,
        vectors: np.ndarray,
        ids: Sequence[str],
        contents: Sequence[str],
        metas: Sequence[dict[str, Any]],
        next_label: int,
    ) -> None:
        """Put validated entries of a snapshot into this (empty) store; used by ``load``."""
        self._ensure_rows(next_label)
        self._vectors[labels] = vectors
        self._alive[labels] = True
        self._next_label = next_label
        for mid, content, meta, label in zip(ids, contents, metas, labels.tolist()):
            entry = _Entry(mid, content, dict(meta), int(label))
            self._entries[mid] = self._by_label[entry.label] = entry
            self._meta.add(entry.label, entry.metadata)
