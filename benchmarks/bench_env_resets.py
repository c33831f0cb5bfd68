"""Resident memory and reset time of the engine-backed envs over 1,000 resets (leak check).

    python benchmarks/bench_env_resets.py --resets 1000 --json results/bench_env_resets.json

For each id: RSS after a warm-up (50 resets), after half and after all the resets (each
reset draws a task from the panel and plays 3 world actions or turns), then RSS after
``--cycles`` make → reset → close cycles. Task caches are bounded, so RSS must flatten
once they are full: the "growth, 2nd half" column is the leak signal. Reset time is set
against the bare engine's own reset (minigrid ``env.reset``; for PDDL, parsing the
problem on every reset, the obvious alternative to the process-wide parse cache).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from _common import format_table, rss_mb, run_metadata, write_json

DEFAULT_IDS = ("AgeMem/BabyAI-v0", "AgeMem/PDDL-v0", "AgeMem/FactUpdate-v0")


def _play(env: Any, seed: int, turns: int) -> None:
    from agemem_gym.tools import format_action, format_answer

    _, info = env.reset(seed=seed)
    for _ in range(turns):
        valid = info.get("valid_actions")
        action = format_action(valid[seed % len(valid)]) if valid else format_answer("ok")
        _, _, term, trunc, info = env.step(action)
        if term or trunc:
            break


def measure(env_id: str, resets: int, cycles: int) -> dict[str, Any]:
    import gymnasium as gym

    gc.collect()
    start = rss_mb()
    env = gym.make(env_id, plain=True) if ("BabyAI" in env_id or "PDDL" in env_id) else gym.make(env_id)
    for seed in range(50):
        _play(env, seed, 3)
    gc.collect()
    warm = rss_mb()
    t0 = time.perf_counter()
    half = warm
    for i in range(resets):
        _play(env, 1000 + i, 3)
        if i == resets // 2 - 1:
            gc.collect()
            half = rss_mb()
    per_episode = (time.perf_counter() - t0) / resets
    gc.collect()
    end = rss_mb()
    t0 = time.perf_counter()
    for seed in range(200):
        env.reset(seed=seed)
    reset_ms = (time.perf_counter() - t0) / 200 * 1000
    t0 = time.perf_counter()
    for seed in range(200):  # the same task every time: the task cache answers
        env.reset(seed=seed, options={"task_id": 0})
    cached_ms = (time.perf_counter() - t0) / 200 * 1000
    env.close()
    mid_cycles = after_cycles = rss_mb()
    for c in range(cycles):
        e = gym.make(env_id)
        e.reset(seed=c)
        e.close()
        if c == cycles // 2 - 1:
            gc.collect()
            mid_cycles = rss_mb()
    gc.collect()
    after_cycles = rss_mb()
    return {
        "env_id": env_id,
        "rss_start_mb": start,
        "rss_warm_mb": warm,
        "rss_half_mb": half,
        "rss_end_mb": end,
        "growth_first_half_mb": half - warm,
        "growth_second_half_mb": end - half,
        "rss_after_cycles_mb": after_cycles,
        "cycle_growth_first_half_mb": mid_cycles - end,
        "cycle_growth_second_half_mb": after_cycles - mid_cycles,
        "episode_ms": per_episode * 1000,
        "reset_ms": reset_ms,
        "cached_task_reset_ms": cached_ms,
        "engine_reset_ms": engine_reset_ms(env_id),
    }


def engine_reset_ms(env_id: str, n: int = 200) -> float | None:
    """The bare engine's reset, for comparison."""
    if "BabyAI" in env_id:
        import contextlib
        import io

        import gymnasium as gym
        import minigrid  # noqa: F401

        env = gym.make("BabyAI-GoToLocal-v0").unwrapped
        t0 = time.perf_counter()
        for seed in range(n):
            with contextlib.redirect_stdout(io.StringIO()):
                env.reset(seed=seed)
        env.close()
        return (time.perf_counter() - t0) / n * 1000
    if "PDDL" in env_id:
        from agemem_gym.envs.pddl.panel import DATA_DIR, bundled_problems, domain_of
        from agemem_gym.envs.pddl.parsing import parse_domain, parse_problem

        keys = bundled_problems()[:10]
        t0 = time.perf_counter()
        for key in keys:  # parse on every reset: the alternative to the process-wide cache
            domain, closure = parse_domain((DATA_DIR / f"{domain_of(key)}.pddl").read_text())
            parse_problem((DATA_DIR / f"{key}.pddl").read_text(), domain, closure)
        return (time.perf_counter() - t0) / len(keys) * 1000
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+", default=list(DEFAULT_IDS))
    parser.add_argument("--resets", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import agemem_gym  # noqa: F401

    rows = [measure(env_id, args.resets, args.cycles) for env_id in args.ids]
    headers = [
        "env id",
        "RSS warm MiB",
        "growth 1st half",
        "growth 2nd half",
        "make/close 1st half",
        "make/close 2nd half",
        "episode ms",
        "reset ms",
        "reset ms (cached task)",
        "baseline ms",
        "ours / baseline",
    ]
    table = [
        [
            r["env_id"],
            r["rss_warm_mb"],
            r["growth_first_half_mb"],
            r["growth_second_half_mb"],
            r["cycle_growth_first_half_mb"],
            r["cycle_growth_second_half_mb"],
            r["episode_ms"],
            r["reset_ms"],
            r["cached_task_reset_ms"],
            "n/a" if r["engine_reset_ms"] is None else r["engine_reset_ms"],
            "n/a" if r["engine_reset_ms"] is None else f"{r['reset_ms'] / r['engine_reset_ms']:.3g}",
        ]
        for r in rows
    ]
    print(
        f"\n{args.resets} resets per id (3 turns each), then {args.cycles} make/reset/close cycles; RSS growth in MiB"
    )
    print("baseline: BabyAI = bare minigrid reset; PDDL = parsing the problem on every reset\n")
    print(format_table(headers, table))
    write_json(args.json, {"meta": run_metadata(), "resets": args.resets, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
