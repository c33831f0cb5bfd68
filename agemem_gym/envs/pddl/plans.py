"""The bundled reference plans (``data/plans.json``) and the tool that regenerates them.

Each bundled problem has one plan, found once offline by pyperplan 2.1 (greedy best-first
search with h_FF, ``PYTHONHASHSEED=0`` so the plan is reproducible) or, where pyperplan
cannot read the domain (``travel`` uses negative preconditions), by the simulator's own
:func:`~agemem_gym.envs.pddl.search.greedy_plan`. The env replays them as the expert and
shows them as Stage-1 material; tests check every one reaches its goal in the simulator.

Regenerate (needs ``pyperplan``; it plans on a temporary copy, so nothing is written next
to the problems but ``plans.json``)::

    python -m agemem_gym.envs.pddl.plans --timeout 60 [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agemem_gym.envs.pddl.panel import DATA_DIR, bundled_problems, domain_of, load_problem
from agemem_gym.envs.pddl.parsing import goal_last
from agemem_gym.envs.pddl.search import greedy_plan
from agemem_gym.envs.pddl.strips import GroundAction, format_action, parse_action

__all__ = ["PLANS_FILE", "load_plans", "pyperplan_plan"]

PLANS_FILE = DATA_DIR / "plans.json"


def load_plans(path: Path = PLANS_FILE) -> dict[str, dict[str, Any]]:
    """``{"blocks/problem1": {"planner": ..., "plan": ["(pick-up b robot)", ...]}, ...}``."""
    return json.loads(path.read_text(encoding="utf-8"))


def pyperplan_plan(domain_file: Path, problem_text: str, timeout: float = 60.0) -> list[GroundAction] | None:
    """Plan with pyperplan in a subprocess (gbf + hFF, fixed hash seed, temporary folder).

    Args:
        domain_file: The domain file.
        problem_text: The problem's text (reordered so ``:init`` precedes ``:goal``).
        timeout: Seconds before giving up.

    Returns:
        The plan, or ``None`` on a time-out or when pyperplan finds none.
    """
    with tempfile.TemporaryDirectory() as tmp:
        problem = Path(tmp) / "problem.pddl"
        problem.write_text(goal_last(problem_text), encoding="utf-8")
        command = [sys.executable, "-m", "pyperplan", "-l", "error", "-s", "gbf", "-H", "hff"]
        try:
            subprocess.run(
                [*command, str(domain_file), str(problem)],
                check=False,
                timeout=timeout,
                capture_output=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},  # pyperplan's plans depend on set order
            )
        except subprocess.TimeoutExpired:
            return None
        solution = problem.with_name("problem.pddl.soln")  # pyperplan writes it next to the problem
        if not solution.exists():
            return None
        lines = solution.read_text(encoding="utf-8").splitlines()
        return [a for a in (parse_action(line) for line in lines if line.strip()) if a is not None]


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``plans.json`` for every problem of a data folder (the bundled one by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="a folder in PDDLGym's layout")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per pyperplan run")
    parser.add_argument("--out", type=Path, default=None, help="default: <data-dir>/plans.json")
    args = parser.parse_args(argv)
    plans: dict[str, dict[str, object]] = {}
    for key in bundled_problems(args.data_dir):
        problem_text = (args.data_dir / f"{key}.pddl").read_text(encoding="utf-8")
        plan = pyperplan_plan(args.data_dir / f"{domain_of(key)}.pddl", problem_text, args.timeout)
        planner = "pyperplan 2.1 gbf+hff"
        if plan is None:
            sim = load_problem(args.data_dir, key)
            plan = greedy_plan(sim, sim.init, max_expansions=100_000)
            planner = "agemem greedy_plan (goal count)"
        if plan is None:
            print(f"{key}: no plan found", file=sys.stderr)
            continue
        plans[key] = {"planner": planner, "plan": [format_action(a) for a in plan]}
        print(f"{key}: {len(plan)} steps ({planner})")
    out = args.out or args.data_dir / PLANS_FILE.name
    out.write_text(json.dumps(plans, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
