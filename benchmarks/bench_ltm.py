"""Long-term memory: build time, single-query latency and recall@10 at 1k / 10k / 100k.

Compares our HNSW backend, our exact backend, raw numpy brute force and chromadb's
in-process client (skipped with a message when chromadb is not installed) on the same
clustered, normalised 384-d vectors. Also prints the exact/HNSW crossover used to pick
``AUTO_HNSW_THRESHOLD``.

    python benchmarks/bench_ltm.py --sizes 1000 10000 100000 --json results/bench_ltm.json
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable

import numpy as np
from _common import format_table, run_metadata, write_json

from agemem_gym.memory import LongTermMemory

DIM = 384


def make_data(n: int, n_queries: int, seed: int = 0, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors; with noise 1.0 the clusters overlap, so ANN search is not trivial."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)
    data = centers[rng.integers(0, len(centers), n)] + noise * rng.normal(size=(n, DIM)).astype(np.float32)
    queries = centers[rng.integers(0, len(centers), n_queries)] + noise * rng.normal(size=(n_queries, DIM))
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data.astype(np.float32), queries.astype(np.float32)


def truth(data: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    sims = queries @ data.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return [set(row.tolist()) for row in top]


def latencies(fn: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    fn(queries[0])  # warm-up
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append(time.perf_counter() - t0)
    return out, np.array(times) * 1e3


def recall(results: list[list[int]], gold: list[set[int]], k: int) -> float:
    return float(np.mean([len(set(r[:k]) & g) / k for r, g in zip(results, gold)]))


def bench_ltm(backend: str, data: np.ndarray, queries: np.ndarray, k: int, ef: int) -> dict:
    dummy = lambda texts: np.zeros((len(texts), DIM), np.float32)  # noqa: E731 - vectors are given
    ltm = LongTermMemory(dummy, backend=backend, dim=DIM, ef=ef)
    t0 = time.perf_counter()
    ids = ltm.add_many([str(i) for i in range(len(data))], embeddings=data)
    build = time.perf_counter() - t0
    index_of = {mid: i for i, mid in enumerate(ids)}
    res, lat = latencies(lambda q: [index_of[m.id] for m in ltm.search_vector(q, k)], queries)
    return {"build_s": build, "results": res, "lat_ms": lat}


def bench_numpy(data: np.ndarray, queries: np.ndarray, k: int) -> dict:
    def search(q: np.ndarray) -> list[int]:
        s = data @ q
        top = np.argpartition(-s, k - 1)[:k]
        return top[np.argsort(-s[top])].tolist()

    res, lat = latencies(search, queries)
    return {"build_s": 0.0, "results": res, "lat_ms": lat}


def bench_chroma(data: np.ndarray, queries: np.ndarray, k: int, ef: int) -> dict | None:
    if importlib.util.find_spec("chromadb") is None:
        print("chromadb is not installed: skipping it (pip install chromadb)")
        return None
    import chromadb

    client = chromadb.EphemeralClient()
    col = client.create_collection(
        f"bench{len(data)}",
        configuration={"hnsw": {"space": "cosine", "ef_search": ef, "ef_construction": 200, "max_neighbors": 16}},
    )
    t0 = time.perf_counter()
    step = 5000
    for s in range(0, len(data), step):
        chunk = data[s : s + step]
        col.add(ids=[str(i) for i in range(s, s + len(chunk))], embeddings=chunk)
    build = time.perf_counter() - t0
    res, lat = latencies(lambda q: [int(i) for i in col.query(query_embeddings=[q], n_results=k)["ids"][0]], queries)
    client.delete_collection(f"bench{len(data)}")
    return {"build_s": build, "results": res, "lat_ms": lat}


def crossover(sizes: list[int], k: int, ef: int) -> list[list]:
    rows = []
    for n in sizes:
        data, queries = make_data(n, 200, seed=1)
        ex = bench_ltm("exact", data, queries, k, ef)
        hn = bench_ltm("hnsw", data, queries, k, ef)
        rows.append([n, float(np.median(ex["lat_ms"])), float(np.median(hn["lat_ms"])), hn["build_s"] / n * 1e3])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--crossover", type=int, nargs="*", default=[500, 1000, 2000, 5000, 10000, 20000])
    parser.add_argument("--no-chroma", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    payload = {"meta": run_metadata(), "k": args.k, "ef": args.ef, "sizes": {}}
    rows = []
    for n in args.sizes:
        data, queries = make_data(n, args.queries)
        gold = truth(data, queries, args.k)
        systems = {
            "agemem hnsw": bench_ltm("hnsw", data, queries, args.k, args.ef),
            "agemem exact": bench_ltm("exact", data, queries, args.k, args.ef),
            "numpy brute force": bench_numpy(data, queries, args.k),
        }
        if not args.no_chroma:
            chroma = bench_chroma(data, queries, args.k, args.ef)
            if chroma is not None:
                systems["chromadb (in-process)"] = chroma
        entry = {}
        for name, r in systems.items():
            stats = {
                "build_s": r["build_s"],
                "p50_ms": float(np.percentile(r["lat_ms"], 50)),
                "p99_ms": float(np.percentile(r["lat_ms"], 99)),
                "recall@k": recall(r["results"], gold, args.k),
            }
            entry[name] = stats
            rows.append([n, name, stats["build_s"], stats["p50_ms"], stats["p99_ms"], stats["recall@k"]])
        hn = entry["agemem hnsw"]["p50_ms"]
        entry["ratios"] = {
            "exact_p50_over_hnsw_p50": entry["agemem exact"]["p50_ms"] / hn,
            "numpy_p50_over_hnsw_p50": entry["numpy brute force"]["p50_ms"] / hn,
        }
        if "chromadb (in-process)" in entry:
            entry["ratios"]["chroma_p50_over_hnsw_p50"] = entry["chromadb (in-process)"]["p50_ms"] / hn
        payload["sizes"][str(n)] = entry
    print(format_table(["n", "system", "build s", "p50 ms", "p99 ms", f"recall@{args.k}"], rows))
    print()
    ratio_rows = [[n, *(f"{v:.1f}x" for v in payload["sizes"][str(n)]["ratios"].values())] for n in args.sizes]
    ratio_heads = [
        "n",
        *(k.replace("_p50_over_hnsw_p50", " / hnsw (p50)") for k in payload["sizes"][str(args.sizes[0])]["ratios"]),
    ]
    print(format_table(ratio_heads, ratio_rows))
    if args.crossover:
        print()
        cross = crossover(args.crossover, args.k, args.ef)
        payload["crossover"] = [
            dict(zip(["n", "exact_p50_ms", "hnsw_p50_ms", "hnsw_build_ms_per_entry"], r)) for r in cross
        ]
        print(format_table(["n", "exact p50 ms", "hnsw p50 ms", "hnsw build ms/entry"], cross))
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        raise SystemExit(main())
