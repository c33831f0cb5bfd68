"""PPO and DQN memory controllers against scripted controllers, on held-out tasks.

    python benchmarks/sb3_memory_controller.py --json results/sb3_memory_controller.json \
        --png results/sb3_memory_controller.png

Each env's tasks are split: the learners train on the first ``--train-tasks`` task indices
and every controller (learned ones deterministic) is scored on the next ``--eval-tasks``
ones, one episode per task with fixed seeds. The learned part is only the memory control
(``MemoryControlWrapper``: numeric features in, one of 7 memory actions out); the answer
text comes from the same extractive reader for every controller. Reported: the env's
episode reward (the paper's trajectory reward), the answer score (F1 for both tasks),
memory quality (MQ), decisions and invalid calls per episode, and training time. The PNG
shows each learner's training returns (running mean) with the scripted controllers'
held-out means as horizontal lines.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import format_table, run_metadata, write_json

# train tasks, eval tasks per env (HotpotQA's bundled sample has 300 questions)
SPLITS = {"AgeMem/HotpotQA-v0": (200, 100), "AgeMem/MemoryProbe-v0": (800, 100)}
BASELINES = ("random", "no-memory", "store-all")
_BASELINE_STYLE = {"random": ("tab:red", ":"), "no-memory": ("tab:gray", "-."), "store-all": ("tab:green", "--")}


def evaluate(controller: Any, env_id: str, panel: range, seed: int) -> dict[str, float]:
    from agemem_gym.adapters.sb3 import evaluate_controller, make_control_env, summarize_episodes

    env = make_control_env(env_id)
    try:
        return summarize_episodes(evaluate_controller(controller, env, panel, seed=seed))
    finally:
        env.close()


def run_env(env_id: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from agemem_gym.adapters.sb3 import make_controller, train_controller

    n_train, n_eval = args.train_tasks or SPLITS.get(env_id, (200, 50))[0], args.eval_tasks
    panel = range(n_train, n_train + n_eval)
    rows, curves = [], {}
    for name in BASELINES:
        t0 = time.perf_counter()
        controller = make_controller(name, **({"seed": args.seed} if name == "random" else {}))
        summary = evaluate(controller, env_id, panel, args.seed)
        rows.append({"env": env_id, "controller": name, "train_s": 0.0, "eval_s": time.perf_counter() - t0, **summary})
    for algo in args.algos:
        t0 = time.perf_counter()
        model, curve = train_controller(
            env_id,
            algo=algo,
            total_timesteps=args.timesteps,
            seed=args.seed,
            n_envs=args.n_envs,
            wrapper_kwargs={"tasks": range(n_train)},
        )
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = evaluate(model, env_id, panel, args.seed)
        rows.append(
            {"env": env_id, "controller": algo, "train_s": train_s, "eval_s": time.perf_counter() - t0, **summary}
        )
        curves[algo] = {"timesteps": curve.timesteps, "returns": curve.returns, "smoothed": curve.smoothed(50)}
        print(f"{env_id} {algo}: {args.timesteps} steps in {train_s:.0f}s, held-out reward {summary['reward']:.3f}")
    return rows, curves


def plot(curves: dict[str, dict[str, Any]], rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(curves)
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        for algo, c in curves[env_id].items():
            ax.plot(c["timesteps"], c["smoothed"], label=f"{algo} (training, mean of 50)")
        for row in rows:
            if row["env"] == env_id and row["controller"] in BASELINES:
                color, style = _BASELINE_STYLE[row["controller"]]
                label = f"{row['controller']} (held-out mean)"
                ax.axhline(row["reward"], color=color, linestyle=style, linewidth=1.2, label=label)
        ax.set_title(env_id)
        ax.set_xlabel("decisions (env steps)")
        ax.set_ylabel("episode reward")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SPLITS))
    parser.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--train-tasks", type=int, default=None, help="default: per env (see SPLITS)")
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--png", default=None)
    args = parser.parse_args(argv)

    import agemem_gym  # noqa: F401 - registers the ids

    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, Any]] = {}
    for env_id in args.envs:
        env_rows, curves[env_id] = run_env(env_id, args)
        rows += env_rows
    headers = ["env", "controller", "reward", "± std", "F1", "MQ", "decisions", "invalid", "train s"]
    table = [
        [
            r["env"],
            r["controller"],
            r["reward"],
            r["reward_std"],
            r["f1"],
            r["memory_quality"],
            r["steps"],
            r["invalid_calls"],
            r["train_s"],
        ]
        for r in rows
    ]
    print(f"\nHeld-out panel: {args.eval_tasks} tasks per env, {args.timesteps} training decisions, seed {args.seed}\n")
    print(format_table(headers, table))
    if args.png and curves:
        plot(curves, rows, args.png)
    write_json(args.json, {"meta": run_metadata(), "config": vars(args), "results": rows, "curves": curves})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
