"""``learning.py --compare credit``: memory-state credit against trajectory credit at the same token budget.

Per seed, two runs of the same preset and seeds: ``trajectory`` (the paper's credit) and
``memory-state`` (fork after Stage 1, :mod:`agemem_gym.adapters.grpo.fork`). Both stop after the
step at which they have generated ``--token-budget`` tokens (``generated_token_budget``), so the
arm that spends more tokens per step gets fewer steps: the comparison is at equal generation
cost, not at equal steps. With ``--with-control`` a learning-rate-0 run per seed (trajectory
credit, same budget) shows what the curves do without learning.

Every arm's final checkpoint and the untrained model play the held-out panel exactly as
``learning.py``'s default mode does. The report (``summary.md``, ``summary.json``) has a row
per seed and arm, the mean over seeds per arm, and the difference memory-state − trajectory per
seed (paired over the same held-out episodes) and over seeds, with a sentence saying which arm
is ahead and whether the interval excludes 0. ``curves-credit.png`` plots the training task
score and reward against the cumulative generated tokens. Run it through ``learning.py``
(see its docstring for the commands).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import learning as L
from _common import format_table, run_metadata

ARMS = ("trajectory", "memory-state")
"""The compared credit modes (``GRPOConfig.credit``), in report order."""

MEMORY_STATE_DEFAULTS = ("fork_continuations=2", "credit_weight=0.5")
"""The memory-state arm's settings unless ``--set`` gives others."""

MAX_STEPS = 1000
"""``num_steps`` of compare runs without ``--steps``: the token budget, not the step count, ends them."""

TOTAL = "perf/generated_tokens_total"


# ============================================================================ the runs
def _sets(values: Sequence[str]) -> list[str]:
    return [x for v in values for x in ("--set", v)]


def run_argv(args: argparse.Namespace, arm: str, seed: int, folder: Path, lr: float | None = None) -> list[str]:
    """The ``learning.py train`` command line of one arm (the arm's credit and the budget win over ``--set``)."""
    defaults = MEMORY_STATE_DEFAULTS if arm == "memory-state" else ()
    forced = [f"credit={arm}", f"generated_token_budget={args.token_budget}"]
    argv = ["train", "--preset", args.preset, *_sets(defaults), *_sets(args.set), *_sets(forced)]
    argv += ["--steps", str(args.steps or MAX_STEPS), "--seed", str(seed), "--folder", str(folder)]
    return argv + ([] if lr is None else ["--lr", str(lr)])


def train_jobs(args: argparse.Namespace, out: Path) -> list[tuple[list[str], Path]]:
    """Both arms per seed (seed-major, so a deadline cuts whole seeds last), and the controls if asked."""
    jobs = []
    for seed in args.seeds:
        for arm in ARMS:
            jobs.append((run_argv(args, arm, seed, out / f"seed{seed}-{arm}"), out / f"seed{seed}-{arm}.log"))
        if args.with_control:
            argv = run_argv(args, "trajectory", seed, out / f"seed{seed}-control", lr=0.0)
            jobs.append((argv, out / f"seed{seed}-control.log"))
    return jobs


def compare(args: argparse.Namespace) -> int:
    """Train both arms per seed, evaluate them on the held-out panel, write the report (``summary``: report only)."""
    out = Path(args.out)
    if args.mode == "summary":  # again from the folders (keeping the recorded wall time and config)
        old = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
        return _report(out, args, old.get("numbers", {}).get("train_s", float("nan")), old.get("config", {}))
    out.mkdir(parents=True, exist_ok=True)
    config = L.prepare_model(args, out)
    t0 = time.time()
    deadline = t0 + 60 * args.deadline_min if args.deadline_min else None
    codes = L._run_all(train_jobs(args, out), args.jobs, deadline)
    train_s = time.time() - t0
    runs = {f"seed{s}-{arm}": out / f"seed{s}-{arm}" for s in args.seeds for arm in ARMS}
    codes += L._run_all(L.eval_jobs_for(args, out, runs), args.jobs, None)
    _report(out, args, train_s, config.to_dict())
    return 0 if all(c == 0 for c in codes) else 1


def _report(out: Path, args: argparse.Namespace, train_s: float, config: Mapping[str, Any]) -> int:
    summary = summarise(out, args.seeds, args.token_budget, train_s, config)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary["markdown"])
    print(summary["markdown"])
    plot(out, args.seeds, args.token_budget)
    return 0


# ============================================================================ the numbers
def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% half-width; the half-width is NaN below two values (one value has no spread to show)."""
    mean, ci = L._mean_ci(values)
    return mean, ci if len(values) >= 2 else float("nan")


def paired_differences(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> list[float]:
    """``a − b`` score per held-out episode both played (same task and env seed)."""
    scores = {(e["task"], e["seed"]): e["score"] for e in b}
    return [e["score"] - scores[(e["task"], e["seed"])] for e in a if (e["task"], e["seed"]) in scores]


def run_row(out: Path, name: str, episodes: Sequence[Mapping[str, Any]], budget: int) -> dict[str, Any]:
    """What one run reached: steps, tokens, whether the budget ended it, held-out and training scores."""
    rows = L._read_csv(out / name / "metrics.csv")
    tokens = rows[-1].get(TOTAL, float("nan")) if rows else float("nan")
    return {
        "steps": len(rows),
        "generated_tokens": tokens,
        "budget_reached": bool(rows) and tokens >= budget,
        "held_out": list(mean_ci([e["score"] for e in episodes])),
        "train_score_last5": L._last(rows, "task/score"),
        "train_reward_last5": L._last(rows, "reward/mean"),
    }


def _evals(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.stem[5:]: json.loads(p.read_text())["episodes"] for p in sorted(out.glob("eval-*.json"))}


def _differences(evals: Mapping[str, Any], runs: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    """memory-state − trajectory per seed (held-out, paired over episodes; training score) and over seeds."""
    per_seed = {}
    for seed in seeds:
        ms, tr = (f"seed{seed}-{arm}" for arm in ("memory-state", "trajectory"))
        paired = paired_differences(evals.get(ms, []), evals.get(tr, []))
        train = runs[ms]["train_score_last5"] - runs[tr]["train_score_last5"]
        per_seed[str(seed)] = {"held_out": list(mean_ci(paired)), "episodes": len(paired), "train_score": train}
    held = [d["held_out"][0] for d in per_seed.values() if not math.isnan(d["held_out"][0])]
    train = [d["train_score"] for d in per_seed.values() if not math.isnan(d["train_score"])]
    return {"per_seed": per_seed, "held_out": list(mean_ci(held)), "train_score": list(mean_ci(train))}


def verdict(diff: Mapping[str, Any], n_seeds: int) -> str:
    """One honest sentence: which arm is ahead on the held-out panel, and whether the interval excludes 0."""
    if n_seeds >= 2:
        (mean, ci), over = diff["held_out"], f"mean over {n_seeds} seeds, 95% CI over seeds"
    else:
        only = next(iter(diff["per_seed"].values()), {"held_out": [float("nan")] * 2})
        (mean, ci), over = only["held_out"], "one seed, 95% CI over its paired episodes (not over seeds)"
    if math.isnan(mean):
        return "No held-out difference could be computed (an arm has no evaluation)."
    ahead = "Neither arm is" if mean == 0 else f"**{'memory-state' if mean > 0 else 'trajectory'}** credit is"
    lead = f"{ahead} ahead on the held-out panel: memory-state − trajectory = {mean:+.3f}"
    if math.isnan(ci):
        return f"{lead} ({over}; no interval). No claim either way."
    excludes = abs(mean) > ci
    tail = "the interval excludes 0." if excludes else "the interval includes 0: no difference is shown."
    return f"{lead} ± {ci:.3f} ({over}); {tail}"


# ============================================================================ the report
def _pm(pair: Sequence[float]) -> str:
    mean, ci = pair
    return f"{mean:.3f}" if math.isnan(ci) else f"{mean:.3f} ± {ci:.3f}"


def _arm_means(runs: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], arm: str) -> list[Any]:
    rows = [runs[f"seed{s}-{arm}"] for s in seeds]
    col = {k: [float(r[k]) for r in rows if not math.isnan(float(r[k]))] for k in ("steps", "generated_tokens")}
    held = [r["held_out"][0] for r in rows if not math.isnan(r["held_out"][0])]
    train = [r["train_score_last5"] for r in rows if not math.isnan(r["train_score_last5"])]
    steps, tokens = (sum(v) / len(v) if v else float("nan") for v in col.values())
    reached = f"{sum(r['budget_reached'] for r in rows)}/{len(rows)}"
    return ["mean", arm, steps, tokens, reached, _pm(mean_ci(held)), _pm(mean_ci(train))]


def _run_table(runs: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], before: Sequence[float]) -> str:
    rows: list[list[Any]] = [["-", "untrained", 0, 0, "-", _pm(before), "-"]]
    for seed in seeds:
        for arm in ARMS:
            r = runs[f"seed{seed}-{arm}"]
            reached = "yes" if r["budget_reached"] else "NO"
            row = [seed, arm, r["steps"], r["generated_tokens"], reached, _pm(r["held_out"])]
            rows.append(row + [r["train_score_last5"]])
    rows += [_arm_means(runs, seeds, arm) for arm in ARMS]
    headers = ["seed", "arm", "steps", "generated tokens", "budget reached", "held-out score", "train score (last 5)"]
    return format_table(headers, rows)


def _diff_table(diff: Mapping[str, Any]) -> str:
    rows: list[list[Any]] = [
        [seed, _pm(d["held_out"]), d["episodes"], d["train_score"]] for seed, d in diff["per_seed"].items()
    ]
    rows.append(["mean over seeds", _pm(diff["held_out"]), "-", _pm(diff["train_score"])])
    return format_table(["seed", "held-out Δ (paired episodes)", "episodes", "train score Δ (last 5)"], rows)


def _notes(runs: Mapping[str, Mapping[str, Any]], budget: int) -> list[str]:
    short = [name for name, r in runs.items() if not r["budget_reached"]]
    if not short:
        return []
    return [
        f"Not at the budget ({budget} tokens): {', '.join(short)} ended first (the step cap, the deadline or a "
        "failure: see its log), so those arms are compared at less generation than the budget."
    ]


def summarise(
    out: Path, seeds: Sequence[int], budget: int, train_s: float, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Tables (Markdown) and numbers of a credit comparison from the run folders and eval files in ``out``."""
    evals = _evals(out)
    before = mean_ci([e["score"] for e in evals.get("untrained", [])])
    names = [f"seed{s}-{arm}" for s in seeds for arm in ARMS]
    runs = {name: run_row(out, name, evals.get(name, []), budget) for name in names}
    controls = {f"seed{s}-control": run_row(out, f"seed{s}-control", [], budget) for s in seeds}
    controls = {k: v for k, v in controls.items() if v["steps"]}
    diff = _differences(evals, runs, seeds)
    episodes = len(evals.get("untrained", []))
    parts = [
        f"Credit comparison at a budget of {budget} generated tokens per run; held-out panel: tasks never "
        f"trained on, {episodes} episodes per model (guessing scores 0.125 on Probe-Recall). Held-out score: "
        "mean ± 95% CI over episodes (per seed) or over seeds (mean rows). A run stops after the step that "
        "crosses the budget, so it overshoots by up to one step's tokens: compare the generated tokens too.",
        _run_table(runs, seeds, before),
        "Difference memory-state − trajectory (held-out: paired by task and env seed; ± 95% CI):",
        _diff_table(diff),
        verdict(diff, len(seeds)),
        *_notes(runs, budget),
    ]
    if controls:
        rows = [[n, r["steps"], r["generated_tokens"], r["train_score_last5"]] for n, r in controls.items()]
        parts += ["Learning-rate-0 controls (trajectory credit, same budget):"]
        parts += [format_table(["run", "steps", "generated tokens", "train score (last 5)"], rows)]
    tool_names = sorted({k for eps in evals.values() for k in L._tool_means(eps)})
    tool_rows = [[name, *[L._tool_means(evals[m]).get(name, 0.0) for m in evals]] for name in tool_names]
    parts += ["Tool calls per episode on the held-out panel, by stage:"]
    parts += [format_table(["stage / tool", *evals], tool_rows)]
    parts.append(f"Training wall time {train_s / 60:.1f} min.")
    numbers = {"budget": budget, "train_s": train_s, "untrained": list(before), "runs": runs, "controls": controls}
    numbers["difference"] = diff
    return {"markdown": "\n\n".join(parts), "numbers": numbers, "config": dict(config), "meta": run_metadata()}


def plot(out: Path, seeds: Sequence[int], budget: int) -> Path:
    """Training task score and reward against the cumulative generated tokens, a line per seed and arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys, colours, dashes = ("task/score", "reward/mean"), {"trajectory": "C0", "memory-state": "C1"}, ("-", "--", "-.")
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 3.6))
    for i, seed in enumerate(seeds):
        for arm in (*ARMS, "control"):
            rows = L._read_csv(out / f"seed{seed}-{arm}" / "metrics.csv")
            if not rows:  # no control run, or a run that never logged a step
                continue
            for ax, key in zip(axes, keys):
                x, y = [r.get(TOTAL, float("nan")) for r in rows], [r.get(key, float("nan")) for r in rows]
                style = {"color": colours.get(arm, "0.6"), "linestyle": ":" if arm == "control" else dashes[i % 3]}
                ax.plot(x, y, marker="o", markersize=2, label=f"{arm} seed {seed}", **style)
    for ax, key in zip(axes, keys):
        ax.axvline(budget, color="0.3", linewidth=0.8)
        ax.set_title(f"{key} (training rollouts)")
        ax.set_xlabel("generated tokens (cumulative)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves-credit.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
