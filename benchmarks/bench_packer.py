"""Numba packing kernels against their pure-Python references.

    python benchmarks/bench_packer.py --json results/bench_packer.json

Reports compile time (first call in a fresh process, including numba's cache load)
separately from steady-state time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from _common import format_table, run_metadata, write_json


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


Result = tuple[list[object], dict[str, object]]  # (table row, JSON record)


def _result(kernel: str, label: str, fast: float, ref: float, **extra: object) -> Result:
    record = {"kernel": kernel, **extra, "numba_us": fast * 1e6, "reference_us": ref * 1e6, "ratio": ref / fast}
    return [label, fast * 1e6, ref * 1e6, ref / fast], record


def bench_context(rng: np.random.Generator, sizes: list[int]) -> list[Result]:
    from agemem_gym.memory import packer

    out = []
    for n in sizes:
        for label, prio in [("1 priority", np.zeros(n, np.int64)), ("3 priorities", rng.integers(0, 3, n))]:
            counts = rng.integers(5, 400, n)
            pinned = np.zeros(n, bool)
            pinned[0] = pinned[-1] = True
            budget = int(counts.sum() // 3)
            repeat = 50 if n <= 1000 else 10
            kernel_args = (counts, pinned, prio, budget)
            fast = best_of(lambda a=kernel_args: packer.pack_context(*a), repeat)
            ref = best_of(lambda a=kernel_args: packer.pack_context_reference(*a), max(3, repeat // 5))
            out.append(_result("pack_context", f"pack_context n={n} ({label})", fast, ref, n=n, priorities=label))
    return out


def bench_rows(rng: np.random.Generator, sequences: int, row_len: int) -> Result:
    from agemem_gym.adapters.grpo import packing

    lengths = rng.integers(16, row_len // 2, sequences)
    fast = best_of(lambda: packing.pack_rows(lengths, row_len), 5)
    ref = best_of(lambda: packing.pack_rows_reference(lengths, row_len), 2)
    return _result("pack_rows", f"pack_rows {sequences} seqs into {row_len}", fast, ref, n=sequences)


def bench_embedder() -> Result:
    from agemem_gym.memory.embedders import _STOP_HASHES, HashingEmbedder, encode_texts, hash_features_reference

    texts = [f"sentence {i} about the history of science in Paris and Vienna" for i in range(2000)]
    emb = HashingEmbedder()
    emb(texts[:2])
    fast = best_of(lambda: emb(texts), 5)
    data, offsets = encode_texts(texts)
    ref = best_of(lambda: hash_features_reference(data, offsets, 384, 3, 4, 1.0, 0.2, _STOP_HASHES), 1)
    return _result("hash_features", "hashing embedder, 2000 sentences", fast, ref, n=2000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--sequences", type=int, default=4096)
    parser.add_argument("--row-len", type=int, default=4096)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    from agemem_gym.adapters.grpo import packing
    from agemem_gym.memory import packer

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    packer.pack_context(np.array([1, 2]), np.array([False, True]), np.array([0, 1]), 2)
    compile_ctx = time.perf_counter() - t0
    t0 = time.perf_counter()
    packing.pack_rows(np.array([1, 2]), 4)
    compile_rows = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    results = bench_context(rng, args.sizes)
    results.append(bench_rows(rng, args.sequences, args.row_len))
    results.append(bench_embedder())
    payload = {
        "meta": run_metadata(),
        "import_s": import_s,
        "first_call_s": {"pack_context": compile_ctx, "pack_rows": compile_rows},
        "results": [record for _, record in results],
    }
    print(
        f"import {import_s * 1e3:.0f} ms; first call (compile or cache load): pack_context "
        f"{compile_ctx * 1e3:.0f} ms, pack_rows {compile_rows * 1e3:.0f} ms"
    )
    print(format_table(["kernel", "numba µs", "python µs", "speed-up"], [row for row, _ in results]))
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
