"""``learning.py``'s report: every ``seed<N>/`` folder of the results, merged, with the pass criteria.

Reads what the stages wrote (``warm/sft.json``, ``trained/`` and ``control/`` ``metrics.csv``,
``eval-*.json``, ``times.json``) and writes ``summary.md``, ``summary.json`` and ``curves.png``.
A seed that has not finished yet shows what it has; a criterion that needs a number no seed has
reads ``n/a``, and the criteria over seeds need :data:`SEEDS_NEEDED` complete seeds to pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import learning as L
from _common import format_table, run_metadata

from agemem_gym.tools import ADD_MEMORY, RETRIEVE_MEMORY

SEEDS_NEEDED = 3
"""Complete seeds (all five panels) the over-seed criteria need."""

GUESS = 0.125
"""Probe-Recall's guess rate: one of eight colours."""

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Student-t 97.5% quantiles by degrees of freedom (three seeds: 4.303, not the normal 1.96)."""

PANELS = ("warm", "control", "control-wiped", "trained", "trained-wiped")


# ============================================================================ numbers
def mean_ci_t(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its Student-t 95% interval (NaN below two values)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T_975.get(n - 1, 1.96) * sd / math.sqrt(n)


def stage_rate(episodes: Sequence[Mapping[str, Any]], stage: int, tool: str) -> float:
    """Share of episodes that called ``tool`` at least once in ``stage``."""
    if not episodes:
        return float("nan")
    return sum(1 for e in episodes if e["tools_by_stage"].get(str(stage), {}).get(tool, 0) > 0) / len(episodes)


def panel_numbers(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Held-out score (mean ± 95% CI over episodes) and the memory-use rates of one panel."""
    return {
        "episodes": len(episodes),
        "score": list(L._mean_ci([e["score"] for e in episodes])),
        "add_s1": stage_rate(episodes, 1, ADD_MEMORY),
        "retrieve_s3": stage_rate(episodes, 3, RETRIEVE_MEMORY),
        "memory_quality": _mean([float(q) for e in episodes if (q := e.get("memory_quality")) is not None]),
    }


def paired(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> list[float]:
    """``a − b`` score per held-out episode both played (same task and env seed)."""
    scores = {(e["task"], e["seed"]): e["score"] for e in b}
    return [e["score"] - scores[(e["task"], e["seed"])] for e in a if (e["task"], e["seed"]) in scores]


def _first_last(rows: Sequence[Mapping[str, float]], key: str, k: int = 5) -> float:
    """Mean of the last ``k`` steps minus the mean of the first ``k`` (the drift of a training curve)."""
    first = [r[key] for r in rows[:k] if key in r and not math.isnan(r[key])]
    return L._last(rows, key, k) - sum(first) / len(first) if first else float("nan")


def seed_numbers(folder: Path) -> dict[str, Any]:
    """Everything one seed folder holds, as numbers."""
    sft_file = folder / "warm" / "sft.json"
    sft = json.loads(sft_file.read_text()) if sft_file.is_file() else {}
    evals = {n: _episodes(folder / f"eval-{n}.json") for n in PANELS}
    runs = {k: L._read_csv(folder / k / "metrics.csv") for k in ("trained", "control")}
    times_file = folder / "times.json"
    config = sft.get("config", {})
    warm = {
        "turns": sft.get("turns"), "episodes": sft.get("episodes"), "steps": config.get("num_steps"),
        "mix_policy": config.get("mix_policy"), "mix_fraction": config.get("mix_fraction"),
    }  # fmt: skip
    diff = paired(evals["trained"] or [], evals["control"] or [])
    return {
        "warm_start": warm,
        "panels": {n: panel_numbers(eps) for n, eps in evals.items() if eps is not None},
        "steps": {k: len(rows) for k, rows in runs.items()},
        "train_score_last5": {k: L._last(rows, "task/score") for k, rows in runs.items()},
        "control_drift": _first_last(runs["control"], "task/score"),
        "difference": list(L._mean_ci(diff)) if diff else [float("nan")] * 2,
        "complete": all(evals[n] is not None for n in PANELS),
        "times_s": json.loads(times_file.read_text()) if times_file.is_file() else {},
    }


def _episodes(path: Path) -> list[dict[str, Any]] | None:
    return json.loads(path.read_text())["episodes"] if path.is_file() else None


def seed_folders(out: Path, seeds: Sequence[int] | None) -> dict[int, Path]:
    """``seed<N>`` folders of ``out`` (those of ``seeds``, or all), by seed."""
    found = {int(m.group(1)): p for p in out.glob("seed*") if p.is_dir() and (m := re.fullmatch(r"seed(\d+)", p.name))}
    return {s: found[s] for s in sorted(found) if seeds is None or s in seeds}


# ============================================================================ the criteria
def _score(seed: Mapping[str, Any], panel: str) -> float:
    return float(seed["panels"].get(panel, {}).get("score", [math.nan])[0])


def _rate(seed: Mapping[str, Any], panel: str, key: str) -> float:
    return float(seed["panels"].get(panel, {}).get(key, math.nan))


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def criteria(seeds: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue's pass criteria, each with its measured value and PASS / FAIL / n/a."""
    done = {s: v for s, v in seeds.items() if v["complete"]}
    diffs = [v["difference"][0] for v in done.values()]
    mean, ci = mean_ci_t(diffs)
    enough = len(done) >= SEEDS_NEEDED
    rows: list[tuple[str, str, bool | None]] = [
        (f"trained − control ≥ +0.15 in each seed ({len(done)} complete)",
         ", ".join(f"{d:+.3f}" for d in diffs) or "-", all(d >= 0.15 for d in diffs) if diffs else None),
        (f"mean trained − control ≥ +0.25 with the 95% CI above 0 (≥ {SEEDS_NEEDED} seeds)",
         f"{mean:+.3f} ± {ci:.3f}", (mean >= 0.25 and mean - ci > 0) if enough else None),
    ]  # fmt: skip
    for key, tool in (("add_s1", f"Stage-1 {ADD_MEMORY}"), ("retrieve_s3", f"Stage-3 {RETRIEVE_MEMORY}")):
        warm = [_rate(v, "warm", key) for v in done.values()]
        trained = [_rate(v, "trained", key) for v in done.values()]
        text = f"warm {_mean(warm):.2f} → trained {_mean(trained):.2f}"
        rows.append((f"{tool} rate of the trained model ≥ 0.8", text, all(t >= 0.8 for t in trained) if done else None))
    wiped = [_score(v, "trained-wiped") for v in done.values()]
    rows.append(("trained model's LTM-wiped score ≤ 0.2 (guess 0.125)", ", ".join(f"{w:.3f}" for w in wiped) or "-",
                 all(w <= 0.2 for w in wiped) if done else None))  # fmt: skip
    flat = [(_score(v, "control") - _score(v, "warm"), v["control_drift"]) for v in done.values()]
    rows.append((
        "control flat: held-out control − warm and training-score drift both within ±0.1",
        ", ".join(f"{a:+.3f} / {b:+.3f}" for a, b in flat) or "-",
        all(abs(a) <= 0.1 and not abs(b) > 0.1 for a, b in flat) if done else None,
    ))  # fmt: skip
    return [{"criterion": c, "measured": m, "result": _verdict(ok)} for c, m, ok in rows]


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


# ============================================================================ the tables
def _pm(pair: Sequence[float]) -> str:
    mean, ci = pair
    return "-" if math.isnan(mean) else (f"{mean:.3f}" if math.isnan(ci) else f"{mean:.3f} ± {ci:.3f}")


def _seed_table(seeds: Mapping[int, Mapping[str, Any]]) -> str:
    rows = []
    for s, v in seeds.items():
        w = v["warm_start"]
        warm = f"{w['turns']} turns / {w['episodes']} ep / {w['steps']} steps" if w["turns"] is not None else "-"
        p = v["panels"]
        rows.append([s, warm, v["steps"]["trained"], v["steps"]["control"],
                     *[_pm(p[n]["score"]) if n in p else "-" for n in PANELS], _pm(v["difference"])])  # fmt: skip
    headers = ["seed", "warm start", "steps trained", "steps control", *PANELS, "trained − control (paired)"]
    return format_table(headers, rows)


def _rates_table(seeds: Mapping[int, Mapping[str, Any]]) -> str:
    rows = []
    for s, v in seeds.items():
        for key, label in (("add_s1", f"S1 {ADD_MEMORY}"), ("retrieve_s3", f"S3 {RETRIEVE_MEMORY}")):
            rows.append([s, f"episodes calling {label}", *[_rate(v, n, key) for n in PANELS]])
        rows.append([s, "memory quality (mean)", *[_rate(v, n, "memory_quality") for n in PANELS]])
    return format_table(["seed", "memory use", *PANELS], rows)


def _tool_shift(out: Path, seeds: Sequence[int]) -> str:
    """Tool calls per episode by stage and tool, each panel pooled over the seeds (the paper's Table 3)."""
    pooled: dict[str, list[dict[str, Any]]] = {n: [] for n in PANELS}
    for s in seeds:
        for n in PANELS:
            pooled[n] += _episodes(out / f"seed{s}" / f"eval-{n}.json") or []
    means = {n: L._tool_means(eps) for n, eps in pooled.items() if eps}
    names = sorted({k for m in means.values() for k in m})
    rows = [[name, *[means[n].get(name, 0.0) for n in means]] for name in names]
    rows.append(["episodes", *[len(pooled[n]) for n in means]])
    return format_table(["stage / tool", *means], rows)


def _times_table(seeds: Mapping[int, Mapping[str, Any]]) -> str:
    order = ["warm", "trained", "control", *[f"eval-{n}" for n in PANELS]]
    names = sorted(
        {k for v in seeds.values() for k in v["times_s"]},
        key=lambda n: (n not in order, order.index(n) if n in order else 0, n),
    )
    rows = [[s, *[v["times_s"].get(n, float("nan")) / 60 for n in names]] for s, v in seeds.items()]
    return format_table(["seed", *[f"{n} min" for n in names]], rows)


def summarise(out: Path, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """The merged report of the seed folders in ``out``: Markdown and numbers."""
    folders = seed_folders(out, seeds)
    numbers = {s: seed_numbers(f) for s, f in folders.items()}
    checks = criteria(numbers)
    done = [v["difference"][0] for v in numbers.values() if v["complete"]]
    over = mean_ci_t(done)
    n_eps = max((p["episodes"] for v in numbers.values() for p in v["panels"].values()), default=0)
    parts = [
        f"Held-out task score (Probe-Recall tasks never trained on, {n_eps} episodes per panel, fixed seeds; "
        f"guessing scores {GUESS}); mean ± 95% CI over episodes; -wiped: the LTM emptied as Stage 3 begins:",
        _seed_table(numbers),
        f"trained − control over {len(done)} complete seed(s): {_pm(over)} (95% CI over seeds, Student t).",
        "Memory use on the held-out panels (share of episodes with the call; the env's memory quality):",
        _rates_table(numbers),
        "Pass criteria:",
        format_table(["criterion", "measured", "result"], [list(c.values()) for c in checks]),
        "Tool calls per episode on the held-out panels, by stage (all seeds pooled):",
        _tool_shift(out, list(folders)),
        "Stage wall times (minutes; a resumed stage adds up its sittings):",
        _times_table(numbers),
    ]  # fmt: skip
    summary = {"seeds": {str(s): v for s, v in numbers.items()}, "difference_over_seeds": list(over)}
    summary["criteria"] = checks
    return {"markdown": "\n\n".join(parts), "numbers": summary, "meta": run_metadata()}


# ============================================================================ the figure
CURVES = (
    ("task/score", "task score"),
    ("tools/" + ADD_MEMORY, f"{ADD_MEMORY} / episode"),
    ("tools/" + RETRIEVE_MEMORY, f"{RETRIEVE_MEMORY} / episode"),
    ("reward/mean", "reward"),
    ("reward/task", "reward: task"),
    ("reward/memory", "reward: memory"),
    ("reward/context", "reward: context"),
)


def plot(out: Path, seeds: Sequence[int]) -> Path:
    """Training curves against the step: trained (solid) and control (dotted), a colour per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(3.4 * len(CURVES), 3.2))
    for i, seed in enumerate(seeds):
        for kind, style in (("trained", "-"), ("control", ":")):
            rows = L._read_csv(out / f"seed{seed}" / kind / "metrics.csv")
            for ax, (key, _) in zip(axes, CURVES):
                ys = [r.get(key, float("nan")) for r in rows]
                ax.plot([r["step"] for r in rows], ys, style, color=f"C{i}", label=f"{kind} {seed}")
    for ax, (_, title) in zip(axes, CURVES):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(out: Path, seeds: Sequence[int] | None) -> dict[str, Any]:
    """Write ``summary.md``, ``summary.json`` and ``curves.png``; print the Markdown."""
    summary = summarise(out, seeds)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary["markdown"] + "\n")
    print(summary["markdown"])
    plot(out, list(seed_folders(out, seeds)))
    return summary
