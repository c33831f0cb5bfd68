"""The decode loop of :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy`: prefill, then sample turn by turn.

A hand-written loop instead of ``model.generate`` so that prefill can start from a stored
prefix (:class:`~agemem_gym.policies.llm.prefix_cache.PrefixCache`) and every step is under
our control:

1. **Prefill, one prompt at a time.** Each prompt reuses the longest stored prefix and runs
   only the rest through the model (at least its last token, for the first logits); its
   keys and values are stored at once, so the next prompt of the chunk (the K rollouts of a
   GRPO group share their first prompt) forks it instead of prefilling it again. One
   prompt per forward also means no padding enters a prefill.
2. **Decode, batched.** The rows' caches are left-padded into one buffer with room to grow
   (appends write in place and the room doubles when full; ``DynamicCache`` would copy the
   whole cache every step), with explicit position ids and an attention mask over the
   padding (zeros, never attended). Finished rows leave
   the batch; their prompt + turn is stored for the next turn.
3. **Sampling** is ``softmax(mask(logits) / T)`` (the grammar mask, then the temperature; no
   top-k / top-p, so the trainer recomputes exactly this distribution), drawn from a seeded
   ``torch.Generator`` the way ``model.generate`` drew (one multinomial over every row of
   the call per step), so a seed samples the same turns with the cache on or off.

Needs a full-attention decoder and transformers' layered cache (``DynamicCache.layers``).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from agemem_gym.policies.llm.hf_policy import _StopTracker as StopTracker
from agemem_gym.policies.llm.prefix_cache import KV, PrefixCache

__all__ = ["DecodeSettings", "DecodeOutput", "decode_turns", "prefill", "sample_tokens"]


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """What one call of :func:`decode_turns` needs besides the model and prompts."""

    tokenizer: Any
    max_new_tokens: int
    temperature: float
    do_sample: bool
    stops: tuple[str, ...]
    eos_ids: frozenset[int]
    grammar: Any = None  # a TurnGrammar when turns are constrained
    static: Any = None  # a StaticDecoder: fixed-shape buffers replayed as CUDA graphs (static_decode.py)


@dataclasses.dataclass
class DecodeOutput:
    """Per row: the generated tokens, their log-probs and whether the turn stopped by itself."""

    responses: list[list[int]]
    logprobs: list[list[float]]
    finished: list[bool]
    prefilled: int = 0  # prompt tokens actually run through the model
    mask_seconds: float = 0.0


class _GrammarRows:
    """One llguidance matcher per row; the same masking rules as ``GrammarLogitsProcessor``."""

    def __init__(self, grammar: Any, texts: Sequence[str | None]) -> None:
        self.grammar = grammar
        self.matchers = [grammar.matcher(t) if grammar is not None and t is not None else None for t in texts]
        self.done = [m is None for m in self.matchers]
        self.seconds = 0.0

    def mask(self, rows: Sequence[int], scores: torch.Tensor) -> torch.Tensor:
        """``scores`` (one row per entry of ``rows``) with the disallowed tokens at ``-inf``."""
        if all(self.done[r] for r in rows):
            return scores
        start = time.perf_counter()
        # the rows' masks on the grammar engine's thread pool: one row at a time is ~0.35 ms each
        matchers, done = [self.matchers[r] for r in rows], [self.done[r] for r in rows]
        allowed = self.grammar.allowed_rows(matchers, done, scores.shape[1])
        self.seconds += time.perf_counter() - start
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))

    def consume(self, rows: Sequence[int], tokens: Sequence[int]) -> None:
        """Advance each row's matcher; a row whose grammar ended (or broke) is left unmasked."""
        for r, token in zip(rows, tokens):
            m = self.matchers[r]
            if self.done[r] or m is None:
                continue
            if token == self.grammar.eos_id or not m.consume_token(token) or m.is_stopped():
                self.done[r] = True


def sample_tokens(
    scores: torch.Tensor,
    temperature: float,
    do_sample: bool,
    generator: torch.Generator | None = None,
    rows: Sequence[int] | None = None,
    batch: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row and its log-probability under ``softmax(scores / T)``.

    Sampling draws with ``torch.multinomial`` over all ``batch`` rows of the call, the
    finished ones included (as a one-hot row), exactly as ``model.generate`` did: a seed
    gives the same turns as before, however the rows were prefilled. Greedy decoding takes
    the argmax (its log-probs at T = 1).

    Args:
        scores: ``(len(rows), V)`` masked logits of the rows still decoding.
        temperature: Sampling temperature.
        do_sample: Sample (True) or take the argmax.
        generator: The seeded generator to draw from.
        rows: Which of the ``batch`` rows ``scores`` holds (default: all).
        batch: Rows of the whole call.
    """
    scaled = scores.float() / (temperature if do_sample else 1.0)
    logp = scaled.log_softmax(-1)
    if do_sample:
        index = torch.tensor(list(rows) if rows is not None else range(scores.shape[0]), device=scores.device)
        full = torch.zeros((batch or scores.shape[0], scores.shape[1]), device=scores.device)
        full[:, 0] = 1.0  # finished rows still take a draw, as in generate: the stream stays aligned
        full[index] = logp.exp()
        tokens = torch.multinomial(full, 1, generator=generator)[:, 0][index]
    else:
        tokens = scaled.argmax(-1)
    return tokens, logp.gather(1, tokens[:, None])[:, 0]


# ---------------------------------------------------------------------------- caches
def _cache_kwarg(model: Any) -> str:
    """``cache`` (transformers 5) or ``past_key_values`` (older): the forward's name for the cache."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class _RoomyLayer(DynamicLayer):
    """A cache layer whose keys and values are views into buffers with room to grow in place."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.is_initialized = True
        self.device = keys.device
        self._k, self._v, self._n = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Write the new positions into the buffer (grown by doubling when full)."""
        end = self._n + key_states.shape[-2]
        if end > self._k.shape[2]:
            grow = max(end, 2 * self._k.shape[2]) - self._k.shape[2]
            pad = (0, 0, 0, grow)
            self._k, self._v = torch.nn.functional.pad(self._k, pad), torch.nn.functional.pad(self._v, pad)
        self._k[:, :, self._n : end] = key_states
        self._v[:, :, self._n : end] = value_states
        self._n = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def select(self, index: torch.Tensor) -> None:
        """Keep only the batch rows ``index``."""
        self._k, self._v = self._k.index_select(0, index), self._v.index_select(0, index)
        self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]


def _new_cache(layers: list[Any] | None = None) -> Any:
    cache = DynamicCache()
    if layers is not None:
        cache.layers = layers
    return cache


def batch_cache(kvs: Sequence[KV], room: int) -> tuple[Any, list[int], int]:
    """One left-padded cache for the rows ``kvs`` with ``room`` free positions after them.

    Returns:
        ``(cache, pads, width)``: row ``i``'s positions start at ``pads[i]``; every row ends
        at ``width``. The padding holds zeros (never NaN: masked keys must not poison sums).
    """
    lengths = [kv[0][0].shape[2] for kv in kvs]
    width = max(lengths)
    pads = [width - n for n in lengths]
    layers = []
    for layer in range(len(kvs[0])):
        k0, v0 = kvs[0][layer]
        keys = k0.new_zeros((len(kvs), k0.shape[1], width + room, k0.shape[3]))
        values = v0.new_zeros((len(kvs), v0.shape[1], width + room, v0.shape[3]))
        for i, kv in enumerate(kvs):
            keys[i, :, pads[i] : width] = kv[layer][0][0]
            values[i, :, pads[i] : width] = kv[layer][1][0]
        layers.append(_RoomyLayer(keys, values, width))
    return _new_cache(layers), pads, width


def row_kv(cache: Any, row: int, start: int) -> KV:
    """A compact copy of batch row ``row``'s positions from ``start`` on (for the prefix store)."""
    return [(k[row : row + 1, :, start:].clone(), v[row : row + 1, :, start:].clone()) for k, v in _layers(cache)]


def _layers(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def prefill(
    model: Any, ids: Sequence[int], store: PrefixCache | None, cache_kwarg: str
) -> tuple[torch.Tensor, KV, int]:
    """Run ``ids`` through the model, starting from the longest stored prefix.

    Returns:
        ``(logits, kv, prefilled)``: the logits after the last token, the keys and values of
        all of ``ids`` (stored in ``store`` at once, for the rows after this one) and how many
        tokens went through the model.
    """
    device = next(model.parameters()).device
    hit, past = store.lookup(ids, limit=len(ids) - 1) if store is not None else (0, None)
    cache: Any = DynamicCache(ddp_cache_data=past) if past is not None else _new_cache()
    x = torch.tensor([list(ids[hit:])], dtype=torch.long, device=device)
    # logits_to_keep=1: a 1,000-token prompt would otherwise build a 1,000 x 49k logits matrix
    out = model(input_ids=x, use_cache=True, logits_to_keep=1, **{cache_kwarg: cache})
    kv = _layers(cache)
    if store is not None:
        store.insert(ids, kv)
    return out.logits[0, -1].float(), kv, len(ids) - hit


class _Batch:
    """The rows being decoded together: their shared cache, attention mask and outputs."""

    def __init__(self, model: Any, kvs: Sequence[KV], lengths: Sequence[int], settings: DecodeSettings) -> None:
        self.model, self.kwarg = model, _cache_kwarg(model)
        device = next(model.parameters()).device
        rows, steps = len(kvs), settings.max_new_tokens
        # room for a short turn; longer ones grow the buffers by doubling (most turns stop early)
        self.cache, self.pads, self.width = batch_cache(kvs, min(steps, 128))
        self.mask = torch.ones((rows, self.width + steps), dtype=torch.long, device=device)
        for i, pad in enumerate(self.pads):
            self.mask[i, :pad] = 0
        self.lengths = torch.tensor(list(lengths), dtype=torch.long, device=device)
        self.active = list(range(rows))
        self.tokens = torch.full((rows, steps), int(settings.tokenizer.pad_token_id or 0), dtype=torch.long)
        self.logprobs = torch.zeros((rows, steps))

    def record(self, t: int, tokens: torch.Tensor, logprobs: torch.Tensor) -> None:
        """Keep step ``t``'s token and log-prob of every active row."""
        rows = torch.tensor(self.active)
        self.tokens[rows, t] = tokens.cpu()
        self.logprobs[rows, t] = logprobs.cpu()

    def store(self, rows: Sequence[int], prompts: Sequence[Sequence[int]], t: int, store: PrefixCache) -> None:
        """Store the prompt + turn so far of ``rows`` (the tokens fed back: all but the last sampled)."""
        for r in rows:
            kv = row_kv(self.cache, self.active.index(r), self.pads[r])
            store.insert(list(prompts[r]) + self.tokens[r, :t].tolist(), kv)

    def drop(self, ended: Sequence[int]) -> bool:
        """Take the ``ended`` rows out of the batch; ``False`` when none is left."""
        keep = [r for r in self.active if r not in set(ended)]
        if keep and len(keep) < len(self.active):
            index = torch.tensor([self.active.index(r) for r in keep], device=self.mask.device)
            for layer in self.cache.layers:
                layer.select(index)
        self.active = keep
        return bool(keep)

    def step(self, t: int) -> torch.Tensor:
        """Feed step ``t``'s tokens of the active rows; the logits for step ``t + 1``."""
        rows = torch.tensor(self.active, device=self.mask.device)
        x = self.tokens[self.active, t : t + 1].to(self.mask.device)
        out = self.model(
            input_ids=x,
            attention_mask=self.mask[rows, : self.width + t + 1],
            position_ids=(self.lengths[rows] + t)[:, None],
            use_cache=True,
            **{self.kwarg: self.cache},
        )
        return out.logits[:, -1].float()


def decode_turns(
    model: Any,
    prompts: Sequence[Sequence[int]],
    grammars: Sequence[str | None],
    settings: DecodeSettings,
    store: PrefixCache | None,
    generator: torch.Generator,
) -> DecodeOutput:
    """Generate one turn per prompt (see the module docstring).

    Args:
        model: A causal LM (``transformers`` or a PEFT wrapper of one).
        prompts: Prompt token ids, one per row.
        grammars: Per row, the turn grammar text (``None``: unconstrained).
        settings: Budget, sampling, stops and the compiled grammars.
        store: Prefix store to read from and write to; ``None`` prefills every prompt in full.
        generator: Seeded generator on the model's device, for sampling.

    Returns:
        The turns, their log-probs and the number of prompt tokens prefilled.
    """
    firsts, kvs, prefilled = [], [], 0
    for ids in prompts:
        logits, kv, n = prefill(model, ids, store, _cache_kwarg(model))
        firsts.append(logits)
        kvs.append(kv)
        prefilled += n
    lengths = [len(p) for p in prompts]
    if settings.static is not None:
        batch = settings.static.batch(model, kvs, lengths, settings)
    else:
        batch = _Batch(model, kvs, lengths, settings)
    del kvs  # the batch holds its own copy; the store keeps what it needs
    grammar = _GrammarRows(settings.grammar, grammars)
    tracker = StopTracker(settings.tokenizer, settings.stops, 0, len(prompts), set(settings.eos_ids))
    logits, last = torch.stack(firsts), settings.max_new_tokens - 1
    for t in range(settings.max_new_tokens):
        rows = batch.active
        scores = grammar.mask(rows, logits)
        tokens, logprobs = sample_tokens(
            scores, settings.temperature, settings.do_sample, generator, rows, len(prompts)
        )
        grammar.consume(rows, tokens.tolist())
        batch.record(t, tokens, logprobs)
        tracker(batch.tokens[:, : t + 1], None)
        ended = rows if t == last else [r for r in rows if tracker.lengths[r]]
        if store is not None:
            batch.store(ended, prompts, t, store)
        if not batch.drop(ended):
            break
        logits = batch.step(t)
    return _output(batch, tracker, prefilled, grammar.seconds)


def _output(batch: _Batch, tracker: StopTracker, prefilled: int, mask_seconds: float) -> DecodeOutput:
    steps = batch.tokens.shape[1]
    lengths = [n or steps for n in tracker.lengths]
    return DecodeOutput(
        responses=[batch.tokens[i, :n].tolist() for i, n in enumerate(lengths)],
        logprobs=[batch.logprobs[i, :n].tolist() for i, n in enumerate(lengths)],
        finished=[bool(n) for n in tracker.lengths],
        prefilled=prefilled,
        mask_seconds=mask_seconds,
    )
