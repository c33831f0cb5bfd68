"""Baseline table: every env id × {oracle, store-all, no-memory, random} on a fixed panel.

    python benchmarks/bench_baselines.py --episodes 20 --json results/bench_baselines.json
    python benchmarks/bench_baselines.py --ids AgeMem/PDDL-v0 --policies oracle store-all
    python benchmarks/bench_baselines.py --ids AgeMem/LoCoMo-v0 --locomo-path locomo10.json \
        --env-kwargs '{"categories": [2]}' --episodes 20

Episode ``i`` plays task ``i`` of the id's panel with seed ``i`` (the same panel as
``agemem run <id> --episodes N``). Columns: success rate, task score (the progress rate
on PDDL, F1 on LoCoMo), memory quality, prompt tokens per turn and per episode, tool calls
and invalid calls per episode. For LoCoMo the F1 by question category is printed too.
``AgeMem/LoCoMo-v0`` reads ``--locomo-path`` (default: ``$AGEMEM_LOCOMO_PATH``) and is
skipped when neither is given.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from _common import format_table, run_metadata, write_json

DEFAULT_POLICIES = ("oracle", "store-all", "no-memory", "random")


def _ids(requested: list[str] | None) -> list[str]:
    import agemem_gym

    return requested or [i for i in agemem_gym.env_ids() if "HotpotQA" not in i and "Probe" not in i]


def run_one(env_id: str, policy_name: str, episodes: int, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    import gymnasium as gym

    from agemem_gym import policies
    from agemem_gym.evaluation import run_episodes, summarize

    t0 = time.perf_counter()
    results = run_episodes(env_id, policies.make(policy_name), episodes=episodes, seed=0, env_kwargs=env_kwargs)
    wall = time.perf_counter() - t0
    summary = summarize(results)
    row: dict[str, Any] = {
        "env_id": env_id,
        "policy": policy_name,
        "episodes": episodes,
        "success": summary["success"],
        "task_score": summary["task_score"],
        "memory_quality": summary["memory_quality"],
        "prompt_tokens_per_turn": summary["prompt_tokens"],
        "prompt_tokens_per_episode": sum(r.prompt_tokens_total for r in results) / len(results),
        "tool_calls": sum(v or 0.0 for v in summary["tool_calls"].values()),
        "tool_calls_by_tool": summary["tool_calls"],
        "invalid_calls": summary["invalid_calls"],
        "seconds_per_episode": wall / episodes,
    }
    if "LoCoMo" in env_id:
        from agemem_gym.graders.locomo import scores_by_category

        env = gym.make(env_id, **env_kwargs).unwrapped
        category = {env.task_ids[i]: env._make_task(i).extra["category"] for i in range(len(env.task_ids))}
        env.close()
        rows = [{"category": category[r.task_id], "score": r.task_score or 0.0} for r in results]
        row["f1_by_category"] = scores_by_category(rows)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+", default=None, help="env ids (default: every non-HotpotQA id)")
    parser.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--locomo-path", default=os.environ.get("AGEMEM_LOCOMO_PATH"))
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON object passed to every gym.make")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    rows = []
    for env_id in _ids(args.ids):
        kwargs: dict[str, Any] = dict(args.env_kwargs)
        if "LoCoMo" in env_id:
            if not args.locomo_path:
                print(f"skipping {env_id}: pass --locomo-path or set AGEMEM_LOCOMO_PATH")
                continue
            kwargs["data_path"] = args.locomo_path
        for name in args.policies:
            row = run_one(env_id, name, args.episodes, kwargs)
            rows.append(row)
            print(
                f"{env_id:32s} {name:10s} success {row['success']:.3f} score {row['task_score']:.3f} "
                f"({row['seconds_per_episode']:.2f} s/episode)",
                flush=True,
            )
    headers = ["env id", "policy", "success", "score", "MQ", "tokens/turn", "tokens/episode", "tool calls", "invalid"]
    table = [
        [
            r["env_id"],
            r["policy"],
            r["success"],
            r["task_score"],
            "n/a" if r["memory_quality"] is None else r["memory_quality"],
            r["prompt_tokens_per_turn"],
            r["prompt_tokens_per_episode"],
            r["tool_calls"],
            r["invalid_calls"],
        ]
        for r in rows
    ]
    print(f"\n{args.episodes} episodes per cell (task i, seed i)\n")
    print(format_table(headers, table))
    locomo = [r for r in rows if "f1_by_category" in r]
    if locomo:
        cats = list(locomo[0]["f1_by_category"])
        print("\nLoCoMo F1 by category\n")
        print(format_table(["policy", *cats], [[r["policy"], *(r["f1_by_category"][c] for c in cats)] for r in locomo]))
    write_json(args.json, {"meta": run_metadata(), "episodes": args.episodes, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
