"""Env cost per step vs SmolLM2-135M generation for the same turns; make_vec throughput; a profile.

    python benchmarks/bench_env.py --gen-turns 8 --json results/bench_env.json
    python benchmarks/bench_env.py --skip-generation          # env timings only (no model)

1. Play one full three-stage ``AgeMem/HotpotQA-v0`` episode with the ``rag`` policy and record
   its turns. Replay them on a fresh env (same seed) with the ``hashing`` and the ``minilm``
   embedders, timing ``env.step`` alone (parse, tools, LTM, packer, reward) — median of
   ``--repeats`` replays.
2. For the first ``--gen-turns`` of those turns, time SmolLM2-135M generating exactly as many
   tokens as the recorded turn from the same observation (chat template, greedy,
   ``min_new_tokens = max_new_tokens``). The headline is env time / generation time per turn
   over the same turns (target ≤ 1%).
3. Steps/s of ``gym.make_vec(..., vectorization_mode="sync")`` with 1, 2 and 4 envs.
4. A cProfile of the replays: the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from typing import Any

from _common import format_table, run_metadata, write_json

ENV_ID = "AgeMem/HotpotQA-v0"


def record_episode(seed: int) -> list[str]:
    import gymnasium as gym

    from agemem_gym import policies

    env = gym.make(ENV_ID)
    policy = policies.make("rag")
    obs, info = env.reset(seed=seed, options={"task_id": seed})
    turns = []
    while True:
        turn = policy.act(obs, info)
        turns.append(turn)
        obs, _, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            env.close()
            return turns


def replay(turns: list[str], seed: int, embedder: str) -> tuple[list[float], list[Any]]:
    """Per-step seconds of ``env.step`` and the observation before each step."""
    import gymnasium as gym

    env = gym.make(ENV_ID, embedder=embedder)
    obs, _ = env.reset(seed=seed, options={"task_id": seed})
    times, observations = [], []
    for turn in turns:
        observations.append(obs)
        start = time.perf_counter()
        obs, *_ = env.step(turn)
        times.append(time.perf_counter() - start)
    env.close()
    return times, observations


def generation_times(turns: list[str], observations: list[Any], n: int) -> tuple[list[float], list[int]]:
    import torch

    from agemem_gym.policies.llm.hf_policy import render_prompt
    from agemem_gym.policies.llm.models import load_model

    torch.set_num_threads(1)
    model, tok = load_model("smollm2")
    times, prompt_lens = [], []
    for turn, obs in list(zip(turns, observations))[:n]:
        ids = tok(render_prompt(tok, obs), return_tensors="pt", add_special_tokens=False)
        new = max(1, len(tok(turn, add_special_tokens=False)["input_ids"]))
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(
                **ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=tok.eos_token_id
            )
        times.append(time.perf_counter() - start)
        prompt_lens.append(int(ids["input_ids"].shape[1]))
    return times, prompt_lens


def vec_steps_per_second(num_envs: int, steps: int) -> float:
    import gymnasium as gym

    envs = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync")
    envs.reset(seed=list(range(num_envs)))
    actions = ["<think>ok</think><answer>ok</answer>"] * num_envs
    start = time.perf_counter()
    for _ in range(steps):
        envs.step(actions)  # the default autoreset starts a new episode after each finished one
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * num_envs / elapsed


def profile(turns: list[str], seed: int, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        replay(turns, seed, "hashing")
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gen-turns", type=int, default=8, help="turns to time SmolLM2 on (0: all)")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--vec-steps", type=int, default=200)
    parser.add_argument("--top", type=int, default=15, help="profile rows")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    turns = record_episode(args.seed)
    rows, env_stats = [], {}
    observations: list[Any] = []
    for embedder in ("hashing",) + (() if args.skip_minilm else ("minilm",)):
        runs = [replay(turns, args.seed, embedder) for _ in range(args.repeats)]
        per_step = [statistics.median(r[0][i] for r in runs) for i in range(len(turns))]
        observations = runs[0][1]
        env_stats[embedder] = per_step
        rows.append([embedder, len(turns), 1e3 * statistics.mean(per_step), 1e3 * max(per_step), 1e3 * sum(per_step)])
    print(f"## env.step on one {ENV_ID} episode ({len(turns)} turns of the rag policy)\n")
    print(format_table(["embedder", "steps", "mean ms/step", "max ms/step", "episode ms"], rows))
    payload: dict[str, Any] = {
        "meta": run_metadata(),
        "turns": len(turns),
        "env_ms_per_step": {k: [1e3 * t for t in v] for k, v in env_stats.items()},
    }
    if not args.skip_generation:
        n = args.gen_turns or len(turns)
        gen, prompt_lens = generation_times(turns, observations, n)
        ratio_rows = []
        for embedder, per_step in env_stats.items():
            env_ms, gen_ms = 1e3 * statistics.mean(per_step[: len(gen)]), 1e3 * statistics.mean(gen)
            ratio_rows.append([embedder, len(gen), env_ms, gen_ms, 100 * env_ms / gen_ms])
        print(
            f"\n## env vs SmolLM2-135M generation, same {len(gen)} turns (prompts {min(prompt_lens)}-"
            f"{max(prompt_lens)} tokens, CPU, 1 thread)\n"
        )
        headers = ["embedder", "turns", "env ms/turn", "generation ms/turn", "env / generation %"]
        print(format_table(headers, ratio_rows))
        payload["generation_ms_per_turn"] = [1e3 * t for t in gen]
        payload["prompt_tokens"] = prompt_lens
        payload["ratio_percent"] = {r[0]: r[4] for r in ratio_rows}
    vec_rows = [[n, vec_steps_per_second(n, args.vec_steps)] for n in (1, 2, 4)]
    print(f"\n## gym.make_vec({ENV_ID}, sync): env steps per second (answer-only turns)\n")
    print(format_table(["num_envs", "env steps/s"], vec_rows))
    payload["make_vec_steps_per_s"] = {str(n): v for n, v in vec_rows}
    text = profile(turns, args.seed, args.top)
    print("\n## cProfile of 3 replays (hashing), by cumulative time\n")
    print("```\n" + "\n".join(text.strip().splitlines()[: args.top + 8]) + "\n```")
    payload["profile"] = text
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
