"""Step-wise GRPO losses as short pure functions (shapes in the comments).

Notation: ``N`` trajectories in ``G`` groups of ``K`` (the rollouts of one task), ``S``
step samples (every turn of every trajectory), ``P`` response tokens of several samples
laid end to end (the trainer's packed layout: no padding, so no mask).

The paper's objective (Eqs. 5–6): ``A = (r − mean_group) / (std_group + eps)`` with the
sample std, the same ``A`` on every step of the trajectory (and every token of the step),
and ``J = mean_tokens[ρ·A] − β·KL(π_θ ‖ π_ref)``; ``clip=None`` keeps the paper's unclipped
ratio, a float gives the PPO-clipped surrogate of the released code.

Dividing by the group's std turns any difference into a full-size advantage: two rewards
that differ by one context token of compression (1.36e-5) give ±0.64. :class:`AdvantageNorm`
says how a group is normalised: the paper's form, a floor under the std (the default of the
trainer: differences far below the reward's resolution stay small), or no division at all
(the "Dr. GRPO" form of Liu et al. 2025, "Understanding R1-Zero-Like Training").

The mean is taken as a weighted sum whose weights are fixed by the whole minibatch (its
token or sequence count, summed over processes), so the micro-batches of a minibatch, on
every rank, add up to the minibatch mean.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

__all__ = [
    "AdvantageNorm",
    "group_advantages",
    "broadcast_to_steps",
    "broadcast_to_tokens",
    "policy_surrogate",
    "kl_penalty",
    "token_mean",
    "sequence_mean",
]


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    eps: float = 1e-6,
    tol: float = 1e-9,
    *,
    std_floor: float = 0.0,
    divide: bool = True,
) -> torch.Tensor:
    """Group-normalised advantages with the sample std (the paper's Eq. 5 by default).

    Args:
        rewards: ``(N,)`` trajectory rewards, groups contiguous (``N = G * K``).
        group_size: ``K``.
        eps: Added to the std.
        tol: A group whose rewards spread by at most ``tol · max(1, max |r|)`` counts as
            equal (float noise in the reward sums).
        std_floor: The std is raised to at least this before dividing, so differences far
            below it stay small advantages instead of being scaled to ±1.
        divide: ``False``: ``r − mean`` only (no std division, "Dr. GRPO").

    Returns:
        ``(N,)`` advantages; a group whose rewards are all equal gets exact zeros.

    Example:
        >>> group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0]), 2)
        tensor([ 0.7071, -0.7071,  0.0000,  0.0000])
        >>> one_token = torch.tensor([0.5, 0.5 + 1.36e-5], dtype=torch.float64)  # one context token apart
        >>> group_advantages(one_token, 2).round(decimals=2)
        tensor([-0.6400,  0.6400], dtype=torch.float64)
        >>> group_advantages(one_token, 2, std_floor=0.02).abs().max().item() < 1e-3
        True
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"expected (G*K,) rewards with K={group_size}, got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)  # (G, K)
    mean = grouped.mean(dim=1, keepdim=True)  # (G, 1)
    advantages = grouped - mean  # (G, K)
    if divide:
        std = grouped.std(dim=1, unbiased=True, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
        advantages = advantages / (std.clamp(min=std_floor) + eps)  # (G, K)
    # The mean of K equal rewards is not always that reward in floating point (K = 3 or 6 give
    # advantages of ~1e-11), so equal groups are set to exact zeros rather than left to rounding.
    spread = grouped.amax(dim=1, keepdim=True) - grouped.amin(dim=1, keepdim=True)  # (G, 1)
    flat = spread <= tol * grouped.abs().amax(dim=1, keepdim=True).clamp(min=1.0)  # (G, 1)
    return advantages.masked_fill(flat, 0.0).view(-1)  # (N,)


@dataclasses.dataclass(frozen=True)
class AdvantageNorm:
    """How a group's rewards become advantages (:func:`group_advantages` with these settings).

    Attributes:
        form: ``"paper"``: ``(r − mean) / (std + eps)`` (Eq. 5); ``"std-floor"``: the same
            with the std raised to at least ``std_floor``; ``"mean-only"``: ``r − mean``.
        std_floor: The floor of ``"std-floor"``.
        eps: Added to the std.
    """

    form: Literal["std-floor", "paper", "mean-only"] = "paper"
    std_floor: float = 0.0
    eps: float = 1e-6

    def __call__(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """``(N,)`` rewards in groups of ``group_size`` → ``(N,)`` advantages."""
        floor = self.std_floor if self.form == "std-floor" else 0.0
        return group_advantages(rewards, group_size, self.eps, std_floor=floor, divide=self.form != "mean-only")


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

    Each is an estimate of the *value* of ``KL(π_θ ‖ π_ref)``; used as a loss on samples of
    π_θ (not differentiated through the sampling), their gradients differ (Tang and Munos
    2025, "On a few pitfalls in KL divergence gradient estimation for RL"):

    * ``k3`` (the default, GRPO's): its expected gradient is that of ``KL(π_ref ‖ π_θ)``,
      the other direction: a pull toward the reference that is mass-covering.
    * ``k2``: its expected gradient is exactly that of ``KL(π_θ ‖ π_ref)``.
    * ``k1``: its expected gradient is zero (``E_θ[∇ log π_θ] = 0``): as a loss it adds only
      noise and no pull to the reference. :class:`~agemem_gym.adapters.grpo.config.GRPOConfig`
      warns when it is chosen; it stays for logging the KL value.

    Args:
        logp: ``(S, T)`` log-probs under the current policy.
        ref_logp: ``(S, T)`` log-probs under the reference policy.
        estimator: ``k1 = log r``, ``k2 = (log r)² / 2``, ``k3 = (r⁻¹ − 1) + log r`` with
            ``r = π_θ / π_ref`` (k1 and k3 are unbiased value estimates; k3 is always ≥ 0).

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
