"""``agemem train``: step-wise GRPO on a memory environment (also ``python -m agemem_gym.adapters.grpo``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "train a memory-managing LLM with step-wise GRPO"


# The options that override a config field: ``dest`` is the field's name. They default to
# SUPPRESS, so an option left out is absent from the namespace and ``None`` stays a value
# (``--clip none`` is the paper's unclipped objective).
_FIELD: dict[str, Any] = {"default": argparse.SUPPRESS}
_FIELDS = (
    "model",
    "env_id",
    "num_steps",
    "output_dir",
    "seed",
    "learning_rate",
    "clip",
    "precision",
    "resume",
    "record_dir",
    "record_every",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem train``."""
    from agemem_gym.adapters.grpo.config import PRESETS  # torch-free: --help stays fast

    presets = ", ".join(PRESETS)
    parser.add_argument("--config", default="cpu-smoke", help=f"preset ({presets}) or a TOML file")
    parser.add_argument("--model", **_FIELD, help="smollm2, tiny or a local Hugging Face model folder")
    parser.add_argument("--env", dest="env_id", **_FIELD, help="environment id, e.g. AgeMem/HotpotQA-v0")
    parser.add_argument("--steps", dest="num_steps", type=int, **_FIELD, help="override num_steps")
    parser.add_argument("--output-dir", **_FIELD, help="where logs, checkpoints and the plot go")
    parser.add_argument("--seed", type=int, **_FIELD, help="seeds model init, task sampling and rollouts")
    parser.add_argument("--learning-rate", type=float, **_FIELD, help="AdamW learning rate (0: a control run)")
    parser.add_argument("--clip", type=_clip, **_FIELD, help="PPO clip ε, or 'none' for the paper's unclipped ratio")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), **_FIELD, help="autocast of every forward")
    parser.add_argument(
        "--no-resume", dest="resume", action="store_false", **_FIELD, help="start fresh even if checkpoints exist"
    )
    parser.add_argument("--record", dest="record_dir", metavar="DIR", **_FIELD, help="record rollouts for agemem view")
    parser.add_argument("--record-every", type=int, **_FIELD, help="record every N-th step's rollouts")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _clip(text: str) -> float | None:
    """``none`` → ``None`` (unclipped); otherwise a number."""
    return None if text.strip().lower() == "none" else float(text)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line (``None`` included: ``--clip none``)."""
    return {k: v for k, v in vars(args).items() if k in _FIELDS}


def _check(args: argparse.Namespace) -> Any:
    """Load and validate the config (fields, env id, env kwargs, model) before torch loads."""
    from agemem_gym.adapters.grpo.config import load_config
    from agemem_gym.commands._args import check_env_id, check_env_kwargs
    from agemem_gym.policies.llm.models import check_model

    config = load_config(args.config, **overrides(args))
    check_env_id(config.env_id)
    check_env_kwargs(dict(config.env_kwargs))
    check_model(config.model)
    return config


def main(args: argparse.Namespace) -> int:
    """Load the config, train, print where the results are."""
    config = _check(args)
    from agemem_gym.adapters.grpo.trainer import train  # torch loads here, after the config checks

    result = train(config, progress=not args.no_progress)
    if result.metrics:
        last = result.metrics[-1]
        keys = ("step", "reward/mean", "task/score", "memory/quality", "losses/kl", "perf/samples_per_s")
        print(json.dumps({k: round(last[k], 4) for k in keys if k in last}))
    print(f"run folder: {result.output_dir}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"plot: {result.plot}")
    return 0
