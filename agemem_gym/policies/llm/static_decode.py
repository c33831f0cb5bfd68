"""Static-shape decoding, replayed as CUDA graphs: one decode step costs one graph launch.

A decode step of a small model on a GPU is bound by launches, not arithmetic: SmolLM2-135M
runs ~30 layers of ~40 small kernels each, and eager PyTorch spends ~20 ms per step at batch
8 issuing them. A CUDA graph records the step once and replays it with one launch. Replay
needs every tensor the step touches at a fixed address and shape, so this module decodes
with static buffers instead of :mod:`~agemem_gym.policies.llm.decode`'s growing ones:

* **Keys and values** of every layer live in ``(rows, kv_heads, length, head_dim)`` buffers
  whose ``length`` is the batch's prompt width plus the turn budget, rounded up to a bucket
  (so consecutive turns of a growing context reuse one graph). Each step writes its column
  with ``index_copy_`` at a position held in a device tensor.
* **Attention** runs over the whole buffer under a 4-d boolean mask (transformers uses a 4-d
  mask as is): left padding and not-yet-written columns are masked out, so they get weight 0
  exactly and the result equals the growing-cache one up to float rounding.
* **Finished rows stay in the batch** (fed the pad token, their outputs ignored): dropping
  rows would change the shapes. At batch 8 the wasted rows cost nothing next to a launch.

Buffers and their graphs are kept in a small LRU (:class:`StaticDecoder`); a batch reuses a
kept buffer of its number of rows that is long enough (up to twice what it needs), and all are
re-captured when the weights are replaced (an in-place optimizer step keeps the addresses,
so trained LoRA weights are read by the existing graphs). On the CPU, or when capture fails,
the same static step runs eagerly: tests check it against the growing-cache decoder.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

from agemem_gym.policies.llm.decode import DecodeSettings, _Batch, _cache_kwarg, _new_cache
from agemem_gym.policies.llm.prefix_cache import KV, PrefixCache

__all__ = ["StaticDecoder", "StaticBatch", "bucket_length", "supports_static"]

BUCKET = 256
"""Buffer lengths are multiples of this: a context growing turn by turn reuses its graph."""


def bucket_length(width: int, steps: int, bucket: int = BUCKET) -> int:
    """Columns a batch of prompts ``width`` wide needs for ``steps`` new tokens, rounded up."""
    return -(-(width + steps) // bucket) * bucket


def supports_static(model: Any) -> bool:
    """Whether static decoding applies to ``model``.

    It needs attention that takes a 4-d mask as is (``sdpa`` or ``eager``, not flash
    attention) and weights that stay where they are (not FSDP-sharded: the full weights a
    sharded forward gathers are new tensors each time, so a graph would read freed memory).
    """
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return False
    return not _fsdp_sharded(model)


def _fsdp_sharded(model: Any) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return any(isinstance(m, FSDPModule) for m in model.modules())


class _StaticLayer(DynamicLayer):
    """A cache layer over fixed buffers: ``update`` writes one column and returns the whole buffer."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, column: torch.Tensor) -> None:
        super().__init__()
        self.is_initialized = True
        self.device = keys.device
        self.keys, self.values, self.column = keys, values, column
        self._k, self._v = keys, values  # typed handles on the same buffers

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Write the step's keys and values at ``column`` (a device tensor: no host sync, graph-safe)."""
        self._k.index_copy_(2, self.column, key_states)
        self._v.index_copy_(2, self.column, value_states)
        return self._k, self._v


class _Buffers:
    """Everything one captured step reads and writes, at fixed addresses."""

    def __init__(self, model: Any, like: KV, rows: int, length: int) -> None:
        device, dtype = like[0][0].device, like[0][0].dtype
        heads, dim = like[0][0].shape[1], like[0][0].shape[3]
        self.keys = [torch.zeros((rows, heads, length, dim), dtype=dtype, device=device) for _ in like]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.column = torch.zeros(1, dtype=torch.long, device=device)
        self.input_ids = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.position_ids = torch.zeros((rows, 1), dtype=torch.long, device=device)
        # sdpa takes a boolean mask (True: attend); eager attention adds the mask to its scores
        additive = getattr(model.config, "_attn_implementation", "sdpa") == "eager"
        self.open: float | bool = 0.0 if additive else True
        self.closed: float | bool = torch.finfo(dtype).min if additive else False
        kind = dtype if additive else torch.bool
        self.mask = torch.full((rows, 1, 1, length), self.closed, dtype=kind, device=device)
        layers = [_StaticLayer(k, v, self.column) for k, v in zip(self.keys, self.values)]
        self.cache = _new_cache(list(layers))
        self.model, self.kwarg = model, _cache_kwarg(model)
        self.graph: Any = None
        self.logits: torch.Tensor | None = None
        self.eager = device.type != "cuda" or model.training  # dropout would be frozen into a graph

    def forward(self) -> torch.Tensor:
        """One step from the buffers' inputs: eager, or the captured graph (captured on first use)."""
        if self.eager:
            return self._run()
        if self.graph is None:
            self._capture()
        if self.graph is not None:
            self.graph.replay()
            assert self.logits is not None
            return self.logits
        return self._run()

    def _run(self) -> torch.Tensor:
        out = self.model(
            input_ids=self.input_ids,
            attention_mask=self.mask,
            position_ids=self.position_ids,
            use_cache=True,
            **{self.kwarg: self.cache},
        )
        return out.logits[:, -1]

    def _capture(self) -> None:
        """Record the step; the warm-up writes the same column replay writes, so it changes nothing."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                self._run()  # lazy initialisations (cuBLAS workspaces) must not happen during capture
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.logits = self._run()
            self.graph = graph
        except RuntimeError as err:  # a host sync inside the model's forward: stay eager
            warnings.warn(f"CUDA graph capture failed, decoding eagerly: {err}", RuntimeWarning, stacklevel=2)
            self.eager, self.graph, self.logits = True, None, None


class StaticBatch(_Batch):
    """:class:`~agemem_gym.policies.llm.decode._Batch`'s interface over :class:`_Buffers`."""

    def __init__(self, buffers: _Buffers, kvs: Sequence[KV], lengths: Sequence[int], settings: DecodeSettings) -> None:
        rows, steps = len(kvs), settings.max_new_tokens
        self.buffers = buffers
        widths = [kv[0][0].shape[2] for kv in kvs]
        self.width = max(widths)
        self.pads = [self.width - n for n in widths]
        buffers.mask.fill_(buffers.closed)
        for i, kv in enumerate(kvs):
            pad = self.pads[i]
            for layer, (k, v) in enumerate(kv):
                buffers.keys[layer][i, :, pad : self.width] = k[0]
                buffers.values[layer][i, :, pad : self.width] = v[0]
            buffers.mask[i, 0, 0, pad : self.width] = buffers.open
        self.lengths = torch.tensor(list(lengths), dtype=torch.long, device=buffers.mask.device)
        self.active = list(range(rows))
        self.tokens = torch.full((rows, steps), int(settings.tokenizer.pad_token_id or 0), dtype=torch.long)
        self.logprobs = torch.zeros((rows, steps))

    def store(self, rows: Sequence[int], prompts: Sequence[Sequence[int]], t: int, store: PrefixCache) -> None:
        """Store prompt + turn so far of ``rows``: columns ``pad .. width + t`` of their buffer rows."""
        b, end = self.buffers, self.width + t
        for r in rows:
            pad = self.pads[r]
            kv = [
                (k[r : r + 1, :, pad:end].clone(), v[r : r + 1, :, pad:end].clone()) for k, v in zip(b.keys, b.values)
            ]
            store.insert(list(prompts[r]) + self.tokens[r, :t].tolist(), kv)

    def drop(self, ended: Sequence[int]) -> bool:
        """Forget the ``ended`` rows (they stay in the buffers, fed the pad token); ``False`` when none is left."""
        gone = set(ended)
        self.active = [r for r in self.active if r not in gone]
        return bool(self.active)

    def step(self, t: int) -> torch.Tensor:
        """Feed step ``t``'s tokens of every row; the logits of the active rows for step ``t + 1``."""
        b, column = self.buffers, self.width + t
        b.input_ids.copy_(self.tokens[:, t : t + 1])
        b.position_ids.copy_((self.lengths + t)[:, None])
        b.column.fill_(column)
        b.mask[:, 0, 0, column] = b.open  # the new token attends to itself
        logits = b.forward()
        return logits[self.active].float()


class StaticDecoder:
    """Builds :class:`StaticBatch` es, keeping the buffers and graphs of the last few shapes.

    Args:
        max_entries: Shapes kept (each holds a batch's keys and values for the whole buffer).
        bucket: Buffer lengths are multiples of this.
    """

    def __init__(self, max_entries: int = 3, bucket: int = BUCKET) -> None:
        self.max_entries = int(max_entries)
        self.bucket = int(bucket)
        self.entries: collections.OrderedDict[tuple[Any, ...], _Buffers] = collections.OrderedDict()
        self._stamp: tuple[tuple[int, int], ...] = ()
        self.built = 0  # buffer sets built so far (each captures one graph on a GPU)

    def batch(self, model: Any, kvs: Sequence[KV], lengths: Sequence[int], settings: DecodeSettings) -> StaticBatch:
        """A batch over buffers for ``kvs``: those of an earlier batch of the same rows when they fit."""
        stamp = tuple((id(p), p.data_ptr()) for p in model.parameters())
        if stamp != self._stamp:  # new or moved weights: graphs read the old addresses
            self.clear()
            self._stamp = stamp
        width = max(kv[0][0].shape[2] for kv in kvs)
        like = kvs[0]
        need = bucket_length(width, settings.max_new_tokens, self.bucket)
        kind = (len(kvs), like[0][0].dtype, model.training)
        key = self._fitting(kind, need)
        if key is not None:
            buffers = self.entries.pop(key)
        else:
            key, buffers = (*kind, need), _Buffers(model, like, len(kvs), need)
            self.built += 1
            while len(self.entries) >= self.max_entries:
                self.entries.popitem(last=False)
        self.entries[key] = buffers
        return StaticBatch(buffers, kvs, lengths, settings)

    def _fitting(self, kind: tuple[Any, ...], need: int) -> tuple[Any, ...] | None:
        """The shortest kept buffer of this kind with room for ``need`` columns and at most twice that.

        A longer buffer than needed serves as well (the mask closes the extra columns) and saves
        a capture; the bound keeps attention over closed columns from costing more than it saves.
        """
        fits = [k for k in self.entries if k[:3] == kind and need <= k[3] <= 2 * need]
        return min(fits, key=lambda k: k[3]) if fits else None

    def clear(self) -> None:
        """Drop every buffer and graph."""
        self.entries.clear()
