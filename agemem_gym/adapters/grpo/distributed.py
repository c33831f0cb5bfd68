"""The few collective operations the trainer needs, through ``torch.distributed`` (set up by accelerate).

Gradients are summed explicitly once per optimizer step instead of through DDP's
per-backward hooks: ranks collect different numbers of turns, so they run different
numbers of forward/backward passes, which DDP does not allow.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "world",
    "task_share",
    "all_sum",
    "all_sum_many",
    "all_gather_objects",
    "sync_gradients",
    "broadcast_parameters",
    "collective_device",
]


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def task_share(n: int, rank: int, world: int) -> range:
    """The indices of ``n`` tasks that ``rank`` of ``world`` collects: a contiguous block.

    Blocks differ in size by at most one (the first ``n % world`` ranks take one more), and
    their concatenation in rank order is ``range(n)``: task ``i`` is task ``i`` whatever the
    number of processes, so its rollout seeds are too.
    """
    size, extra = divmod(n, world)
    start = rank * size + min(rank, extra)
    return range(start, start + size + (rank < extra))


def collective_device() -> torch.device:
    """Where a collective's tensors must live: NCCL reduces GPU tensors only, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(value: float) -> float:
    """The sum of ``value`` over ranks."""
    return all_sum_many([value])[0]


def all_sum_many(values: list[float]) -> list[float]:
    """The sums of ``values`` over ranks, element-wise, in one collective."""
    if world()[1] == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    return [float(v) for v in t.cpu().tolist()]


def all_gather_objects(items: list[Any]) -> list[Any]:
    """Concatenate a picklable list from every rank (rank order)."""
    if world()[1] == 1:
        return list(items)
    gathered: list[list[Any]] = [[] for _ in range(world()[1])]
    dist.all_gather_object(gathered, list(items))
    return [x for part in gathered for x in part]


def sync_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum gradients over ranks (each rank already divided its loss by the global token count)."""
    if world()[1] == 1:
        return
    grads = []
    for p in params:
        if p.grad is None:  # a rank without samples still joins the sum
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_parameters(params: list[torch.nn.Parameter]) -> None:
    """Make every rank start from rank 0's weights."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)
