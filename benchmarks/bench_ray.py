"""Steps/s of RayVectorEnv (one Ray actor per sub-env) against the in-process and subprocess vector envs.

    python benchmarks/bench_ray.py --json results/bench_ray.json
    python benchmarks/bench_ray.py --env AgeMem/HotpotQA-v0 --num-envs 1 2 4 --steps 100

For each env id, number of sub-envs and mode (``sync``: ``SyncVectorEnv``, ``async``:
``AsyncVectorEnv`` with one subprocess per sub-env, ``ray``: ``RayVectorEnv``), a scripted
policy on the driver plays ``--steps`` lockstep steps (Gymnasium's next-step autoreset starts
a new episode after each finished one) after ``--warmup`` untimed ones (the JVM of
ScienceWorld and TextWorld's game loading start lazily). Only ``envs.step`` is timed; the
policy's own time is left out; ``--repeats`` rounds interleave the configurations and the
table shows each one's median run. The table gives sub-env steps per second, the start-up time
of the vector env, and the ratio of Ray's throughput to the in-process and subprocess ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any

from _common import format_table, run_metadata, write_json

# env id -> the scripted policy that plays it (oracle: the engines' expert moves, which step
# the engine on every turn instead of ending the episode with an answer)
DEFAULT_ENVS = {
    "AgeMem/MemoryProbe-v0": "store-all",
    "AgeMem/HotpotQA-v0": "rag",
    "AgeMem/SciWorld-v0": "oracle",
    "AgeMem/ALFWorld-v0": "oracle",
}


def make_envs(env_id: str, kwargs: dict[str, Any], n: int, mode: str) -> Any:
    import gymnasium as gym

    from agemem_gym.vector import EnvFactory
    from agemem_gym.vector_ray import RayVectorEnv

    fns = [EnvFactory(env_id, kwargs)] * n
    if mode == "sync":
        return gym.vector.SyncVectorEnv(fns)
    if mode == "async":
        return gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    return RayVectorEnv(fns)


def measure(env_id: str, policy: str, n: int, mode: str, steps: int, warmup: int) -> dict[str, Any]:
    from agemem_gym import policies
    from agemem_gym.runner import env_kwargs_for
    from agemem_gym.vector import unbatch_info

    agents = [policies.make(policy) for _ in range(n)]
    start = time.perf_counter()
    envs = make_envs(env_id, env_kwargs_for(agents[0], None), n, mode)
    startup = time.perf_counter() - start
    try:
        obs, infos = envs.reset(seed=list(range(n)))
        stepping, episodes = 0.0, 0
        for t in range(warmup + steps):
            actions = tuple(a.act(obs[i], unbatch_info(infos, i)) for i, a in enumerate(agents))
            start = time.perf_counter()
            obs, _, terms, truncs, infos = envs.step(actions)
            if t >= warmup:
                stepping += time.perf_counter() - start
            for i in (terms | truncs).nonzero()[0]:
                episodes += 1
                if hasattr(agents[i], "reset"):
                    agents[i].reset()
    finally:
        envs.close()
    return {
        "env": env_id,
        "policy": policy,
        "num_envs": n,
        "mode": mode,
        "startup_s": startup,
        "steps_per_s": steps * n / stepping,
        "ms_per_lockstep": 1e3 * stepping / steps,
        "episodes_ended": episodes,
    }


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput, with the spread of all runs and their raw numbers."""
    rate = sorted(r["steps_per_s"] for r in rows)
    middle = sorted(rows, key=lambda r: r["steps_per_s"])[len(rows) // 2]
    return {**middle, "spread": f"{_num(rate[0])}-{_num(rate[-1])}", "runs_steps_per_s": rate}


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def start_ray(num_cpus: int | None) -> tuple[float, str]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no ~/.ray/auth_token for a local benchmark
    temp = tempfile.mkdtemp(prefix="ray")
    start = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    return time.perf_counter() - start, temp


def ratio_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    by_key = {(r["env"], r["num_envs"], r["mode"]): r for r in results}
    rows = []
    for (env, n, mode), r in by_key.items():
        if mode != "ray":
            continue
        sync, async_ = by_key.get((env, n, "sync")), by_key.get((env, n, "async"))
        rows.append(
            [
                env,
                n,
                r["steps_per_s"],
                r["steps_per_s"] / sync["steps_per_s"] if sync else "-",
                r["steps_per_s"] / async_["steps_per_s"] if async_ else "-",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", default=None, help="env id (repeatable); default: four ids")
    parser.add_argument("--policy", default=None, help="scripted policy for every --env (default: per env)")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=["sync", "async", "ray"], choices=["sync", "async", "ray"])
    parser.add_argument("--steps", type=int, default=60, help="timed lockstep steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (engines start lazily)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table shows each median")
    parser.add_argument("--ray-cpus", type=int, default=None, help="ray.init(num_cpus=...); default: all cores")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    envs = {e: args.policy or DEFAULT_ENVS.get(e, "rag") for e in (args.env or DEFAULT_ENVS)}
    ray_init_s, temp = start_ray(args.ray_cpus) if "ray" in args.modes else (0.0, "")
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    try:
        for r in range(args.repeats):  # rounds interleave the modes: load drifting over time hits all alike
            for env_id, policy in envs.items():
                for n in args.num_envs:
                    for mode in args.modes:
                        row = measure(env_id, policy, n, mode, args.steps, args.warmup)
                        runs.setdefault((env_id, n, mode), []).append(row)
                        print(f"round {r}: {env_id} n={n} {mode}: {row['steps_per_s']:.1f} steps/s", flush=True)
    finally:
        if "ray" in args.modes:
            import ray

            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
    results = [median_row(rows) for rows in runs.values()]
    print(
        f"\n## Sub-env steps/s, median of {args.repeats} ({args.steps} lockstep steps after {args.warmup} warm-up; "
        f"ray.init {ray_init_s:.1f} s)\n"
    )
    headers = ["env", "policy", "envs", "mode", "steps/s", "min-max", "ms/lockstep", "startup s", "episodes"]
    keys = [
        "env",
        "policy",
        "num_envs",
        "mode",
        "steps_per_s",
        "spread",
        "ms_per_lockstep",
        "startup_s",
        "episodes_ended",
    ]
    print(format_table(headers, [[r[k] for k in keys] for r in results]))
    print("\n## Ray against the alternatives (throughput ratio, > 1: Ray is faster)\n")
    print(format_table(["env", "envs", "ray steps/s", "ray / sync", "ray / async"], ratio_rows(results)))
    payload = {"meta": run_metadata(), "ray_init_s": ray_init_s, "args": vars(args), "results": results}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
