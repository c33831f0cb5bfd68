"""Env snapshot/restore cost vs copying the LTM's arrays and hnswlib's own save/load.

An ``AgeMem/HotpotQA-v0`` env is reset, then its long-term memory is filled with ``n``
clustered, normalised 384-d vectors (precomputed: no embedder in the timings) with short
contents and metadata like the Add tool's. Columns, p50 over ``--repeats`` runs, in ms:

* ``snapshot`` / ``restore``: ``env.unwrapped.snapshot()`` and ``restore(snap)``: the whole
  episode state (LTM entries, vectors, HNSW graph, context, trace, RNG) pickled / unpickled;
  ``snapshot`` also re-seats the live graph from the snapshot's bytes (see
  :mod:`agemem_gym.snapshot`);
* ``np.copy``: the floor of any copy of the store: ``np.copy`` of the live vectors plus a
  copy of every entry's id, content and metadata dict;
* ``hnswlib save`` / ``hnswlib load``: ``Index.save_index`` to a file in a RAM-backed folder
  when there is one (``/dev/shm``) and ``load_index`` back (graph and vectors, no
  contents or metadata);
* ``ltm save`` / ``ltm load``: :meth:`LongTermMemory.save` / ``load`` (the atomic ``.npz``
  persistence, fsync included).

Backends ``hnsw`` (graph built) and ``exact`` (no graph) are both measured.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_snapshot.py --sizes 1000 10000 --json results/bench_snapshot.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from _common import format_table, run_metadata, write_json

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.memory import LongTermMemory

DIM = 384


def make_vectors(n: int, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors (as bench_ltm.py)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)
    data = centers[rng.integers(0, len(centers), n)] + rng.normal(size=(n, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data.astype(np.float32)


def filled_env(n: int, backend: str) -> Any:
    env = gym.make("AgeMem/HotpotQA-v0", backend=backend, max_entries=n + 1000).unwrapped
    env.reset(seed=0)
    contents = [f"memory {i}: fact number {i} about topic {i % 97}" for i in range(n)]
    metas = [{"type": "fact", "stage": 1, "step": i} for i in range(n)]
    env.ltm.add_many(contents, metas, embeddings=make_vectors(n))
    return env


def p50_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def copy_arrays(ltm: LongTermMemory) -> tuple[np.ndarray, list[tuple[str, str, dict[str, Any]]]]:
    """The copy floor: live vectors and every entry's id, content and metadata."""
    items = list(ltm)  # ids, contents and copied metadata (under the read lock, like snapshot)
    return np.copy(ltm._vectors[: ltm._next_label]), [(m.id, m.content, dict(m.metadata)) for m in items]


def bench(n: int, backend: str, repeats: int, folder: str) -> dict[str, Any]:
    env = filled_env(n, backend)
    snap = env.snapshot()
    row: dict[str, Any] = {"n": n, "backend": backend, "snapshot_mb": snap.nbytes / 2**20}
    row["snapshot_ms"] = p50_ms(env.snapshot, repeats)
    row["restore_ms"] = p50_ms(lambda: env.restore(snap), repeats)
    row["np_copy_ms"] = p50_ms(lambda: copy_arrays(env.ltm), repeats)
    npz = os.path.join(folder, f"ltm_{backend}_{n}.npz")
    row["ltm_save_ms"] = p50_ms(lambda: env.ltm.save(npz), repeats)
    row["ltm_load_ms"] = p50_ms(lambda: LongTermMemory.load(npz, env.embedder), repeats)
    if env.ltm._index is not None:
        import hnswlib

        path = os.path.join(folder, f"hnsw_{n}.bin")
        index = env.ltm._index
        row["hnsw_save_ms"] = p50_ms(lambda: index.save_index(path), repeats)

        def load() -> None:
            loaded = hnswlib.Index(space="cosine", dim=DIM)
            loaded.load_index(path, max_elements=index.get_max_elements())

        row["hnsw_load_ms"] = p50_ms(load, repeats)
    env.close()
    return row


def ratio(a: float | None, b: float | None) -> float | str:
    return a / b if a is not None and b else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["hnsw", "exact"], choices=["hnsw", "exact"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        rows = [bench(n, b, args.repeats, folder) for n in args.sizes for b in args.backends]
    headers = [
        "n",
        "backend",
        "MB",
        "snapshot",
        "restore",
        "np.copy",
        "hnswlib save",
        "hnswlib load",
        "ltm save",
        "ltm load",
    ]
    keys = ["snapshot_ms", "restore_ms", "np_copy_ms", "hnsw_save_ms", "hnsw_load_ms", "ltm_save_ms", "ltm_load_ms"]
    table = [[r["n"], r["backend"], r["snapshot_mb"], *(r.get(k, "-") for k in keys)] for r in rows]
    print(f"p50 ms over {args.repeats} runs, 384-d vectors, HotpotQA-v0 env")
    print(format_table(headers, table))
    ratios = [
        [
            r["n"],
            r["backend"],
            ratio(r["snapshot_ms"], r["np_copy_ms"]),
            ratio(r["restore_ms"], r["np_copy_ms"]),
            ratio(r["snapshot_ms"], r.get("hnsw_save_ms")),
            ratio(r["restore_ms"], r.get("hnsw_load_ms")),
            ratio(r["snapshot_ms"], r["ltm_save_ms"]),
            ratio(r["restore_ms"], r["ltm_load_ms"]),
        ]
        for r in rows
    ]
    print()
    print(
        format_table(
            [
                "n",
                "backend",
                "snapshot/np.copy",
                "restore/np.copy",
                "snapshot/hnsw save",
                "restore/hnsw load",
                "snapshot/ltm save",
                "restore/ltm load",
            ],
            ratios,
        )
    )
    write_json(args.json, {"meta": run_metadata(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
