"""``agemem sft``: behaviour cloning from demonstrations, the warm start for ``agemem train``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agemem_gym.commands._args import json_object

HELP = "clone demonstrations into a model with LoRA (a warm start for agemem train)"


def _task_range(text: str) -> tuple[int, ...]:
    """``START:END`` (END excluded) or one index."""
    try:
        start, sep, end = text.partition(":")
        tasks = tuple(range(int(start), int(end))) if sep else (int(start),)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END or an index, got {text!r}") from None
    if not tasks:
        raise argparse.ArgumentTypeError(f"the range {text!r} holds no task")
    return tasks


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem sft``."""
    parser.add_argument(
        "--config",
        default="learning-probe",
        help="the agemem train preset or TOML file whose model, env and env kwargs to use (default learning-probe), "
        "so that `agemem train --config SAME --model DIR` samples in the prompts the model was cloned in",
    )
    parser.add_argument("--model", default=None, help="override the config's model (smollm2, tiny or a folder)")
    parser.add_argument("--env", dest="env_id", default=None, help="override the config's environment id")
    parser.add_argument("--env-kwargs", type=json_object, default=None, help="override the config's env kwargs (JSON)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--policy", default="demonstrator", help="the policy that plays the demonstrations")
    source.add_argument(
        "--records", nargs="+", metavar="PATH", default=(), help="clone --record folders or .jsonl files instead"
    )
    parser.add_argument(
        "--tasks", type=_task_range, default=None, help="tasks the policy plays, START:END (default all)"
    )
    parser.add_argument(
        "--mix-policy",
        default="",
        help="a second policy that plays --mix-fraction of the tasks, cloned whatever it scores "
        "(e.g. no-memory: a partial warm start that leaves GRPO something to learn)",
    )
    parser.add_argument("--mix-fraction", type=float, default=0.0, help="the share of tasks --mix-policy plays")
    parser.add_argument("--min-score", type=float, default=1.0, help="clone episodes whose success reaches this")
    parser.add_argument("--steps", dest="num_steps", type=int, default=16, help="optimizer steps (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="turns per step (default 8)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument(
        "--lora-rank", type=int, default=16, help="LoRA rank on every linear layer; 0: full (default 16)"
    )
    parser.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the episodes, the batch order and tiny models")
    parser.add_argument("--output-dir", default="runs/sft", help="the merged model folder to write (default runs/sft)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir")
    parser.add_argument("--no-progress", action="store_true", help="print no loss per step")


def sft_config(args: argparse.Namespace) -> Any:
    """The :class:`~agemem_gym.adapters.sft.train.SFTConfig` of the command line (checked, nothing loaded)."""
    from agemem_gym.adapters.grpo.config import load_config
    from agemem_gym.adapters.sft.train import SFTConfig
    from agemem_gym.commands._args import check_env_id, check_env_kwargs
    from agemem_gym.policies.llm.models import check_model

    base = load_config(args.config)
    config = SFTConfig(
        model=args.model or base.model,
        env_id=args.env_id or base.env_id,
        env_kwargs=dict(base.env_kwargs if args.env_kwargs is None else args.env_kwargs),
        policy=args.policy,
        mix_policy=args.mix_policy,
        mix_fraction=args.mix_fraction,
        records=tuple(args.records or ()),
        tasks=args.tasks,
        min_score=args.min_score,
        num_steps=args.num_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        seed=args.seed,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        torch_threads=base.torch_threads,
    )
    check_env_id(config.env_id)
    check_env_kwargs(dict(config.env_kwargs))
    check_model(config.model)
    if not config.records:
        from agemem_gym import policies

        policies.check_arguments(config.policy, {})
        if config.mix_policy:
            policies.check_arguments(config.mix_policy, {})
    return config


def main(args: argparse.Namespace) -> int:
    """Check the arguments, clone, print where the model is."""
    from agemem_gym.adapters.sft.train import run_sft

    config = sft_config(args)

    def show(step: int, loss: float) -> None:
        print(f"step {step + 1}/{config.num_steps}: loss {loss:.4f}", file=sys.stderr)

    result = run_sft(config, on_step=None if args.no_progress else show)
    summary = {
        "turns": result.turns,
        "episodes": result.episodes,
        "loss_first": round(result.losses[0], 4),
        "loss_last": round(result.losses[-1], 4),
        "seconds": round(result.seconds, 1),
    }
    print(json.dumps(summary))
    print(f"model folder: {result.model_dir}")
    print(f"continue with: agemem train --config {args.config} --model {result.model_dir}")
    return 0
