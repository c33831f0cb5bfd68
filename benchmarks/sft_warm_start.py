"""The warm start on CPU: SmolLM2-135M before and after ``agemem sft`` on held-out Probe-Recall tasks.

Clones the ``demonstrator``'s turns on Probe-Recall tasks 0-47 (LoRA, ``run_sft``'s
defaults unless given), then plays the held-out tasks 48-63 (objects the training tasks
never name; guessing scores 1/8) greedily with grammar-constrained turns, with the base
model and with the cloned one, and once more with the cloned one while its long-term
memory is emptied as Stage 3 begins: a model that answers from memory must then fail.

    python benchmarks/sft_warm_start.py --json results/sft_warm_start.json
    python benchmarks/sft_warm_start.py --steps 16 --threads 1 --tools-in-system-prompt

Prints one Markdown table (task score, Add_memory / Retrieve_memory calls per episode,
memory quality; the cloned / base ratio) and the loss curve.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from _common import format_table, run_metadata, write_json

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.adapters.sft.train import SFTConfig, run_sft
from agemem_gym.policies.llm.hf_policy import HFPolicy
from agemem_gym.policies.llm.models import load_model
from agemem_gym.runner import play_episodes
from agemem_gym.vector import make_slot_envs
from agemem_gym.wrappers import WipeMemoryBeforeStage3

ENV_ID = "AgeMem/Probe-Recall-v0"
TRAIN_TASKS, HELD_OUT = range(48), range(48, 64)


def evaluate(model_name: str, env_kwargs: dict[str, Any], wipe: bool, max_new_tokens: int) -> dict[str, float]:
    """Greedy constrained episodes on the held-out tasks: mean score, tool calls, memory quality."""
    model, tok = load_model(model_name)
    policy = HFPolicy(model, tok, max_new_tokens=max_new_tokens, do_sample=False, constrained=True, batch_size=16)
    kwargs = {**env_kwargs, "num_tasks": 64, "tokenizer": tok}

    def make() -> gym.Env:
        env = gym.make(ENV_ID, **kwargs)
        return WipeMemoryBeforeStage3(env) if wipe else env

    plan = [(t, 100_000 + t) for t in HELD_OUT]
    envs = make_slot_envs(make, len(plan))
    start = time.perf_counter()
    ends = play_episodes(envs, plan, lambda _s, obs, infos: policy.act_batch(list(obs), list(infos)))
    envs.close()
    infos = [e.info if e.finished else {} for e in ends]

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    return {
        "score": mean([float(i.get("task_score") or 0.0) for i in infos]),
        "add_memory": mean([float(i.get("tool_calls", {}).get("Add_memory", 0)) for i in infos]),
        "retrieve_memory": mean([float(i.get("tool_calls", {}).get("Retrieve_memory", 0)) for i in infos]),
        "memory_quality": mean([float(i.get("memory_quality") or 0.0) for i in infos]),
        "seconds": time.perf_counter() - start,
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="SFT steps (default 16)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="per turn, as in the learning-probe preset")
    parser.add_argument(
        "--tools-in-system-prompt", action="store_true", help="keep the six JSON schemas in the system prompt"
    )
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Clone, evaluate base / cloned / cloned without memory, print the table."""
    args = parse(argv)
    torch.set_num_threads(args.threads)
    env_kwargs = {"num_tasks": 48, "max_rounds": 2, "tools_in_system_prompt": bool(args.tools_in_system_prompt)}
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            model="smollm2",
            env_id=ENV_ID,
            env_kwargs=env_kwargs,
            tasks=tuple(TRAIN_TASKS),
            num_steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            lora_rank=args.lora_rank,
            gradient_checkpointing=False,  # 8 Probe-Recall turns fit easily; no recompute
            output_dir=f"{tmp}/cloned",
        )
        sft = run_sft(config)
        arms = {
            "base": evaluate("smollm2", env_kwargs, False, args.max_new_tokens),
            "cloned": evaluate(str(sft.model_dir), env_kwargs, False, args.max_new_tokens),
            "cloned, LTM wiped before Stage 3": evaluate(str(sft.model_dir), env_kwargs, True, args.max_new_tokens),
        }
    keys = ("score", "add_memory", "retrieve_memory", "memory_quality")
    rows = [[name, *(arm[k] for k in keys), arm["seconds"]] for name, arm in arms.items()]
    base = arms["base"]
    rows.append(["cloned / base", *(arms["cloned"][k] / base[k] if base[k] else float("inf") for k in keys), ""])
    print(f"SFT: {sft.turns} turns from {sft.episodes} episodes, {args.steps} steps in {sft.seconds:.0f} s")
    print("loss per step: " + " ".join(f"{x:.3f}" for x in sft.losses) + "\n")
    schemas = env_kwargs["tools_in_system_prompt"]
    print(f"Held-out {ENV_ID} tasks 48-63, greedy, constrained, tools_in_system_prompt={schemas}\n")
    print(
        format_table(["model", "task score", "Add_memory/ep", "Retrieve_memory/ep", "memory quality", "eval s"], rows)
    )
    payload = {"meta": run_metadata(), "args": vars(args), "sft": {"turns": sft.turns, "episodes": sft.episodes,
               "seconds": sft.seconds, "losses": sft.losses}, "arms": arms}  # fmt: skip
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
