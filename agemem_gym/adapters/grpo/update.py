"""Scoring the samples and updating the policy on them.

    score: packed rows → per-token log-probs under π_old (the policy before the update; not
        scored with one epoch of one minibatch, :func:`old_is_current`) and π_ref (the frozen
        reference, or the LoRA base model). Rows are prefix trees (each prefix samples share
        computed once, :mod:`~agemem_gym.adapters.grpo.prefix`) or, with ``packing =
        "block-mask"``, samples back to back under a block-diagonal mask
    update: μ epochs × minibatches; each minibatch micro-batch by micro-batch:
        packed rows → clipped surrogate + β·KL per token → its share of the minibatch mean
        → backward; then sum gradients over ranks, clip, one optimizer step
        (sharded, FSDP2: every rank runs the same number of micro-batches, padded with
        zero-loss passes, and FSDP sums the gradients: :mod:`~agemem_gym.adapters.grpo.sharding`;
        DeepSpeed ZeRO-2/3: the same padding, and the engine owns backward, reduction, clipping
        and the step: :mod:`~agemem_gym.adapters.grpo.zero`)

The math is in :mod:`agemem_gym.adapters.grpo.losses`; this module only lays the samples
out for it (the packed ``(1, P)`` layout of :func:`~agemem_gym.adapters.grpo.batching.row_logprobs`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import numpy as np
import torch

from agemem_gym.adapters.grpo import distributed as D
from agemem_gym.adapters.grpo import sharding as S
from agemem_gym.adapters.grpo import zero as Z
from agemem_gym.adapters.grpo.batching import Row, Sample, pack_samples, padding_fraction, row_logprobs
from agemem_gym.adapters.grpo.config import GRPOConfig
from agemem_gym.adapters.grpo.losses import (
    broadcast_to_tokens,
    kl_penalty,
    policy_surrogate,
    sequence_mean,
    token_mean,
)
from agemem_gym.adapters.grpo.prefix import TreeRow, pack_prefix_rows, tree_attention, tree_logprobs

__all__ = [
    "UPDATE_KEYS",
    "minibatch_split",
    "Autocast",
    "Progress",
    "micro_batches",
    "make_autocast",
    "old_is_current",
    "score_logprobs",
    "reference_logprobs",
    "update_policy",
]

Autocast = Callable[[], AbstractContextManager[Any]]
"""A context-manager factory wrapped around forward passes (bf16 autocast or ``nullcontext``)."""

Progress = Callable[[int], Any]
"""Told how many units of work (micro-batches) just finished: a progress bar's ``update``."""


def make_autocast(precision: str, device: torch.device) -> Autocast:
    """The one precision context of a run: π_old, π_ref and the update's forward all use it.

    Scoring in float32 and updating under bf16 autocast would make the ratio differ from 1
    (and the KL from 0) before any update: on SmolLM2-135M the mean |Δ log p| is 0.08, and
    6% of tokens start outside the clip range.

    Args:
        precision: ``"auto"`` (bf16 on a GPU that supports it, float32 elsewhere), ``"bf16"``
            (bf16 autocast on any device, CPU included) or ``"fp32"``.
        device: Where the forward passes run.

    Returns:
        A factory of the context to wrap every forward pass in.
    """
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16" if cuda_bf16 else "fp32"
    if precision == "fp32":
        return nullcontext
    if precision == "bf16":
        return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")


UPDATE_KEYS = (
    "losses/policy",
    "losses/kl",
    "losses/clipfrac",
    "losses/entropy",
    "losses/grad_norm",
    "perf/padding",
    "perf/lockstep_passes",
)
"""The metrics :func:`update_policy` returns."""

_SUMS = ("loss", "kl", "clipped", "entropy", "tokens", "grad_norm", "padding", "lockstep")


# ============================================================================ scoring
def _pack(samples: Sequence[Sample], config: GRPOConfig) -> Sequence[Row | TreeRow]:
    """The one packing of scoring and update (rows grow to the longest sample when needed).

    The same samples give the same rows, so the ratio is exactly 1 before the first step.
    """
    row_len = max(config.row_tokens, max(len(s) for s in samples))
    if config.packing == "prefix-tree":
        return pack_prefix_rows(samples, row_len)
    return pack_samples(samples, row_len)


def _attention(model: Any, config: GRPOConfig) -> AbstractContextManager[Any]:
    """The attention the rows need, around a forward pass and its backward (recomputed layers run there)."""
    return tree_attention(model) if config.packing == "prefix-tree" else nullcontext()


def _logprobs(
    model: Any,
    rows: Sequence[Any],
    samples: Sequence[Sample],
    config: GRPOConfig,
    pad_id: int,
    with_entropy: bool = False,
) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """Response log-probs of one micro-batch of rows (of either layout): see :func:`row_logprobs`."""
    temperature, chunk = config.temperature, config.logprob_chunk_tokens
    if config.packing == "prefix-tree":
        return tree_logprobs(
            model, rows, samples, temperature=temperature, with_entropy=with_entropy, chunk_tokens=chunk
        )
    return row_logprobs(
        model, rows, samples, pad_id=pad_id, temperature=temperature, with_entropy=with_entropy, chunk_tokens=chunk
    )


def micro_batches(samples: Sequence[Sample], config: GRPOConfig) -> int:
    """Forward passes :func:`score_logprobs` makes over ``samples`` (one epoch of a one-minibatch update too)."""
    if not samples:
        return 0
    rows = _pack(samples, config)
    return -(-len(rows) // config.rows_per_micro_batch)


def score_logprobs(
    model: Any,
    samples: Sequence[Sample],
    config: GRPOConfig,
    pad_id: int,
    autocast: Autocast = nullcontext,
    progress: Progress | None = None,
) -> list[torch.Tensor]:
    """Per-token log-probs of every sample's response, on CPU (no gradient).

    Args:
        model: The causal LM to score with.
        samples: Non-empty; packed into rows exactly as :func:`update_policy` packs a single
            minibatch, so the ratio of the first update is exactly 1.
        config: Row size, rows per forward pass, temperature.
        pad_id: Padding token id.
        autocast: The run's precision context (:func:`make_autocast`): the same as the
            update's, or the ratio is not 1 at zero update.
        progress: Called with 1 after each micro-batch.

    Returns:
        ``[(len(response_ids),) float32]``, one per sample, in order.
    """
    out: dict[int, torch.Tensor] = {}
    rows = _pack(samples, config)
    with torch.no_grad(), _attention(model, config):
        for start in range(0, len(rows), config.rows_per_micro_batch):
            micro = rows[start : start + config.rows_per_micro_batch]
            with autocast():
                lp, _ = _logprobs(model, micro, samples, config, pad_id)
            for i, v in lp.items():
                out[i] = v.detach().float().cpu()
            if progress is not None:
                progress(1)
    return [out[i] for i in range(len(samples))]


def reference_logprobs(
    model: Any,
    reference: Any,
    samples: Sequence[Sample],
    config: GRPOConfig,
    pad_id: int,
    autocast: Autocast = nullcontext,
    progress: Progress | None = None,
) -> list[torch.Tensor]:
    """:func:`score_logprobs` under the frozen reference; ``reference=None`` means LoRA's base model."""
    if reference is not None:
        return score_logprobs(reference, samples, config, pad_id, autocast, progress)
    with model.disable_adapter():  # LoRA: the frozen base model is the reference
        return score_logprobs(model, samples, config, pad_id, autocast, progress)


# ============================================================================ update
def old_is_current(config: GRPOConfig) -> bool:
    """Whether π_old is the policy the update's only forward pass runs (one epoch, one minibatch).

    Then the update's own log-probs, detached, are π_old's exactly (same rows, same passes, no
    optimizer step before them): the trainer skips the π_old scoring pass and the samples carry
    ``old_logprobs=None``, which :func:`update_policy` fills with those detached log-probs.
    """
    return config.update_epochs == 1 and config.minibatches == 1


@dataclasses.dataclass(frozen=True)
class _Minibatch:
    """One minibatch: this rank's samples and the global counts its mean divides by."""

    samples: list[Sample]
    tokens: float
    sequences: float
    sharded: bool = False
    zero: Z.ZeroRun | None = None


def update_policy(
    model: Any,
    optimizer: torch.optim.Optimizer,
    samples: Sequence[Sample],
    config: GRPOConfig,
    pad_id: int,
    rng: np.random.Generator,
    autocast: Autocast,
    progress: Progress | None = None,
    zero: Z.ZeroRun | None = None,
) -> dict[str, float]:
    """``config.update_epochs`` passes of ``config.minibatches`` optimizer steps over ``samples``.

    Args:
        model: The policy (trainable).
        optimizer: Its optimizer.
        samples: This rank's samples, with advantages and reference log-probs set, and old
            log-probs too unless :func:`old_is_current`: a sample without them then gets the
            update's own detached log-probs, both as π_old in the loss and in ``old_logprobs``.
        config: Loss and batching settings.
        pad_id: Padding token id.
        rng: Shuffles the samples into minibatches (when there are several).
        autocast: Wrapped around forward passes.
        progress: Called with 1 after each micro-batch's backward (padding passes too).
        zero: ``model`` under DeepSpeed (:func:`~agemem_gym.adapters.grpo.zero.initialize`): its
            engine runs backward and the step (``optimizer`` is then unused).

    Returns:
        The :data:`UPDATE_KEYS` metrics (means over optimizer steps or over tokens).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    sharded = S.is_sharded(model) or zero is not None  # both run lockstep micro-batches
    sums = dict.fromkeys(_SUMS, 0.0)
    n_updates = 0
    model.train()
    for _ in range(config.update_epochs):
        for part in minibatch_split(len(samples), config.minibatches, rng):
            mb = _minibatch([samples[int(i)] for i in part], sharded, zero)
            stats = _optimizer_step(model, optimizer, params, mb, config, pad_id, autocast, progress)
            for k, v in stats.items():
                sums[k] += v
            n_updates += 1
    return _update_means(sums, n_updates)


def _update_means(sums: dict[str, float], n_updates: int) -> dict[str, float]:
    """The :data:`UPDATE_KEYS` metrics over every rank: token-weighted means of the per-token sums.

    Each rank's loss is already its share of the global minibatch mean, so the ranks' losses add
    up to it; the gradient norm is taken after the gradient sum, so every rank has the same one;
    padding is a per-rank fraction, averaged over ranks; lockstep passes (a sharded update's
    zero-loss micro-batches) are counted over ranks and optimizer steps.
    """
    world = D.world()[1]
    sums = {"lockstep": 0.0, **sums}
    keys = ("loss", "kl", "clipped", "entropy", "tokens", "padding", "lockstep")
    sums = {**sums, **dict(zip(keys, D.all_sum_many([sums[k] for k in keys])))}
    sums["padding"] /= world
    steps, tokens = max(1, n_updates), max(1.0, sums["tokens"])
    return {
        "losses/policy": sums["loss"] / steps,
        "losses/kl": sums["kl"] / tokens,
        "losses/clipfrac": sums["clipped"] / tokens,
        "losses/entropy": sums["entropy"] / tokens,
        "losses/grad_norm": sums["grad_norm"] / steps,
        "perf/padding": sums["padding"] / steps,
        "perf/lockstep_passes": sums["lockstep"],
    }


def minibatch_split(n: int, minibatches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices of each minibatch of one epoch (``rng`` advances by one draw whatever ``n`` is).

    ``rng`` is the run's RNG, identical on every rank, but ``n`` is this rank's sample count:
    a permutation of ``n`` drawn from it directly would advance it differently on each rank
    (and the task schedule after it would diverge), so the shuffle gets its own generator.
    """
    # one minibatch: keep the scoring order, so the rows (and the forward pass) are the same
    # as for the old log-probs and the ratio is exactly 1 before the first step
    if minibatches <= 1:
        return np.array_split(np.arange(n), 1)
    order = np.random.default_rng(int(rng.integers(2**63))).permutation(n)
    return np.array_split(order, minibatches)


def _minibatch(samples: list[Sample], sharded: bool = False, zero: Z.ZeroRun | None = None) -> _Minibatch:
    """Every rank divides by the global token and sample counts of the minibatch."""
    tokens, sequences = D.all_sum_many([sum(len(s.response_ids) for s in samples), len(samples)])
    return _Minibatch(samples, max(1.0, tokens), max(1.0, sequences), sharded, zero)


def _optimizer_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    mb: _Minibatch,
    config: GRPOConfig,
    pad_id: int,
    autocast: Autocast,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Backward over this rank's share of ``mb``, sum gradients over ranks, clip, step; its sums."""
    if mb.zero is None:  # DeepSpeed's engine clears its gradients after each step itself
        optimizer.zero_grad(set_to_none=True)
    stats = dict.fromkeys(_SUMS, 0.0)
    rows = _pack(mb.samples, config) if mb.samples else []  # a rank may have none; it still joins the sum
    if rows and config.packing == "block-mask":  # prefix-tree rows run back to back: no padding
        stats["padding"] = padding_fraction(cast(Sequence[Row], rows), config.rows_per_micro_batch)
    starts = range(0, len(rows), config.rows_per_micro_batch)
    # sharded: FSDP2 gathers weights in each forward and sums gradients in each backward, so
    # every rank runs the same number of passes, agreed on before the first one
    passes = S.common_count(len(starts)) if mb.sharded else len(starts)
    for start in starts:
        micro = _micro_batch(model, rows[start : start + config.rows_per_micro_batch], mb, config, pad_id, autocast)
        for k, v in micro.items():
            stats[k] += v
        if progress is not None:
            progress(1)
    if mb.sharded:
        stats["lockstep"] = float(passes - len(starts))
        _pad_micro_batches(model, passes - len(starts), pad_id, autocast, progress, mb.zero)
    stats["grad_norm"] = _step(optimizer, params, mb, config.max_grad_norm)
    return stats


def _step(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], mb: _Minibatch, max_norm: float) -> float:
    """Reduce the gradients (unless the backward passes did), clip, step; the norm before clipping (0: no clip)."""
    if mb.zero is not None:  # the engine reduces, clips (to the same max_grad_norm) and steps
        norm = Z.step(mb.zero)
        return norm if max_norm else 0.0
    if mb.sharded:
        _zero_missing_grads(params)
    else:
        D.sync_gradients(params)
    norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if max_norm else 0.0
    optimizer.step()
    return norm


def _pad_micro_batches(
    model: Any, n: int, pad_id: int, autocast: Autocast, progress: Progress | None, zero: Z.ZeroRun | None = None
) -> None:
    """``n`` zero-loss forward/backward passes: a sharded rank's share of the collectives, adding 0."""
    device = next(model.parameters()).device
    for _ in range(n):
        with autocast():
            if zero is None:
                S.zero_forward_backward(model, pad_id, device)
            else:
                Z.pad_pass(zero, pad_id, device)
        if progress is not None:
            progress(1)


def _zero_missing_grads(params: list[torch.nn.Parameter]) -> None:
    """Zero gradients where no backward ran (as :func:`~.distributed.sync_gradients` leaves them): AdamW steps alike."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


def _micro_batch(
    model: Any, rows: Sequence[Row | TreeRow], mb: _Minibatch, config: GRPOConfig, pad_id: int, autocast: Autocast
) -> dict[str, float]:
    """Forward and backward one micro-batch of rows; its sums (loss, KL, clipped, entropy, tokens)."""
    # sharded: the root unit gathers its weights and reduces their gradients; ZeRO: the engine's forward
    forward = (
        functools.partial(S.as_forward, model) if mb.zero is None else functools.partial(Z.engine_forward, mb.zero)
    )
    # ZeRO-3: whole weights, no module hooks (ranks run unequal passes)
    with Z.micro_batch_weights(mb.zero), _attention(model, config):
        with autocast():
            lp, entropy = forward(_logprobs, model, rows, mb.samples, config, pad_id, with_entropy=True)
        _attach_current(lp, mb.samples, config)
        loss, kl, clipped = _loss(lp, mb, config)
        if mb.zero is None:
            loss.backward()
        else:
            Z.backward(mb.zero, loss)
    n = float(sum(len(v) for v in lp.values()))
    return {
        "loss": float(loss.detach()),
        "kl": float(kl.detach().sum()),
        "clipped": float(clipped.float().sum()),
        "entropy": (0.0 if entropy is None else float(entropy)) * n,
        "tokens": n,
    }


def _attach_current(lp: dict[int, torch.Tensor], samples: Sequence[Sample], config: GRPOConfig) -> None:
    """π_old = the current policy (:func:`old_is_current`): missing old log-probs become ``lp`` detached."""
    if not old_is_current(config):
        return
    for i, v in lp.items():
        if samples[i].old_logprobs is None:
            samples[i].old_logprobs = v.detach().float().cpu()


def _loss(
    lp: dict[int, torch.Tensor], mb: _Minibatch, config: GRPOConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, per-token KL, per-token clipped)`` of the samples in ``lp``, all ``(1, P)`` but the loss."""
    ids = list(lp)
    samples = [mb.samples[i] for i in ids]
    logp = torch.cat([lp[i] for i in ids]).unsqueeze(0)  # (1, P)
    device = logp.device
    lengths = torch.tensor([len(lp[i]) for i in ids])  # (S,)
    old = _packed(s.old_logprobs for s in samples).to(device).unsqueeze(0)  # (1, P)
    adv = broadcast_to_tokens(torch.tensor([s.advantage for s in samples]), lengths).to(device).unsqueeze(0)  # (1, P)
    pg_loss, clipped = policy_surrogate(logp, old, adv, config.clip, config.clip_high)  # (1, P)
    kl = torch.zeros_like(pg_loss)  # (1, P)
    if config.kl_beta > 0:
        ref = _packed(s.ref_logprobs for s in samples).to(device).unsqueeze(0)  # (1, P)
        kl = kl_penalty(logp, ref, config.kl_estimator)
    per_token = pg_loss + config.kl_beta * kl  # (1, P)
    if config.loss_aggregation == "sequence-mean":
        return sequence_mean(per_token, lengths, mb.sequences), kl, clipped
    return token_mean(per_token, mb.tokens), kl, clipped


def _packed(per_sample: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """Concatenate per-sample log-probs, which the trainer must have set before the update."""
    parts = []
    for t in per_sample:
        if t is None:
            raise ValueError("a sample has no old or reference log-probs: score the samples before the update")
        parts.append(t)
    return torch.cat(parts)  # (P,)
