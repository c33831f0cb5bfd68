"""Helpers shared by the benchmark scripts: run metadata, tables, JSON output, memory use."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_metadata() -> dict[str, Any]:
    import numpy

    import agemem_gym

    return {
        "agemem_gym": agemem_gym.__version__,
        "git": git_revision(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with right-aligned numbers."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"

    def align(raw: Any, text: str, width: int) -> str:
        return text.rjust(width) if isinstance(raw, (int, float)) else text.ljust(width)

    rows_txt = [
        "| " + " | ".join(align(v, c, w) for v, c, w in zip(raw, r, widths)) + " |" for raw, r in zip(rows, body)
    ]
    return "\n".join([line, sep, *rows_txt])


def write_json(path: str | os.PathLike[str] | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process in MiB from Linux ``/proc`` (0.0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except FileNotFoundError:
        return 0.0
