"""Memory-state credit: advantages from re-rolling each rollout's post-Stage-1 memory state.

Shapes: ``G`` tasks, ``K`` rollouts (memory states) per task, ``M`` continuations per memory
state, ``S`` step samples. ``returns`` is ``(G, K, M)``: the full-episode return of
trajectory ``(g, i, c)`` = the Stage-1 prefix of rollout ``i`` of task ``g`` followed by its
``c``-th continuation (the trainer plays the prefix once, snapshots the env at the fork and
plays ``M`` continuations from the snapshot: :mod:`~agemem_gym.adapters.grpo.fork`).

With ``w = credit_weight``:

* every full trajectory has the paper's trajectory advantage ``A_traj[g, i, c]``: its return
  group-normalised over the task's ``K·M`` trajectories (Eq. 5, ``K·M`` in place of ``K``);
* memory state ``i`` has the value ``V_i = mean_c returns[g, i, c]`` and the memory advantage
  ``A_mem_i``: ``V`` group-normalised over the task's ``K`` memory states;
* each continuation has the local advantage ``A_loc[g, i, c]``: its return group-normalised
  over the ``M`` continuations of the same memory state;
* a Stage-1 (prefix) step of rollout ``i`` gets ``(1 − w)·mean_c A_traj[g, i, c] + w·A_mem_i``
  (the prefix is shared by ``M`` trajectories and trained once: the mean of their trajectory
  advantages is what trajectory credit gives it); a continuation step gets
  ``(1 − w)·A_traj[g, i, c] + w·A_loc[g, i, c]``.

With ``w = 0`` every step gets exactly trajectory credit over the ``K·M`` trajectories. The
normalisation is :func:`~agemem_gym.adapters.grpo.losses.group_advantages` throughout, so a
group of equal values gets exact zeros.

Which published method this follows: the local groups are GiGPO's anchor-state groups
(Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent Training": steps taken
from an identical environment state are normalised against each other) and Memory-R2's local
re-roll groups, except that the identical state here is *made*, by restoring one exact
snapshot ``M`` times, instead of found by hashing states that recur by chance in independent
rollouts; and that GiGPO adds the step advantage with weight ``ω`` to the episode advantage
while here the two are mixed convexly (``1 − w``, ``w``) so ``w`` moves credit without
rescaling it. ``A_mem`` is a variance-reduced trajectory advantage for the Stage-1 decisions
(their value estimated by ``M`` continuations instead of one), as in VinePPO's Monte-Carlo
value of a state; it uses GRPO's group normalisation rather than VinePPO's ``V(s') − V(s)``.
"""

from __future__ import annotations

import torch

from agemem_gym.adapters.grpo.losses import AdvantageNorm

__all__ = [
    "trajectory_advantages",
    "memory_state_advantages",
    "local_advantages",
    "mix",
    "fork_step_advantages",
    "credit_stats",
]

PAPER = AdvantageNorm()
"""The paper's normalisation (Eq. 5), the default of these functions."""


def _check(returns: torch.Tensor) -> None:
    if returns.ndim != 3:
        raise ValueError(f"expected (G, K, M) returns, got shape {tuple(returns.shape)}")


def trajectory_advantages(returns: torch.Tensor, norm: AdvantageNorm = PAPER) -> torch.Tensor:
    """``(G, K, M)`` returns → ``(G, K, M)`` advantages, normalised over each task's ``K·M`` trajectories.

    Example:
        >>> trajectory_advantages(torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]))
        tensor([[[ 0.8660,  0.8660],
                 [-0.8660, -0.8660]]], dtype=torch.float64)
    """
    _check(returns)
    g, k, m = returns.shape
    flat = returns.to(torch.float64).reshape(-1)  # (G·K·M,) each task's K·M contiguous
    return norm(flat, k * m).view(g, k, m)


def memory_state_advantages(returns: torch.Tensor, norm: AdvantageNorm = PAPER) -> torch.Tensor:
    """``(G, K, M)`` returns → ``(G, K)``: each memory state's value ``V`` (mean over ``M``), normalised over ``K``.

    Example:
        >>> memory_state_advantages(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
        tensor([[ 0.7071, -0.7071]], dtype=torch.float64)
    """
    _check(returns)
    g, k, _ = returns.shape
    values = returns.to(torch.float64).mean(dim=2)  # (G, K)
    return norm(values.reshape(-1), k).view(g, k)


def local_advantages(returns: torch.Tensor, norm: AdvantageNorm = PAPER) -> torch.Tensor:
    """``(G, K, M)`` returns → ``(G, K, M)``, normalised over the ``M`` continuations of each memory state.

    Example:
        >>> local_advantages(torch.tensor([[[1.0, 0.0], [2.0, 2.0]]]))
        tensor([[[ 0.7071, -0.7071],
                 [ 0.0000,  0.0000]]], dtype=torch.float64)
    """
    _check(returns)
    g, k, m = returns.shape
    if m == 1:  # one continuation: nothing to compare it with
        return torch.zeros(g, k, m, dtype=torch.float64)
    return norm(returns.to(torch.float64).reshape(-1), m).view(g, k, m)


def mix(trajectory: torch.Tensor, other: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 − weight)·trajectory + weight·other`` (``weight`` in [0, 1]; 0 and 1 return one side exactly)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return trajectory.clone()
    if weight == 1.0:
        return other.clone()
    return (1.0 - weight) * trajectory + weight * other


def fork_step_advantages(
    returns: torch.Tensor,
    step_traj: torch.Tensor,
    step_prefix: torch.Tensor,
    weight: float,
    norm: AdvantageNorm = PAPER,
) -> torch.Tensor:
    """Every step's advantage under memory-state credit (see the module docstring).

    Args:
        returns: ``(G, K, M)`` full-episode returns.
        step_traj: ``(S,)`` long: trajectory ``g·K·M + i·M + c`` of each step; a prefix step
            names any trajectory of its rollout ``i`` (only ``i`` is read).
        step_prefix: ``(S,)`` bool: the step is a Stage-1 (pre-fork) step, shared by ``M`` trajectories.
        weight: ``w``.
        norm: The group normalisation (default: the paper's).

    Returns:
        ``(S,)`` float64 advantages.

    Example:
        >>> r = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
        >>> fork_step_advantages(r, torch.tensor([0, 0, 1]), torch.tensor([True, False, False]), 1.0)
        tensor([ 0.7071,  0.7071, -0.7071], dtype=torch.float64)
    """
    _check(returns)
    m = returns.shape[2]
    traj = trajectory_advantages(returns, norm)  # (G, K, M)
    prefix = mix(traj.mean(dim=2), memory_state_advantages(returns, norm), weight).reshape(-1)  # (G·K,)
    after = mix(traj, local_advantages(returns, norm), weight).reshape(-1)  # (G·K·M,)
    return torch.where(step_prefix, prefix[torch.div(step_traj, m, rounding_mode="floor")], after[step_traj])


def credit_stats(returns: torch.Tensor) -> dict[str, float]:
    """How much of the return's spread the memory state explains, per task (means over tasks).

    Returns:
        ``credit/value_std``: std of ``V`` over each task's ``K`` memory states;
        ``credit/local_std``: std of the return over each memory state's ``M`` continuations;
        ``credit/local_zero_fraction``: share of memory states whose ``M`` continuations tie.
    """
    _check(returns)
    r = returns.to(torch.float64)
    local = r.std(dim=2, unbiased=True) if r.shape[2] > 1 else torch.zeros(r.shape[:2], dtype=torch.float64)
    ties = (r.amax(dim=2) - r.amin(dim=2)) <= 1e-9 * r.abs().amax(dim=2).clamp(min=1.0)
    return {
        "credit/value_std": float(r.mean(dim=2).std(dim=1, unbiased=True).mean()),
        "credit/local_std": float(local.mean()),
        "credit/local_zero_fraction": float(ties.double().mean()),
    }
