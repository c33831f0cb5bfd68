"""Step-wise GRPO losses as short pure functions (shapes in the comments).

Notation: ``N`` trajectories in ``G`` groups of ``K`` (the rollouts of one task), ``S``
step samples (every turn of every trajectory), ``P`` response tokens of several samples
laid end to end (the trainer's packed layout: no padding, so no mask).

The paper's objective (Eqs. 5–6): ``A = (r − mean_group) / (std_group + eps)`` with the
sample std, the same ``A`` on every step of the trajectory (and every token of the step),
and ``J = mean_tokens[ρ·A] − β·KL(π_θ ‖ π_ref)``; ``clip=None`` keeps the paper's unclipped
ratio, a float gives the PPO-clipped surrogate of the released code.

The mean is taken as a weighted sum whose weights are fixed by the whole minibatch (its
token or sequence count, summed over processes), so the micro-batches of a minibatch, on
every rank, add up to the minibatch mean.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "group_advantages",
    "broadcast_to_steps",
    "broadcast_to_tokens",
    "policy_surrogate",
    "kl_penalty",
    "token_mean",
    "sequence_mean",
]


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6, tol: float = 1e-9) -> torch.Tensor:
    """Group-normalised advantages with the sample std (the paper's Eq. 5).

    Args:
        rewards: ``(N,)`` trajectory rewards, groups contiguous (``N = G * K``).
        group_size: ``K``.
        eps: Added to the std.
        tol: A group whose rewards spread by at most ``tol · max(1, max |r|)`` counts as
            equal (float noise in the reward sums).

    Returns:
        ``(N,)`` advantages; a group whose rewards are all equal gets exact zeros.

    Example:
        >>> group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0]), 2)
        tensor([ 0.7071, -0.7071,  0.0000,  0.0000])
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"expected (G*K,) rewards with K={group_size}, got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)  # (G, K)
    mean = grouped.mean(dim=1, keepdim=True)  # (G, 1)
    std = grouped.std(dim=1, unbiased=True, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    advantages = (grouped - mean) / (std + eps)  # (G, K)
    # The mean of K equal rewards is not always that reward in floating point (K = 3 or 6 give
    # advantages of ~1e-11), so equal groups are set to exact zeros rather than left to rounding.
    spread = grouped.amax(dim=1, keepdim=True) - grouped.amin(dim=1, keepdim=True)  # (G, 1)
    flat = spread <= tol * grouped.abs().amax(dim=1, keepdim=True).clamp(min=1.0)  # (G, 1)
    return advantages.masked_fill(flat, 0.0).view(-1)  # (N,)


def broadcast_to_steps(traj_advantages: torch.Tensor, step_traj: torch.Tensor) -> torch.Tensor:
    """Give every step its trajectory's advantage (all stages alike).

    Args:
        traj_advantages: ``(N,)``.
        step_traj: ``(S,)`` long, the trajectory index of each step sample.

    Returns:
        ``(S,)`` per-step advantages.
    """
    return traj_advantages[step_traj]


def broadcast_to_tokens(step_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Repeat each sample's value on each of its response tokens (packed layout).

    Args:
        step_values: ``(S,)`` one value per sample (its advantage, its loss weight).
        lengths: ``(S,)`` long, each sample's response length.

    Returns:
        ``(P,)`` with ``P = lengths.sum()``.
    """
    return torch.repeat_interleave(step_values, lengths)  # (P,)


def policy_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip: float | None = 0.2,
    clip_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token policy loss ``−min(ρA, clip(ρ)A)`` (or ``−ρA`` when ``clip`` is None).

    Args:
        logp: ``(S, T)`` log-probs under the current policy (the trainer passes ``(1, P)``).
        old_logp: ``(S, T)`` log-probs under the rollout policy (no grad).
        advantages: ``(S,)`` per-sample advantages, or ``(S, T)`` per-token ones.
        clip: Lower (and by default upper) clip range ε; ``None`` for the paper's unclipped ratio.
        clip_high: Upper clip range when it differs from ``clip``.

    Returns:
        ``(loss, clipped)``: ``(S, T)`` per-token loss and a ``(S, T)`` bool tensor of tokens
        whose ratio was clipped.
    """
    logratio = logp - old_logp  # (S, T)
    ratio = torch.exp(logratio)  # (S, T)
    adv = advantages.unsqueeze(1) if advantages.ndim == 1 else advantages  # (S, 1) or (S, T)
    pg_loss1 = -adv * ratio  # (S, T)
    if clip is None:
        return pg_loss1, torch.zeros_like(pg_loss1, dtype=torch.bool)
    high = clip if clip_high is None else clip_high
    pg_loss2 = -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + high)  # (S, T)
    return torch.maximum(pg_loss1, pg_loss2), pg_loss2 > pg_loss1


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: Literal["k1", "k2", "k3"] = "k3") -> torch.Tensor:
    """Per-token estimate of ``KL(π_θ ‖ π_ref)`` from samples of π_θ (Schulman's k1/k2/k3).

    Args:
        logp: ``(S, T)`` log-probs under the current policy.
        ref_logp: ``(S, T)`` log-probs under the reference policy.
        estimator: ``k1 = log r``, ``k2 = (log r)² / 2``, ``k3 = (r⁻¹ − 1) + log r`` with
            ``r = π_θ / π_ref`` (k3 is unbiased and always ≥ 0).

    Returns:
        ``(S, T)`` per-token KL estimates.
    """
    log_r = logp - ref_logp  # (S, T)
    if estimator == "k1":
        return log_r
    if estimator == "k2":
        return 0.5 * log_r.pow(2)
    if estimator == "k3":
        return torch.exp(-log_r) - 1.0 + log_r
    raise ValueError(f"estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")


def token_mean(values: torch.Tensor, total_tokens: float) -> torch.Tensor:
    """These tokens' share of the minibatch's mean over tokens (the paper's and released code's).

    Args:
        values: ``(..., P)`` per-token values of some of the minibatch's samples.
        total_tokens: Response tokens in the whole minibatch (all micro-batches, all ranks).

    Returns:
        A scalar: ``Σ values / total_tokens``.
    """
    weights = torch.full_like(values, 1.0 / total_tokens)  # (..., P)
    return (values * weights).sum()


def sequence_mean(values: torch.Tensor, lengths: torch.Tensor, num_sequences: float) -> torch.Tensor:
    """These samples' share of the minibatch's mean of per-sample token means (the original GRPO's).

    Args:
        values: ``(..., P)`` per-token values of some of the minibatch's samples, packed.
        lengths: ``(S,)`` long, the response length of each of these samples (``Σ = P``).
        num_sequences: Samples in the whole minibatch (all micro-batches, all ranks).

    Returns:
        A scalar: ``Σ_s (Σ_t values_st / len_s) / num_sequences``.
    """
    per_sample = (lengths.clamp(min=1).double() * num_sequences).reciprocal()  # (S,) in float64, like Python
    weights = broadcast_to_tokens(per_sample.to(values.dtype), lengths).to(values.device)  # (P,)
    return (values * weights).sum()
