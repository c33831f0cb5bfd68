"""``HFPolicy``: a Hugging Face causal LM that plays memory environments.

It renders each observation (chat messages) with the tokenizer's chat template, generates
one assistant turn per environment (batched across a vector env), and keeps what training
needs for every turn: prompt ids, response ids and the per-token log-probabilities under
the sampling distribution (``logits / temperature``; rollouts sample with plain
temperature, no top-k/top-p, so that distribution is exactly the one the trainer
recomputes).

Generation stops at the model's end-of-turn token or right after a closing
``</tool_call>``, ``</answer>`` or ``</action>`` tag, whichever comes first; the stop
position is tracked per sequence, so padding after a finished turn never enters the data.

Turns are decoded by :func:`agemem_gym.policies.llm.decode.decode_turns`, which prefills
each prompt from the longest prefix it has already computed (the previous turn of the same
episode, a sibling rollout of the same GRPO group, the shared system prompt), so a
30-turn episode prefills its unique tokens once instead of its whole context every turn.
``prefill_tokens`` / ``prompt_tokens`` count what was run and what was asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agemem_gym.error import InvalidConfig, missing_dependency
from agemem_gym.policies.base import BasePolicy, Observation
from agemem_gym.tools import lists_tools, tool_schemas
from agemem_gym.typecheck import NonNegativeFloat, NonNegativeInt, PositiveInt

if TYPE_CHECKING:
    from agemem_gym.policies.llm.prefix_cache import PrefixCache

__all__ = [
    "HFPolicy",
    "TurnRecord",
    "DEFAULT_STOPS",
    "chat_messages",
    "make_hf_policy",
    "render_prompt",
    "wants_tool_schemas",
]

DEFAULT_STOPS = ("</tool_call>", "</answer>", "</action>")


@dataclasses.dataclass(frozen=True)
class TurnRecord:
    """One generated turn with what the trainer needs.

    Attributes:
        prompt_ids: Token ids of the rendered observation (chat template applied).
        response_ids: Generated token ids (end-of-turn token included when produced).
        logprobs: Log-probability of each response token under the sampling distribution.
        text: The decoded turn.
        finished: False when the turn hit ``max_new_tokens`` before stopping.
        grammar: The turn grammar it was sampled under (``None``: unconstrained); the trainer
            replays it to apply the same masks.
    """

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finished: bool
    grammar: str | None = None


def chat_messages(observation: Observation) -> list[dict[str, str]]:
    """The observation as plain ``{"role", "content"}`` chat messages (what every backend is sent).

    Args:
        observation: The env's observation (chat messages).

    Returns:
        Fresh dicts holding only ``role`` and ``content``.
    """
    return [{"role": m["role"], "content": m["content"]} for m in observation]


def wants_tool_schemas(messages: Sequence[Mapping[str, str]], tools: bool | str = "auto") -> bool:
    """Whether to pass the tool schemas (``tools=``) on top of ``messages``.

    Args:
        messages: Chat messages.
        tools: ``True``, ``False`` or ``"auto"`` (only when the system prompt does not list
            the tools already).

    Returns:
        The decision.
    """
    listed = bool(messages) and messages[0]["role"] == "system" and lists_tools(messages[0]["content"])
    return tools is True or (tools == "auto" and not listed)


def render_prompt(tokenizer: Any, observation: Observation, tools: bool | str = "auto") -> str:
    """Render chat messages with the tokenizer's chat template, generation prompt added.

    Args:
        tokenizer: A tokenizer with a chat template.
        observation: The env's observation (chat messages).
        tools: Pass the six tool schemas as ``tools=``: ``True``, ``False`` or ``"auto"`` (only
            when the system prompt does not list them already).

    Returns:
        The prompt text.
    """
    messages = chat_messages(observation)
    use_tools = wants_tool_schemas(messages, tools)
    return tokenizer.apply_chat_template(
        messages, tools=tool_schemas() if use_tools else None, tokenize=False, add_generation_prompt=True
    )


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("torch / transformers", "train") from exc
    return torch


class _StopTracker:
    """A per-sequence stopping criterion that records where each turn ended."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int, batch: int, eos_ids: set[int]) -> None:
        torch = _torch()
        self.tokenizer = tokenizer
        self.stops = tuple(stops)
        self.prompt_len = prompt_len
        self.eos_ids = eos_ids
        self.lengths = [0] * batch  # 0 = not finished yet
        self.done = torch.zeros(batch, dtype=torch.bool)
        self.window = 12  # tokens decoded to look for a stop string

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        generated = input_ids.shape[1] - self.prompt_len
        for i in range(input_ids.shape[0]):
            if self.lengths[i]:
                continue
            last = int(input_ids[i, -1])
            # only generated tokens: the prompt may end with an earlier turn's closing tag
            start = max(self.prompt_len, input_ids.shape[1] - self.window)
            tail = self.tokenizer.decode(input_ids[i, start:].tolist(), skip_special_tokens=False)
            if last in self.eos_ids or any(s in tail for s in self.stops):
                self.lengths[i] = generated
                self.done[i] = True
        return self.done.to(input_ids.device).clone()


def _check_full_attention(model: Any) -> None:
    """The decode loop keeps every position of every layer: no sliding-window or linear layers."""
    config: Any = getattr(model, "config", None)
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise InvalidConfig(f"HFPolicy decodes full-attention models only; this one has layers {sorted(kinds)}")


def _check_arguments(
    max_new_tokens: int,
    batch_size: int,
    prefix_cache_entries: int,
    do_sample: bool,
    temperature: float,
    tools: bool | str,
    static_decode: bool | str,
) -> None:
    """Raise :class:`InvalidConfig` for an :class:`HFPolicy` argument out of its range."""
    if max_new_tokens < 1 or batch_size < 1 or prefix_cache_entries < 1:
        raise InvalidConfig("max_new_tokens, batch_size and prefix_cache_entries must be >= 1")
    if do_sample and temperature <= 0:
        raise InvalidConfig(f"temperature must be > 0 when sampling, got {temperature}")
    for name, value in (("tools", tools), ("static_decode", static_decode)):
        if value not in (True, False, "auto"):
            raise InvalidConfig(f"{name} must be True, False or 'auto', got {value!r}")


class HFPolicy(BasePolicy):
    """A transformers causal LM as a policy for memory environments.

    Args:
        model: A ``transformers`` causal LM.
        tokenizer: Its tokenizer (with a chat template).
        max_new_tokens: Longest turn (the paper's response budget is 2,048).
        temperature: Sampling temperature (the released code trains at 0.6).
        do_sample: Sample (True) or decode greedily.
        tools: Pass the six tool schemas to the chat template: ``True``, ``False``, or
            ``"auto"`` (only when the system prompt does not already list them).
        stop_strings: Stop right after any of these.
        batch_size: Most turns generated in one call.
        seed: Seeds sampling (each call uses ``seed`` plus a call counter).
        constrained: Constrain every turn to the turn grammar
            (:mod:`agemem_gym.policies.llm.constrained`): ``<think>`` then tool calls that match the
            six schemas (memory ids among the env's live ones), an answer, or one of the valid
            actions the env lists. Off by default for full-size models (they learn the format);
            on for small ones.
        grammar_limits: :func:`~agemem_gym.policies.llm.constrained.turn_lark` limits (default:
            :func:`~agemem_gym.policies.llm.constrained.budget_limits` of ``max_new_tokens``).
        prefix_cache: Reuse the keys and values of earlier prompts and turns
            (:mod:`agemem_gym.policies.llm.prefix_cache`): each prompt prefills only the tokens
            after its longest common prefix with a stored sequence. Tokens and log-probs are
            those of a full prefill up to float rounding; ``False`` prefills every prompt in full.
        prefix_cache_entries: Fewest sequences stored; a call with more observations raises it to
            their number plus ``batch_size`` (one per stream is enough: a stream's next turn
            replaces its last). Each holds its whole context's keys and values.
        static_decode: Decode with fixed-shape buffers whose step is replayed as a CUDA graph
            (:mod:`agemem_gym.policies.llm.static_decode`; same tokens, log-probs equal up to
            float rounding): ``"auto"`` on a CUDA model with sdpa or eager attention, ``True``
            always (on the CPU the static step runs eagerly, slower: for checks), ``False`` never.

    Attributes:
        prompt_tokens: Prompt tokens requested so far (every turn's full prompt).
        prefill_tokens: Prompt tokens actually run through the model so far.
    """

    name = "hf"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: PositiveInt = 256,
        temperature: NonNegativeFloat = 0.6,
        do_sample: bool = True,
        tools: bool | str = "auto",
        stop_strings: Sequence[str] = DEFAULT_STOPS,
        batch_size: PositiveInt = 8,
        seed: NonNegativeInt = 0,
        constrained: bool = False,
        grammar_limits: Mapping[str, Any] | None = None,
        prefix_cache: bool = True,
        prefix_cache_entries: PositiveInt = 16,
        static_decode: bool | str = "auto",
    ) -> None:
        _torch()
        _check_arguments(max_new_tokens, batch_size, prefix_cache_entries, do_sample, temperature, tools, static_decode)
        if getattr(tokenizer, "chat_template", None) is None:
            raise InvalidConfig("the tokenizer has no chat template; set tokenizer.chat_template first")
        _check_full_attention(model)
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.do_sample = bool(do_sample)
        self.tools = tools
        self.stop_strings = tuple(stop_strings)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._calls = 0
        self.last_records: list[TurnRecord] = []
        self.eos_ids = self._eos_ids()
        self.constrained = bool(constrained)
        self.grammar: Any = None
        if self.constrained:
            from agemem_gym.policies.llm.constrained import TurnGrammar, budget_limits

            vocab = int(getattr(model.config, "vocab_size", 0) or len(tokenizer))
            # a turn the grammar allows must fit the token budget; explicit limits win
            limits = {**budget_limits(self.max_new_tokens), **dict(grammar_limits or {})}
            self.grammar = TurnGrammar(tokenizer, vocab, **limits)
        self.mask_seconds = 0.0  # time spent computing grammar masks (for overhead reports)
        self.prompt_tokens = 0
        self.prefill_tokens = 0
        self.prefix_cache_entries = int(prefix_cache_entries)
        self.prefix_cache: PrefixCache | None = None
        if prefix_cache:
            from agemem_gym.policies.llm.prefix_cache import PrefixCache

            self.prefix_cache = PrefixCache(prefix_cache_entries)
        self._stamp = self._weights_stamp()
        self.static_decode = static_decode
        self.static_decoder: Any = None  # built on the first call that decodes statically

    @classmethod
    def from_pretrained(cls, name_or_path: str = "smollm2", **kwargs: Any) -> HFPolicy:
        """Load ``"smollm2"``, ``"tiny"`` or a local model folder (see :mod:`agemem_gym.policies.llm.models`)."""
        from agemem_gym.policies.llm.models import load_model

        model, tok = load_model(name_or_path)
        return cls(model, tok, **kwargs)

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream (trainers reseed per step so resumed runs replay exactly).

        The prefix cache starts empty again too: cached and full prefills agree only up to
        float rounding, so a replay must not depend on what an earlier stream left there.
        """
        self.seed, self._calls = int(seed), 0
        self.clear_prefix_cache()

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids |= set(eos) if isinstance(eos, (list, tuple)) else {eos}
        return {int(i) for i in ids if i is not None}

    # ------------------------------------------------------------------ rendering
    def render(self, observation: Observation) -> str:
        """The prompt text for ``observation`` (chat template, generation prompt added)."""
        return render_prompt(self.tokenizer, observation, self.tools)

    def encode(self, observation: Observation) -> list[int]:
        """Prompt token ids for ``observation``."""
        return self.tokenizer(self.render(observation), add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------ acting
    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Generate one turn."""
        return self.act_batch([observation], [info])[0]

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        """Generate one turn per observation; the records land in :attr:`last_records`."""
        self.last_records = self.generate(observations, infos)
        return [r.text for r in self.last_records]

    def grammar_text(self, info: Mapping[str, Any] | None, observation: Observation | None = None) -> str | None:
        """The grammar a turn is sampled under (``None`` when unconstrained).

        With the observation, memory-id arguments may name only the live ids it shows.
        """
        if not self.constrained:
            return None
        return self.grammar.text_for(info, observation)

    def generate(
        self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]] | None = None
    ) -> list[TurnRecord]:
        """Generate turns for ``observations`` in chunks of ``batch_size``.

        Args:
            observations: One chat context per turn.
            infos: The matching env ``info`` dicts (the constrained grammar reads
                ``info["valid_actions"]`` and ``info["memory_ids"]``).

        Returns:
            One record per observation.
        """
        prompts = [self.encode(o) for o in observations]
        if self.prefix_cache is not None:
            # one sequence per stream, plus the chunk's prompts in flight: fewer would evict a
            # stream's context before its next turn
            self.prefix_cache.max_entries = max(self.prefix_cache_entries, len(prompts) + self.batch_size)
        grammars = [self.grammar_text(i, o) for i, o in zip(infos or [{}] * len(prompts), observations)]
        records: list[TurnRecord] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            records += self._generate_chunk(prompts[start:end], grammars[start:end])
        return records

    def _generate_chunk(self, prompts: list[list[int]], grammars: list[str | None]) -> list[TurnRecord]:
        torch = _torch()
        from agemem_gym.policies.llm.decode import DecodeSettings, decode_turns

        if self.prefix_cache is not None and self._weights_stamp() != self._stamp:
            self.prefix_cache.clear()  # keys and values computed with other weights
            self._stamp = self._weights_stamp()
        settings = DecodeSettings(
            self.tokenizer,
            self.max_new_tokens,
            self.temperature,
            self.do_sample,
            self.stop_strings,
            frozenset(self.eos_ids),
            self.grammar,
            self._static_decoder(),
        )
        device = next(self.model.parameters()).device
        # the stream model.generate drew from after torch.manual_seed (on the GPU too)
        generator = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + self._calls)
        self._calls += 1
        with torch.no_grad():
            out = decode_turns(self.model, prompts, grammars, settings, self.prefix_cache, generator)
        self.mask_seconds += out.mask_seconds
        self.prompt_tokens += sum(len(p) for p in prompts)
        self.prefill_tokens += out.prefilled
        records = []
        for i, prompt in enumerate(prompts):
            resp = out.responses[i]
            text = self.tokenizer.decode([t for t in resp if t not in self.eos_ids], skip_special_tokens=False)
            records.append(
                TurnRecord(tuple(prompt), tuple(resp), tuple(out.logprobs[i]), text, out.finished[i], grammars[i])
            )
        return records

    def _static_decoder(self) -> Any:
        """The static decoder when this call decodes statically (see ``static_decode``), else ``None``."""
        from agemem_gym.policies.llm.static_decode import StaticDecoder, supports_static

        on_gpu = next(self.model.parameters()).device.type == "cuda"
        if not (self.static_decode is True or (self.static_decode == "auto" and on_gpu)):
            return None
        if not supports_static(self.model):
            return None
        if self.static_decoder is None:
            self.static_decoder = StaticDecoder()
        return self.static_decoder

    def _weights_stamp(self) -> tuple[tuple[int, int, int], ...]:
        """Identity, storage and in-place version of every parameter (a step, a load or a move changes it)."""
        return tuple((id(p), p.data_ptr(), p._version) for p in self.model.parameters())

    def clear_prefix_cache(self) -> None:
        """Forget the stored prefixes (done automatically when the weights change)."""
        if self.prefix_cache is not None:
            self.prefix_cache.clear()


_SMALL_MODELS = ("smollm2", "tiny")  # byte-level tokenizers llguidance can drive


def make_hf_policy(model: str = "smollm2", constrained: bool | None = None, **kwargs: Any) -> HFPolicy:
    """The ``hf`` entry of :func:`agemem_gym.policies.make`.

    Args:
        model: ``"smollm2"``, ``"tiny"``, ``"tiny-vocab"`` or a local Hugging Face folder.
        constrained: Grammar-constrained turns; default on for the bundled small models,
            off for a model folder and for "tiny-vocab" (its word-level tokenizer has no byte
            decoding for the grammar engine).
        **kwargs: :class:`HFPolicy` arguments.

    Returns:
        The policy.
    """
    if constrained is None:
        constrained = model in _SMALL_MODELS
    return HFPolicy.from_pretrained(model, constrained=constrained, **kwargs)
