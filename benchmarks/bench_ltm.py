"""Long-term memory: query, filtered query and per-item add latency, and recall@k, vs raw hnswlib and chromadb.

Every column is measured in the same run on the same clustered, normalised 384-d vectors
(precomputed: no embedder in the timings). Systems:

* ``agemem hnsw``: :class:`~agemem_gym.memory.LongTermMemory` with ``backend="hnsw"``;
* ``hnswlib``: a raw ``hnswlib.Index`` with the same M / ef_construction / ef, labels only
  (the floor our HNSW path pays on top of); its filtered query is ``knn_query(filter=)``
  with a precomputed Python set's ``__contains__``;
* ``agemem exact`` and ``numpy`` (brute force, the exact floor);
* ``chromadb`` (in-process ``EphemeralClient``; skipped with a message when not installed),
  filtered with ``where=``.

Each entry has ``{"cat": "c<i % 10>"}``; a filtered query asks for one category in ten.
Timings interleave: each round runs every system over all queries, rotating the order, and
the percentiles pool the rounds, so load on a shared machine hits all columns alike.
The store is built in batches up to ``n - add_items``; the last ``add_items`` entries are
added one at a time to every system in turn (the per-item add column).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ltm.py --sizes 10000 --filter-crossover 10000 --json out.json

(``OPENBLAS_NUM_THREADS=1``: numpy's BLAS threads would spin on the cores the other columns
are timed on.) ``--crossover`` prints the exact-vs-HNSW table behind ``AUTO_HNSW_THRESHOLD``
and ``--filter-crossover`` the one behind ``FILTER_GRAPH_FACTOR``.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import format_table, run_metadata, write_json

from agemem_gym.memory import LongTermMemory
from agemem_gym.memory.ltm_search import FILTER_GRAPH_FACTOR

DIM = 384
N_CATS = 10
Search = Callable[[np.ndarray, int], list[int]]  # (query, category) -> row numbers


def make_data(n: int, n_queries: int, seed: int = 0, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors; with noise 1.0 the clusters overlap, so ANN search is not trivial."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)
    data = centers[rng.integers(0, len(centers), n)] + noise * rng.normal(size=(n, DIM)).astype(np.float32)
    queries = centers[rng.integers(0, len(centers), n_queries)] + noise * rng.normal(size=(n_queries, DIM))
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data.astype(np.float32), queries.astype(np.float32)


def category(i: int) -> str:
    return f"c{i % N_CATS}"


def truth(data: np.ndarray, queries: np.ndarray, k: int, rows: list[np.ndarray] | None = None) -> list[set[int]]:
    """Exact top-k row sets; with ``rows``, query j searches only ``rows[j % N_CATS]``."""
    out = []
    for j, q in enumerate(queries):
        cand = np.arange(len(data)) if rows is None else rows[j % N_CATS]
        sims = data[cand] @ q
        out.append(set(cand[np.argpartition(-sims, k - 1)[:k]].tolist()))
    return out


def recall(results: list[list[int]], gold: list[set[int]], k: int) -> float:
    return float(np.mean([len(set(r[:k]) & g) / k for r, g in zip(results, gold)]))


def interleaved(systems: dict[str, Search], queries: np.ndarray, rounds: int) -> dict[str, dict[str, Any]]:
    """Run every system over all queries for ``rounds`` rounds, rotating the order each round."""
    names = list(systems)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[list[int]]] = {}
    for name in names:
        systems[name](queries[0], 0)  # warm-up (numba compile, caches)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, out = systems[name], []
            for j, q in enumerate(queries):
                t0 = time.perf_counter()
                out.append(fn(q, j % N_CATS))
                times[name].append(time.perf_counter() - t0)
            results[name] = out
    return {name: {"lat_ms": np.array(times[name]) * 1e3, "results": results[name]} for name in names}


# ---------------------------------------------------------------------- the systems
def build_ltm(backend: str, data: np.ndarray, ef: int) -> tuple[LongTermMemory, dict[str, int]]:
    dummy = lambda texts: np.zeros((len(texts), DIM), np.float32)  # noqa: E731 - vectors are given
    ltm = LongTermMemory(dummy, backend=backend, dim=DIM, ef=ef)
    rows = range(len(data))
    ids = ltm.add_many([str(i) for i in rows], [{"cat": category(i)} for i in rows], embeddings=data)
    return ltm, {mid: i for i, mid in enumerate(ids)}


def build_hnswlib(data: np.ndarray, capacity: int, ef: int) -> Any:
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=DIM)
    index.init_index(max_elements=capacity, M=16, ef_construction=200, random_seed=0)
    index.set_ef(ef)
    index.add_items(data, np.arange(len(data)), num_threads=1)
    return index


def build_chroma(data: np.ndarray, ef: int) -> Any | None:
    if importlib.util.find_spec("chromadb") is None:
        print("chromadb is not installed: skipping it (pip install chromadb)")
        return None
    import chromadb

    client = chromadb.EphemeralClient()
    name = f"bench{len(data)}_{time.monotonic_ns()}"
    config = {"hnsw": {"space": "cosine", "ef_search": ef, "ef_construction": 200, "max_neighbors": 16}}
    col = client.create_collection(name, configuration=config)
    for s in range(0, len(data), 5000):
        rows = range(s, min(s + 5000, len(data)))
        col.add(
            ids=[str(i) for i in rows],
            embeddings=data[s : s + len(rows)],
            documents=[str(i) for i in rows],
            metadatas=[{"cat": category(i)} for i in rows],
        )
    return col


def per_item_adds(adders: dict[str, Callable[[int], Any]], rows: range) -> dict[str, np.ndarray]:
    """Add each row to every system in a fresh random order; per-add latency in ms.

    A fixed rotation would let one system always follow the same other one (and inherit
    the caches that one left cold); a random order spreads that evenly.
    """
    names = list(adders)
    times: dict[str, list[float]] = {name: [] for name in names}
    rng = np.random.default_rng(0)
    for i in rows:
        for j in rng.permutation(len(names)):
            name = names[j]
            t0 = time.perf_counter()
            adders[name](i)
            times[name].append(time.perf_counter() - t0)
    return {name: np.array(t) * 1e3 for name, t in times.items()}


def _adders(ltm: LongTermMemory, index: Any, col: Any, data: np.ndarray, index_of: dict[str, int]) -> dict:
    def ours(i: int) -> None:
        index_of[ltm.add(str(i), {"cat": category(i)}, embedding=data[i])] = i

    adders = {
        "agemem hnsw": ours,
        "hnswlib": lambda i: index.add_items(data[i : i + 1], np.array([i]), num_threads=1),
    }
    if col is not None:
        adders["chromadb"] = lambda i: col.add(
            ids=[str(i)], embeddings=data[i : i + 1], documents=[str(i)], metadatas=[{"cat": category(i)}]
        )
    return adders


def _searches(
    ltm: LongTermMemory, exact: LongTermMemory, index: Any, col: Any, data: np.ndarray, maps: tuple, k: int
) -> tuple[dict[str, Search], dict[str, Search]]:
    index_of, exact_of, rows = maps
    allowed = [set(r.tolist()) for r in rows]
    wanted = [{"cat": category(c)} for c in range(N_CATS)]

    def numpy_top(q: np.ndarray, cand: np.ndarray | None) -> list[int]:
        s = data @ q if cand is None else data[cand] @ q
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top])]
        return (top if cand is None else cand[top]).tolist()

    plain: dict[str, Search] = {
        "agemem hnsw": lambda q, c: [index_of[m.id] for m in ltm.search_vector(q, k)],
        "hnswlib": lambda q, c: index.knn_query(q, k=k)[0][0].tolist(),
        "agemem exact": lambda q, c: [exact_of[m.id] for m in exact.search_vector(q, k)],
        "numpy": lambda q, c: numpy_top(q, None),
    }
    filtered: dict[str, Search] = {
        "agemem hnsw": lambda q, c: [index_of[m.id] for m in ltm.search_vector(q, k, wanted[c])],
        "hnswlib": lambda q, c: index.knn_query(q, k=k, filter=allowed[c].__contains__)[0][0].tolist(),
        "numpy": lambda q, c: numpy_top(q, rows[c]),
    }
    if col is not None:
        plain["chromadb"] = lambda q, c: [int(i) for i in col.query(query_embeddings=[q], n_results=k)["ids"][0]]
        filtered["chromadb"] = lambda q, c: [
            int(i) for i in col.query(query_embeddings=[q], n_results=k, where=wanted[c])["ids"][0]
        ]
    return plain, filtered


def _stats(lat_ms: np.ndarray, rec: float | None = None) -> dict[str, float | None]:
    return {"p50_ms": float(np.percentile(lat_ms, 50)), "p99_ms": float(np.percentile(lat_ms, 99)), "recall": rec}


def bench_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Build every system at size ``n`` and measure adds, queries and filtered queries."""
    data, queries = make_data(n, args.queries)
    n_batch = n - args.add_items
    t0 = time.perf_counter()
    ltm, index_of = build_ltm("hnsw", data[:n_batch], args.ef)
    build_s = time.perf_counter() - t0
    exact, exact_of = build_ltm("exact", data, args.ef)
    index = build_hnswlib(data[:n_batch], n, args.ef)
    col = None if args.no_chroma else build_chroma(data[:n_batch], args.ef)
    adds = per_item_adds(_adders(ltm, index, col, data, index_of), range(n_batch, n))
    rows = [np.flatnonzero(np.arange(n) % N_CATS == c) for c in range(N_CATS)]
    plain, filtered = _searches(ltm, exact, index, col, data, (index_of, exact_of, rows), args.k)
    gold, gold_f = truth(data, queries, args.k), truth(data, queries, args.k, rows)
    out: dict[str, Any] = {"build_s_agemem_hnsw": build_s, "query": {}, "filtered": {}, "add": {}}
    for name, r in interleaved(plain, queries, args.rounds).items():
        out["query"][name] = _stats(r["lat_ms"], recall(r["results"], gold, args.k))
    for name, r in interleaved(filtered, queries, args.rounds).items():
        out["filtered"][name] = _stats(r["lat_ms"], recall(r["results"], gold_f, args.k))
    for name, lat in adds.items():
        out["add"][name] = _stats(lat)
    out["ratios"] = ratios(out)
    return out


def ratios(out: dict[str, Any]) -> dict[str, float]:
    """The issue's targets as same-run p50 ratios."""
    q, f, a = out["query"], out["filtered"], out["add"]
    r = {
        "query: agemem / hnswlib (target <= 1.3)": q["agemem hnsw"]["p50_ms"] / q["hnswlib"]["p50_ms"],
        "filtered: agemem / hnswlib filter= (target <= 1.5)": f["agemem hnsw"]["p50_ms"] / f["hnswlib"]["p50_ms"],
        "add: agemem / hnswlib": a["agemem hnsw"]["p50_ms"] / a["hnswlib"]["p50_ms"],
    }
    if "chromadb" in q:
        r["query: chromadb / agemem"] = q["chromadb"]["p50_ms"] / q["agemem hnsw"]["p50_ms"]
        r["filtered: chromadb where= / agemem (target >= 5)"] = f["chromadb"]["p50_ms"] / f["agemem hnsw"]["p50_ms"]
        r["add: chromadb / agemem (target >= 30)"] = a["chromadb"]["p50_ms"] / a["agemem hnsw"]["p50_ms"]
    return r


def crossover(sizes: list[int], k: int, ef: int) -> list[list[Any]]:
    """Exact vs HNSW p50 (ms) by store size: the evidence behind ``AUTO_HNSW_THRESHOLD``."""
    rows = []
    for n in sizes:
        data, queries = make_data(n, 200, seed=1)
        t0 = time.perf_counter()
        hnsw, _ = build_ltm("hnsw", data, ef)
        build_ms = (time.perf_counter() - t0) / n * 1e3
        exact, _ = build_ltm("exact", data, ef)
        lat = interleaved(
            {
                "exact": lambda q, _, s=exact: [m.id for m in s.search_vector(q, k)],
                "hnsw": lambda q, _, s=hnsw: [m.id for m in s.search_vector(q, k)],
            },
            queries,
            3,
        )
        rows.append([n, float(np.median(lat["exact"]["lat_ms"])), float(np.median(lat["hnsw"]["lat_ms"])), build_ms])
    return rows


def filter_crossover(n: int, counts: list[int], k: int, ef: int) -> list[list[Any]]:
    """Exact candidate scoring vs the graph with ``filter=`` for ``c`` random candidates; fits ``b / a``."""
    data, queries = make_data(n, 100, seed=2)
    ltm, _ = build_ltm("hnsw", data, ef)
    rng = np.random.default_rng(0)
    out = []
    for c in counts:
        cand = np.sort(rng.choice(n, c, replace=False))
        allowed = set(cand.tolist()).__contains__
        exact = interleaved(
            {
                "exact": lambda q, _, cand=cand: ltm._exact(q, k, cand)[0],
                "graph": lambda q, _, allowed=allowed: ltm._index.knn_query(q, k, 1, allowed)[0][0].tolist(),
            },
            queries,
            3,
        )
        t_exact, t_graph = (float(np.median(exact[s]["lat_ms"])) for s in ("exact", "graph"))
        # exact ~ a * c, graph ~ b * n / c  =>  b / a = t_graph * c**2 / (t_exact * n)
        out.append([n, c, t_exact, t_graph, t_graph * c * c / (t_exact * n)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all queries")
    parser.add_argument("--add-items", type=int, default=1000, help="entries added one at a time, per system")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--crossover", type=int, nargs="*", default=[], metavar="N", help="exact vs HNSW by size")
    parser.add_argument("--filter-crossover", type=int, nargs="*", default=[], metavar="N")
    parser.add_argument("--no-chroma", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    payload: dict[str, Any] = {"meta": run_metadata(), "k": args.k, "ef": args.ef, "sizes": {}}
    rows, ratio_rows = [], []
    for n in args.sizes:
        entry = payload["sizes"][str(n)] = bench_size(n, args)
        for kind in ("query", "filtered", "add"):
            for name, s in entry[kind].items():
                rec = "" if s["recall"] is None else f"{s['recall']:.3f}"
                rows.append([n, kind, name, s["p50_ms"] * 1e3, s["p99_ms"] * 1e3, rec])
        ratio_rows += [[n, name, f"{v:.2f}x"] for name, v in entry["ratios"].items()]
    print(format_table(["n", "op", "system", "p50 µs", "p99 µs", f"recall@{args.k}"], rows))
    print()
    print(format_table(["n", "ratio (same run, p50)", "value"], ratio_rows))
    if args.crossover:
        cross = crossover(args.crossover, args.k, args.ef)
        payload["crossover"] = [
            dict(zip(["n", "exact_p50_ms", "hnsw_p50_ms", "hnsw_build_ms_per_entry"], r)) for r in cross
        ]
        print()
        print(format_table(["n", "exact p50 ms", "hnsw p50 ms", "hnsw build ms/entry"], cross))
    if args.filter_crossover:
        cross = [row for n in args.filter_crossover for row in filter_crossover(n, _counts(n), args.k, args.ef)]
        payload["filter_crossover"] = [dict(zip(["n", "c", "exact_ms", "graph_ms", "b_over_a"], r)) for r in cross]
        print()
        print(format_table(["n", "candidates", "exact ms", "graph filter= ms", "b / a"], cross))
        print(
            f"\nFILTER_GRAPH_FACTOR in use: {FILTER_GRAPH_FACTOR:g}; median fitted b / a: "
            f"{float(np.median([r[4] for r in cross])):.0f}"
        )
    write_json(args.json, payload)
    return 0


def _counts(n: int) -> list[int]:
    return [c for c in (300, 1000, 3000, 10000, 30000) if c < n // 2] + [n // 2]


if __name__ == "__main__":
    raise SystemExit(main())
