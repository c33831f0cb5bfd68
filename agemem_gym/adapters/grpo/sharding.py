"""FSDP2 for the GRPO trainer: sharded parameters although ranks play different numbers of turns.

Each forward pass of a module sharded with ``torch.distributed.fsdp.fully_shard`` all-gathers
its parameters, a collective every rank must join. The trainer's ranks play their own episodes
(different numbers of turns), so it keeps them in step phase by phase:

* **rollouts and scoring** (no gradient): :func:`gathered_weights` all-gathers every unit once
  and keeps the full weights until the phase ends; forward passes inside it issue no
  collective, so a rank may generate or score as many times as it likes. The weights are held
  in full for the phase (as a replica would hold them); gradients and optimizer state stay
  sharded.
* **update**: every rank runs the same number of micro-batches per minibatch (the global
  maximum, :func:`common_count`); a rank with fewer rows runs :func:`zero_forward_backward`,
  whose loss is exactly 0, so its gradient adds nothing. FSDP2 itself sums the gradients
  (divide factor 1: each rank's loss is already its share of the global token mean).
* **checkpoints**: :func:`full_model_state` and :func:`full_optimizer_state` gather the full
  tensors (every rank calls them) into the files a replicated run writes, and
  :func:`load_optimizer_state` shards them back: a run may resume with either layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from agemem_gym.adapters.grpo import distributed as D
from agemem_gym.error import InvalidConfig

__all__ = [
    "shard_model",
    "is_sharded",
    "gathered_weights",
    "as_forward",
    "common_count",
    "zero_forward_backward",
    "full_model_state",
    "full_optimizer_state",
    "load_optimizer_state",
]


def _fsdp() -> Any:
    """``torch.distributed.fsdp`` (FSDP2's ``fully_shard`` and ``FSDPModule``)."""
    from torch.distributed import fsdp

    return fsdp


def shard_model(model: Any) -> Any:
    """Shard ``model`` in place with FSDP2: one unit per decoder layer, the rest in the root unit.

    The decoder layers are the classes the Hugging Face model names in ``_no_split_modules``
    (accelerate's ``TRANSFORMER_BASED_WRAP``); a PEFT model's adapters live inside them, and
    FSDP2 shards parameter by parameter, so frozen base and trainable adapter weights share a unit.

    Args:
        model: On its device, with the same weights on every rank (broadcast first).

    Returns:
        ``model`` itself, now an ``FSDPModule``.

    Raises:
        InvalidConfig: ``torch.distributed`` is not initialised, or the model names no layer class.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise InvalidConfig("sharding = 'fsdp2' needs torch.distributed: launch with torchrun or accelerate launch")
    fsdp = _fsdp()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise InvalidConfig(f"{type(base).__name__} names no decoder layer class (_no_split_modules) to shard by")
    for layer in layers:
        fsdp.fully_shard(layer)
    fsdp.fully_shard(model)
    for unit in _units(model):
        unit.set_gradient_divide_factor(1.0)  # sum, not mean: each rank's loss is its share already
        unit.set_force_sum_reduction_for_comms(True)  # a plain SUM: gloo has no PREMUL_SUM
    # the root's lazy init (normally at its first forward) turns off its reshard-after-forward;
    # done now, so gathered_weights saves and restores the settings training really runs with
    model._get_fsdp_state()._lazy_init()
    # the trainer runs the decoder and the vocabulary head itself (batching.row_logprobs), not
    # the root's forward: this method gives such a call the root unit's pre/post-forward hooks
    model.agemem_forward = _call
    fsdp.register_fsdp_forward_method(model, "agemem_forward")
    return model


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: registered as a forward method of the root unit by :func:`shard_model`."""
    return fn(*args, **kwargs)


def as_forward(model: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as a forward pass of ``model``'s root unit when it is sharded.

    A gradient-enabled pass that bypasses ``model.forward`` (``model.get_decoder()(...)`` and
    then ``model.get_output_embeddings()``) would find the root unit's weights (embeddings, final
    norm, head) still sharded, and their gradients would never be reduced. Replicas: a plain call.
    """
    if is_sharded(model):
        return model.agemem_forward(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def is_sharded(model: Any) -> bool:
    """Whether ``model`` was sharded by :func:`shard_model` (FSDP2)."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    return isinstance(model, _fsdp().FSDPModule)


def _units(model: torch.nn.Module) -> list[Any]:
    """Every FSDP2 unit in ``model`` (the root last)."""
    fsdp_module = _fsdp().FSDPModule
    units = [m for m in model.modules() if isinstance(m, fsdp_module)]
    return units[1:] + units[:1]


@contextlib.contextmanager
def gathered_weights(*models: Any) -> Iterator[None]:
    """Hold the full weights of sharded ``models`` (others: nothing) for no-gradient forward passes.

    Every rank must enter and leave together (the gather and the reshard are collectives);
    inside, forward passes issue no collective: ``unshard`` of an unsharded unit is a no-op and
    resharding after forward is off until the block ends, when each unit's setting is restored.
    """
    units = [unit for model in models if model is not None and is_sharded(model) for unit in _units(model)]
    # FSDP2 has a public setter for "reshard after forward" but no getter: the settings live on
    # each unit's state and parameter groups, saved here and restored exactly afterwards
    states = [u._get_fsdp_state() for u in units]
    saved = [
        (st._auto_reshard_after_forward, [g.post_forward_mesh_info for g in st._fsdp_param_groups]) for st in states
    ]
    try:
        for unit in units:
            unit.set_reshard_after_forward(False, recurse=False)
            unit.unshard()
        yield
    finally:
        for unit, st, (auto, infos) in zip(units, states, saved):
            st._auto_reshard_after_forward = auto
            for group, info in zip(st._fsdp_param_groups, infos):
                group.post_forward_mesh_info = info
            unit.reshard()


def common_count(n: int) -> int:
    """The largest ``n`` over ranks: the micro-batches every rank runs in a sharded update."""
    if D.world()[1] == 1:
        return n
    t = torch.tensor([n], dtype=torch.int64, device=D.collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def zero_forward_backward(model: Any, pad_id: int, device: torch.device) -> None:
    """A forward and backward pass that joins FSDP's collectives and adds exactly 0 to every gradient.

    One padding token goes through the whole model (every unit all-gathers and reduce-scatters);
    the loss is the logits' sum times 0, whose gradient is 0 everywhere.
    """
    ids = torch.full((1, 1), pad_id, dtype=torch.long, device=device)
    logits = model(input_ids=ids, use_cache=False).logits
    (logits.float().sum() * 0.0).backward()


def full_model_state(model: Any) -> dict[str, Any]:
    """The full (unsharded) state dict on CPU, on rank 0; ``{}`` elsewhere. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_model_state_dict(model, options=options)
    # tied weights (lm_head = embed_tokens) come back under both names; named_parameters lists
    # a shared one once, as save_pretrained of an unsharded model writes it
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    return {k: v for k, v in full.items() if k in names}


def _full(value: Any) -> Any:
    """A DTensor's full tensor (a collective), on CPU; anything else as it is."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor().cpu() if isinstance(value, DTensor) else value


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every sharded tensor gathered: the replicated run's format.

    Every rank must call it (one all-gather per state tensor, in the same order everywhere).
    """
    sd = optimizer.state_dict()
    state = {i: {k: _full(v) for k, v in per.items()} for i, per in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def load_optimizer_state(optimizer: torch.optim.Optimizer, sd: dict[str, Any]) -> None:
    """Load a full optimizer state (:func:`full_optimizer_state`, or a replicated run's) into a sharded one.

    Each rank keeps its own shard of every state tensor; no collective (every rank read the same file).
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for i, per in sd["state"].items():
        p = params[int(i)]
        state[i] = {
            k: distribute_tensor(v.to(p.device, p.dtype), p.device_mesh, p.placements, src_data_rank=None)
            if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.shape
            else v
            for k, v in per.items()
        }
    optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
