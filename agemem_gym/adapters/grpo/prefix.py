"""Prefix-tree rows: a token prefix that several samples share is run through the model once.

The samples of one episode share the system prompt and the history up to their turn, and the
samples of one group share the system prompt and the task. :func:`pack_prefix_rows` sorts the
samples by their tokens and lays each row out as the prefix tree of its samples: sample ``i``
(in sorted order) adds only the tokens after its longest common prefix with sample ``i − 1``
(which, in sorted order, is its longest common prefix with every sample before it). Those new
tokens are one *segment*; its *context* is the row positions that hold the shared prefix.

One forward pass runs the micro-batch's rows back to back as a single sequence (no padding)
with :func:`segment_attention`: the queries of each segment attend to its context in full and
to themselves causally, one ``scaled_dot_product_attention`` call per segment. A segment with
no context is a plain causal sequence, so separate samples never meet and no ``L × L`` mask is
built. Position ids are each token's index in its own sample, so every response token sees
exactly the keys and positions it would see alone: the log-probs are those of one forward pass
per sample (to float rounding), and gradients flow into the shared prefix from every sample
that reads it (``tests/adapters/test_grpo_prefix.py``).

The attention runs through Hugging Face's attention-function registry: :func:`tree_attention`
switches the model's ``_attn_implementation`` to it for a forward pass *and* its backward
(gradient checkpointing recomputes the layers there), and back afterwards, so generation never
sees it. Models whose attention modules call ``ALL_ATTENTION_FUNCTIONS`` (Llama, Qwen2,
Mistral, SmolLM2, ...) run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agemem_gym.adapters.grpo.batching import Sample, project_logprobs

__all__ = ["Segment", "TreeRow", "TreeLayout", "pack_prefix_rows", "tree_logprobs", "tree_attention", "shared_fraction"]

ATTENTION_NAME = "agemem_prefix_tree"
"""The name :func:`segment_attention` is registered under in Hugging Face's attention registry."""

Ranges = tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class Segment:
    """New tokens of one sample in a row: ``[start, end)``, taken from its tokens at ``first``.

    Attributes:
        start: First row position.
        end: One past the last row position.
        context: Row ranges holding the shared prefix it continues (attended in full).
        sample: The sample the tokens come from.
        first: Index in that sample's tokens of the token at ``start``.
    """

    start: int
    end: int
    context: Ranges
    sample: int
    first: int


@dataclasses.dataclass(frozen=True)
class TreeRow:
    """One row: its samples, the row ranges that hold each one's tokens in order, its segments."""

    samples: tuple[int, ...]
    paths: tuple[Ranges, ...]
    segments: tuple[Segment, ...]
    length: int
    tokens: int  # the samples' tokens before sharing


def _tokens(s: Sample) -> np.ndarray:
    return np.asarray(list(s.prompt_ids) + list(s.response_ids), dtype=np.int64)


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    m = min(len(a), len(b))
    differ = np.flatnonzero(a[:m] != b[:m])
    return int(differ[0]) if len(differ) else m


def _truncate(path: Ranges, n: int) -> Ranges:
    """The first ``n`` positions of ``path``."""
    out, left = [], n
    for a, b in path:
        if left <= 0:
            break
        out.append((a, min(b, a + left)))
        left -= out[-1][1] - a
    return tuple(out)


def _extend(path: Ranges, start: int, end: int) -> Ranges:
    """``path`` followed by ``[start, end)`` (merged when contiguous)."""
    if path and path[-1][1] == start:
        return (*path[:-1], (path[-1][0], end))
    return (*path, (start, end))


@dataclasses.dataclass
class _RowBuilder:
    samples: list[int] = dataclasses.field(default_factory=list)
    paths: list[Ranges] = dataclasses.field(default_factory=list)
    segments: list[Segment] = dataclasses.field(default_factory=list)
    length: int = 0
    tokens: int = 0

    def add(self, i: int, n: int, shared: int) -> None:
        """Sample ``i`` of ``n`` tokens, whose first ``shared`` continue the previous sample's path."""
        context = _truncate(self.paths[-1], shared) if shared else ()
        path = context
        if n > shared:
            self.segments.append(Segment(self.length, self.length + n - shared, context, i, shared))
            path = _extend(context, self.length, self.length + n - shared)
            self.length += n - shared
        self.samples.append(i)
        self.paths.append(path)
        self.tokens += n

    def build(self) -> TreeRow:
        return TreeRow(tuple(self.samples), tuple(self.paths), tuple(self.segments), self.length, self.tokens)


def pack_prefix_rows(samples: Sequence[Sample], row_len: int) -> list[TreeRow]:
    """Sort the samples by their tokens and pack them into prefix-tree rows of at most ``row_len`` positions.

    Args:
        samples: The samples; each must fit in a row.
        row_len: Row capacity in positions (shared tokens count once).

    Returns:
        The rows, in sorted order of their samples (deterministic: the same samples, the same rows).

    Raises:
        ValueError: A sample is longer than ``row_len``.
    """
    seqs = [_tokens(s) for s in samples]
    if seqs and max(len(t) for t in seqs) > row_len:
        raise ValueError(f"a sample has {max(len(t) for t in seqs)} tokens, more than row_len={row_len}; raise row_len")
    order = sorted(range(len(samples)), key=lambda i: (seqs[i].tolist(), i))
    rows: list[TreeRow] = []
    row, prev = _RowBuilder(), -1
    for i in order:
        shared = _common_prefix(seqs[prev], seqs[i]) if row.samples else 0
        if row.samples and row.length + len(seqs[i]) - shared > row_len:
            rows.append(row.build())
            row, shared = _RowBuilder(), 0
        row.add(i, len(seqs[i]), shared)
        prev = i
    if row.samples:
        rows.append(row.build())
    return rows


def shared_fraction(rows: Sequence[TreeRow]) -> float:
    """Share of the samples' tokens that sharing saved (0: no prefix shared)."""
    tokens = sum(r.tokens for r in rows)
    return 1.0 - sum(r.length for r in rows) / tokens if tokens else 0.0


@dataclasses.dataclass(frozen=True)
class TreeLayout:
    """What :func:`segment_attention` needs: the segments of one flattened micro-batch and their masks."""

    segments: tuple[Segment, ...]
    masks: tuple[torch.Tensor | None, ...]  # per segment: (n, context + n) bool, None without context


def _shift(ranges: Ranges, by: int) -> Ranges:
    return tuple((a + by, b + by) for a, b in ranges)


def _layout(rows: Sequence[TreeRow], samples: Sequence[Sample], device: torch.device) -> tuple[Any, ...]:
    """Token ids, position ids, the attention layout and each sample's row path, for rows run back to back."""
    total = sum(r.length for r in rows)
    ids = np.zeros(total, dtype=np.int64)
    pos = np.zeros(total, dtype=np.int64)
    segments, masks, paths, offset = [], [], {}, 0
    for row in rows:
        for seg in row.segments:
            n = seg.end - seg.start
            ids[offset + seg.start : offset + seg.end] = _tokens(samples[seg.sample])[seg.first : seg.first + n]
            pos[offset + seg.start : offset + seg.end] = np.arange(seg.first, seg.first + n)
            moved = Segment(seg.start + offset, seg.end + offset, _shift(seg.context, offset), seg.sample, seg.first)
            segments.append(moved)
            masks.append(_segment_mask(seg.first, n, device) if seg.context else None)
        paths.update({i: _shift(p, offset) for i, p in zip(row.samples, row.paths)})
        offset += row.length
    ids_t = torch.from_numpy(ids).unsqueeze(0).to(device)  # (1, T)
    pos_t = torch.from_numpy(pos).unsqueeze(0).to(device)  # (1, T)
    return ids_t, pos_t, TreeLayout(tuple(segments), tuple(masks)), paths


def _segment_mask(context: int, n: int, device: torch.device) -> torch.Tensor:
    """``(n, context + n)`` bool: the whole context, then causal over the segment itself."""
    mask = torch.ones(n, context + n, dtype=torch.bool)
    mask[:, context:] = torch.tril(torch.ones(n, n, dtype=torch.bool))
    return mask.to(device)


def segment_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of a prefix-tree micro-batch, one SDPA call per segment (a Hugging Face attention function).

    Args:
        module: The attention module (unused; the registry's signature).
        query: ``(1, H, T, D)``, rotary embeddings applied.
        key: ``(1, H_kv, T, D)``.
        value: ``(1, H_kv, T, D)``.
        attention_mask: Ignored: the layout says who attends to whom.
        dropout: Attention dropout probability.
        scaling: Softmax scale.
        **kwargs: ``prefix_tree``: the :class:`TreeLayout` (passed through the decoder's kwargs).

    Returns:
        ``((1, T, H, D) output, None)``.
    """
    layout = kwargs.get("prefix_tree")
    if not isinstance(layout, TreeLayout):
        raise RuntimeError("prefix-tree attention ran without its layout: call the decoder with prefix_tree=")
    gqa = query.shape[1] != key.shape[1]
    outs = []
    for seg, mask in zip(layout.segments, layout.masks):
        q = query[:, :, seg.start : seg.end]
        if mask is None:
            k, v = key[:, :, seg.start : seg.end], value[:, :, seg.start : seg.end]
        else:
            k = torch.cat([key[:, :, a:b] for a, b in (*seg.context, (seg.start, seg.end))], dim=2)
            v = torch.cat([value[:, :, a:b] for a, b in (*seg.context, (seg.start, seg.end))], dim=2)
        outs.append(
            F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=mask is None, scale=scaling, enable_gqa=gqa
            )
        )
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, segment_attention)


@contextlib.contextmanager
def tree_attention(model: Any) -> Iterator[None]:
    """Run ``model``'s attention as :func:`segment_attention` inside the block (forward and backward)."""
    _register()
    config = model.get_decoder().config
    saved = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = saved


def tree_logprobs(
    model: Any,
    rows: Sequence[TreeRow],
    samples: Sequence[Sample],
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = 512,
) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """:func:`~agemem_gym.adapters.grpo.batching.row_logprobs` for prefix-tree rows (one forward pass).

    Call it inside :func:`tree_attention`, and keep the backward inside it too.

    Args:
        model: A causal LM whose attention goes through Hugging Face's attention registry.
        rows: The micro-batch's rows (run back to back as one sequence).
        samples: All samples (rows index into it).
        temperature: Logits are divided by it.
        with_entropy: Also return the token-mean entropy (no gradient).
        chunk_tokens: Response positions projected to the vocabulary at a time.

    Returns:
        ``({sample index: (n_response,) log-probs}, entropy or None)``.
    """
    param = next(model.parameters())
    ids, pos, layout, paths = _layout(rows, samples, param.device)
    mask = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=param.device)  # 4-D: the model builds no mask of its own
    hidden = model.get_decoder()(
        input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, prefix_tree=layout
    ).last_hidden_state  # (1, T, H)
    order = [i for row in rows for i in row.samples]
    flat = np.concatenate([_state_positions(paths[i], samples[i]) for i in order])  # (P,)
    states = hidden[0][torch.from_numpy(flat).to(param.device)]  # (P, H)
    return project_logprobs(model, states, [samples[i] for i in order], order, temperature, chunk_tokens, with_entropy)


def _state_positions(path: Ranges, sample: Sample) -> np.ndarray:
    """Row positions of the hidden states that predict ``sample``'s response tokens."""
    where = np.concatenate([np.arange(a, b) for a, b in path])  # (len(sample),) row position of each token
    first = len(sample.prompt_ids)
    return where[first - 1 : len(sample) - 1]
