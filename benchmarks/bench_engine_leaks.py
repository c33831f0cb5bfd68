"""Resource use of the engine-backed envs over many resets: RSS, file handles, child processes.

    python benchmarks/bench_engine_leaks.py --resets 1000 --json results/bench_engine_leaks.json
    python benchmarks/bench_engine_leaks.py --ids AgeMem/ALFWorld-v0 --resets 200 --switch-every 20

Each env runs in ``plain`` mode (every reset starts the world) and takes two commands per
episode. The task changes every ``--switch-every`` resets (a new ScienceWorld variation or
ALFWorld game to load) and stays pinned in between (a reset of the loaded world). Every
``--sample-every`` resets it records the RSS of this process and of its child processes
(the ScienceWorld JVM), open file descriptors, threads and live child processes.

A second phase creates, uses and closes ``--instances`` envs in a row: a closed env must
leave no child process and no extra file handle behind.

Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import Any

from _common import format_table, run_metadata, write_json

DEFAULT_IDS = ("AgeMem/SciWorld-v0", "AgeMem/ALFWorld-v0")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except FileNotFoundError:
        return 0.0


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


def snapshot() -> dict[str, Any]:
    me = os.getpid()
    kids = _children(me)
    return {
        "rss_mb": _rss_mb(me),
        "children": len(kids),
        "children_rss_mb": sum(_rss_mb(k) for k in kids),
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
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import agemem_gym  # noqa: F401

    report: dict[str, Any] = {"meta": run_metadata(), "resets": [], "instances": []}
    for env_id in args.ids:
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
    for env_id in args.ids:
        inst = many_instances(env_id, args.instances)
        report["instances"].append(inst)
        b, a = inst["before"], inst["after"]
        print(
            f"\n## {env_id}: {inst['instances']} envs created, used and closed in a row\n\n"
            f"children {b['children']} -> {a['children']} (at most {inst['max_children']} alive at once), "
            f"fds {b['fds']} -> {a['fds']}, threads {b['threads']} -> {a['threads']}, "
            f"RSS {b['rss_mb']:.0f} -> {a['rss_mb']:.0f} MB"
        )
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
