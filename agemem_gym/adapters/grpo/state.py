"""What a training run holds from step to step, and how it is built or restored from a checkpoint.

    threads, accelerator, seeds
    policy model + frozen reference (or a LoRA adapter over the reference) + tokenizer
    optimizer, task-sampling RNG and start step (from the newest checkpoint on resume)
    rollout policy and vector env, metric logger, ``config.json``

The order of these steps is part of the run's reproducibility: they draw from the global
torch RNG, and resuming restores that RNG after the model is built.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import json
import random
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from agemem_gym.adapters.grpo import distributed as D
from agemem_gym.adapters.grpo import sharding as S
from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint, load_training_state
from agemem_gym.adapters.grpo.config import GRPOConfig
from agemem_gym.adapters.grpo.launch import resolve_sharding
from agemem_gym.adapters.grpo.metrics import MetricLogger, StepProgress
from agemem_gym.adapters.grpo.rollout import make_rollout_envs
from agemem_gym.adapters.grpo.run_folder import check_run_folder, clear_run
from agemem_gym.adapters.grpo.update import Autocast, make_autocast
from agemem_gym.error import missing_dependency
from agemem_gym.policies.llm.hf_policy import HFPolicy
from agemem_gym.vector_ray import RayVectorEnv  # Ray itself is imported only when one is built

__all__ = ["TrainState", "build_state", "build_models", "return_freed_memory"]

RolloutEnvs = SyncVectorEnv | AsyncVectorEnv | RayVectorEnv
"""What :func:`~agemem_gym.adapters.grpo.rollout.make_rollout_envs` builds."""


@dataclasses.dataclass
class TrainState:
    """Everything a run keeps between steps (one per process).

    Attributes:
        config: The run's settings.
        accelerator: The ``accelerate.Accelerator`` (device, mixed precision, barriers).
        rank: This process's rank.
        world: Number of processes.
        model: The policy being trained.
        reference: The frozen reference (``None``: LoRA's base model, or no KL term).
        tokenizer: The policy's tokenizer.
        params: The trainable parameters.
        optimizer: AdamW over ``params``.
        rng: Task sampling and minibatch shuffling; identical on every rank.
        start_step: First step to run (after the checkpoint it resumed from).
        checkpoint: The checkpoint it resumed from, if any.
        policy: Generates the rollouts with ``model``.
        envs: This rank's ``local_tasks * group_size`` rollout envs.
        panel: The task ids the env draws from.
        full_distractors: The env's Stage-2 distractor count once the curriculum has warmed up.
        local_tasks: This rank's share of ``config.tasks_per_step``.
        logger: CSV (and TensorBoard) log on rank 0, ``None`` elsewhere.
        autocast: Wrapped around every training forward pass (scoring π_old and π_ref, and the
            update): one precision for all, so the ratio is exactly 1 at zero update.
        output_dir: The run folder.
        progress: The bar over the current step's phases (:meth:`train` replaces the silent one).
        fork_envs: The ``local_tasks · K · M`` continuation envs of ``credit = "memory-state"``
            (:mod:`~agemem_gym.adapters.grpo.fork`); ``None`` otherwise.
        sharded: ``model`` (and ``reference``) are sharded with FSDP2 (:mod:`~agemem_gym.adapters.grpo.sharding`).
    """

    config: GRPOConfig
    accelerator: Any
    rank: int
    world: int
    model: Any
    reference: Any
    tokenizer: Any
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    start_step: int
    checkpoint: Path | None
    policy: HFPolicy
    envs: RolloutEnvs
    panel: list[Any]
    full_distractors: int
    local_tasks: int
    logger: MetricLogger | None
    autocast: Autocast
    output_dir: Path
    progress: StepProgress = dataclasses.field(default_factory=lambda: StepProgress(False))
    fork_envs: RolloutEnvs | None = None
    sharded: bool = False


def build_state(config: GRPOConfig) -> TrainState:
    """Build a run from ``config``: afresh, or from the newest checkpoint of the run it resumes.

    Args:
        config: The run's settings.

    Returns:
        The state at the first step to run.

    Raises:
        InvalidConfig: ``output_dir`` holds a run this config may not reuse
            (:func:`~agemem_gym.adapters.grpo.run_folder.check_run_folder`).
    """
    resumes = check_run_folder(config)  # before anything loads or is written
    _process_settings(config)
    accelerator = _accelerator()
    (rank, world), output_dir = D.world(), Path(config.output_dir)
    if config.overwrite and rank == 0:
        clear_run(config)
    accelerator.wait_for_everyone()
    resume = latest_checkpoint(output_dir) if resumes else None
    _seed_everything(config.seed)
    sharded = _sharding(config, accelerator) == "fsdp2"
    model, reference, tokenizer = _placed_models(config, resume, accelerator.device, sharded)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)  # task sampling and shuffling: identical on every rank
    load_optimizer = S.load_optimizer_state if sharded else None  # a sharded optimizer keeps its shard
    start_step = 0 if resume is None else load_training_state(resume, optimizer, rng, load_optimizer) + 1
    policy = _rollout_policy(config, model, tokenizer)
    local_tasks = len(D.task_share(config.tasks_per_step, rank, world))
    envs = _rollout_envs(config, tokenizer, rank, local_tasks, start_step)
    env = envs.get_attr("unwrapped")[0]
    logger = MetricLogger(output_dir, tensorboard=config.tensorboard) if rank == 0 else None
    if rank == 0:
        (output_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return TrainState(
        config=config,
        accelerator=accelerator,
        rank=rank,
        world=world,
        model=model,
        reference=reference,
        tokenizer=tokenizer,
        params=params,
        optimizer=optimizer,
        rng=rng,
        start_step=start_step,
        checkpoint=resume,
        policy=policy,
        envs=envs,
        panel=list(env.task_ids),
        full_distractors=int(env.config.num_distractors),
        local_tasks=local_tasks,
        logger=logger,
        autocast=make_autocast(config.precision, accelerator.device),
        output_dir=output_dir,
        fork_envs=_fork_envs(config, tokenizer, local_tasks),
        sharded=sharded,
    )


def _placed_models(
    config: GRPOConfig, resume: Path | None, device: torch.device, sharded: bool
) -> tuple[Any, Any, Any]:
    """:func:`build_models`, with rank 0's trainable weights on every rank, then sharded if asked."""
    model, reference, tokenizer = build_models(config, resume, device)
    D.broadcast_parameters([p for p in model.parameters() if p.requires_grad])
    if sharded:  # after the broadcast: every rank shards the same full weights
        model = S.shard_model(model)
        reference = None if reference is None else S.shard_model(reference)
    return model, reference, tokenizer


def _process_settings(config: GRPOConfig) -> None:
    """The process-wide settings a run asks for: glibc's mmap threshold, torch's CPU threads, quiet loading."""
    _quiet_loading()
    return_freed_memory(config.malloc_mmap_threshold)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)


def return_freed_memory(threshold: int) -> bool:
    """Have glibc allocate blocks of ``threshold`` bytes and more with ``mmap`` (freed: returned to the OS).

    glibc's dynamic threshold climbs to 32 MB once large blocks are freed, after which freed
    activations, KV caches and logits stay in the heap and the RSS only grows.

    Args:
        threshold: In bytes; 0 leaves glibc's default.

    Returns:
        Whether the setting took (``False`` off glibc, or with 0).
    """
    if threshold <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold)))
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _accelerator() -> Any:
    """Device and barriers; the precision is the run's own (:func:`make_autocast`), not accelerate's."""
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise missing_dependency("accelerate", "train") from exc
    return Accelerator(mixed_precision="no")


def _sharding(config: GRPOConfig, accelerator: Any) -> str:
    """``"fsdp2"`` or ``"replicate"`` (:func:`~agemem_gym.adapters.grpo.launch.resolve_sharding`).

    DeepSpeed and Megatron-LM are refused: their engines own the model and would shard nothing.
    The trainer shards with FSDP2 itself rather than through ``accelerator.prepare``, so the one
    code path runs on GPUs (NCCL) and on CPUs (gloo), where accelerate has no FSDP.
    """
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    return resolve_sharding(config.sharding, accelerator.distributed_type, getattr(plugin, "fsdp_version", None))


def _quiet_loading() -> None:
    """No model-loading progress bars: they would interleave with the training bar."""
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # load_model raises the missing-dependency error
        pass


def _seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_models(config: GRPOConfig, resume: Path | None, device: torch.device) -> tuple[Any, Any, Any]:
    """The models a run trains and compares against.

    Args:
        config: Model name, LoRA settings, KL β, seed (of the tiny test models).
        resume: A checkpoint to load the trained weights (or adapter) from.
        device: Where the models go.

    Returns:
        ``(policy model, reference model or None, tokenizer)``; a LoRA model has no separate
        reference (its base model is one), and ``kl_beta == 0`` needs none.
    """
    from agemem_gym.policies.llm.models import load_model

    extra = {"seed": config.seed} if config.model in ("tiny", "tiny-vocab") else {}
    model, tokenizer = load_model(config.model, **extra)
    if config.lora_rank:
        return _with_lora(_checkpointed(model, config), config, resume).to(device), None, tokenizer
    if resume is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(resume / "model"), dtype=torch.float32, local_files_only=True)
    reference = None
    if config.kl_beta > 0:
        source = model if resume is None else load_model(config.model, **extra)[0]
        reference = copy.deepcopy(source).to(device).eval().requires_grad_(False)
    return _checkpointed(model, config).to(device), reference, tokenizer


def _checkpointed(model: Any, config: GRPOConfig) -> Any:
    """``model``, recomputing its decoder layers in the backward pass if the config asks (train mode only)."""
    if not config.gradient_checkpointing:
        return model
    # transformers 5 renamed gradient checkpointing to activation checkpointing (the old name warns)
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # pragma: no cover - transformers 4
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _with_lora(model: Any, config: GRPOConfig, resume: Path | None) -> Any:
    """A fresh LoRA adapter over ``model``, or the one saved in ``resume``."""
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError as exc:
        raise missing_dependency("peft", "train") from exc
    if resume is not None:
        return PeftModel.from_pretrained(model, str(resume / "model"), is_trainable=True)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _rollout_policy(config: GRPOConfig, model: Any, tokenizer: Any) -> HFPolicy:
    """Generates the rollouts with the model being trained (at the training temperature)."""
    return HFPolicy(
        model,
        tokenizer,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        batch_size=config.generation_batch_size,
        constrained=config.constrained,
    )


def _rollout_envs(config: GRPOConfig, tokenizer: Any, rank: int, local_tasks: int, start_step: int) -> RolloutEnvs:
    """This rank's ``local_tasks × K`` envs (recording into ``record_dir/rank<r>`` if asked).

    Each sub-env plays one episode per step, so its episode index is the step: a resumed run
    numbers its recordings from ``start_step`` on (replacing those of steps the interrupted run
    did not checkpoint) instead of colliding with step 0's.
    """
    record = None if config.record_dir is None else str(Path(config.record_dir) / f"rank{rank}")
    envs = make_rollout_envs(
        config.env_id,
        local_tasks * config.group_size,
        {"tokenizer": tokenizer, **dict(config.env_kwargs)},
        backend=config.rollout_env_backend,
        record=record,
        record_every=config.record_every,
        first_episode=start_step,
    )
    return cast(RolloutEnvs, envs)


def _fork_envs(config: GRPOConfig, tokenizer: Any, local_tasks: int) -> RolloutEnvs | None:
    """Memory-state credit's continuation envs: the rollout envs' id and arguments, ``M`` per rollout, unrecorded."""
    if config.credit != "memory-state":
        return None
    envs = make_rollout_envs(
        config.env_id,
        local_tasks * config.group_size * config.fork_continuations,
        {"tokenizer": tokenizer, **dict(config.env_kwargs)},  # the same arguments: snapshots restore only then
        backend=config.rollout_env_backend,
    )
    return cast(RolloutEnvs, envs)
