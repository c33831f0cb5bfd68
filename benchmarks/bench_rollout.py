"""Rollouts with and without prefix reuse and static decoding: HotpotQA-v0 on SmolLM2-135M.

Plays the same episodes in each mode with one model: ``off`` (``HFPolicy(prefix_cache=False)``:
every turn prefills its whole prompt), ``on`` (``prefix_cache=True``: each turn prefills only
what no stored sequence shares) and, by default on a GPU, ``static`` (the prefix cache plus
``static_decode=True``: fixed-shape decode steps replayed as CUDA graphs). The runs: one whole
episode alone (reuse across turns), then one GRPO group
of K rollouts of the same task in lockstep (the group's shared first prompt prefilled once;
by default the first 4 turns of each rollout, ``--group-turns 0`` for whole episodes).
It reports the prompt tokens prefilled per episode and per generated token, the wall time
per episode, and whether both runs sampled exactly the same turns.

    python benchmarks/bench_rollout.py --json results/bench_rollout.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from _common import format_table, run_metadata, write_json

from agemem_gym.adapters.grpo.rollout import collect_groups, make_rollout_envs
from agemem_gym.policies.llm.hf_policy import HFPolicy
from agemem_gym.policies.llm.models import load_model

MODES = {"off": "cache off", "on": "cache on", "static": "cache on + static"}
"""Mode → table label."""


def play(
    model: Any, tok: Any, args: argparse.Namespace, mode: str, tasks: list[int], k: int, max_turns: int
) -> dict[str, Any]:
    """Play ``tasks`` × ``k`` episodes in lockstep, ``max_turns`` turns at most; their counts and time."""
    cached = mode != "off"
    policy = HFPolicy(
        model,
        tok,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        batch_size=len(tasks) * k,
        constrained=True,
        prefix_cache=cached,
        prefix_cache_entries=max(16, 2 * len(tasks) * k),
        static_decode=mode == "static",
    )
    env_kwargs = {"tokenizer": tok, "num_distractors": args.distractors, "max_rounds": args.max_rounds}
    envs = make_rollout_envs(args.env, len(tasks) * k, env_kwargs)
    policy.reseed(args.seed)
    t0 = time.perf_counter()
    batch = collect_groups(envs, policy, tasks, group_size=k, seed=args.seed, max_turns=max_turns)
    seconds = time.perf_counter() - t0
    envs.close()
    episodes = len(batch.trajectories)
    return {
        "episodes": episodes,
        "turns": len(batch.samples),
        "prompt_tokens": policy.prompt_tokens,
        "prefill_tokens": policy.prefill_tokens,
        "generated_tokens": batch.generated_tokens,
        "seconds": seconds,
        "mask_seconds": policy.mask_seconds,
        "turn_ids": [list(s.response_ids) for s in batch.samples],
        "logprobs": batch.rollout_logprobs,
    }


def _row(name: str, mode: str, r: dict[str, Any], same: str) -> list[Any]:
    n = r["episodes"]
    return [
        name,
        mode,
        n,
        r["turns"] / n,
        r["prompt_tokens"] / n,
        r["prefill_tokens"] / n,
        r["generated_tokens"] / n,
        r["prefill_tokens"] / max(1, r["generated_tokens"]),
        r["seconds"] / n,
        r["mask_seconds"] / n,
        same,
    ]


def _same(off: dict[str, Any], on: dict[str, Any]) -> tuple[bool, float]:
    """Identical turns, and the largest log-prob gap between the two runs."""
    if off["turn_ids"] != on["turn_ids"]:
        return False, float("nan")
    gaps = [abs(a - b) for x, y in zip(off["logprobs"], on["logprobs"]) for a, b in zip(x, y)]
    return True, max(gaps, default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="AgeMem/HotpotQA-v0")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--group-turns", type=int, default=4, help="turns played per group rollout (0: whole episodes)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--distractors", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", nargs="+", choices=("episode", "group"), default=["episode", "group"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), help="default: off on (+ static on a GPU)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    modes = args.modes or ["off", "on", *(["static"] if args.device.startswith("cuda") else [])]
    model, tok = load_model(args.model)
    model.to(args.device)
    play(model, tok, args, "off", [0], 1, 1)  # warm-up: the first run must not pay the device's start-up
    runs: dict[str, dict[str, Any]] = {}
    plans = {"episode": ([0], 1, 10_000), "group": ([1], args.group_size, args.group_turns or 10_000)}
    for part in args.parts:
        tasks, k, turns = plans[part]
        runs[part] = {mode: play(model, tok, args, mode, tasks, k, turns) for mode in modes}
    rows, ratios = [], {}
    for part, r in runs.items():
        base = r[modes[0]]
        rows.append(_row(part, MODES[modes[0]], base, ""))
        for mode in modes[1:]:
            same, gap = _same(base, r[mode])
            rows.append(_row(part, MODES[mode], r[mode], f"{'yes' if same else 'NO'} (max Δlogp {gap:.1e})"))
            ratios[f"{part}/{mode}"] = {
                "prefill": base["prefill_tokens"] / max(1, r[mode]["prefill_tokens"]),
                "wall": base["seconds"] / r[mode]["seconds"],
                "same_turns": same,
                "max_logprob_gap": gap,
            }
    print(
        f"{args.env} (num_distractors={args.distractors}, max_rounds={args.max_rounds}), {args.model}, constrained, "
        f"T={args.temperature}, max_new_tokens={args.max_new_tokens}, {args.threads} thread(s), {args.device}"
    )
    headers = ["run", "mode", "episodes", "turns/ep", "prompt tok/ep", "prefilled tok/ep", "generated tok/ep"]
    print(format_table([*headers, "prefilled/generated", "s/episode", "grammar s/episode", "same turns"], rows))
    for name, q in ratios.items():
        print(f"\n{name} vs {modes[0]}: {q['prefill']:.1f}x fewer tokens prefilled, {q['wall']:.2f}x faster (wall)")
    for r in runs.values():
        for mode in r.values():
            del mode["turn_ids"], mode["logprobs"]
    write_json(args.json, {"meta": run_metadata(), "args": vars(args), "runs": runs, "ratios": ratios})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
