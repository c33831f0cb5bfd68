"""DeepSpeed ZeRO-2 and ZeRO-3 for the GRPO trainer: DeepSpeed's engine owns backward and the step.

``sharding = "zero2"`` partitions gradients and optimizer state over the ranks (weights stay
replicated); ``"zero3"`` partitions the weights too. The
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
  (loss exactly 0), as under FSDP2. ZeRO-2: rollouts and scoring need nothing, the weights are whole.
* **ZeRO-3** fetches a module's weights (an all-gather) in its forward pre-hook and releases
  them in its post-hook, even weights ``deepspeed.zero.GatheredParameters`` holds: the release
  checks only the module hooks' own bookkeeping (``ds_active_sub_modules``). Rollouts and scoring,
  where ranks run different numbers of forward passes, therefore run in :func:`gathered_weights`:
  every weight gathered once *and the module hooks removed* (DeepSpeed's own
  ``unwrap_model_for_generation``), so the forward passes inside issue no collective. Each
  update micro-batch (padding passes too) runs the same way (:func:`micro_batch_weights`): one
  all-gather per micro-batch on every rank, and the optimizer's per-parameter hooks still
  reduce-scatter the gradients. The weights are partitioned between these phases (and in the
  optimizer step), whole during them: the peak holds the full weights, as ZeRO-2 does.
* **clipping**: the engine clips to ``max_grad_norm`` (DeepSpeed's ``gradient_clipping``) and
  reports the norm before clipping, as ``clip_grad_norm_`` does.
* **checkpoints**: :func:`full_model_state` and :func:`full_optimizer_state` gather the files a
  replicated run writes (every rank calls them); :func:`load_optimizer_state` partitions them
  again, so any layout resumes from any other.

DeepSpeed is imported only here, and only when a run asks for ZeRO (``pip install
"agemem-gym[deepspeed]"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
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
    "gathered_weights",
    "micro_batch_weights",
    "engine_forward",
    "backward",
    "pad_pass",
    "step",
    "full_model_state",
    "full_optimizer_state",
    "load_optimizer_state",
]

ZERO_STAGES = {"zero2": 2, "zero3": 3}
"""The :attr:`~agemem_gym.adapters.grpo.config.GRPOConfig.sharding` values run by DeepSpeed, and their stages."""


@dataclasses.dataclass
class ZeroRun:
    """A policy under DeepSpeed: the engine, and what a checkpoint in the replicated layout needs.

    Attributes:
        engine: The ``DeepSpeedEngine``; ``engine.module`` is the policy itself.
        stage: 2 or 3.
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
        stage: ZeRO stage (2 or 3).
        max_grad_norm: Clip gradients to this global norm (0: no clipping).

    Returns:
        The dict for ``deepspeed.initialize(config=...)``: float32 (the trainer's own
        ``precision`` applies autocast around the forward passes), accumulation owned by the
        caller; ZeRO-3 keeps no weight resident (the trainer gathers the whole model for each
        phase and micro-batch, :func:`gathered_weights`, so small resident weights save nothing).
    """
    if stage not in (2, 3):
        raise InvalidConfig(f"the GRPO trainer runs ZeRO stages 2 and 3 only, got stage {stage}")
    zero: dict[str, Any] = {"stage": stage}
    if stage == 3:  # every gather the trainer makes is of the whole model: no weight need stay resident
        zero["stage3_param_persistence_threshold"] = 0
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": float(max_grad_norm or 0.0),
        "zero_optimization": zero,
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
        stage: ZeRO stage (2 or 3).
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


@contextlib.contextmanager
def gathered_weights(run: ZeroRun | None) -> Iterator[None]:
    """ZeRO-3: hold every weight whole, with the module hooks removed (rollouts and scoring).

    Every rank must enter together (the gather is a collective; the release is local);
    inside, forward passes issue no collective, so ranks may generate or score as many turns
    as they have. ZeRO-2 (whole weights) and other layouts (``None``): nothing to do.
    """
    if run is None or run.stage != 3:
        yield
        return
    from deepspeed.runtime.zero import unwrap_model_for_generation

    # GatheredParameters alone is not enough: each module's post-forward hook would release
    # (re-partition) its weights, and the next forward would all-gather them again
    with unwrap_model_for_generation(run.engine):
        yield


@contextlib.contextmanager
def micro_batch_weights(run: ZeroRun | None) -> Iterator[None]:
    """ZeRO-3: one update micro-batch (forward and backward) on whole weights, with no module hooks.

    Every rank enters once per micro-batch, padding passes included, so the one all-gather
    pairs up. Module-by-module fetching cannot be kept in step: the trainer's forward
    (:func:`~agemem_gym.adapters.grpo.batching.row_logprobs`) runs the vocabulary head once per
    chunk of response tokens, a count ranks do not share, and ZeRO-3's hooks fetch a module's
    weights again in backward for every forward it ran; holding just the head was tried and
    still left a padding pass fetching in backward while a real pass had finished. The
    gradients are still reduced and partitioned by the optimizer's own (per-parameter) hooks.
    Other layouts (``None``) and ZeRO-2: nothing to do.
    """
    with gathered_weights(run):
        yield


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
    with micro_batch_weights(run):  # as a real micro-batch runs
        logits = run.engine(input_ids=ids, use_cache=False).logits
        backward(run, logits.float().sum() * 0.0)


def step(run: ZeroRun) -> float:
    """The optimizer step (reduce, clip, AdamW, gather); the global gradient norm before clipping."""
    run.engine.step()
    norm = run.engine.get_global_grad_norm()
    return 0.0 if norm is None else float(norm)


def full_model_state(run: ZeroRun) -> dict[str, Any] | None:
    """The state dict a replicated run saves, gathered; every rank must call it.

    ZeRO-2: ``None``, the module holds the whole, up-to-date weights and saves itself. ZeRO-3:
    the weights are gathered (a LoRA model's trainable adapter only, all that it saves) and
    copied to CPU on rank 0 (``{}`` elsewhere), under the names ``named_parameters`` gives
    (tied weights once, as ``save_pretrained`` of a whole model writes them).
    """
    if run.stage != 3:
        return None
    module = run.engine.module
    adapter = hasattr(module, "peft_config")
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad or not adapter]
    state: dict[str, Any] = {}
    with deepspeed_module().zero.GatheredParameters([p for _, p in named]):
        if D.world()[0] == 0:
            state = {n: p.detach().cpu().clone() for n, p in named}
            if not adapter:  # the persistent buffers (those in a state dict)
                saved = set(module.state_dict())
                state.update({n: b.detach().cpu().clone() for n, b in module.named_buffers() if n in saved})
    return state


def _flat_partitions(run: ZeroRun) -> list[torch.Tensor]:
    """The flat float32 partitions DeepSpeed's AdamW steps (its state is keyed by them)."""
    if run.stage == 3:
        return list(run.engine.optimizer.fp32_partitioned_groups_flat)
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
    if run.stage == 2:  # ZeRO-2 links the parameters to their state fragments after a step; a resumed run, now
        run.engine.optimizer._hp_optimizer_states_linked = False
        run.engine.optimizer._lazy_init_hp_params_optimizer_state()
    for i, p in enumerate(run.params):
        for k in keys:
            utils.safe_set_full_optimizer_state(p, sd["state"][i][k].to(p.device, torch.float32), k)
