"""Resource use of the engine-backed envs over many resets: RSS, file handles, child processes.

    python benchmarks/bench_engine_leaks.py --resets 1000 --json results/bench_engine_leaks.json
    python benchmarks/bench_engine_leaks.py --ids AgeMem/ALFWorld-v0 --resets 200 --switch-every 20
    python benchmarks/bench_engine_leaks.py --resets 0 --instances 0 --vector-envs 16 --vector-steps 10000

Each env runs in ``plain`` mode (every reset starts the world) and takes two commands per
episode. The task changes every ``--switch-every`` resets (a new ScienceWorld variation or
ALFWorld game to load) and stays pinned in between (a reset of the loaded world). Every
``--sample-every`` resets it records the RSS of this process and of its child processes
(the ScienceWorld JVM), open file descriptors, threads and live child processes.

A second phase creates, uses and closes ``--instances`` envs in a row: a closed env must
leave no child process and no extra file handle behind.

A third phase (``--vector-envs N``) runs ``--vector-id`` in a Gymnasium ``AsyncVectorEnv`` of N
worker processes for ``--vector-steps`` vector steps, driven by the fuzzer of
``fuzz_actions.py`` (valid and adversarial turns; autoreset starts new episodes). It samples the
RSS of the whole process tree (this process, the workers and anything they start), the open
file handles of the tree and the number of live descendants; growth is measured from the
first sample after a warm-up of 10% of the steps to the last. ``close()`` must leave no
descendant process behind. Target: RSS growth < 5%, file handles flat, no leftovers.

Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import Any

from _common import format_table, rss_mb, run_metadata, write_json

DEFAULT_IDS = ("AgeMem/SciWorld-v0", "AgeMem/ALFWorld-v0")


def _children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return 0


def tree_snapshot() -> dict[str, Any]:
    """RSS, file handles and process count of this process and all its descendants."""
    me = os.getpid()
    tree = _descendants(me)
    return {
        "rss_mb": rss_mb(me) + sum(rss_mb(p) for p in tree),
        "processes": len(tree),
        "fds": _fds(me) + sum(_fds(p) for p in tree),
    }


def vector_run(env_id: str, n_envs: int, steps: int, sample_every: int, seed: int = 0) -> dict[str, Any]:
    import sys
    from pathlib import Path

    import gymnasium as gym

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzz_actions import TurnFuzzer

    from agemem_gym.tools import turn_text

    before = tree_snapshot()
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="async", vector_kwargs={"shared_memory": False})
    fuzzers = [TurnFuzzer(seed + i) for i in range(n_envs)]
    t0 = time.perf_counter()
    samples = []
    episodes = 0
    try:
        envs.reset(seed=seed)
        for i in range(1, steps + 1):
            actions = tuple(f.turn([])[1] for f in fuzzers)
            # structured actions travel as their text (deeply nested ones cannot be pickled to a worker)
            actions = tuple(turn_text(a)[:20_000] for a in actions)
            _, _, term, trunc, _ = envs.step(actions)
            episodes += int((term | trunc).sum())
            if i % sample_every == 0 or i == steps:
                gc.collect()
                samples.append({"step": i, **tree_snapshot()})
    finally:
        envs.close()
    gc.collect()
    time.sleep(0.5)
    after = tree_snapshot()
    warm = next((s for s in samples if s["step"] >= steps // 10), samples[0])
    last = samples[-1]
    return {
        "env_id": env_id,
        "num_envs": n_envs,
        "vector_steps": steps,
        "env_steps": steps * n_envs,
        "episodes": episodes,
        "seconds": time.perf_counter() - t0,
        "before": before,
        "samples": samples,
        "after_close": after,
        "rss_growth_pct": 100.0 * (last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"],
        "fd_growth": last["fds"] - warm["fds"],
        "leftover_processes": after["processes"] - before["processes"],
    }


def snapshot() -> dict[str, Any]:
    me = os.getpid()
    kids = _children(me)
    return {
        "rss_mb": rss_mb(me),
        "children": len(kids),
        "children_rss_mb": sum(rss_mb(k) for k in kids),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
    }


def _turn(action: str) -> str:
    from agemem_gym.tools import format_action

    return format_action(action)


def many_resets(env_id: str, resets: int, switch_every: int, sample_every: int) -> dict[str, Any]:
    import gymnasium as gym

    env = gym.make(env_id, plain=True, privileged_info=True)
    n_tasks = len(env.unwrapped.task_ids)
    samples, t0 = [], time.perf_counter()
    reset_s = []
    try:
        for i in range(resets):
            t = time.perf_counter()
            obs, info = env.reset(seed=i, options={"task_id": (i // switch_every) % n_tasks})
            reset_s.append(time.perf_counter() - t)
            for _ in range(2):
                expert = info["privileged"]["expert_action"] or "look"
                obs, r, term, trunc, info = env.step(_turn(expert))
                if term or trunc:
                    break
            if i % sample_every == 0 or i == resets - 1:
                gc.collect()
                samples.append({"reset": i + 1, **snapshot()})
    finally:
        env.close()
    gc.collect()
    after_close = snapshot()
    return {
        "env_id": env_id,
        "resets": resets,
        "switch_every": switch_every,
        "seconds": time.perf_counter() - t0,
        "reset_s_median": sorted(reset_s)[len(reset_s) // 2],
        "samples": samples,
        "after_close": after_close,
    }


def many_instances(env_id: str, instances: int) -> dict[str, Any]:
    import gymnasium as gym

    gc.collect()
    before = snapshot()
    during = []
    for i in range(instances):
        env = gym.make(env_id, plain=True)
        env.reset(seed=i, options={"task_id": i})
        env.step(_turn("look"))
        during.append(snapshot()["children"])
        env.close()
        del env
    gc.collect()
    after = snapshot()
    return {"env_id": env_id, "instances": instances, "before": before, "after": after, "max_children": max(during)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=list(DEFAULT_IDS))
    parser.add_argument("--resets", type=int, default=1000)
    parser.add_argument("--switch-every", type=int, default=50)
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--vector-envs", type=int, default=0, help="AsyncVectorEnv phase: number of workers")
    parser.add_argument("--vector-steps", type=int, default=10_000)
    parser.add_argument("--vector-id", default="AgeMem/HotpotQA-v0")
    parser.add_argument("--vector-sample-every", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import agemem_gym  # noqa: F401

    report: dict[str, Any] = {"meta": run_metadata(), "resets": [], "instances": []}
    for env_id in args.ids if args.resets > 0 else ():
        run = many_resets(env_id, args.resets, args.switch_every, args.sample_every)
        report["resets"].append(run)
        rows = [
            [s["reset"], s["rss_mb"], s["children"], s["children_rss_mb"], s["fds"], s["threads"]]
            for s in run["samples"]
        ]
        a = run["after_close"]
        rows.append(["after close()", a["rss_mb"], a["children"], a["children_rss_mb"], a["fds"], a["threads"]])
        print(
            f"\n## {env_id}: {run['resets']} resets (task switch every {run['switch_every']}), "
            f"{run['seconds']:.0f} s, median reset {run['reset_s_median']:.2f} s\n"
        )
        print(format_table(["resets", "RSS MB", "children", "children RSS MB", "fds", "threads"], rows))
        warm, last = run["samples"][min(1, len(run["samples"]) - 1)], run["samples"][-1]
        print(
            f"\nGrowth from reset {warm['reset']} to {last['reset']}: RSS {last['rss_mb'] - warm['rss_mb']:+.1f} MB "
            f"(Python), {last['children_rss_mb'] - warm['children_rss_mb']:+.1f} MB (children); "
            f"fds {warm['fds']} -> {last['fds']}; children {warm['children']} -> {last['children']}"
        )
    for env_id in args.ids if args.instances > 0 else ():
        inst = many_instances(env_id, args.instances)
        report["instances"].append(inst)
        b, a = inst["before"], inst["after"]
        print(
            f"\n## {env_id}: {inst['instances']} envs created, used and closed in a row\n\n"
            f"children {b['children']} -> {a['children']} (at most {inst['max_children']} alive at once), "
            f"fds {b['fds']} -> {a['fds']}, threads {b['threads']} -> {a['threads']}, "
            f"RSS {b['rss_mb']:.0f} -> {a['rss_mb']:.0f} MB"
        )
    if args.vector_envs:
        vec = vector_run(args.vector_id, args.vector_envs, args.vector_steps, args.vector_sample_every)
        report["vector"] = vec
        print(
            f"\n## {vec['env_id']}: AsyncVectorEnv of {vec['num_envs']} x {vec['vector_steps']} steps "
            f"({vec['env_steps']:,} env steps, {vec['episodes']} episodes) in {vec['seconds']:.0f} s\n"
        )
        rows = [[s["step"], s["rss_mb"], s["processes"], s["fds"]] for s in vec["samples"]]
        a = vec["after_close"]
        rows.append(["after close()", a["rss_mb"], a["processes"], a["fds"]])
        print(format_table(["vector step", "tree RSS MB", "processes", "fds (tree)"], rows))
        print(
            f"\nRSS growth after warm-up {vec['rss_growth_pct']:+.2f}%, fds {vec['fd_growth']:+d}, "
            f"leftover processes after close {vec['leftover_processes']}"
        )
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
