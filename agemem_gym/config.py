"""Frozen configuration dataclasses: one per concern, validated on construction.

``EnvConfig`` shapes an episode (stages, budgets, limits), ``MemoryConfig`` the memory tools,
``RewardConfig`` the trajectory reward. Paper defaults are the defaults; where the paper
contradicts itself (``../DESIGN`` §4) the alternative is a preset or a field.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.typecheck import short_repr

__all__ = [
    "EnvConfig",
    "MemoryConfig",
    "RewardConfig",
    "REWARD_PRESETS",
    "check_field_types",
    "coerce_config",
]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidConfig(message)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the type hint (the hints config dataclasses use, not all of typing)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in args
    if origin is Union or origin is types.UnionType:
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # True is an int to Python, but never a count
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return isinstance(value, Mapping)
    return True  # a hint this checker does not model: the field's own checks apply


def _describe(hint: Any) -> str:
    """A type hint in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "none"
    if origin is tuple:
        return "a list" if Ellipsis in args else f"a list of {len(args)} values"
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return "a table (dict)"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def check_field_types(config: Any) -> None:
    """Raise :class:`InvalidConfig` naming the first field whose value has the wrong type.

    Config dataclasses call this first in ``__post_init__``, so a value of the wrong type
    (``num_distractors="three"`` from JSON or TOML) gets a message naming the field and the
    expected type, not a ``TypeError`` from a comparison further down.

    Args:
        config: A dataclass instance whose annotations are the expected types.

    Raises:
        InvalidConfig: A field's value does not fit its annotation.
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        hint = hints.get(field.name, Any)
        if not _matches(value, hint):
            shown = short_repr(value)
            raise InvalidConfig(f"{field.name} must be {_describe(hint)}, got {shown} ({type(value).__name__})")


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """Memory tools: backends, defaults and resource bounds.

    Every bound is enforced with a clear message to the agent (the call is counted as
    invalid), never with an exception.
    """

    backend: Literal["auto", "hnsw", "exact"] = "auto"
    """Long-term-memory search backend."""
    default_top_k: int = 3
    """``Retrieve_memory`` top_k when the agent gives none (paper: 3)."""
    max_top_k: int = 20
    """Largest ``top_k`` an agent may ask for."""
    max_entries: int = 1000
    """Long-term-memory entries per episode."""
    max_content_chars: int = 4000
    """Longest memory content ``Add_memory``/``Update_memory`` accept."""
    max_query_chars: int = 2000
    """Longest ``Retrieve_memory`` query / ``Filter_context`` criteria."""
    max_metadata_chars: int = 1000
    """Longest metadata object (as JSON)."""
    filter_threshold: float = 0.6
    """FILTER θ_f: messages with cosine similarity ``>= θ_f`` to the criteria are removed."""
    summary_max_tokens: int = 256
    """Token budget of one ``Summary_context`` summary."""
    auto_retrieve_k: int = 3
    """Stage-1 introspective retrieval shown with each new message (0 turns it off)."""

    def __post_init__(self) -> None:
        check_field_types(self)
        _check(self.backend in ("auto", "hnsw", "exact"), f"backend must be auto/hnsw/exact, got {self.backend!r}")
        _check(1 <= self.default_top_k <= self.max_top_k, "expected 1 <= default_top_k <= max_top_k")
        _check(self.max_entries >= 1, f"max_entries must be >= 1, got {self.max_entries}")
        for name in ("max_content_chars", "max_query_chars", "max_metadata_chars", "summary_max_tokens"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(
            -1.0 <= self.filter_threshold <= 1.0, f"filter_threshold must be in [-1, 1], got {self.filter_threshold}"
        )
        _check(self.auto_retrieve_k >= 0, f"auto_retrieve_k must be >= 0, got {self.auto_retrieve_k}")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Episode structure and budgets."""

    stage1_mode: Literal["per_message", "single"] = "per_message"
    """Stage-1 material one message per paragraph with automatic retrieval (the paper's
    Algorithm 3), or all in one message (the released code)."""
    num_distractors: int = 5
    """Stage-2 distractor messages (paper default 5; 0 switches Stage 2 off)."""
    max_rounds: int = 5
    """Agent turns allowed after each incoming message before the env moves on."""
    max_context_tokens: int = 8192
    """Context budget T_max: the observation is packed into it; exceeding it is an overflow."""
    max_response_tokens: int = 2048
    """Longest agent turn; longer turns are cut (as generation would) and count as invalid."""
    max_calls_per_turn: int = 16
    """Tool calls executed per turn; the rest are ignored with a message and count as one invalid call."""
    overflow_notice: bool = True
    """When the full context first grows past ``max_context_tokens``, append a ``tool`` message
    telling the agent (what it no longer sees, the overflow penalty, the tools that shrink it).
    Re-armed once the context fits again."""
    message_overhead: int = 4
    """Tokens charged per message for chat-template markers."""
    tools_in_system_prompt: bool = True
    """Put the tool schemas into the system prompt (as the paper does)."""
    tool_prompt: Literal["full", "compact"] = "full"
    """How the system prompt lists the tools: ``"full"``, each tool's JSON schema (the paper's
    prompt), or ``"compact"``, one ``Name(argument: type, optional?: type): description``
    line per tool, for small models (SmolLM2's HotpotQA system prompt: 1,010 -> 674 tokens).
    Both are derived from the tool table; ``"compact"`` needs ``tools_in_system_prompt``."""
    privileged_info: bool = False
    """Add ``info["privileged"]`` (gold answer and facts) for oracle policies; never for learners."""

    def __post_init__(self) -> None:
        check_field_types(self)
        _check(
            self.stage1_mode in ("per_message", "single"),
            f"stage1_mode must be per_message/single, got {self.stage1_mode!r}",
        )
        _check(self.num_distractors >= 0, f"num_distractors must be >= 0, got {self.num_distractors}")
        _check(self.max_rounds >= 1, f"max_rounds must be >= 1, got {self.max_rounds}")
        _check(self.max_context_tokens >= 64, f"max_context_tokens must be >= 64, got {self.max_context_tokens}")
        _check(self.max_response_tokens >= 8, f"max_response_tokens must be >= 8, got {self.max_response_tokens}")
        _check(self.max_calls_per_turn >= 1, f"max_calls_per_turn must be >= 1, got {self.max_calls_per_turn}")
        _check(self.message_overhead >= 0, f"message_overhead must be >= 0, got {self.message_overhead}")
        _check(
            self.tool_prompt == "full" or self.tools_in_system_prompt,
            f"tool_prompt={self.tool_prompt!r} lists the tools in the system prompt; "
            "it needs tools_in_system_prompt=True",
        )


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The trajectory reward ``R = w_task R_task + w_context R_context + w_memory R_memory + P``.

    Defaults: the paper's terms, penalties (−1 rounds, −0.5 overflow, −1 no answer) and
    α = β = 1/3, with the task weighted as much as context and memory together (1/2, 1/4,
    1/4) so that no memory work can stand in for a right answer: the paper calls the task
    "the dominant component" (§3.5), but its equal weights (App. C.4, :meth:`paper`) let
    honest memory work with a wrong answer outscore a right answer with none (0.54 against
    0.43 on HotpotQA). The released code also gives the task half the weight.
    """

    w_task: float = 1 / 2
    """Weight of the task (judge) score."""
    w_context: float = 1 / 4
    """Weight of the context reward (compression, preventive, preservation)."""
    w_memory: float = 1 / 4
    """Weight of the memory reward (storage, maintenance, relevance)."""
    w_tool_efficiency: float = 0.0
    """Weight of the released code's tool-efficiency term (0 in the paper)."""
    context_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    """α for compression, preventive, preservation."""
    memory_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    """β for storage, maintenance, relevance."""
    no_answer: float = -1.0
    """R_task when the episode ends without an answer."""
    weight_no_answer: bool = True
    """Multiply the no-answer value by ``w_task`` (paper) or add it unweighted (released code)."""
    rounds_penalty: float = -1.0
    """P_rounds: Stage 3 ran out of rounds without an answer."""
    rounds_penalty_early_stages: bool = False
    """Also charge P_rounds (still once per episode) when a Stage-1/2 message's round cap is
    hit without an ``<answer>``. Off by default: in the paper's Algorithms 3 and 4 the
    Stage-1/2 loops simply run ``t = 1..N_max`` and the next message or stage follows, so
    N_rounds never exceeds N_max there; the violation ``N_rounds > N_max`` (Eq. 26) is the
    task loop of Algorithm 5 ending without an answer, and the released code charges only
    Stage-3 rounds. Either way ``info["rounds_exceeded_stages"]`` records every stage whose
    cap was hit."""
    overflow_penalty: float = -0.5
    """P_overflow: the context exceeded T_max when answering."""
    maintenance: Literal["current", "changed", "any_update"] = "current"
    """R_maintenance (Eq. 24). ``"current"`` (default): 1 if an update or delete removed a
    statement the environment had made stale (``Task.stale``: e.g. FactUpdate's superseded
    values), not scored (its weight spread over storage and relevance) on a task where
    nothing goes stale. Maintenance pays for keeping the store current; where nothing changes
    there is nothing to keep current, and every edit there (a rephrasing, an appended " .", a
    metadata tag, adding junk to delete it) would be free reward. ``"changed"``: 1 if any
    delete or any update that changed a memory's words ran (no task knowledge needed; a
    rephrasing earns it). ``"any_update"``: the paper's literal ``1[update or delete
    performed]``, which an update that rewrites a memory as it was also earns."""
    preventive_threshold: float = 0.5
    """R_preventive counts a Summary/Filter call that reduced the context only when the
    messages the environment delivered unasked (system prompt, user messages) held at least
    this share of ``max_context_tokens``. A reduction prevents an overflow only when one is
    in sight: at half the budget a few more paragraphs or retrievals can fill it, far below
    it trimming pays nothing. Counting only delivered messages keeps an agent from inflating
    the context with its own turns or retrievals just to trim it. 0 counts any reducing call."""
    invalid_call_penalty: float = -0.05
    """Added per invalid call (malformed turn, unknown tool, bad argument, unknown id)."""
    invalid_penalty_floor: float = -1.0
    """The summed invalid-call penalty never goes below this."""
    clip: tuple[float, float] | None = None
    """Clip the total to this range (the released code clips to [-1, 1])."""
    mode: Literal["terminal", "dense"] = "terminal"
    """``terminal``: 0 per step, the total at the end (paper). ``dense``: invalid-call
    penalties when they happen plus potential-based shaping on memory quality; the episode
    sum equals the terminal reward."""
    shaping_coef: float = 0.5
    """Scale of the memory-quality potential in dense mode."""

    def __post_init__(self) -> None:
        check_field_types(self)
        _check(self.mode in ("terminal", "dense"), f"mode must be terminal/dense, got {self.mode!r}")
        _check(
            self.maintenance in ("current", "changed", "any_update"),
            f"maintenance must be current/changed/any_update, got {self.maintenance!r}",
        )
        _check(
            0.0 <= self.preventive_threshold <= 1.0,
            f"preventive_threshold must be in [0, 1], got {self.preventive_threshold!r}",
        )
        _check(len(self.context_weights) == 3 and len(self.memory_weights) == 3, "context/memory weights need 3 values")
        _check(
            self.invalid_call_penalty <= 0 and self.invalid_penalty_floor <= 0, "invalid-call penalties must be <= 0"
        )
        if self.clip is not None:
            _check(len(self.clip) == 2 and self.clip[0] < self.clip[1], f"clip must be (low, high), got {self.clip}")

    @classmethod
    def paper(cls, **overrides: Any) -> RewardConfig:
        """The paper's reward (App. A.2 / C.4): weights 1/3, −1 no answer, −1 rounds, −0.5 overflow.

        With equal weights the context and memory terms together outweigh the task: honest
        memory work with a wrong answer can outscore a right answer with no memory work
        (``benchmarks/reward_exploits.py`` shows by how much).
        """
        base: dict[str, Any] = dict(w_task=1 / 3, w_context=1 / 3, w_memory=1 / 3)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def released_code(cls, **overrides: Any) -> RewardConfig:
        """The released code's reward: weights 0.5 / 0.15 / 0.15 plus 0.2 tool efficiency.

        The no-answer penalty is added unweighted, the total is clipped to [−1, 1], any
        update earns maintenance (the code counts the calls) and any reducing context call
        earns the preventive term, however small the context.

        Warning:
            Exploitable by design, as the code it reproduces: a metadata-only or no-op update
            earns maintenance and trimming a near-empty context earns the preventive term, so a
            trained policy learns those for free reward (``benchmarks/reward_exploits.py``
            lists what each exploit gains). Use it to compare with the released code, not to train.
        """
        base: dict[str, Any] = dict(
            w_task=0.5,
            w_context=0.15,
            w_memory=0.15,
            w_tool_efficiency=0.2,
            weight_no_answer=False,
            clip=(-1.0, 1.0),
            maintenance="any_update",
            preventive_threshold=0.0,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def answer_only(cls, **overrides: Any) -> RewardConfig:
        """The paper's "Answer-Only" ablation: the task score alone (plus penalties)."""
        base: dict[str, Any] = dict(w_task=1.0, w_context=0.0, w_memory=0.0)
        base.update(overrides)
        return cls(**base)


REWARD_PRESETS = {
    "default": RewardConfig,
    "paper": RewardConfig.paper,
    "released_code": RewardConfig.released_code,
    "answer_only": RewardConfig.answer_only,
}


def coerce_config(cls: type, value: Any, presets: Mapping[str, Any] | None = None) -> Any:
    """Accept a config object, a dict of fields, a preset name or ``None`` (defaults).

    Args:
        cls: The config dataclass.
        value: What the user passed.
        presets: Named constructors for string values.

    Returns:
        An instance of ``cls``.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and presets is not None:
        if value not in presets:
            raise unknown_name(f"{cls.__name__} preset", value, presets)
        return presets[value]()
    if isinstance(value, Mapping):
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = set(value) - fields
        if bad:
            raise InvalidConfig(f"{cls.__name__} has no field(s) {sorted(bad)}; fields: {sorted(fields)}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
        return cls(**data)
    raise InvalidConfig(f"expected a {cls.__name__}, a dict of its fields or None; got {type(value).__name__}")
