"""Packing step samples into training rows and scoring them with a model.

Samples (prompt + response token ids) are packed into rows of at most ``row_len`` tokens
with the numba first-fit-decreasing kernel (:func:`agemem_gym.adapters.grpo.packing.pack_rows`). A row
is several samples back to back; a block-diagonal causal attention mask and per-sample
position ids keep them independent, so one forward pass scores them all. Only the
response positions are projected to the vocabulary, a bounded chunk of them at a time
(:func:`chunked_logprobs`): a full ``(tokens × vocab)`` float32 tensor would be gigabytes
for a 49k-token vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from agemem_gym.adapters.grpo.packing import pack_rows

__all__ = [
    "Sample",
    "Row",
    "pack_samples",
    "row_logprobs",
    "project_logprobs",
    "chunked_logprobs",
    "padding_fraction",
]


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
    chunk_tokens: int = 512,
) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """Per-token log-probs of every sample's response tokens, from one forward pass.

    The decoder runs once over the packed rows; the vocabulary projection (``lm_head``) and
    the log-softmax then run over at most ``chunk_tokens`` response positions at a time, so
    no ``(tokens × vocab)`` tensor larger than ``chunk_tokens × vocab`` exists, in the forward
    or (each chunk is checkpointed and recomputed) in the backward pass. The log-probs and
    their gradients are those of a full ``log_softmax`` over the vocabulary.

    Args:
        model: A causal LM accepting a 4-D additive attention mask, whose logits are its
            output embeddings applied to its decoder's last hidden state (Llama, Qwen2,
            Mistral, SmolLM2, ...; a final logit soft-cap is applied when the config has one).
        rows: Rows to score together (one micro-batch).
        samples: All samples (rows index into it).
        pad_id: Padding token id.
        temperature: Logits are divided by it (the sampling distribution of the rollouts).
        with_entropy: Also return the token-mean entropy (no gradient).
        chunk_tokens: Response positions projected to the vocabulary at a time.

    Returns:
        ``({sample index: (n_response,) log-probs}, entropy or None)``; gradients flow
        through the log-probs when the model is in a grad-enabled context.
    """
    param = next(model.parameters())
    ids, pos, mask, spans = _row_tensors(rows, samples, pad_id, param.dtype, param.device)
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    hidden = hidden.last_hidden_state  # (R, L, H)
    # the hidden state before each response token predicts it; samples in span order
    order = [(i, n) for row in spans for (i, _, n) in row]
    flat = torch.tensor(
        [r * ids.shape[1] + first - 1 + j for r, row in enumerate(spans) for (_, first, n) in row for j in range(n)],
        dtype=torch.long,
        device=param.device,
    )  # (P,)
    states = hidden.reshape(-1, hidden.shape[-1])[flat]  # (P, H)
    indices = [i for i, _ in order]
    return project_logprobs(
        model, states, [samples[i] for i in indices], indices, temperature, chunk_tokens, with_entropy
    )


def project_logprobs(
    model: Any,
    states: torch.Tensor,
    ordered: Sequence[Sample],
    indices: Sequence[int],
    temperature: float,
    chunk_tokens: int,
    with_entropy: bool,
) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """The response log-probs (and entropy) from the hidden states that predict them.

    Args:
        model: The causal LM (its output embeddings are the vocabulary head).
        states: ``(P, H)`` the hidden states before each response token of ``ordered``, in order.
        ordered: The samples whose response tokens ``states`` predict, in order.
        indices: Each one's index (the keys of the result).
        temperature: Logits are divided by it.
        chunk_tokens: Response positions projected to the vocabulary at a time.
        with_entropy: Also return the token-mean entropy (no gradient).

    Returns:
        ``({index: (n_response,) log-probs}, entropy or None)``.
    """
    targets = torch.tensor([t for s in ordered for t in s.response_ids], dtype=torch.long, device=states.device)
    head = _Head(model.get_output_embeddings(), temperature, getattr(model.config, "final_logit_softcapping", None))
    allowed = _packed_masks(ordered, head.vocab)
    logp, entropy_sum = chunked_logprobs(states, targets, head, allowed, chunk_tokens, with_entropy)
    result = dict(zip(indices, logp.split([len(s.response_ids) for s in ordered])))
    entropy = torch.tensor(entropy_sum / max(1, len(targets))) if with_entropy else None
    return result, entropy


@dataclasses.dataclass(frozen=True)
class _Head:
    """The vocabulary projection as the sampler saw it: ``lm_head``, soft-cap, ``/ temperature``, in float32."""

    module: torch.nn.Linear
    temperature: float
    softcap: float | None = None

    @property
    def vocab(self) -> int:
        weight = self.module.weight  # under ZeRO-3 possibly partitioned (empty): its full shape is ds_shape
        return int(getattr(weight, "ds_shape", weight.shape)[0])

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        logits = self.module(states)  # (c, V)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float() / self.temperature


def _packed_masks(samples: Sequence[Sample], vocab: int) -> np.ndarray | None:
    """Every response position's grammar mask, still bit-packed ``(P, ceil(V / 8))``; ``None`` if no sample has one.

    An unconstrained sample among constrained ones allows every token (all bits set).
    """
    if all(s.allowed is None for s in samples):
        return None
    width = (vocab + 7) // 8
    parts = [
        np.full((len(s.response_ids), width), 0xFF, np.uint8) if s.allowed is None else s.allowed[:, :width]
        for s in samples
    ]
    return np.concatenate(parts)  # (P, ceil(V / 8))


def chunked_logprobs(
    states: torch.Tensor,
    targets: torch.Tensor,
    head: Any,
    allowed: np.ndarray | None,
    chunk_tokens: int,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, float]:
    """Log-probs of ``targets`` under ``softmax(head(states))``, ``chunk_tokens`` positions at a time.

    Under autograd each chunk is a :func:`torch.utils.checkpoint.checkpoint`: its
    ``(chunk, V)`` logits are freed after the forward and recomputed in the backward, so
    the peak holds one chunk's logits, not every position's.

    Args:
        states: ``(P, H)`` hidden states, one per predicted token.
        targets: ``(P,)`` long, the tokens whose log-probs are wanted.
        head: Maps ``(c, H)`` states to ``(c, V)`` float32 logits (temperature applied).
        allowed: Bit-packed ``(P, ceil(V / 8))`` grammar masks (``np.packbits``), or ``None``.
        chunk_tokens: Positions per chunk (>= 1).
        with_entropy: Also sum the entropy of every position (no gradient).

    Returns:
        ``((P,) log-probs, summed entropy)`` (the sum is 0.0 without ``with_entropy``).
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    checkpointed = torch.is_grad_enabled() and states.requires_grad
    parts, entropy = [], 0.0
    for a in range(0, states.shape[0], chunk_tokens):
        b = min(a + chunk_tokens, states.shape[0])
        mask = None
        if allowed is not None:
            bits = np.unpackbits(allowed[a:b], axis=1, count=head.vocab).astype(bool)  # (c, V)
            mask = torch.from_numpy(bits).to(states.device)
        fn = functools.partial(_chunk_logprobs, head, with_entropy=with_entropy)
        if checkpointed:
            lp, ent = checkpoint(fn, states[a:b], targets[a:b], mask, use_reentrant=False)
        else:
            lp, ent = fn(states[a:b], targets[a:b], mask)
        parts.append(lp)
        entropy += float(ent)
    if not parts:
        return states.new_zeros(0, dtype=torch.float32), 0.0
    return torch.cat(parts), entropy


def _chunk_logprobs(
    head: Any, states: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None, *, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk: ``(c,)`` log-probs of ``targets`` and the chunk's summed entropy (no gradient)."""
    logits = head(states)  # (c, V) float32
    if mask is not None:  # the grammar's masks: the distribution actually sampled
        logits = logits.masked_fill(~mask, float("-inf"))
    lse = logits.logsumexp(-1)  # (c,)
    lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse  # (c,)
    # after the log-probs: a checkpoint's recomputation stops once it has what backward needs
    ent = torch.zeros(())
    if with_entropy:
        with torch.no_grad():
            logp = logits - lse.unsqueeze(-1)  # (c, V)
            ent = -(logp.exp() * logp.masked_fill(logp == float("-inf"), 0.0)).sum()
    return lp, ent
