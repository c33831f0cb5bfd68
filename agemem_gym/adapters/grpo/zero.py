"""DeepSpeed ZeRO-2 for the GRPO trainer: DeepSpeed's engine owns backward and the step.

``sharding = "zero2"`` partitions gradients and optimizer state over the ranks (weights stay
replicated). ZeRO-3 is refused (:data:`~agemem_gym.adapters.grpo.launch.ZERO3_REFUSED`). The
trainer hands the policy and its AdamW to ``deepspeed.initialize``
itself (:func:`initialize`), with an engine config of its own
(:func:`engine_config`), so the one code path runs on GPUs (NCCL) and on CPUs (gloo):

* **gradient accumulation**: ``managed_gradient_accumulation: false``, so ``engine.backward``
  only accumulates (it does not divide by an accumulation count: ``gradient_accumulation_steps``
  is 1) and ``engine.step()`` is the optimizer step, once per minibatch however many
  micro-batches this rank ran.
* **loss normalisation**: each rank's loss is already its share of the minibatch's global token
  mean (as with replicas); ZeRO averages gradients over the ranks, so :func:`backward` multiplies
  the loss by the world size first: the reduced gradient is the plain sum, as the replicated run's.
* **lockstep**: ZeRO-2 reduces (reduce-scatters) the gradients in every backward, a collective,
  so every rank runs the same number of update micro-batches and pads with :func:`pad_pass`
  (loss exactly 0), as under FSDP2. Rollouts and scoring need nothing: the weights are whole.
* **clipping**: the engine clips to ``max_grad_norm`` (DeepSpeed's ``gradient_clipping``) and
  reports the norm before clipping, as ``clip_grad_norm_`` does.
* **checkpoints**: :func:`full_model_state` and :func:`full_optimizer_state` gather the files a
  replicated run writes (every rank calls them); :func:`load_optimizer_state` partitions them
  again, so any layout resumes from any other.

DeepSpeed is imported only here, and only when a run asks for ZeRO (``pip install
"agemem-gym[deepspeed]"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.distributed as dist

from agemem_gym.adapters.grpo import distributed as D
from agemem_gym.error import InvalidConfig, missing_dependency

__all__ = [
    "ZeroRun",
    "ZERO_STAGES",
    "deepspeed_module",
    "engine_config",
    "initialize",
    "engine_forward",
    "backward",
    "pad_pass",
    "step",
    "full_model_state",
    "full_optimizer_state",
    "load_optimizer_state",
]

ZERO_STAGES = {"zero2": 2}
"""The :attr:`~agemem_gym.adapters.grpo.config.GRPOConfig.sharding` values run by DeepSpeed, and their stages."""


@dataclasses.dataclass
class ZeroRun:
    """A policy under DeepSpeed: the engine, and what a checkpoint in the replicated layout needs.

    Attributes:
        engine: The ``DeepSpeedEngine``; ``engine.module`` is the policy itself.
        stage: 2.
        params: The trainable parameters, in the order of the replicated optimizer's state.
        param_groups: The replicated AdamW's ``state_dict()["param_groups"]``, taken before
            DeepSpeed replaced its parameters with flat partitions.
    """

    engine: Any
    stage: int
    params: list[torch.nn.Parameter]
    param_groups: list[dict[str, Any]]


def deepspeed_module() -> Any:
    """``deepspeed``, or the error that says how to install it."""
    try:
        import deepspeed
    except ImportError as exc:
        raise missing_dependency("deepspeed", "deepspeed") from exc
    return deepspeed


def engine_config(stage: int, max_grad_norm: float) -> dict[str, Any]:
    """The DeepSpeed config the trainer runs with (the accelerate file's ``zero_stage`` only is read).

    Args:
        stage: ZeRO stage (2).
        max_grad_norm: Clip gradients to this global norm (0: no clipping).

    Returns:
        The dict for ``deepspeed.initialize(config=...)``: float32 (the trainer's own
        ``precision`` applies autocast around the forward passes), accumulation owned by the caller.
    """
    if stage != 2:
        raise InvalidConfig(f"the GRPO trainer runs ZeRO stage 2 only, got stage {stage}")
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": float(max_grad_norm or 0.0),
        "zero_optimization": {"stage": stage},
        "steps_per_print": 2**31,
        "wall_clock_breakdown": False,
    }


def initialize(
    model: Any, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], stage: int, max_grad_norm: float
) -> ZeroRun:
    """Hand ``model`` and its ``optimizer`` to DeepSpeed (every rank, same weights: broadcast first).

    Args:
        model: The policy, on its device.
        optimizer: AdamW over ``params``; DeepSpeed steps it on flat partitions from now on.
        params: ``model``'s trainable parameters.
        stage: ZeRO stage (2).
        max_grad_norm: The engine's gradient clipping.

    Returns:
        The run; ``run.engine.module is model``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise InvalidConfig("sharding = 'zero2' or 'zero3' needs torch.distributed: launch with accelerate or torchrun")
    deepspeed = deepspeed_module()
    deepspeed.init_distributed(dist_backend=dist.get_backend())  # adopts the process group accelerate made
    groups = optimizer.state_dict()["param_groups"]
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, model_parameters=params, config=engine_config(stage, max_grad_norm)
    )
    return ZeroRun(engine, stage, params, groups)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: the module's forward while :func:`engine_forward` runs."""
    return fn(*args, **kwargs)


def engine_forward(run: ZeroRun, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as the engine's forward pass.

    The trainer scores by running the decoder and then the head itself
    (:func:`~agemem_gym.adapters.grpo.batching.row_logprobs`), not ``model.forward``; the engine's
    forward must still wrap it: it registers the backward prologue on the outputs (the ZeRO
    optimizer's per-backward bookkeeping). For the call, the module's ``forward`` is ``fn``.
    """
    module = run.engine.module
    module.forward = lambda *a, **k: _call(fn, *a, **k)  # an instance attribute shadows the class's
    try:
        return run.engine(*args, **kwargs)
    finally:
        del module.forward


def backward(run: ZeroRun, loss: torch.Tensor) -> None:
    """Accumulate ``loss``'s gradient: ZeRO averages over ranks, the trainer's losses add up (× world)."""
    run.engine.backward(loss * D.world()[1])


def pad_pass(run: ZeroRun, pad_id: int, device: torch.device) -> None:
    """A forward and backward pass that joins every collective of a real one and adds exactly 0."""
    ids = torch.full((1, 1), pad_id, dtype=torch.long, device=device)
    logits = run.engine(input_ids=ids, use_cache=False).logits
    backward(run, logits.float().sum() * 0.0)


def step(run: ZeroRun) -> float:
    """The optimizer step (reduce, clip, AdamW, gather); the global gradient norm before clipping."""
    run.engine.step()
    norm = run.engine.get_global_grad_norm()
    return 0.0 if norm is None else float(norm)


def full_model_state(run: ZeroRun) -> dict[str, Any] | None:
    """``None``: ZeRO-2 keeps the whole, up-to-date weights in the module, which saves itself."""
    return None


def _flat_partitions(run: ZeroRun) -> list[torch.Tensor]:
    """The flat float32 partitions DeepSpeed's AdamW steps (its state is keyed by them)."""
    return list(run.engine.optimizer.single_partition_of_fp32_groups)


def _state_keys(run: ZeroRun) -> tuple[Any, list[str]]:
    """``(step, tensor keys)`` of the AdamW state; ``(None, [])`` before the first step."""
    base = run.engine.optimizer.optimizer
    flats = _flat_partitions(run)
    first = base.state.get(flats[0], {}) if flats else {}
    keys = [k for k, v in first.items() if torch.is_tensor(v) and v.shape == flats[0].shape]
    return first.get("step"), keys


def full_optimizer_state(run: ZeroRun) -> dict[str, Any]:
    """The optimizer state in the replicated AdamW's format (``{"state", "param_groups"}``), on CPU.

    Every rank must call it (one all-reduce per parameter and state tensor).
    """
    utils = deepspeed_module().utils
    step_count, keys = _state_keys(run)
    state: dict[int, dict[str, Any]] = {}
    if keys:
        for i, p in enumerate(run.params):
            per = {k: utils.safe_get_full_optimizer_state(p, k).detach().cpu().clone() for k in keys}
            state[i] = {"step": torch.as_tensor(step_count).detach().clone(), **per}
    return {"state": state, "param_groups": run.param_groups}


def load_optimizer_state(run: ZeroRun, sd: dict[str, Any]) -> None:
    """Load a replicated-layout optimizer state (any layout's checkpoint) into DeepSpeed's partitions.

    AdamW creates its state at its first step; a resumed run creates it here (zeros, the saved
    step count), links it to the parameters' fragments, then fills each fragment from the full
    tensors. No collective: every rank read the same file.
    """
    if not sd.get("state"):
        return
    utils = deepspeed_module().utils
    base = run.engine.optimizer.optimizer
    first = sd["state"][min(sd["state"])]
    keys = [k for k, v in first.items() if k != "step" and torch.is_tensor(v)]
    for flat in _flat_partitions(run):
        fresh = {k: torch.zeros_like(flat) for k in keys}
        base.state[flat] = {"step": torch.as_tensor(first["step"]).detach().clone().float(), **fresh}
    # ZeRO-2 links the parameters to their state fragments after a step; a resumed run, now
    run.engine.optimizer._hp_optimizer_states_linked = False
    run.engine.optimizer._lazy_init_hp_params_optimizer_state()
    for i, p in enumerate(run.params):
        for k in keys:
            utils.safe_set_full_optimizer_state(p, sd["state"][i][k].to(p.device, torch.float32), k)
