"""Training metrics and progress: stable names, a CSV log, TensorBoard events, the end-of-run plot, the phase bar.

Metric names (CSV columns / TensorBoard tags) are stable across versions:
``reward/mean``, ``reward/std``, ``reward/<component>`` (task, context, memory, compression,
preventive, preservation, storage, maintenance, relevance), ``task/score``, ``task/success``,
``memory/quality``, ``tools/<Tool_name>`` (calls per episode), ``tokens/prompt``,
``tokens/response``, ``episode/turns``, ``episode/invalid_calls``, ``losses/policy``,
``losses/kl``, ``losses/clipfrac``, ``losses/entropy``, ``losses/grad_norm``,
``losses/logprob_mismatch``, ``perf/padding``, ``perf/samples_per_s``, ``perf/tokens_per_s``,
``perf/rollout_s``, ``perf/update_s``, ``perf/generated_tokens`` (this step's, every rank's),
``perf/generated_tokens_total`` (the run's so far, what ``generated_token_budget`` is spent from)
and ``perf/lockstep_passes`` (zero-loss micro-batches a sharded update ran to keep the ranks in
step; 0 with replicas).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agemem_gym.error import missing_dependency
from agemem_gym.tools import histogram_names

__all__ = ["episode_metrics", "MetricLogger", "StepProgress", "plot_training_curve", "training_figure"]

_COMPONENTS = (
    "task",
    "context",
    "memory",
    "compression",
    "preventive",
    "preservation",
    "storage",
    "maintenance",
    "relevance",
)


def _mean(values: Sequence[Any]) -> float:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def episode_metrics(rewards: Sequence[float], infos: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Means over episodes of the reward, its components and what the env's final ``info`` reports."""
    out = {"reward/mean": _mean(rewards), "reward/std": float(np.std(rewards)) if len(rewards) else float("nan")}
    for c in _COMPONENTS:
        out[f"reward/{c}"] = _mean([i.get("reward_components", {}).get(c) for i in infos])
    out["task/score"] = _mean([i.get("task_score") if i.get("task_score") is not None else 0.0 for i in infos])
    out["task/success"] = _mean([i.get("success", 0.0) for i in infos])
    out["memory/quality"] = _mean([i.get("memory_quality") for i in infos])
    for t in histogram_names(i.get("tool_calls", {}) for i in infos):
        out[f"tools/{t}"] = _mean([i.get("tool_calls", {}).get(t, 0) for i in infos])
    out["tokens/prompt"] = _mean([i.get("prompt_tokens_mean") for i in infos])
    out["episode/turns"] = _mean([i.get("turns") for i in infos])
    out["episode/invalid_calls"] = _mean([i.get("invalid_calls") for i in infos])
    return out


class MetricLogger:
    """Appends one row per step to ``metrics.csv`` and mirrors it to TensorBoard.

    Args:
        folder: The run folder.
        tensorboard: Also write TensorBoard events (needs the ``tensorboard`` package).
    """

    def __init__(self, folder: str | Path, tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "metrics.csv"
        self._writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # tensorboard is part of [train]
                raise missing_dependency("tensorboard", "train") from exc
            self._writer = SummaryWriter(str(self.folder / "tensorboard"))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Write one step's metrics (the CSV is rewritten so columns may differ between steps)."""
        row = {"step": float(step), **{k: float(v) for k, v in metrics.items()}}
        rows = [r for r in self.read() if r["step"] < step] + [row]  # a resumed run replaces later rows
        columns = list(dict.fromkeys(k for r in rows for k in r))
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="nan")
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)
        if self._writer is not None:
            for k, v in metrics.items():
                if not math.isnan(float(v)):
                    self._writer.add_scalar(k, float(v), step)
            self._writer.flush()

    def read(self) -> list[dict[str, float]]:
        """Every logged row."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as fh:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()


def plot_training_curve(rows: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """Reward (± std), task score, memory quality and KL against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = training_figure(rows)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_figure(rows: Sequence[Mapping[str, float]]) -> Any:
    """The matplotlib figure :func:`plot_training_curve` saves (three labelled panels)."""
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    # markers: a step between two NaN steps (no update, no finite KL) is a point, not a line
    line = {"marker": "o", "markersize": 3}
    mean = np.array([r.get("reward/mean", np.nan) for r in rows])
    std = np.array([r.get("reward/std", np.nan) for r in rows])
    axes[0].plot(steps, mean, label="reward", **line)
    axes[0].fill_between(steps, mean - std, mean + std, alpha=0.25)
    axes[0].set_title("trajectory reward")
    axes[0].set_ylabel("mean reward (± std)")
    axes[1].plot(steps, [r.get("task/score", np.nan) for r in rows], label="task score", **line)
    axes[1].plot(steps, [r.get("memory/quality", np.nan) for r in rows], label="memory quality", **line)
    axes[1].set_title("task score and MQ")
    axes[1].set_ylabel("score (0-1)")
    axes[1].legend()
    axes[2].plot(steps, [r.get("losses/kl", np.nan) for r in rows], color="tab:red", **line)
    axes[2].set_title("KL to reference")
    axes[2].set_ylabel("KL per token")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


class StepProgress:
    """A second bar under the step bar: the phase the step is in and how far along it is.

    A step of a real model takes minutes (rollouts, two scoring passes, the update); without
    it the step bar would sit at ``0/N`` all that time. Disabled, it shows nothing.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def phase(self, name: str, total: int | None, unit: str = "micro-batch") -> Callable[[int], Any]:
        """Start phase ``name`` (``total`` units, ``None``: unknown); its bar's ``update``."""
        self.close()
        if not self.enabled:
            return _ignore
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=f"  {name}", unit=unit, position=1, leave=False)
        return self._bar.update

    def close(self) -> None:
        """Remove the phase bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _ignore(n: int) -> None:
    """A disabled phase's progress callback."""
