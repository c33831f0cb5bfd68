"""Scripted teams on the shared-memory PettingZoo tasks.

    python benchmarks/team_baselines.py --episodes 50 --json results/team_baselines.json

For every team variant, every scripted team (cooperative oracle, store-all, vigilant,
trusting, no-communication) plays the first ``--episodes`` tasks with seeds
``seed + i``. Reported: the team reward (the paper's trajectory reward of the team), the
answer score (F1), memory quality of the final shared memory (a saboteur's memories count
as stating no gold fact), cycles, and the saboteur's memories left in the store and
retrieved by the answerer. Saboteur variants run with ``provenance=True`` so the
``trusting`` team (which retrieves only memories whose author is a reader) can play.
"""

from __future__ import annotations

import argparse
import time

from _common import format_table, run_metadata, write_json

TEAMS = ("oracle", "store-all", "vigilant", "trusting", "no-communication")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=None, help="default: all")
    parser.add_argument("--teams", nargs="+", default=list(TEAMS), choices=TEAMS)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from agemem_gym.adapters.pettingzoo import VARIANTS, make_parallel
    from agemem_gym.adapters.pettingzoo.baselines import evaluate_team

    rows, results = [], []
    for variant in args.variants or list(VARIANTS):
        adversarial = VARIANTS[variant].get("num_saboteurs", 0) > 0
        env = make_parallel(variant, privileged_info=True, provenance=adversarial)
        for team in args.teams:
            if team == "trusting" and not adversarial:
                continue  # identical to store-all without a saboteur
            t0 = time.perf_counter()
            summary, _ = evaluate_team(env, team, episodes=args.episodes, seed=args.seed)
            seconds = time.perf_counter() - t0
            results.append({"variant": variant, "team": team, "seconds": seconds, **summary})
            rows.append(
                [
                    variant,
                    team,
                    summary["team_reward"],
                    summary["task_score"],
                    summary["memory_quality"],
                    summary["cycles"],
                    summary["misleading_memories"] if adversarial else "",
                    summary["misleading_retrieved"] if adversarial else "",
                ]
            )
        env.close()
    headers = ["variant", "team", "team reward", "F1", "MQ", "cycles", "planted left", "planted retrieved"]
    print(f"\n{args.episodes} episodes per row (tasks 0..{args.episodes - 1}), seed {args.seed}\n")
    print(format_table(headers, rows))
    write_json(args.json, {"meta": run_metadata(), "config": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
