"""The long-term memory's file format: atomic ``.npz`` snapshots and their checks.

A snapshot is a NumPy ``.npz`` archive read with ``allow_pickle=False``, so loading never
runs code. It holds:

* ``header``: UTF-8 JSON (as a ``uint8`` array) with the format name and version, the
  store's settings, the embedder's spec, the id generator's state and, per entry, its id,
  content and metadata;
* ``labels``: ``(n,)`` int64 row label of each entry;
* ``vectors``: ``(n, dim)`` float32 unit vectors;
* ``hnsw`` (when the graph is built): the bytes of hnswlib's own index file.

Saving is atomic: the archive goes to a temporary file in the target's folder, which is
fsynced and renamed over the target (then the folder is fsynced too), so a crash leaves the
previous snapshot. Temporary files that killed saves left behind are removed once stale.
Loading checks everything it reads and raises :class:`~agemem_gym.error.MemoryFileError`
on a truncated, corrupt or foreign file; it never returns a half-loaded memory.

This module is the persistence half of :class:`~agemem_gym.memory.ltm.LongTermMemory`
(``save`` and ``load`` call it), so it reads and restores the store's private state.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agemem_gym.error import MemoryFileError
from agemem_gym.memory.embedders import Embedder, HashingEmbedder, MiniLMEmbedder

if TYPE_CHECKING:
    from agemem_gym.memory.ltm import LongTermMemory

__all__ = ["FILE_FORMAT", "FILE_VERSION", "STALE_TEMP_SECONDS", "save_memory", "load_memory"]

FILE_FORMAT = "agemem-ltm"
"""The ``format`` field of every header."""

FILE_VERSION = 1
"""The one header version this release reads and writes."""

STALE_TEMP_SECONDS = 3600.0
"""Age from which a leftover temporary file of a save counts as abandoned."""

ID_PATTERN = r"mem_[0-9a-f]{8}"
"""What every memory id looks like (``LongTermMemory`` draws them; files are checked against it)."""
_ID_RE = re.compile(rf"^{ID_PATTERN}$")
_HEADER_KEYS = frozenset(
    {
        "dim",
        "backend",
        "seed",
        "hnsw_params",
        "embedder",
        "next_label",
        "ids",
        "contents",
        "metadata",
        "issued",
        "rng_state",
        "auto_threshold",
        "rebuild_fraction",
        "max_entries",
        "index_deleted",
    }
)


# ---------------------------------------------------------------------- saving
def save_memory(ltm: LongTermMemory, path: str | os.PathLike[str]) -> Path:
    """Write a snapshot of ``ltm`` to ``path`` atomically (temporary file, fsync, rename).

    Args:
        ltm: The memory to save; it is read under its read lock.
        path: Target file (conventionally ``*.npz``); missing folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with ltm._lock.read():
        arrays = _snapshot_arrays(ltm, path.parent)
    _write_atomic(path, arrays)
    _fsync_dir(path.parent)
    _remove_stale_temps(path)
    return path


def _write_atomic(path: Path, arrays: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def embedder_spec(embedder: Any, dim: int) -> dict[str, Any]:
    """The header's description of ``embedder``, enough to rebuild a built-in one.

    Args:
        embedder: The memory's embedder.
        dim: The memory's vector dimension.

    Returns:
        ``{"name": "hashing" | "minilm" | "custom", "dim": ..., ...}``.
    """
    if isinstance(embedder, HashingEmbedder):
        return {
            "name": "hashing",
            "dim": embedder.dim,
            "ngram_range": list(embedder.ngram_range),
            "word_weight": embedder.word_weight,
            "char_weight": embedder.char_weight,
        }
    if isinstance(embedder, MiniLMEmbedder):
        return {"name": "minilm", "dim": dim}
    return {"name": "custom", "dim": dim, "repr": repr(embedder)[:200]}


def _header(ltm: LongTermMemory, items: list[tuple[str, Any]]) -> dict[str, Any]:
    # The key order is part of the bytes written; keep it when adding a key.
    return {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "dim": ltm.dim,
        "backend": ltm.backend,
        "seed": ltm.seed,
        "hnsw_params": ltm.hnsw_params,
        "auto_threshold": ltm.auto_threshold,
        "rebuild_fraction": ltm.rebuild_fraction,
        "max_entries": ltm.max_entries,
        "embedder": embedder_spec(ltm.embedder, ltm.dim),
        "next_label": ltm._next_label,
        "index_deleted": ltm._index_deleted,
        "rng_state": ltm._rng.bit_generator.state,
        "ids": [mid for mid, _ in items],
        "contents": [e.content for _, e in items],
        "metadata": [e.metadata for _, e in items],
        "issued": sorted(ltm._issued),
    }


def _snapshot_arrays(ltm: LongTermMemory, scratch: Path) -> dict[str, Any]:
    items = list(ltm._entries.items())
    labels = np.array([e.label for _, e in items], dtype=np.int64)
    header = _header(ltm, items)
    arrays: dict[str, Any] = {
        "header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
        "labels": labels,
        "vectors": ltm._vectors[labels] if len(labels) else np.zeros((0, ltm.dim), np.float32),
    }
    if ltm._index is not None:
        arrays["hnsw"] = _index_bytes(ltm._index, scratch)
    return arrays


def _index_bytes(index: Any, scratch: Path) -> np.ndarray:
    # hnswlib saves only to a path: go through a temporary file beside the target.
    fd, tmp = tempfile.mkstemp(dir=scratch, prefix=".hnsw.", suffix=".tmp")
    os.close(fd)
    try:
        index.save_index(tmp)
        return np.fromfile(tmp, dtype=np.uint8)
    finally:
        os.unlink(tmp)


def _remove_stale_temps(path: Path, older_than_s: float = STALE_TEMP_SECONDS) -> None:
    """Delete temporary files that killed saves of ``path`` left behind.

    Only files older than ``older_than_s`` go: a fresh one may belong to a save that another
    process is running right now.
    """
    now = time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
        except OSError:
            pass  # removed by a concurrent save, or not ours to remove


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- loading
def load_memory(
    cls: type[LongTermMemory],
    path: str | os.PathLike[str],
    embedder: Embedder | str | Any | None = None,
) -> LongTermMemory:
    """Load a snapshot written by :func:`save_memory`.

    Args:
        cls: The class to build (:class:`~agemem_gym.memory.ltm.LongTermMemory` or a subclass).
        path: The file.
        embedder: The embedder to use; rebuilt from the file when omitted (a custom
            embedder cannot be rebuilt and must be passed).

    Returns:
        A fully loaded memory.

    Raises:
        MemoryFileError: The file is missing, truncated, corrupt, foreign or of another
            format version.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    header = _read_header(path, arrays)
    return _restore(cls, path, header, arrays, embedder)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise MemoryFileError(f"no memory file at {path}")
    try:
        # open the file ourselves: np.load leaks its handle when the archive is corrupt
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise MemoryFileError(
            f"{path} is not a readable agemem-gym memory file (truncated or corrupt?): {exc}"
        ) from exc


def _read_header(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    missing = {"header", "labels", "vectors"} - set(arrays)
    if missing:
        raise MemoryFileError(f"{path} is not an agemem-gym memory file (missing {sorted(missing)})")
    try:
        header = json.loads(arrays["header"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MemoryFileError(f"{path}: unreadable header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise MemoryFileError(f"{path} is not an agemem-gym memory file (format {header.get('format')!r})")
    if header.get("version") != FILE_VERSION:
        raise MemoryFileError(
            f"{path} has memory-file version {header.get('version')!r}; this agemem-gym reads version "
            f"{FILE_VERSION}. Load it with the agemem-gym release that wrote it and save it again."
        )
    if _HEADER_KEYS - set(header):
        raise MemoryFileError(f"{path}: header misses {sorted(_HEADER_KEYS - set(header))}")
    return header


def _embedder_from_spec(path: Path, spec: dict[str, Any]) -> Embedder | str:
    if spec.get("name") == "hashing":
        return HashingEmbedder(
            dim=int(spec["dim"]),
            ngram_range=tuple(spec["ngram_range"]),
            word_weight=float(spec["word_weight"]),
            char_weight=float(spec["char_weight"]),
        )
    if spec.get("name") == "minilm":
        return "minilm"
    raise MemoryFileError(f"{path} was saved with a custom embedder; pass embedder= to load it")


def _empty_memory(cls: type[LongTermMemory], header: dict[str, Any], embedder: Any) -> LongTermMemory:
    params = header["hnsw_params"]
    return cls(
        embedder,
        backend=header["backend"],
        dim=int(header["dim"]),
        seed=int(header["seed"]),
        M=int(params["M"]),
        ef_construction=int(params["ef_construction"]),
        ef=int(params["ef"]),
        auto_threshold=int(header["auto_threshold"]),
        rebuild_fraction=float(header["rebuild_fraction"]),
        max_entries=header["max_entries"],
    )


def _restore(
    cls: type[LongTermMemory], path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray], embedder: Any
) -> LongTermMemory:
    if embedder is None:
        embedder = _embedder_from_spec(path, header["embedder"])
    ltm = _empty_memory(cls, header, embedder)
    labels, vectors = arrays["labels"], arrays["vectors"]
    ids, contents, metas = header["ids"], header["contents"], header["metadata"]
    try:
        next_label = int(header["next_label"])
    except (TypeError, ValueError) as exc:
        raise MemoryFileError(f"{path}: bad next_label") from exc
    _validate_snapshot(path, ltm.dim, labels, vectors, ids, contents, metas, next_label)
    ltm._install(labels, vectors, ids, contents, metas, next_label)
    ltm._issued = set(header["issued"]) | set(ids)
    try:
        ltm._rng.bit_generator.state = header["rng_state"]
    except (TypeError, ValueError, KeyError) as exc:
        raise MemoryFileError(f"{path}: bad id-generator state: {exc}") from exc
    ltm._index = None
    if "hnsw" in arrays:
        _install_index(ltm, path, arrays["hnsw"], int(header["index_deleted"]))
    elif ltm._hnsw_wanted():
        ltm._build_index()
    return ltm


def _install_index(ltm: LongTermMemory, path: Path, blob: np.ndarray, deleted: int) -> None:
    import hnswlib

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hnsw.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob.tobytes())
        index = hnswlib.Index(space="cosine", dim=ltm.dim)
        try:
            index.load_index(tmp, max_elements=0, allow_replace_deleted=True)
        except RuntimeError as exc:
            raise MemoryFileError(f"{path}: the HNSW graph is corrupt: {exc}") from exc
    finally:
        os.unlink(tmp)
    index.set_num_threads(1)
    index.set_ef(ltm.hnsw_params["ef"])  # ef is not stored by hnswlib
    ltm._index, ltm._index_deleted = index, deleted
    if index.element_count - deleted != len(ltm._entries):
        raise MemoryFileError(f"{path}: the HNSW graph does not match the entries")


def _validate_snapshot(
    path: Path,
    dim: int,
    labels: np.ndarray,
    vectors: np.ndarray,
    ids: list[Any],
    contents: list[Any],
    metas: list[Any],
    next_label: int,
) -> None:
    n = len(ids)
    if not (len(contents) == len(metas) == n == len(labels) == len(vectors)):
        raise MemoryFileError(f"{path}: entry arrays have different lengths")
    if vectors.ndim != 2 or vectors.shape[1] != dim or vectors.dtype != np.float32:
        raise MemoryFileError(
            f"{path}: vectors must be float32 of shape (n, {dim}), got {vectors.dtype} {vectors.shape}"
        )
    if labels.dtype != np.int64 or (n and (labels.min() < 0 or labels.max() >= next_label)):
        raise MemoryFileError(f"{path}: labels out of range")
    if len(set(labels.tolist())) != n or len(set(ids)) != n:
        raise MemoryFileError(f"{path}: duplicate labels or ids")
    if not all(isinstance(i, str) and _ID_RE.match(i) for i in ids):
        raise MemoryFileError(f"{path}: malformed memory id")
    if not all(isinstance(c, str) for c in contents) or not all(isinstance(m, dict) for m in metas):
        raise MemoryFileError(f"{path}: contents must be strings and metadata dicts")
    if n and not np.all(np.isfinite(vectors)):
        raise MemoryFileError(f"{path}: vectors contain NaN or inf")
    if n and not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        raise MemoryFileError(f"{path}: vectors are not unit-length")
