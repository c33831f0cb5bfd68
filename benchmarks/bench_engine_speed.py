"""What the engine wrappers of SciWorld and ALFWorld cost, against the obvious alternatives.

    python benchmarks/bench_engine_speed.py --json results/bench_engine_speed.json

* ScienceWorld step: our engine (``server.step`` + score) vs ``ScienceWorldEnv.step``
  (which also lists every valid action), along the gold paths of five panel variations;
  and the JVM with ``-XX:hashCode=2`` (reproducible) vs without.
* ALFWorld reset: our engine (PDDL translation memoised for the loaded game) vs a plain
  TextWorld reset, on the six bundled example games (the first trial of each task type).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import format_table, run_metadata, write_json


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sciworld_steps(n_variations: int) -> list[list[Any]]:
    from scienceworld import ScienceWorldEnv

    from agemem_gym.envs.sciworld.engine import ScienceWorldEngine
    from agemem_gym.envs.sciworld.panel import load_bundled

    _, entries, variations = load_bundled()
    picked = [variations[(e.task, e.variation)] for e in entries[::3][:n_variations]]
    rows = []

    def lean(engine: ScienceWorldEngine) -> list[float]:
        times = []
        for v in picked:
            engine.load(v.task, v.variation)
            engine.reset()
            times += [_timed(lambda a=a: engine.step(a)) for a in v.gold]
        return times

    for deterministic in (True, False):
        engine = ScienceWorldEngine(deterministic=deterministic)
        try:
            times = lean(engine)
        finally:
            engine.close()
        rows.append([f"engine.step (hashCode={'2' if deterministic else 'default'})", len(times), times])
    wrapper = ScienceWorldEnv("", envStepLimit=10_000)
    try:
        times = []
        for v in picked:
            wrapper.load(v.task, v.variation, "")
            wrapper.reset()
            times += [_timed(lambda a=a: wrapper.step(a)) for a in v.gold]
    finally:
        wrapper.close()
    rows.append(["ScienceWorldEnv.step", len(times), times])
    return rows


def alfworld_resets(repeats: int) -> list[list[Any]]:
    from agemem_gym.envs.alfworld.engine import ALFWorldEngine, require_alfworld
    from agemem_gym.envs.alfworld.games import game_data, load_sample

    games = load_sample()[::3]  # one game per task type
    ours, plain = [], []
    engine = ALFWorldEngine()
    for game in games:
        engine.load(game_data(game))
        ours += [_timed(engine.reset) for _ in range(repeats)]
    engine.close()
    textworld, pddl_env, demangler = require_alfworld()
    env = demangler(pddl_env(textworld.EnvInfos(admissible_commands=True, won=True)))
    for game in games:
        env.load(game_data(game))
        plain += [_timed(env.reset) for _ in range(repeats)]
    env.close()
    return [["engine.reset (memoised translation)", len(ours), ours], ["TextWorld reset", len(plain), plain]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sciworld-variations", type=int, default=5)
    parser.add_argument("--alfworld-repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"meta": run_metadata()}
    for name, rows in (
        ("ScienceWorld step", sciworld_steps(args.sciworld_variations)),
        ("ALFWorld reset", alfworld_resets(args.alfworld_repeats)),
    ):
        base = statistics.median(rows[0][2])
        table = [
            [label, n, 1000 * statistics.median(t), 1000 * max(t), statistics.median(t) / base] for label, n, t in rows
        ]
        print(f"\n## {name}\n")
        print(format_table(["variant", "calls", "median ms", "max ms", "× ours"], table))
        report[name] = [{"variant": r[0], "calls": r[1], "median_ms": r[2], "max_ms": r[3]} for r in table]
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
