"""Crash safety of ``LongTermMemory.save`` and clear errors for damaged memory files.

    python benchmarks/bench_crash_safety.py --kills 100 --json results/bench_crash_safety.json

**Kills.** A child process builds a memory generation by generation (``--items`` entries each,
HNSW backend so the file holds arrays, a JSON header and the graph) and saves it to one path
after every generation, announcing ``saving g`` before and ``saved g`` after each save. The
parent SIGKILLs it at a random point: a random delay after the child announces its 1st, 2nd
or 3rd save (uniform over 1.5x the previous save's duration, so kills land during the write,
around the fsync and rename, and just after). The child keeps running during the delay; what
it announced before dying is read back from the pipe. After every kill the file must load, pass
``check_invariants`` and equal the generation that was last completely written (the one
before the kill or, when the rename had already happened, the one being saved): same ids,
contents, metadata, vectors and search results as a memory rebuilt from the same seed.

**Damaged files.** Truncations at random lengths, random bytes, random bit flips, a foreign
``.npz``, another format version and a pickled object array must raise
:class:`~agemem_gym.error.MemoryFileError` (a bit flip may also land in bytes nothing reads and
load unchanged); any other exception, or a load that returns different data, is a failure.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _common import format_table, run_metadata, write_json

_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[3])
from agemem_gym.memory import LongTermMemory
path, items = sys.argv[1], int(sys.argv[2])
ltm = LongTermMemory(backend="hnsw", seed=0)
last = 0.0
g = 0
print("ready", flush=True)
while True:
    g += 1
    ltm.add_many([f"generation {g} item {i} " + "padding " * 20 for i in range(items)], [{"g": g}] * items)
    print(f"saving {g} {last:.6f}", flush=True)
    t = time.perf_counter()
    ltm.save(path)
    last = time.perf_counter() - t
    print(f"saved {g}", flush=True)
"""


def expected_memory(generation: int, items: int) -> Any:
    """The memory the child holds after ``generation`` generations (same seed, same calls)."""
    from agemem_gym.memory import LongTermMemory

    ltm = LongTermMemory(backend="hnsw", seed=0)
    for g in range(1, generation + 1):
        ltm.add_many([f"generation {g} item {i} " + "padding " * 20 for i in range(items)], [{"g": g}] * items)
    return ltm


def same_memory(a: Any, b: Any) -> bool:
    if a.ids() != b.ids():
        return False
    for x, y in zip(a, b):
        if (x.content, x.metadata) != (y.content, y.metadata):
            return False
    if any(not np.array_equal(a.embedding(i), b.embedding(i)) for i in a.ids()):
        return False
    queries = ["generation 1 item 3", "generation 2 item 7 padding", "item 5"]
    return all(
        [(h.id, round(h.score, 5)) for h in a.search(q, top_k=5)]
        == [(h.id, round(h.score, 5)) for h in b.search(q, top_k=5)]
        for q in queries
    )


def kill_trials(kills: int, items: int, seed: int, folder: Path) -> dict[str, Any]:
    from agemem_gym.error import MemoryFileError
    from agemem_gym.memory import LongTermMemory

    root = str(Path(__file__).resolve().parents[1])
    path = folder / "ltm.npz"
    rng = random.Random(seed)
    cache: dict[int, Any] = {0: LongTermMemory(backend="hnsw", seed=0)}
    cache[0].save(path)
    on_disk = 0
    rows, failures = [], []
    for trial in range(kills):
        target = rng.choice([1, 2, 2, 3, 3])  # kill during the target-th save of this child
        tmp_before = sum(p.endswith(".tmp") for p in os.listdir(folder))
        completed = 0
        with subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(items), root], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the child did not start")
            while True:
                line = proc.stdout.readline().split()
                if line[0] == "saved":
                    completed = int(line[1])
                    continue
                g, last = int(line[1]), float(line[2])
                if g == target:
                    delay = rng.uniform(0.0, 1.5 * last if last else 0.05)
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    # the child ran on during the delay: what it announced before dying is in the pipe
                    for rest in proc.stdout.read().split("\n"):
                        if rest.startswith("saved "):
                            completed = int(rest.split()[1])
                    break
        try:
            loaded = LongTermMemory.load(path)
            loaded.check_invariants()
        except (MemoryFileError, AssertionError) as exc:
            failures.append(f"trial {trial}: the file did not load: {exc}")
            continue
        gen = len(loaded) // items if len(loaded) % items == 0 else -1
        allowed = {on_disk if completed == 0 else completed, completed + 1}
        if gen not in allowed:
            failures.append(f"trial {trial}: file holds generation {gen}, expected one of {sorted(allowed)}")
            continue
        if gen not in cache:
            cache[gen] = expected_memory(gen, items)
        if not same_memory(loaded, cache[gen]):
            failures.append(f"trial {trial}: generation {gen} loads but differs from the snapshot")
            continue
        if gen == completed + 1:
            landed = "after the rename"
        elif sum(p.endswith(".tmp") for p in os.listdir(folder)) > tmp_before:
            landed = "while writing the temporary file"
        else:
            landed = "outside save (or before its first write)"
        rows.append(
            {
                "trial": trial,
                "target": target,
                "completed": completed,
                "on_disk": gen,
                "delay_s": delay,
                "landed": landed,
            }
        )
        on_disk = gen
    leftovers = sorted(p for p in os.listdir(folder) if p.endswith(".tmp"))
    return {
        "kills": kills,
        "items_per_generation": items,
        "loaded_and_matched": len(rows),
        "failures": failures,
        "new_snapshot_after_kill": sum(r["on_disk"] == r["completed"] + 1 for r in rows),
        "previous_snapshot_after_kill": sum(r["on_disk"] != r["completed"] + 1 for r in rows),
        "landed": dict(Counter(r["landed"] for r in rows)),
        "leftover_tmp_files": len(leftovers),
        "trials": rows,
    }


def damaged_files(folder: Path, seed: int, cases: int) -> dict[str, Any]:
    from agemem_gym.error import MemoryFileError
    from agemem_gym.memory import LongTermMemory

    ltm = expected_memory(2, 50)
    good = ltm.save(folder / "good.npz")
    raw = good.read_bytes()
    rng = np.random.default_rng(seed)
    tally: dict[str, dict[str, int]] = {}
    other_errors: list[str] = []

    def attempt(kind: str, data: bytes | None = None, file: Path | None = None) -> None:
        row = tally.setdefault(kind, {"cases": 0, "clear_error": 0, "loaded_identical": 0, "bad": 0})
        row["cases"] += 1
        target = file or folder / f"{kind}.npz"
        if data is not None:
            target.write_bytes(data)
        try:
            back = LongTermMemory.load(target)
        except MemoryFileError:
            row["clear_error"] += 1
            return
        except Exception as exc:  # noqa: BLE001 - the finding
            row["bad"] += 1
            other_errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        if same_memory(back, ltm):
            row["loaded_identical"] += 1
        else:
            row["bad"] += 1
            other_errors.append(f"{kind}: loaded different data without an error")

    for n in rng.integers(0, len(raw), cases):
        attempt("truncated", raw[: int(n)])
    for _ in range(cases):
        attempt("random_bytes", rng.bytes(int(rng.integers(1, 20_000))))
    for _ in range(cases):
        flipped = bytearray(raw)
        pos = int(rng.integers(len(flipped)))
        flipped[pos] ^= 1 << int(rng.integers(8))
        attempt("bit_flip", bytes(flipped))
    np.savez(folder / "foreign.npz", a=np.arange(3))
    attempt("foreign_npz", file=folder / "foreign.npz")
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for version in (0, 2, 99):
        header = arrays["header"].tobytes().decode().replace('"version": 1', f'"version": {version}')
        np.savez(folder / "version.npz", **{**arrays, "header": np.frombuffer(header.encode(), dtype=np.uint8)})
        attempt("other_version", file=folder / "version.npz")
    np.savez(folder / "pickled.npz", **{**arrays, "vectors": np.array([{"x": 1}], dtype=object)})
    attempt("pickled_object_array", file=folder / "pickled.npz")
    return {"by_kind": tally, "other_errors": other_errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--items", type=int, default=400, help="entries added per generation")
    parser.add_argument("--damaged", type=int, default=100, help="cases per damage kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="agemem-crash-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        kills = kill_trials(args.kills, args.items, args.seed, folder)
        kills["seconds"] = time.perf_counter() - t0
        damaged = damaged_files(folder, args.seed, args.damaged)

    print(
        f"## SIGKILL during LongTermMemory.save: {kills['kills']} kills, {kills['items_per_generation']} entries "
        f"per generation, {kills['seconds']:.0f} s\n"
    )
    print(
        format_table(
            ["kills", "loaded and matched", "new snapshot", "previous snapshot", "failures", "leftover .tmp"],
            [
                [
                    kills["kills"],
                    kills["loaded_and_matched"],
                    kills["new_snapshot_after_kill"],
                    kills["previous_snapshot_after_kill"],
                    len(kills["failures"]),
                    kills["leftover_tmp_files"],
                ]
            ],
        )
    )
    print("\nwhere the kills landed: " + ", ".join(f"{k}: {v}" for k, v in kills["landed"].items()))
    for f in kills["failures"][:10]:
        print("FAIL", f)
    print("\n## Damaged files\n")
    rows = [[k, v["cases"], v["clear_error"], v["loaded_identical"], v["bad"]] for k, v in damaged["by_kind"].items()]
    print(format_table(["damage", "cases", "MemoryFileError", "loaded identical", "other / wrong data"], rows))
    for e in damaged["other_errors"][:10]:
        print("FAIL", e)
    write_json(args.json, {"meta": run_metadata(), "args": vars(args), "kills": kills, "damaged": damaged})
    return 1 if kills["failures"] or damaged["other_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
