"""Packing step samples into training rows and scoring them with a model.

Samples (prompt + response token ids) are packed into rows of at most ``row_len`` tokens
with the numba first-fit-decreasing kernel (:func:`agemem_gym.adapters.grpo.packing.pack_rows`). A row
is several samples back to back; a block-diagonal causal attention mask and per-sample
position ids keep them independent, so one forward pass scores them all. Only the
response positions are projected to the vocabulary (``logits_to_keep``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agemem_gym.adapters.grpo.packing import pack_rows

__all__ = ["Sample", "Row", "pack_samples", "row_logprobs", "padding_fraction"]


@dataclasses.dataclass
class Sample:
    """One generated turn as a training sample.

    Attributes:
        prompt_ids: The rendered context.
        response_ids: The generated tokens (the loss covers only these).
        traj: Index of the trajectory it belongs to.
        advantage: The trajectory's group advantage (set by the trainer).
        old_logprobs: ``(len(response_ids),)`` log-probs under the rollout policy.
        ref_logprobs: ``(len(response_ids),)`` log-probs under the reference policy.
        seq_weight: Loss weight of each of its tokens under sequence-mean aggregation.
        grammar: The turn grammar the response was sampled under (``None``: unconstrained).
        allowed: Packed bits (``np.packbits``, ``(len(response_ids), ceil(V / 8))``) of the
            tokens the grammar allowed at each response position.
    """

    prompt_ids: Sequence[int]
    response_ids: Sequence[int]
    traj: int
    advantage: float = 0.0
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    seq_weight: float = 0.0
    grammar: str | None = None
    allowed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


@dataclasses.dataclass(frozen=True)
class Row:
    """Samples packed into one row: their indices and where each starts."""

    samples: tuple[int, ...]
    offsets: tuple[int, ...]
    length: int


def pack_samples(samples: Sequence[Sample], row_len: int) -> list[Row]:
    """Pack samples into rows of at most ``row_len`` tokens (first-fit decreasing).

    Args:
        samples: The samples; each must fit in a row (raise ``row_len`` otherwise).
        row_len: Row capacity in tokens.

    Returns:
        The rows, in row-index order; samples inside a row keep their original order.
    """
    lengths = np.array([len(s) for s in samples], dtype=np.int64)
    if len(samples) == 0:
        return []
    if lengths.max() > row_len:
        raise ValueError(f"a sample has {lengths.max()} tokens, more than row_len={row_len}; raise row_len")
    assignment = pack_rows(lengths, row_len)
    rows = []
    for r in range(int(assignment.max()) + 1):
        members = tuple(int(i) for i in np.flatnonzero(assignment == r))
        offsets, pos = [], 0
        for i in members:
            offsets.append(pos)
            pos += int(lengths[i])
        rows.append(Row(members, tuple(offsets), pos))
    return rows


def padding_fraction(rows: Sequence[Row], rows_per_batch: int) -> float:
    """Share of padded positions when rows are batched ``rows_per_batch`` at a time."""
    padded = used = 0
    for start in range(0, len(rows), rows_per_batch):
        chunk = rows[start : start + rows_per_batch]
        width = max(r.length for r in chunk)
        padded += width * len(chunk)
        used += sum(r.length for r in chunk)
    return 1.0 - used / padded if padded else 0.0


def _row_tensors(
    rows: Sequence[Row], samples: Sequence[Sample], pad_id: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[list[tuple[int, int, int]]]]:
    width = max(r.length for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    spans: list[list[tuple[int, int, int]]] = []  # per row: (sample, first response pos, n response)
    for r, row in enumerate(rows):
        row_spans = []
        for k, (i, off) in enumerate(zip(row.samples, row.offsets)):
            s = samples[i]
            tokens = list(s.prompt_ids) + list(s.response_ids)
            ids[r, off : off + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            pos[r, off : off + len(tokens)] = torch.arange(len(tokens))
            seg[r, off : off + len(tokens)] = k
            row_spans.append((i, off + len(s.prompt_ids), len(s.response_ids)))
        spans.append(row_spans)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    allowed = causal & (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)  # (R, L, L)
    # padding rows attend to themselves so softmax stays finite; their outputs are never read
    allowed |= torch.eye(width, dtype=torch.bool)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return ids.to(device), pos.to(device), mask.unsqueeze(1).to(device), spans


def row_logprobs(
    model: Any,
    rows: Sequence[Row],
    samples: Sequence[Sample],
    *,
    pad_id: int,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """Per-token log-probs of every sample's response tokens, from one forward pass.

    Args:
        model: A causal LM accepting a 4-D additive attention mask and ``logits_to_keep``.
        rows: Rows to score together (one micro-batch).
        samples: All samples (rows index into it).
        pad_id: Padding token id.
        temperature: Logits are divided by it (the sampling distribution of the rollouts).
        with_entropy: Also return the token-mean entropy (no gradient).

    Returns:
        ``({sample index: (n_response,) log-probs}, entropy or None)``; gradients flow
        through the log-probs when the model is in a grad-enabled context.
    """
    param = next(model.parameters())
    ids, pos, mask, spans = _row_tensors(rows, samples, pad_id, param.dtype, param.device)
    # logits only where a response token is predicted: the position before each one
    keep = sorted({first - 1 + j for row in spans for (_, first, n) in row for j in range(n)})
    keep_t = torch.tensor(keep, dtype=torch.long, device=param.device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep_t, use_cache=False)
    logits = out.logits.float() / temperature  # (R, P, V)
    index_of = {p: j for j, p in enumerate(keep)}
    result: dict[int, torch.Tensor] = {}
    entropy_sum, entropy_n = 0.0, 0
    for r, row in enumerate(spans):
        for i, first, n in row:
            cols = torch.tensor([index_of[first - 1 + j] for j in range(n)], device=param.device)
            targets = ids[r, first : first + n]
            logits_i = logits[r, cols]  # (n, V)
            packed = samples[i].allowed
            if packed is not None:  # the grammar's masks: the distribution actually sampled
                allowed = np.unpackbits(packed, axis=1, count=logits_i.shape[1]).astype(bool)
                logits_i = logits_i.masked_fill(~torch.from_numpy(allowed).to(logits_i.device), float("-inf"))
            lp = logits_i.log_softmax(-1)  # (n, V)
            result[i] = lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (n,)
            if with_entropy:
                with torch.no_grad():
                    entropy_sum += float(-(lp.exp() * lp.masked_fill(lp == float("-inf"), 0.0)).sum(-1).sum())
                    entropy_n += n
    entropy = torch.tensor(entropy_sum / max(1, entropy_n)) if with_entropy else None
    return result, entropy
