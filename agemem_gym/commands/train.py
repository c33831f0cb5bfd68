"""``agemem train``: step-wise GRPO on a memory environment (also ``python -m agemem_gym.adapters.grpo``)."""

from __future__ import annotations

import argparse
import json

HELP = "train a memory-managing LLM with step-wise GRPO"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem train``."""
    parser.add_argument("--config", default="cpu-smoke", help="preset (paper, cpu-smoke) or a TOML file")
    parser.add_argument("--model", default=None, help="smollm2, tiny or a local Hugging Face model folder")
    parser.add_argument("--env", dest="env_id", default=None, help="environment id, e.g. AgeMem/HotpotQA-v0")
    parser.add_argument("--steps", dest="num_steps", type=int, default=None, help="override num_steps")
    parser.add_argument("--output-dir", default=None, help="where logs, checkpoints and the plot go")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-resume", action="store_true", help="start fresh even if checkpoints exist")
    parser.add_argument("--record", default=None, metavar="DIR", help="record rollout episodes for agemem view")
    parser.add_argument("--record-every", type=int, default=None, help="record every N-th step's rollouts")
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Load the config, train, print where the results are."""
    from agemem_gym.adapters.grpo.config import load_config
    from agemem_gym.adapters.grpo.trainer import train

    config = load_config(
        args.config,
        model=args.model,
        env_id=args.env_id,
        num_steps=args.num_steps,
        output_dir=args.output_dir,
        seed=args.seed,
        resume=False if args.no_resume else None,
        record_dir=args.record,
        record_every=args.record_every,
    )
    result = train(config, progress=not args.no_progress)
    if result.metrics:
        last = result.metrics[-1]
        keys = ("step", "reward/mean", "task/score", "memory/quality", "losses/kl", "perf/samples_per_s")
        print(json.dumps({k: round(last[k], 4) for k in keys if k in last}))
    print(f"run folder: {result.output_dir}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"plot: {result.plot}")
    return 0
