"""SmolLM2-135M-Instruct on HotpotQA with and without grammar-constrained turns.

Plays the same fixed panel of episodes once per mode and tool prompt (batched, in lockstep)
and reports the share of well-formed turns (they parse), the share of accepted turns (they
parse *and* the env ran every call without an error: a live memory id, a valid span ...),
how the turns parse, the mean task score (F1), memory quality, the first prompt's length in
tokens, and the per-token cost of the grammar masks against the unconstrained run. The
rejected turns' first errors are listed under the table. ``--tool-prompt full compact``
compares the env's two tool lists (``tool_prompt=``) on the same episodes and seeds.

    python benchmarks/bench_constrained.py --episodes 8 --json results/bench_constrained.json
    python benchmarks/bench_constrained.py --episodes 4 --modes constrained --tool-prompt full compact
    python benchmarks/bench_constrained.py --prompt-tokens AgeMem/HotpotQA-v0 AgeMem/BabyAI-v0

``--prompt-tokens`` generates nothing: it counts the SmolLM2 tokens of each env's system
prompt and first prompt (chat template applied) with the full and the compact tool list.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import gymnasium as gym
import numpy as np
import torch
from _common import format_table, run_metadata, write_json

from agemem_gym.adapters.grpo.rollout import RolloutBatch, collect_groups, make_rollout_envs
from agemem_gym.policies.llm.hf_policy import HFPolicy, render_prompt
from agemem_gym.policies.llm.models import load_tokenizer
from agemem_gym.tools import TOOL_PROMPTS, parse_turn


class _InfoTap:
    """Passes ``generate`` through to the policy and keeps every turn's ``info`` (the one it was sampled after)."""

    def __init__(self, policy: HFPolicy) -> None:
        self.policy = policy
        self.infos: list[dict] = []

    def generate(self, observations, infos):
        self.infos += list(infos)
        return self.policy.generate(observations, infos)


def _turn_problem(turn: dict | None) -> str | None:
    """Why the env did not accept a turn (``None``: it parsed and every call ran)."""
    if turn is None:
        return "no final info (cut by max_turns)"
    if turn["kind"] == "invalid" or turn["errors"]:
        return f"{turn['kind']}: {(turn['errors'] or ['?'])[0][:120]}"
    failed = [c for c in turn["calls"] if not c["ok"]]
    if failed:
        return f"{failed[0]['name']}({json.dumps(failed[0]['arguments'])[:80]}): {failed[0]['message'][:100]}"
    return None


def rejected_turns(batch: RolloutBatch, before: list[dict]) -> list[str]:
    """Each rejected turn's problem: the env's ``info["turn"]`` after a turn says what it made of it.

    ``before[n]`` is the info sample ``n`` was generated after, so turn ``j`` of an episode is
    judged by the info its turn ``j + 1`` was generated after, the last turn by the final info.
    """
    problems = []
    for traj in batch.trajectories:
        after = [before[n] for n in traj.samples[1:]] + [traj.info]
        problems += [p for p in (_turn_problem(info.get("turn")) for info in after) if p]
    return problems


def _score(value: float | None) -> float:
    """A score, 0 for none: an unanswered episode has ``None`` (NaN once a vector env mixes it with numbers)."""
    return 0.0 if value is None or np.isnan(value) else float(value)


def _first_turns(batch: RolloutBatch) -> list[int]:
    """The sample index of each episode's first turn."""
    return [traj.samples[0] for traj in batch.trajectories if traj.samples]


def play(policy: HFPolicy, env_id: str, env_kwargs: dict, episodes: int, seed: int) -> dict:
    envs = make_rollout_envs(env_id, episodes, {"tokenizer": policy.tokenizer, **env_kwargs})
    policy.reseed(seed)
    policy.mask_seconds = 0.0
    tap = _InfoTap(policy)
    t0 = time.perf_counter()
    batch = collect_groups(envs, tap, list(range(episodes)), group_size=1, seed=seed)
    seconds = time.perf_counter() - t0
    envs.close()
    kinds = collections.Counter()
    valid = 0
    for s in batch.samples:
        text = policy.tokenizer.decode([t for t in s.response_ids if t not in policy.eos_ids])
        parsed = parse_turn(text)
        kinds[parsed.kind] += 1
        valid += parsed.kind != "invalid" and not parsed.errors
    infos = [t.info for t in batch.trajectories]
    rejected = rejected_turns(batch, tap.infos)
    return {
        "turns": len(batch.samples),
        "first_prompt_tokens": float(np.mean([len(batch.samples[n].prompt_ids) for n in _first_turns(batch)])),
        "valid_fraction": valid / max(1, len(batch.samples)),
        "accepted_fraction": 1 - len(rejected) / max(1, len(batch.samples)),
        "rejected": rejected,
        "kinds": dict(kinds),
        "task_score": float(np.mean([_score(i.get("task_score")) for i in infos])),
        "answered": float(np.mean([i.get("answer") is not None for i in infos])),
        "memory_quality": float(np.mean([_score(i.get("memory_quality")) for i in infos])),
        "tool_calls": float(np.mean([sum(i.get("tool_calls", {}).values()) for i in infos])),
        "generated_tokens": batch.generated_tokens,
        "seconds": seconds,
        "mask_seconds": policy.mask_seconds,
    }


def prompt_tokens(env_ids: list[str], seed: int) -> list[dict]:
    """SmolLM2 tokens of each env's system prompt and first prompt, full and compact tool list."""
    tok = load_tokenizer("smollm2")
    rows = []
    for env_id in env_ids:
        row: dict = {"env": env_id}
        for tool_prompt in TOOL_PROMPTS:
            env = gym.make(env_id, tokenizer=tok, tool_prompt=tool_prompt)
            obs, _ = env.reset(seed=seed)
            env.close()
            row[f"system_{tool_prompt}"] = len(tok(obs[0]["content"], add_special_tokens=False)["input_ids"])
            row[f"first_{tool_prompt}"] = len(tok(render_prompt(tok, obs), add_special_tokens=False)["input_ids"])
        rows.append(row)
    print(f"SmolLM2-135M-Instruct tokens, reset(seed={seed})")
    table = [
        [r["env"], r["system_full"], r["system_compact"], r["system_compact"] / r["system_full"]]
        + [r["first_full"], r["first_compact"], r["first_compact"] / r["first_full"]]
        for r in rows
    ]
    heads = ["env", "system full", "system compact", "ratio", "first prompt full", "first prompt compact", "ratio"]
    print(format_table(heads, table))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="AgeMem/HotpotQA-NoDistractors-v0")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--max-rounds", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--modes", nargs="+", choices=("unconstrained", "constrained"), default=["unconstrained", "constrained"]
    )
    parser.add_argument(
        "--tool-prompt", nargs="+", choices=TOOL_PROMPTS, default=["full"], help="the env's tool_prompt"
    )
    parser.add_argument("--prompt-tokens", nargs="+", metavar="ENV", help="only count prompt tokens of these envs")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.prompt_tokens:
        rows = prompt_tokens(args.prompt_tokens, args.seed)
        write_json(args.json, {"meta": run_metadata(), "args": vars(args), "prompt_tokens": rows})
        return 0
    args.tool_prompt = list(dict.fromkeys(args.tool_prompt))
    torch.set_num_threads(args.threads)
    results = {}
    for mode in args.modes:
        policy = HFPolicy.from_pretrained(
            "smollm2",
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            batch_size=args.episodes,
            constrained=mode == "constrained",
        )
        for tool_prompt in args.tool_prompt:
            env_kwargs = {"stage1_mode": "single", "max_rounds": args.max_rounds, "tool_prompt": tool_prompt}
            name = mode if len(args.tool_prompt) == 1 else f"{mode}, {tool_prompt} tools"
            results[name] = play(policy, args.env, env_kwargs, args.episodes, args.seed)
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                r["turns"],
                r["first_prompt_tokens"],
                r["valid_fraction"],
                r["accepted_fraction"],
                r["kinds"].get("tool_call", 0),
                r["kinds"].get("answer", 0),
                r["task_score"],
                r["answered"],
                r["memory_quality"],
                r["tool_calls"],
                r["generated_tokens"] / r["seconds"],
                1000 * r["mask_seconds"] / max(1, r["generated_tokens"]),
            ]
        )
    print(
        f"{args.env}, {args.episodes} episodes (tasks 0..{args.episodes - 1}), SmolLM2-135M-Instruct, "
        f"T={args.temperature}, max_new_tokens={args.max_new_tokens}"
    )
    print(
        format_table(
            [
                "turns",
                "n",
                "prompt tok",
                "valid",
                "accepted",
                "tool_call",
                "answer",
                "F1",
                "answered",
                "MQ",
                "tool calls/ep",
                "tok/s",
                "mask ms/tok",
            ],
            rows,
        )
    )
    for name, r in results.items():
        counts = collections.Counter(r["rejected"]).most_common()
        print(f"\n{name}: {len(r['rejected'])} rejected turns" + "".join(f"\n  {n} x {p}" for p, n in counts))
    per_token = None
    for tool_prompt in args.tool_prompt:
        suffix = "" if len(args.tool_prompt) == 1 else f", {tool_prompt} tools"
        c, u = results.get("constrained" + suffix), results.get("unconstrained" + suffix)
        if c and u:
            per_token = (c["seconds"] / max(1, c["generated_tokens"])) / (u["seconds"] / max(1, u["generated_tokens"]))
            print(f"\nwall time per generated token{suffix}, constrained / unconstrained: {per_token:.2f}x")
        if c:
            print(
                f"mask computation{suffix} {1000 * c['mask_seconds'] / max(1, c['generated_tokens']):.2f} ms per token "
                f"({100 * c['mask_seconds'] / c['seconds']:.1f}% of the constrained run)"
            )
    if len(args.tool_prompt) == 2:
        for mode in args.modes:
            full, compact = results[f"{mode}, full tools"], results[f"{mode}, compact tools"]
            ratio = compact["first_prompt_tokens"] / full["first_prompt_tokens"]
            print(f"{mode}: first prompt compact / full: {ratio:.2f}x tokens")
    write_json(
        args.json, {"meta": run_metadata(), "args": vars(args), "results": results, "time_per_token_ratio": per_token}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
