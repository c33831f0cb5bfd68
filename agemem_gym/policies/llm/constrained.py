"""Grammar-constrained turns: small models produce only well-formed memory tool calls.

:class:`TurnGrammar` compiles the turn grammar with llguidance (a Lark grammar with an
inline JSON schema built from the tool table, the six tools by default)::

    <think> free text </think>
    then <tool_call> [1-4 calls: names, argument names and types, required keys] </tool_call>
      or <answer> free text </answer>
      or <action> one of the valid actions </action>      (when the env lists them)

Memory-id arguments (those a tool declares in :attr:`~agemem_gym.tools.Tool.memory_ids`:
``Update_memory`` / ``Delete_memory``'s ``memory_id``) are limited to the env's live ids,
``info["memory_ids"]``; a tool that requires one is left out while the store is empty.

:class:`GrammarLogitsProcessor` masks the logits during ``generate`` (one processor per
call; rows may use different grammars, e.g. different valid actions). Training stays
exact: the sampling distribution is ``softmax(mask(logits) / T)``, the mask depends only
on the token prefix, so :meth:`TurnGrammar.masks` replays a sampled turn through a fresh
matcher and the trainer applies the same masks to the policy *and* the reference logits.
At zero update the ratio is then exactly 1 (the tests check it).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from agemem_gym.error import InvalidConfig, missing_dependency
from agemem_gym.memory.ltm_file import ID_PATTERN
from agemem_gym.tools import DEFAULT_TOOLS, Tool, ToolTable
from agemem_gym.tools.memory_ids import MEMORY_IDS_CAP

__all__ = ["TurnGrammar", "GrammarLogitsProcessor", "turn_lark", "calls_schema", "info_memory_ids", "seen_memory_ids"]

_MAX_LISTED_ACTIONS = 4000
# the grammar's widest bounds: turn_lark's defaults and the caps of budget_limits
MAX_CALLS = 4
MAX_THINK_CHARS = 400
MAX_TEXT_CHARS = 300
MAX_STRING_CHARS = 300


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("llguidance", "train") from exc
    return llguidance


def _llguidance_torch() -> Any:
    _llguidance()  # the install hint
    import llguidance.torch

    return llguidance.torch


def _argument_schema(kind: str, max_chars: int, max_top_k: int, pattern: str | None = None) -> dict[str, Any]:
    if kind == "string" and pattern is not None:
        return {"type": "string", "pattern": pattern}
    if kind == "string":
        return {"type": "string", "minLength": 1, "maxLength": max_chars}
    if kind == "integer":
        return {"type": "integer", "minimum": 1, "maximum": max_top_k}
    if kind == "boolean":
        return {"type": "boolean"}
    # metadata / metadata_filter: a few short string tags
    return {"type": "object", "additionalProperties": {"type": "string", "maxLength": 60}, "maxProperties": 4}


def _call_schema(
    tool: Tool, max_string_chars: int, max_top_k: int, memory_ids: Sequence[str] | None
) -> dict[str, Any] | None:
    """Schema of one call of ``tool``; ``None`` when it requires a memory id and there is none."""
    props = {}
    for key, spec in tool.parameters.items():
        if key in tool.memory_ids and memory_ids is not None:
            if not memory_ids:
                if key in tool.required:
                    return None
                continue  # an optional id with nothing to name: leave the argument out
            props[key] = {"enum": list(memory_ids)}
        else:
            props[key] = _argument_schema(spec["type"], max_string_chars, max_top_k, tool.patterns.get(key))
    args = {
        "type": "object",
        "properties": props,
        "required": [r for r in tool.required if r in props],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": args},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def calls_schema(
    max_calls: int = MAX_CALLS,
    max_string_chars: int = MAX_STRING_CHARS,
    max_top_k: int = 20,
    *,
    tools: ToolTable = DEFAULT_TOOLS,
    memory_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """JSON schema of the ``<tool_call>`` array, derived from the tool table ``tools``.

    ``memory_ids`` (``None``: unknown, any string) limits the memory-id arguments to these
    ids; when it is empty, the tools that require one are left out of ``items.anyOf``.
    """
    ids = None if memory_ids is None else list(dict.fromkeys(memory_ids))
    variants = [v for v in (_call_schema(t, max_string_chars, max_top_k, ids) for t in tools) if v is not None]
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": max_calls,
        "items": {"anyOf": variants},
        # json.dumps layout: no free whitespace for a small model to wander into
        "x-guidance": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
    }


def turn_lark(
    valid_actions: Sequence[str] | None = None,
    *,
    memory_ids: Sequence[str] | None = None,
    max_calls: int = MAX_CALLS,
    max_think_chars: int = MAX_THINK_CHARS,
    max_text_chars: int = MAX_TEXT_CHARS,
    max_string_chars: int = MAX_STRING_CHARS,
    max_top_k: int = 20,
    tools: ToolTable = DEFAULT_TOOLS,
    allow_tools: bool = True,
) -> str:
    """The Lark grammar of one turn.

    Args:
        valid_actions: When given (interactive Stage 3), ``<action>`` is allowed and limited
            to these strings (a list longer than 4,000 falls back to free text).
        memory_ids: The ids a memory-id argument may name (see :meth:`TurnGrammar.text_for`);
            with none, the tools that require one are not offered. ``None`` (unknown) allows
            any string; a list longer than ``MEMORY_IDS_CAP`` is cut to its last (newest) ids.
        max_calls: Most tool calls per turn.
        max_think_chars: Longest ``<think>`` text.
        max_text_chars: Longest ``<answer>`` / free ``<action>`` text.
        max_string_chars: Longest string argument.
        max_top_k: Largest ``top_k``.
        tools: The tool table whose calls ``<tool_call>`` may hold.
        allow_tools: ``False`` leaves ``<tool_call>`` out (the last round of the query stage:
            a turn that is not an answer there ends the episode unanswered).

    Returns:
        Grammar text for ``llguidance.LLMatcher.grammar_from_lark``.
    """
    if memory_ids is not None and len(memory_ids) > MEMORY_IDS_CAP:
        # a huge alternation costs more to compile than it saves; the newest ids, never free text
        memory_ids = list(memory_ids)[-MEMORY_IDS_CAP:]
    schema = calls_schema(max_calls, max_string_chars, max_top_k, tools=tools, memory_ids=memory_ids)
    # a table of id tools only, with an empty store, has no call to offer
    kinds = ["tool"] if allow_tools and schema["items"]["anyOf"] else []
    kinds += ["answer"] + (["action"] if valid_actions is not None else [])
    # [^<] keeps tags and special tokens (<|im_end|> ...) out of free text
    lines = [
        'start: "<think>" THINK "</think>" (' + " | ".join(kinds) + ")",
        f"THINK: /[^<]{{0,{max_think_chars}}}/",
        f'tool: "<tool_call>" %json {json.dumps(schema)} "</tool_call>"',
        'answer: "<answer>" TEXT "</answer>"',
        f"TEXT: /[^<]{{1,{max_text_chars}}}/",
    ]
    if valid_actions is not None:
        acts = [a for a in dict.fromkeys(valid_actions) if a]
        if acts and len(acts) <= _MAX_LISTED_ACTIONS:
            lines.append('action: "<action>" (' + " | ".join(json.dumps(a) for a in acts) + ') "</action>"')
        else:
            lines.append('action: "<action>" TEXT "</action>"')
    return "\n".join(lines) + "\n"


def info_memory_ids(info: Mapping[str, Any] | None) -> list[str] | None:
    """The live memory ids an env ``info`` lists, or ``None`` when it lists none.

    A store larger than :data:`~agemem_gym.tools.memory_ids.MEMORY_IDS_CAP` lists only its
    newest ids (``len(memory_ids) < info["ltm_size"]``); they are returned as they are.
    """
    ids = (info or {}).get("memory_ids")
    return None if ids is None else [str(i) for i in ids]


_MEMORY_ID = re.compile(rf"\b{ID_PATTERN}\b")


def seen_memory_ids(observation: Sequence[Mapping[str, str]]) -> list[str]:
    """The memory ids the environment has shown in ``observation``, oldest first, each once.

    Ids in the agent's own (``assistant``) turns do not count: an id the agent wrote without
    having been shown it was invented.
    """
    found = (i for m in observation if m.get("role") != "assistant" for i in _MEMORY_ID.findall(m.get("content", "")))
    return list(dict.fromkeys(found))


CHARS_PER_TOKEN = 3
"""A conservative characters-per-token rate for sizing free text to a token budget (JSON and
ids tokenize shorter than prose)."""


_PROBE = ' "name": "x", the answer is 42.'
"""Text whose tokens must read the same to the grammar engine as to the tokenizer (spaces and quotes
are where a byte-level vocabulary's ``Ġ`` tokens live)."""


def check_token_bytes(tokenizer: Any, lltok: Any) -> None:
    """Refuse a grammar engine that reads the tokenizer's tokens as other bytes than it decodes them to.

    A tokenizer whose saved decoder is not byte-level while its vocabulary is (``Ġ`` for a space)
    makes the engine take ``Ġ"`` for the bytes ``C4 A0 22``: every mask is then wrong, sampling
    stops with parser errors and the trainer's mask replay fails.

    Raises:
        InvalidConfig: The two disagree on a token of :data:`_PROBE`.
    """
    for token in tokenizer(_PROBE, add_special_tokens=False)["input_ids"]:
        engine, own = bytes(lltok.decode_bytes([token])), tokenizer.decode([token]).encode("utf-8")
        if engine != own:
            raise InvalidConfig(
                f"the grammar engine reads token {token} as {engine!r} but the tokenizer decodes it to {own!r}: "
                "its tokenizer.json decoder does not match its vocabulary (a byte-level vocabulary needs a "
                "ByteLevel decoder); re-save the tokenizer or load it with another transformers version"
            )


def budget_limits(max_new_tokens: int) -> dict[str, int]:
    """:func:`turn_lark` limits under which a whole turn fits ``max_new_tokens``.

    The grammar cannot count tokens, so free text is bounded in characters: the thought takes
    at most a quarter of the budget, each string argument a quarter, the answer a third, and
    the number of calls is what the budget holds. A turn cut by the token limit is a format
    error; these bounds keep a constrained turn from running into it (with the default 400 /
    300-character bounds, SmolLM2 at 160 tokens had a quarter of its tool turns cut).

    Args:
        max_new_tokens: The policy's token budget per turn.

    Returns:
        ``max_think_chars``, ``max_string_chars``, ``max_text_chars`` and ``max_calls``, never
        above the defaults.
    """
    chars = CHARS_PER_TOKEN * int(max_new_tokens)
    return {
        "max_think_chars": max(20, min(MAX_THINK_CHARS, chars // 4)),
        "max_string_chars": max(20, min(MAX_STRING_CHARS, chars // 4)),
        "max_text_chars": max(20, min(MAX_TEXT_CHARS, chars // 3)),
        "max_calls": max(1, min(MAX_CALLS, chars // 300)),
    }


class TurnGrammar:
    """Compiled turn grammars for one tokenizer (build once; llguidance's tokenizer takes ~1.5 s).

    Args:
        tokenizer: The policy's Hugging Face tokenizer.
        vocab_size: Width of the model's logits (may exceed ``len(tokenizer)``).
        tools: The tool table whose calls the grammar allows (default: the six tools).
        **limits: :func:`turn_lark` limits (``max_calls``, ``max_think_chars`` ...).
    """

    def __init__(
        self, tokenizer: Any, vocab_size: int | None = None, *, tools: ToolTable = DEFAULT_TOOLS, **limits: Any
    ) -> None:
        llg = _llguidance()
        self.tools = tools
        self.vocab_size = int(vocab_size or len(tokenizer))
        self.eos_id = tokenizer.eos_token_id
        self.limits = limits
        self.lltok = llg.hf.from_tokenizer(tokenizer, n_vocab=self.vocab_size)
        check_token_bytes(tokenizer, self.lltok)
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._bits = torch.arange(32, dtype=torch.int32)
        self._executor = llg.LLExecutor()

    def text(self, valid_actions: Sequence[str] | None = None, memory_ids: Sequence[str] | None = None) -> str:
        """Grammar text for a turn (with ``<action>`` when ``valid_actions`` is given; see :func:`turn_lark`)."""
        return turn_lark(valid_actions, memory_ids=memory_ids, tools=self.tools, **self.limits)

    def text_for(self, info: Mapping[str, Any] | None, observation: Sequence[Mapping[str, str]] | None = None) -> str:
        """Grammar text for a turn taken after an env step that returned ``observation`` and ``info``.

        Reads ``info["valid_actions"]`` (interactive envs), the memory ids a call may name
        (:meth:`memory_ids_for`) and, in the query stage (``info["stage"] == 3``), whether one
        round is left (``info["rounds_left"] == 1``): that turn must answer (or act), since any
        other ends the episode unanswered. Small models rarely choose to answer on their own.
        """
        info = info or {}
        actions = info.get("valid_actions")
        last = info.get("stage") == 3 and info.get("rounds_left") == 1
        valid = list(actions) if actions is not None else None
        ids = self.memory_ids_for(info, observation)
        if last:
            return turn_lark(valid, memory_ids=ids, tools=self.tools, allow_tools=False, **self.limits)
        return self.text(valid, ids)

    @staticmethod
    def memory_ids_for(
        info: Mapping[str, Any] | None, observation: Sequence[Mapping[str, str]] | None
    ) -> list[str] | None:
        """The ids a memory-id argument may name: live ones the agent has been shown.

        The env's ``info["memory_ids"]`` lists every live id, which the agent has not
        necessarily seen (a memory added in Stage 1 whose id left the context at the Stage-2
        reset): offering those would hand a policy privileged information. With the
        observation, the ids it shows (:func:`seen_memory_ids`) that are still live (all
        shown ids when the live list was cut at the cap); without it, the live list.
        """
        live = info_memory_ids(info)
        if observation is None:
            return live
        seen = seen_memory_ids(observation)
        cut = live is not None and len(live) < int((info or {}).get("ltm_size", len(live)))
        if live is None or cut:
            return seen
        alive = set(live)
        return [i for i in seen if i in alive]

    def _grammar(self, text: str) -> Any:
        if text not in self._compiled:
            llg = _llguidance()
            grammar = llg.LLMatcher.grammar_from_lark(text)
            is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar, self.lltok)
            if is_error:
                raise InvalidConfig(f"invalid turn grammar: {messages[0] if messages else 'unknown error'}")
            self._compiled[text] = grammar
            if len(self._compiled) > 256:  # valid-action lists change every step in worlds
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(text)
        return self._compiled[text]

    def matcher(self, text: str) -> Any:
        """A fresh matcher at the start of a turn."""
        return _llguidance().LLMatcher(self.lltok, self._grammar(text))

    def _unpack(self, words: torch.Tensor) -> torch.Tensor:
        """``(B, W)`` int32 bitmask words (bit ``j`` of word ``w`` is token ``32w + j``) → ``(B, V)`` bool."""
        return ((words[:, :, None] >> self._bits) & 1).flatten(1)[:, : self.vocab_size].bool()

    def allowed(self, matcher: Any) -> torch.Tensor:
        """``(V,)`` bool: the tokens the grammar allows next."""
        words = torch.frombuffer(bytearray(matcher.compute_bitmask()), dtype=torch.int32)
        return self._unpack(words[None])[0]

    def allowed_rows(self, matchers: Sequence[Any], done: Sequence[bool], width: int) -> torch.Tensor:
        """``(len(matchers), width)`` bool: each live matcher's next tokens; done rows allow everything.

        The rows are computed in parallel by the grammar engine's thread pool: one row at a
        time costs milliseconds per row per token, which dominates a batched rollout's decode.
        """
        llg_torch = _llguidance_torch()
        live = [(m, i) for i, (m, d) in enumerate(zip(matchers, done)) if not d]
        allowed = torch.ones((len(matchers), width), dtype=torch.bool)
        if not live:
            return allowed
        words = llg_torch.allocate_token_bitmask(len(matchers), self.vocab_size)  # (B, ceil(V / 32)) int32
        llg_torch.fill_next_token_bitmask_par(self._executor, live, words)
        bits = self._unpack(words)  # (B, V)
        n = min(width, self.vocab_size)
        rows = torch.tensor([i for _, i in live])
        allowed[rows] = False
        allowed[rows, :n] = bits[rows, :n]
        return allowed

    def masks_many(self, texts: Sequence[str], token_lists: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """:meth:`masks` of many sampled turns at once, on the engine's thread pool.

        All turns advance in lockstep; each step's masks and token consumptions are computed in
        parallel.

        Args:
            texts: The grammar text of each turn.
            token_lists: The sampled tokens of each turn.

        Returns:
            One ``(len(tokens), V)`` bool tensor per turn, equal to :meth:`masks`'s.

        Raises:
            ValueError: A token its grammar rejects.
        """
        llg_torch = _llguidance_torch()
        matchers = [self.matcher(t) for t in texts]
        rows: list[list[torch.Tensor]] = [[] for _ in texts]
        for step in range(max((len(t) for t in token_lists), default=0)):
            live = [i for i, tokens in enumerate(token_lists) if step < len(tokens)]
            words = llg_torch.allocate_token_bitmask(len(texts), self.vocab_size)
            llg_torch.fill_next_token_bitmask_par(self._executor, [(matchers[i], i) for i in live], words)
            bits = self._unpack(words)
            consumed = llg_torch.consume_token_par(
                self._executor, [(matchers[i], int(token_lists[i][step])) for i in live]
            )
            for i, ok in zip(live, consumed):
                if not ok:
                    token = token_lists[i][step]
                    raise ValueError(f"token {token} is not allowed by the turn grammar: {matchers[i].get_error()}")
                rows[i].append(bits[i])
        return [torch.stack(r) if r else torch.zeros((0, self.vocab_size), dtype=torch.bool) for r in rows]

    def masks(self, text: str, tokens: Sequence[int]) -> torch.Tensor:
        """``(len(tokens), V)`` bool: row ``t`` holds the tokens allowed before token ``t``.

        Replays a sampled turn through a fresh matcher; a token the grammar rejects raises.
        """
        matcher, rows = self.matcher(text), []
        for t in tokens:
            rows.append(self.allowed(matcher))
            if not matcher.consume_token(int(t)):
                raise ValueError(f"token {t} is not allowed by the turn grammar: {matcher.get_error()}")
        if not rows:
            return torch.zeros((0, self.vocab_size), dtype=torch.bool)
        return torch.stack(rows)


class GrammarLogitsProcessor:
    """A ``transformers`` logits processor that keeps each row of a batch inside its grammar.

    Args:
        grammar: The compiled grammars.
        texts: One grammar text per batch row.
    """

    def __init__(self, grammar: TurnGrammar, texts: Sequence[str]) -> None:
        self.grammar = grammar
        self.texts = list(texts)
        self.matchers: list[Any] | None = None
        self.done: list[bool] = []
        self.mask_seconds = 0.0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Mask ``scores`` (``(B, V)``) to the tokens each row's grammar allows."""
        import time

        start = time.perf_counter()
        if self.matchers is None:
            self.matchers = [self.grammar.matcher(t) for t in self.texts]
            self.done = [False] * len(self.texts)
        else:
            for i, token in enumerate(input_ids[:, -1].tolist()):
                if self.done[i]:
                    continue
                m = self.matchers[i]
                if token == self.grammar.eos_id or not m.consume_token(token) or m.is_stopped():
                    self.done[i] = True  # finished (or padded) rows are left unmasked
        allowed = self.grammar.allowed_rows(self.matchers, self.done, scores.shape[1])
        self.mask_seconds += time.perf_counter() - start
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))
