"""Proof of learning: does step-wise GRPO teach a real LLM to store and recall?

For each seed it trains the ``learning-probe`` preset (SmolLM2-135M-Instruct, LoRA,
grammar-constrained turns, ``AgeMem/Probe-Recall-v0`` tasks 0-47) and a control run with the
same seeds and a learning rate of 0. Then it evaluates, on the held-out tasks 48-63 (objects
never seen in training, the same eight colours, so a guess scores 1/8), the untrained policy
and every trained one with the same sampling seeds, and reports:

* per seed: held-out task score before → after, mean ± 95% CI over episodes;
* tool calls per episode by stage and tool, before and after (the shape of the paper's Table 3);
* the training curves of trained and control runs (task score, reward and its components,
  tool calls), as ``curves.png`` beside ``summary.md`` and ``summary.json``.

Runs go in parallel (``--jobs``: one GPU holds several 135M runs); ``--deadline-min`` sends
the training runs SIGINT at a wall-clock budget, so each stops after its last complete step
with a checkpoint (the steps reached are reported).

    python benchmarks/learning.py --seeds 0 1 2 --jobs 6 --out runs/learning          # one GPU
    python benchmarks/learning.py --seeds 0 --steps 2 --out /tmp/learning              # CPU check
    python benchmarks/learning.py --preset learning-probe --set env_id=AgeMem/HotpotQA-v0 ...

``--compare credit`` compares the two credit modes at the same cost instead (code in
``learning_credit.py``): per seed, a ``trajectory`` and a ``memory-state`` run (``--set
fork_continuations=2 --set credit_weight=0.5`` by default; other ``--set`` fields apply to both)
that each stop once they have generated ``--token-budget`` tokens (``generated_token_budget``;
``--steps`` is then only a cap, 1000 by default), a shared learning-rate-0 control per seed with
``--with-control``; both arms' final checkpoints on the held-out panel, the difference
memory-state − trajectory per seed and over seeds, and ``curves-credit.png`` (task score and
reward against the generated tokens):

    python benchmarks/learning.py --compare credit --seeds 0 1 2 --jobs 6 --token-budget N --out runs/credit
    python benchmarks/learning.py --compare credit --preset cpu-smoke --seeds 0 1 --token-budget 3000 \
        --eval-reps 1 --jobs 2 --out /tmp/credit                                        # CPU check, ~3 min

Choose N as the generated tokens of K trajectory steps: ``perf/generated_tokens_total`` of a
trajectory run's metrics.csv at step K − 1 (K = 40: the ``learning-probe`` preset's steps);
memory-state credit spends about ``1 + (M − 1)·f`` times as many per step (f: the share after the
fork), so it reaches N in fewer steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import format_table, run_metadata

HELD_OUT = {
    "AgeMem/Probe-Recall-v0": (64, range(48, 64)),
    # The first 48 dev-sample records train (``num_tasks=48`` loads only those); the next 16 are held out.
    "AgeMem/HotpotQA-v0": (64, range(48, 64)),
}
"""Held-out panels: env id → (``num_tasks`` of the eval env, task ids never trained on)."""


# ============================================================================ one run (a subprocess)
def _config(args: argparse.Namespace, seed: int, learning_rate: float | None, folder: Path) -> Any:
    from agemem_gym.adapters.grpo.config import load_config

    changes: dict[str, Any] = {k: json.loads(v) if _is_json(v) else v for k, v in (s.split("=", 1) for s in args.set)}
    if args.steps:
        changes["num_steps"] = args.steps
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    return load_config(args.preset, seed=seed, output_dir=str(folder), overwrite=True, tensorboard=False, **changes)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def train_one(args: argparse.Namespace) -> int:
    """Train one run; SIGINT (the deadline) ends it after a checkpoint of its last complete step."""
    from agemem_gym.adapters.grpo import train
    from agemem_gym.adapters.grpo.interrupt import TrainingInterrupted

    config = _config(args, args.seed, args.lr, Path(args.folder))
    try:
        train(config, progress=False)
    except TrainingInterrupted as stop:
        print(f"stopped at the deadline after step {stop.step}", flush=True)
    return 0


def eval_one(args: argparse.Namespace) -> int:
    """Play the held-out panel with one model; write one JSON record per episode."""
    import gymnasium as gym
    import torch

    import agemem_gym  # noqa: F401 - registers the ids
    from agemem_gym.policies.llm.hf_policy import HFPolicy
    from agemem_gym.policies.llm.models import load_model
    from agemem_gym.runner import play_episodes
    from agemem_gym.vector import make_slot_envs
    from agemem_gym.wrappers import ToolCallsByStage

    config = _config(args, args.seed, None, Path(args.folder))
    num_tasks, tasks = HELD_OUT[config.env_id]
    model, tok = load_model(args.model)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    policy = HFPolicy(
        model, tok, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        constrained=config.constrained, batch_size=args.eval_batch, seed=args.eval_seed,
    )  # fmt: skip
    kwargs = {**config.env_kwargs, "num_tasks": num_tasks, "tokenizer": tok}
    plan = [(t, 100_000 + 1_000 * r + t) for r in range(args.eval_reps) for t in tasks]
    envs = make_slot_envs(lambda: ToolCallsByStage(gym.make(config.env_id, **kwargs)), min(len(plan), args.eval_batch))
    ends = play_episodes(envs, plan, lambda _s, obs, infos: policy.act_batch(list(obs), list(infos)))
    envs.close()
    rows = [_episode_row(plan[e.index], e) for e in ends]
    Path(args.json).write_text(json.dumps({"model": args.model, "episodes": rows}))
    return 0


def _episode_row(planned: tuple[int, int], end: Any) -> dict[str, Any]:
    info = end.info if end.finished else {}
    return {
        "task": planned[0],
        "seed": planned[1],
        "score": float(info.get("task_score") or 0.0),
        "reward": float(end.episode_return),
        "answered": info.get("task_score") is not None,
        "tools_by_stage": {
            str(k): {t: int(n) for t, n in v.items() if int(n)} for k, v in info.get("tool_calls_by_stage", {}).items()
        },
    }


# ============================================================================ the driver
def _launch(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as fh:
        return subprocess.Popen([sys.executable, __file__, *argv], stdout=fh, stderr=subprocess.STDOUT, env=env)


def _run_all(jobs: list[tuple[list[str], Path]], parallel: int, deadline: float | None) -> list[int]:
    """Run ``jobs`` (argv, log) ``parallel`` at a time; at ``deadline`` send the running ones SIGINT."""
    pending, running, codes = list(jobs), [], []
    interrupted = False
    while pending or running:
        while pending and len(running) < parallel and not interrupted:
            running.append(_launch(*pending.pop(0)))
        if deadline is not None and time.time() > deadline and not interrupted:
            interrupted = True
            pending.clear()  # runs not yet started are skipped
            for proc in running:
                proc.send_signal(signal.SIGINT)
        for proc in [p for p in running if p.poll() is not None]:
            running.remove(proc)
            codes.append(int(proc.returncode))
        time.sleep(1.0)
    return codes


def _common_args(args: argparse.Namespace) -> list[str]:
    out = ["--preset", args.preset, *[x for s in args.set for x in ("--set", s)]]
    return out + (["--steps", str(args.steps)] if args.steps else [])


def _train_jobs(args: argparse.Namespace, out: Path) -> list[tuple[list[str], Path]]:
    jobs = []
    for seed in args.seeds:
        for kind, lr in (("trained", None), ("control", 0.0)):
            folder = out / f"seed{seed}-{kind}"
            argv = ["train", *_common_args(args), "--seed", str(seed), "--folder", str(folder)]
            argv += [] if lr is None else ["--lr", str(lr)]
            jobs.append((argv, out / f"seed{seed}-{kind}.log"))
    return jobs


def _eval_jobs(args: argparse.Namespace, out: Path) -> list[tuple[list[str], Path]]:
    return eval_jobs_for(args, out, {f"seed{seed}": out / f"seed{seed}-trained" for seed in args.seeds})


def eval_jobs_for(args: argparse.Namespace, out: Path, runs: Mapping[str, Path]) -> list[tuple[list[str], Path]]:
    """Held-out evaluations of the untrained model and of each run's (name → folder) last checkpoint."""
    from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint

    base = _config(args, args.seeds[0], None, out / "unused").model
    models = {"untrained": base}
    for name, folder in runs.items():
        ckpt = latest_checkpoint(folder)
        if ckpt is not None:
            models[name] = str(ckpt / "model")
    extra = ["--eval-reps", str(args.eval_reps), "--eval-batch", str(args.eval_batch)]
    return [
        (
            ["eval", *_common_args(args), "--model", m, "--json", str(out / f"eval-{n}.json"), *extra],
            out / f"eval-{n}.log",
        )
        for n, m in models.items()
    ]


def drive(args: argparse.Namespace) -> int:
    """Train, evaluate, summarise."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = prepare_model(args, out)
    t0 = time.time()
    deadline = t0 + 60 * args.deadline_min if args.deadline_min else None
    codes = _run_all(_train_jobs(args, out), args.jobs, deadline)
    train_s = time.time() - t0
    codes += _run_all(_eval_jobs(args, out), args.jobs, None)
    summary = summarise(out, args.seeds, train_s, config.to_dict())
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary["markdown"])
    print(summary["markdown"])
    _plot(out, args.seeds)
    return 0 if all(c == 0 for c in codes) else 1


def prepare_model(args: argparse.Namespace, out: Path) -> Any:
    """The first seed's config; SmolLM2's GGUF converted once, before parallel runs race to do it."""
    config = _config(args, args.seeds[0], None, out / "unused")
    if config.model == "smollm2":
        from agemem_gym.policies.llm.models import smollm2_path

        smollm2_path()
    return config


# ============================================================================ the report
def _mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% interval."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(1, n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def _read_csv(path: Path) -> list[dict[str, float]]:
    import csv

    if not path.is_file():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _tool_means(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean calls per episode of each ``stage/tool`` pair."""
    totals: dict[str, float] = {}
    for ep in episodes:
        for stage, tools in ep["tools_by_stage"].items():
            for tool, n in tools.items():
                totals[f"S{stage} {tool}"] = totals.get(f"S{stage} {tool}", 0.0) + n
    return {k: v / max(1, len(episodes)) for k, v in sorted(totals.items())}


def _last(rows: Sequence[Mapping[str, float]], key: str, k: int = 5) -> float:
    vals = [r[key] for r in rows[-k:] if key in r and not math.isnan(r[key])]
    return sum(vals) / len(vals) if vals else float("nan")


def summarise(out: Path, seeds: Sequence[int], train_s: float, config: Mapping[str, Any]) -> dict[str, Any]:
    """Tables (Markdown) and numbers from the run folders and eval files in ``out``."""
    evals = {p.stem[5:]: json.loads(p.read_text())["episodes"] for p in sorted(out.glob("eval-*.json"))}
    before = evals.get("untrained", [])
    b_mean, b_ci = _mean_ci([e["score"] for e in before])
    score_rows, curve_rows, numbers = [], [], {"before": [b_mean, b_ci], "seeds": {}}
    for seed in seeds:
        after = evals.get(f"seed{seed}", [])
        a_mean, a_ci = _mean_ci([e["score"] for e in after])
        trained, control = (_read_csv(out / f"seed{seed}-{k}" / "metrics.csv") for k in ("trained", "control"))
        score_rows.append(
            [seed, len(trained), f"{b_mean:.3f} ± {b_ci:.3f}", f"{a_mean:.3f} ± {a_ci:.3f}", a_mean - b_mean]
        )
        curve_rows.append(
            [seed, _last(trained, "task/score"), _last(control, "task/score"), _last(trained, "reward/mean"),
             _last(control, "reward/mean"), _last(trained, "memory/quality"), _last(control, "memory/quality")]
        )  # fmt: skip
        numbers["seeds"][str(seed)] = {"after": [a_mean, a_ci], "steps": len(trained), "steps_control": len(control)}
    tool_names = sorted({k for eps in evals.values() for k in _tool_means(eps)})
    tool_rows = [[name, *[_tool_means(evals[m]).get(name, 0.0) for m in evals]] for name in tool_names]
    md = "\n\n".join(
        [
            f"Held-out task score (tasks never trained on, {len(before)} episodes each; guessing scores 0.125):",
            format_table(["seed", "steps", "untrained", "trained", "Δ"], score_rows),
            "Training curves, mean of the last 5 steps (trained vs the learning-rate-0 control, same seeds):",
            format_table(
                [
                    "seed",
                    "score trained",
                    "score control",
                    "reward trained",
                    "reward control",
                    "MQ trained",
                    "MQ control",
                ],
                curve_rows,
            ),
            "Tool calls per episode on the held-out panel, by stage:",
            format_table(["stage / tool", *evals], tool_rows),
            f"Training wall time {train_s / 60:.1f} min.",
        ]
    )
    return {"markdown": md, "numbers": numbers, "config": dict(config), "meta": run_metadata()}


def _plot(out: Path, seeds: Sequence[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("task/score", "reward/mean", "memory/quality", "tools/Add_memory", "tools/Retrieve_memory")
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for seed in seeds:
        for kind, style in (("trained", "-"), ("control", ":")):
            rows = _read_csv(out / f"seed{seed}-{kind}" / "metrics.csv")
            for ax, key in zip(axes, keys):
                ax.plot(
                    [r["step"] for r in rows], [r.get(key, float("nan")) for r in rows], style, label=f"{kind} {seed}"
                )
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)


# ============================================================================ command line
def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="drive", choices=("drive", "train", "eval", "summary"))
    parser.add_argument("--preset", default="learning-probe")
    parser.add_argument("--set", action="append", default=[], help="a config field, e.g. --set learning_rate=5e-5")
    parser.add_argument("--steps", type=int, default=0, help="training steps (default: the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--deadline-min", type=float, default=0.0, help="stop training after this many minutes")
    parser.add_argument("--eval-reps", type=int, default=4, help="episodes per held-out task")
    parser.add_argument("--eval-batch", type=int, default=64, help="episodes played at once in evaluation")
    parser.add_argument("--eval-seed", type=int, default=1234, help="sampling seed of every evaluation")
    parser.add_argument("--out", default="runs/learning")
    parser.add_argument("--compare", choices=("credit",), default=None, help="compare credit modes (see above)")
    parser.add_argument("--token-budget", type=int, default=0, help="--compare: generated tokens per run")
    parser.add_argument("--with-control", action="store_true", help="--compare: a learning-rate-0 run per seed")
    # one run (internal)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--folder", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    if args.compare and args.mode == "drive" and args.token_budget <= 0:
        parser.error(
            "--compare credit needs --token-budget N (> 0): both arms stop at the same number of generated "
            "tokens; N = perf/generated_tokens_total of a trajectory run after K steps"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.compare and args.mode in ("drive", "summary"):
        import learning_credit

        return learning_credit.compare(args)
    if args.mode == "train":
        return train_one(args)
    if args.mode == "eval":
        args.folder = args.folder or "/tmp/agemem-learning-eval"
        return eval_one(args)
    if args.mode == "summary":
        summary = summarise(Path(args.out), args.seeds, float("nan"), {})
        print(summary["markdown"])
        _plot(Path(args.out), args.seeds)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
