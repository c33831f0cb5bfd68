"""The Markdown report of an ``agemem eval`` result, with tables shaped like the paper's.

Table 2 (main metric per benchmark and the average, in %), per-benchmark detail, Fig. 2
(memory quality), Fig. 3 (prompt tokens, with the reduction relative to ``rag``) and Table 3
(tool calls per episode by tool). Figures 2/3 and Table 3 use the HotpotQA benchmark when the
run has one (as the paper), else the first benchmark with answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agemem_gym.tools import histogram_names

__all__ = ["render_report", "main_table", "focus_benchmark", "tool_label", "tool_columns"]


def tool_label(name: str) -> str:
    """The short label of a tool in the paper's Table 3: ``Add_memory`` -> ``ADD``."""
    return name.split("_", 1)[0].upper()


def tool_columns(summaries: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The tools to report for some run summaries: the six, then any other tool they counted."""
    return histogram_names(s.get("tool_calls") or {} for s in summaries)


def _num(v: Any, digits: int = 2, scale: float = 1.0) -> str:
    if v is None:
        return "n/a"
    return f"{float(v) * scale:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def main_table(result: Mapping[str, Any]) -> tuple[list[str], list[list[float | None]]]:
    """Benchmark labels and, per policy, the main metric per benchmark plus the average (0–1)."""
    labels = [b["label"] for b in result["benchmarks"]]
    rows = []
    for name in result["config"]["policies"]:
        vals = [result["scores"].get(label, {}).get(name) for label in labels]
        present = [v for v in vals if v is not None]
        rows.append([*vals, sum(present) / len(present) if present else None])
    return labels, rows


def focus_benchmark(result: Mapping[str, Any]) -> str | None:
    """The benchmark of Fig. 2/3 and Table 3: HotpotQA if run, else the first answer-graded one."""
    ran = [b for b in result["benchmarks"] if b["label"] in result["results"]]
    for b in ran:
        if "HotpotQA" in b["env_id"]:
            return str(b["label"])
    for b in ran:
        if b["metric"] in ("J", "F1"):
            return str(b["label"])
    return str(ran[0]["label"]) if ran else None


def render_report(result: Mapping[str, Any]) -> str:
    """The whole report as Markdown."""
    names = list(result["config"]["policies"])
    labels, rows = main_table(result)
    metrics = {b["label"]: b["metric"] for b in result["benchmarks"]}
    lines = _header(result, names) + _partial_note(result)
    lines += ["## Table 2 — main results (%)", ""]
    lines += _table(
        ["Method", *(f"{lab} ({metrics[lab]})" for lab in labels), "Average"],
        [[n, *(_num(v, 2, 100) for v in row)] for n, row in zip(names, rows)],
    )
    lines += ["## Per benchmark", ""]
    for label in labels:
        columns = result["results"].get(label)
        if columns:
            lines += [f"### {label}", ""]
            lines += _table(["metric", *names], _detail_rows(columns, names))
            lines += _group_section(label, columns, names)
    focus = focus_benchmark(result)
    if focus is not None:
        lines += _focus_sections(focus, result["results"][focus], names)
    lines += ["## Tool calls per episode, all benchmarks (total)", ""]
    lines += _table(
        ["Benchmark", *names],
        [[label, *(_num(_total_calls(result["results"].get(label, {}).get(n)), 2) for n in names)] for label in labels],
    )
    lines += _usage_section(result.get("usage") or {})
    if result.get("errors"):
        lines += ["## Not run", ""]
        lines += [f"- {label} / {name}: {err}" for label, per in result["errors"].items() for name, err in per.items()]
        lines.append("")
    return "\n".join(lines)


def _group_section(label: str, columns: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """Task score (%) per group the env reported (question type, category), with counts; none without groups."""
    per = {n: columns.get(n, {}).get("by_group") or {} for n in names}
    groups = list(dict.fromkeys(g for n in names for g in per[n]))
    if not groups:
        return []
    rows = []
    for g in groups:
        count = next((per[n][g]["episodes"] for n in names if g in per[n]), 0)
        rows.append([g, str(count), *(_num(per[n].get(g, {}).get("task_score"), 2, 100) for n in names)])
    return [f"#### {label} by group (task score, %)", "", *_table(["group", "episodes", *names], rows)]


def _usage_section(usage: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[str]:
    """Tokens and requests of the served-model policies, per benchmark (none: no section)."""
    rows = [
        [label, name, *(str(u.get(k, 0)) for k in ("prompt_tokens", "completion_tokens", "requests", "retries"))]
        for label, per in usage.items()
        for name, u in per.items()
    ]
    if not rows:
        return []
    head = ["Benchmark", "Policy", "prompt tokens", "completion tokens", "requests", "retries"]
    return ["## Endpoint usage (served models)", "", *_table(head, rows)]


def _header(result: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The run's provenance and the benchmark list."""
    cfg, meta = result["config"], result["meta"]
    return [
        "# agemem eval report",
        "",
        f"- command: `{cfg.get('command') or 'evaluate_suite(...)'}`",
        f"- agemem-gym {meta['agemem_gym']}, git `{meta['git_revision']}`, python {meta['python']}, "
        f"gymnasium {meta['gymnasium']}, created {meta['created']}",
        f"- policies: {', '.join(names)}; suites: {', '.join(cfg['suites']) or '-'}",
        f"- episodes per benchmark: {cfg['episodes']}; seeds {cfg['seed']}..{cfg['seed'] + cfg['episodes'] - 1} "
        f"(episode i plays task i of the panel with seed {cfg['seed']} + i); "
        f"{cfg['num_envs']} {cfg['vector_mode']} vector env(s)",
        f"- judge: answers `{cfg['judge']['answer']}`, memory quality `{cfg['judge']['memory']}` — "
        f"{cfg['judge']['description']}",
        "",
        "| benchmark | env id | version | metric |",
        "|---|---|---:|---|",
        *(
            f"| {b['label']} | `{b['env_id']}` | v{b['version']} | {b['metric']} ({b['metric_description']}) |"
            for b in result["benchmarks"]
        ),
        "",
    ]


def _partial_note(result: Mapping[str, Any]) -> list[str]:
    """A warning that the run stopped early, with the panels still missing (none when complete)."""
    missing = result.get("missing") or []
    if not missing:
        return []
    total = len(result["benchmarks"]) * len(result["config"]["policies"])
    return [
        f"> **Partial report**: {total - len(missing)} of {total} (benchmark, policy) panels done. "
        "Run the same command with `--resume` to finish it.",
        f"> Missing: {', '.join(f'{label} / {name}' for label, name in missing)}.",
        "",
    ]


def _focus_sections(focus: str, cols: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """Fig. 2 (memory quality), Fig. 3 (prompt tokens) and Table 3 (tool calls) of the focus benchmark."""
    lines = [f"## Fig. 2 — memory quality ({focus})", ""]
    lines += _table(["Method", "MQ (0-1)"], [[n, _num(cols.get(n, {}).get("memory_quality"), 3)] for n in names])
    lines += [f"## Fig. 3 — prompt tokens per turn ({focus})", ""]
    base_name = "rag" if "rag" in names else names[0]
    base = cols.get(base_name, {}).get("prompt_tokens")
    fig3 = []
    for n in names:
        tok = cols.get(n, {}).get("prompt_tokens")
        red = None if tok is None or not base else (base - tok) / base
        fig3.append([n, _num(tok, 0), _num(red, 1, 100) + "%" if red is not None else "n/a"])
    lines += _table(["Method", "prompt tokens", f"reduction vs {base_name}"], fig3)
    lines += [f"## Table 3 — tool calls per episode ({focus})", ""]
    lines += _table(["Tool", *names], _tool_rows({n: cols.get(n, {}) for n in names}, names))
    return lines


def _total_calls(summary: Mapping[str, Any] | None) -> float | None:
    if not summary:
        return None
    return float(sum(v or 0.0 for v in summary["tool_calls"].values()))


def _tool_rows(columns: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[list[str]]:
    tools = tool_columns(columns[n] for n in names)
    rows = [[tool_label(t), *(_num(columns[n].get("tool_calls", {}).get(t)) for n in names)] for t in tools]
    rows.append(["Total", *(_num(_total_calls(columns[n])) for n in names)])
    return rows


def _detail_rows(columns: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[list[str]]:
    spec = [
        ("success rate (SR, %)", "success", 2, 100.0),
        ("task score (PR / J, %)", "task_score", 2, 100.0),
        ("answer F1 (%)", "f1", 2, 100.0),
        ("memory quality (MQ)", "memory_quality", 3, 1.0),
        ("prompt tokens / turn", "prompt_tokens", 0, 1.0),
        ("turns / episode", "turns", 1, 1.0),
        ("invalid calls / episode", "invalid_calls", 2, 1.0),
        ("answered (%)", "answered", 0, 100.0),
        ("reward", "reward", 3, 1.0),
    ]
    rows = [[label, *(_num(columns.get(n, {}).get(key), d, s) for n in names)] for label, key, d, s in spec]
    rows.append(["tool calls / episode", *(_num(_total_calls(columns.get(n))) for n in names)])
    return rows
