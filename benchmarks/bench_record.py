"""Episode recordings: file size against full per-step snapshots, and the cost of recording.

    python benchmarks/bench_record.py --json results/bench_record.json

For each policy, plays the same seeded episodes with and without ``RecordEpisode`` (same
actions) and reports: bytes per episode in the ``agemem-episode/1`` format (LTM and context as
diffs) against the obvious alternative (every step carrying the full LTM and the full context),
the step-time overhead of recording, the time to read a file back, and the viewer page size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
from _common import format_table, run_metadata, write_json

import agemem_gym  # noqa: F401
from agemem_gym import policies
from agemem_gym.viewer import render_html
from agemem_gym.wrappers.record import RecordEpisode, read_episode


def play(env: gym.Env, policy_name: str, seed: int, actions: list[str] | None) -> tuple[list[str], float, int]:
    """One episode; replays ``actions`` when given. Returns the actions, seconds in step, steps."""
    policy = policies.make(policy_name, **({"seed": seed} if policy_name == "random" else {}))
    obs, info = env.reset(seed=seed, options={"task_id": seed})
    taken, spent = [], 0.0
    for i in range(500):
        action = actions[i] if actions is not None else policy.act(obs, info)
        t0 = time.perf_counter()
        obs, _, term, trunc, info = env.step(action)
        spent += time.perf_counter() - t0
        taken.append(action)
        if term or trunc:
            break
    return taken, spent, len(taken)


def snapshot_bytes(path: Path) -> int:
    """Size of the same episode written as full snapshots (every step: whole LTM and context)."""
    episode = read_episode(path)
    lines = [json.dumps(episode.header, ensure_ascii=False, separators=(",", ":"))]
    for step in episode.steps:
        record = {k: v for k, v in step.raw.items() if k not in ("ltm", "context")}
        record["ltm"] = [vars(m) for m in episode.ltm(step.t)]
        record["context"] = [vars(m) for m in episode.context(step.t)]
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return sum(len(line.encode()) + 1 for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="AgeMem/HotpotQA-v0")
    parser.add_argument("--policies", nargs="+", default=["oracle", "store-all", "rag", "random"])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    rows, results = [], []
    for name in args.policies:  # warm up (numba kernels, embedder caches) outside the timings
        play(gym.make(args.env, privileged_info=True), name, 0, None)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.policies:
            plain_s = rec_s = read_s = 0.0
            steps = diff_bytes = full_bytes = 0
            paths = []
            folder = Path(tmp) / name
            for ep in range(args.episodes):
                env = gym.make(args.env, privileged_info=True)
                actions, spent, n = play(env, name, ep, None)
                env.close()
                plain_s += spent
                steps += n
                recorder = RecordEpisode(gym.make(args.env, privileged_info=True), folder)
                _, spent, _ = play(recorder, name, ep, actions)
                recorder.close()
                rec_s += spent
                path = recorder.paths[0]
                paths.append(path)
                diff_bytes += path.stat().st_size
                full_bytes += snapshot_bytes(path)
                t0 = time.perf_counter()
                read_episode(path)
                read_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            page = render_html([read_episode(p) for p in paths])
            render_s = time.perf_counter() - t0
            result = {
                "policy": name,
                "episodes": args.episodes,
                "steps_per_episode": steps / args.episodes,
                "kb_per_episode": diff_bytes / args.episodes / 1024,
                "snapshot_kb_per_episode": full_bytes / args.episodes / 1024,
                "size_ratio": full_bytes / diff_bytes,
                "step_ms": 1000 * plain_s / steps,
                "recorded_step_ms": 1000 * rec_s / steps,
                "overhead_pct": 100 * (rec_s - plain_s) / plain_s,
                "read_ms_per_episode": 1000 * read_s / args.episodes,
                "page_kb": len(page.encode()) / 1024,
                "render_s": render_s,
            }
            results.append(result)
            rows.append(
                [
                    name,
                    result["steps_per_episode"],
                    result["kb_per_episode"],
                    result["snapshot_kb_per_episode"],
                    result["size_ratio"],
                    result["step_ms"],
                    result["recorded_step_ms"],
                    result["overhead_pct"],
                    result["read_ms_per_episode"],
                    result["page_kb"],
                ]
            )
    print(f"## {args.env}, {args.episodes} episodes per policy\n")
    headers = [
        "policy",
        "steps/ep",
        "KB/ep (diffs)",
        "KB/ep (full snapshots)",
        "snapshots / diffs",
        "step ms",
        "recorded step ms",
        "overhead %",
        "read ms/ep",
        f"page KB ({args.episodes} eps)",
    ]
    print(format_table(headers, rows))
    write_json(args.json, {"meta": run_metadata(), "env": args.env, "results": results})
    print(f"\nmedian overhead: {statistics.median(r['overhead_pct'] for r in results):.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
