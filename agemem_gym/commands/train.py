"""``agemem train``: step-wise GRPO on a memory environment (also ``python -m agemem_gym.adapters.grpo``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from typing import Any

from agemem_gym.commands._args import non_negative_int

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
    "overwrite",
    "record_dir",
    "record_every",
    "env_backend",
    "sharding",
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
    parser.add_argument("--seed", type=non_negative_int, **_FIELD, help="seeds model init, task sampling and rollouts")
    parser.add_argument("--learning-rate", type=float, **_FIELD, help="AdamW learning rate (0: a control run)")
    parser.add_argument("--clip", type=_clip, **_FIELD, help="PPO clip ε, or 'none' for the paper's unclipped ratio")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), **_FIELD, help="autocast of every forward")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument(
        "--resume", action="store_true", **_FIELD, help="continue the run in --output-dir (same settings, more --steps)"
    )
    reuse.add_argument(
        "--overwrite", action="store_true", **_FIELD, help="start afresh: remove a used folder's run and --record files"
    )
    parser.add_argument("--record", dest="record_dir", metavar="DIR", **_FIELD, help="record rollouts for agemem view")
    parser.add_argument("--record-every", type=int, **_FIELD, help="record every N-th step's rollouts")
    parser.add_argument(
        "--env-backend",
        choices=("sync", "async", "ray"),
        **_FIELD,
        help="rollout envs: in-process, subprocesses, Ray actors",
    )
    parser.add_argument(
        "--sharding",
        choices=("auto", "replicate", "fsdp2", "zero2", "zero3"),
        **_FIELD,
        help="parameters over processes: replicas, FSDP2 shards, DeepSpeed ZeRO-2 or ZeRO-3, auto: the launch's",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from agemem_gym.adapters.grpo.launch import ACCELERATE_CONFIGS  # torch-free too

    parser.add_argument(
        "--print-accelerate-config",
        metavar="NAME",
        choices=ACCELERATE_CONFIGS,
        help=f"print the path of a bundled accelerate config ({', '.join(ACCELERATE_CONFIGS)}) and exit; "
        "use it as: accelerate launch --config_file PATH -m agemem_gym.adapters.grpo ...",
    )


def _clip(text: str) -> float | None:
    """``none`` → ``None`` (unclipped); otherwise a number."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'none', got {text!r}") from None


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line (``None`` included: ``--clip none``)."""
    return {k: v for k, v in vars(args).items() if k in _FIELDS}


def _check(args: argparse.Namespace) -> Any:
    """Load and validate the config (fields, env id, env kwargs, model) before torch loads."""
    from agemem_gym.adapters.grpo.config import load_config
    from agemem_gym.adapters.grpo.run_folder import holds_run
    from agemem_gym.commands._args import check_env_id, check_env_kwargs
    from agemem_gym.commands._outputs import check_output_dir
    from agemem_gym.error import InvalidConfig
    from agemem_gym.policies.llm.models import check_model

    # the command line never reuses a run folder unasked (the Python API's resume=True does)
    config = load_config(args.config, **{"resume": False, **overrides(args)})
    check_env_id(config.env_id)
    check_env_kwargs(config.env_kwargs, [config.env_id])
    check_model(config.model)
    check_output_dir(config.output_dir, "--output-dir")
    if config.record_dir is not None:
        check_output_dir(config.record_dir, "--record")
    if config.resume and not config.overwrite and not holds_run(config.output_dir):
        raise InvalidConfig(
            f"--resume: {config.output_dir} holds no run to continue (no config.json, metrics.csv or checkpoint); "
            "check --output-dir, or drop --resume to start a new run there"
        )
    return config


def main(args: argparse.Namespace) -> int:
    """Load and check the config, train, print where the results are."""
    from agemem_gym.adapters.grpo.interrupt import TrainingInterrupted
    from agemem_gym.adapters.grpo.run_folder import check_run_folder

    if getattr(args, "print_accelerate_config", None):
        from agemem_gym.adapters.grpo.launch import accelerate_config_path

        print(accelerate_config_path(args.print_accelerate_config))
        return 0
    config = _check(args)
    with _run_lock(config):
        check_run_folder(config)  # refuse a used folder before torch and the model load
        try:
            from agemem_gym.adapters.grpo.trainer import train  # torch loads here, after the checks

            result = train(config, progress=not args.no_progress)
        except TrainingInterrupted as exc:
            if is_main_process():
                print(f"agemem: {exc}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("agemem: interrupted before training started; nothing saved", file=sys.stderr)
            return 130
    if is_main_process():
        _summary(result)
    return 0


def _run_lock(config: Any) -> contextlib.AbstractContextManager[None]:
    """The main process holds ``--output-dir``'s run lock: a second run on the folder is refused.

    Only the main process locks: the other ranks of a launch share its folder.
    """
    from agemem_gym.commands._lock import folder_lock

    return folder_lock(config.output_dir, "--output-dir") if is_main_process() else contextlib.nullcontext()


def summary_line(row: dict[str, float]) -> str:
    """The final step's headline metrics as JSON; a metric that is not finite reads ``"n/a"``."""
    keys = ("step", "reward/mean", "task/score", "memory/quality", "losses/kl", "perf/samples_per_s")
    return json.dumps({k: round(row[k], 4) if math.isfinite(row[k]) else "n/a" for k in keys if k in row})


def _summary(result: Any) -> None:
    """Where the results are (the main process prints it: the other ranks have no results)."""
    if result.metrics:
        print(summary_line(result.metrics[-1]))
    print(f"run folder: {result.output_dir}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"plot: {result.plot}")


def is_main_process() -> bool:
    """Rank 0, or no distributed run."""
    import os

    return int(os.environ.get("RANK", "0")) == 0
