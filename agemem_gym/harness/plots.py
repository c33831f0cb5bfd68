"""PNG plots of an ``agemem eval`` result (matplotlib, headless).

``table2.png`` (main metric per benchmark, one bar per policy), ``bench_<label>.png`` (one
per benchmark: main metric and MQ), ``tool_use.png`` (tool calls per episode by tool, the
Table-3 benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agemem_gym.error import missing_dependency
from agemem_gym.harness.report import focus_benchmark, main_table, tool_columns, tool_label

__all__ = ["write_plots"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise missing_dependency("matplotlib", "eval") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grouped(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [0.0 if v is None else float(v) for v in values], width, label=name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def write_plots(result: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Write the PNGs into ``folder``; returns their paths."""
    plt = _pyplot()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names = list(result["config"]["policies"])
    written = []
    labels, rows = main_table(result)
    fig, ax = plt.subplots(figsize=(1.6 * (len(labels) + 1) + 2, 4))
    _grouped(
        ax, [*labels, "Average"], {n: [None if v is None else 100 * v for v in row] for n, row in zip(names, rows)}
    )
    ax.set_ylabel("score (%)")
    ax.set_title("Main results (Table 2 shape)")
    written.append(_save(fig, out / "table2.png", plt))
    metrics = {b["label"]: b["metric"] for b in result["benchmarks"]}
    for label in labels:
        cols = result["results"].get(label)
        if not cols:
            continue
        groups = [metrics[label], "MQ"]
        series = {
            n: [
                cols.get(n, {}).get(k)
                for k in ("success" if metrics[label] == "SR" else "task_score", "memory_quality")
            ]
            for n in names
        }
        fig, ax = plt.subplots(figsize=(5, 3.5))
        _grouped(ax, groups, series)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{label}: main metric and memory quality (0-1)")
        written.append(_save(fig, out / f"bench_{re.sub(r'[^A-Za-z0-9_-]+', '_', label)}.png", plt))
    focus = focus_benchmark(result)
    if focus is not None:
        cols = result["results"][focus]
        tools = tool_columns(cols.get(n, {}) for n in names)
        fig, ax = plt.subplots(figsize=(8, 3.8))
        _grouped(
            ax,
            [tool_label(t) for t in tools],
            {n: [cols.get(n, {}).get("tool_calls", {}).get(t) for t in tools] for n in names},
        )
        ax.set_ylabel("calls per episode")
        ax.set_title(f"Tool use ({focus}, Table 3 shape)")
        written.append(_save(fig, out / "tool_use.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
