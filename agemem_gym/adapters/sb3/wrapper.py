"""``MemoryControlWrapper``: any ``MemoryEnv`` as a numeric-observation, discrete-action env.

stable-baselines3 cannot take text spaces. This wrapper keeps the text episode underneath
and exposes only the *memory decisions*: a ``Box`` of features (see
:mod:`agemem_gym.adapters.sb3.features`) and a ``Discrete`` choice among
:data:`~agemem_gym.adapters.sb3.features.ACTIONS`. A fixed reader writes the answer text,
so PPO or DQN learns the memory controller, which is the paper's question at a cost that
fits a laptop.

Each action becomes one assistant turn, written with :func:`~agemem_gym.tools.format_tool_call`
/ :func:`~agemem_gym.tools.format_answer` and passed to the wrapped env's ``step``, so every
decision goes through the real parser, tools, budgets and reward. The wrapped env's
internals (``ltm``, ``stm``, ``task``, ``embedder``) are only read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agemem_gym.adapters.sb3.features import ACTIONS, FeatureExtractor, FocusState, count_retrieved
from agemem_gym.core import MemoryEnv, Observation
from agemem_gym.error import InvalidConfig, ResetNeeded
from agemem_gym.policies.base import Policy
from agemem_gym.policies.reader import ExtractiveReader
from agemem_gym.seeding import stable_seed
from agemem_gym.tools import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FILTER_CONTEXT,
    RETRIEVE_MEMORY,
    SUMMARY_CONTEXT,
    UPDATE_MEMORY,
    format_answer,
    format_tool_call,
    parse_turn,
)

__all__ = ["Reader", "MemoryControlWrapper", "make_control_env"]

_NO_MEMORY = "none"  # never a real id (ids look like mem_3fa2c1d0): the env answers "unknown memory_id"


@runtime_checkable
class Reader(Protocol):
    """Writes the answer text from the question and the passages the controller surfaced."""

    def answer(self, question: str, passages: Sequence[str]) -> str:
        """The answer text."""
        ...


class MemoryControlWrapper(gym.Wrapper[np.ndarray, np.int64, Observation, str]):
    """A learnable memory controller's view of a ``MemoryEnv``.

    Actions (``Discrete(7)``), each one assistant turn about the *current message* (the
    newest user message; the question in Stage 3):

    ====  ==========  =======================================================================
    0     reply       Stage 1–2: acknowledge and move on (the no-op). Stage 3: the reader
                      answers now from the retrieved memories (or, with none, from what is
                      visible), which ends the episode.
    1     add         ``Add_memory(content=<current message>)``
    2     update      ``Update_memory`` of the memory nearest the current message with it
    3     delete      ``Delete_memory`` of the least useful memory (the least similar to the
                      current message)
    4     retrieve    ``Retrieve_memory(query=<current message>, top_k)``
    5     summary     ``Summary_context(span="all")``
    6     filter      ``Filter_context(criteria=<current message>)``
    ====  ==========  =======================================================================

    With an empty memory, ``update`` and ``delete`` name no memory and the env answers with
    its unknown-id error (a counted invalid call), as it would for an LLM.

    The observation is a float32 ``Box`` in ``[-1, 1]`` (names in :attr:`feature_names`).
    Rewards, termination and ``info`` are the wrapped env's; ``info`` also gets
    ``control_action`` and ``control_turn``.

    Args:
        env: A non-interactive ``MemoryEnv`` (``gym.make`` output is fine).
        reader: Writes the Stage-3 answer: an object with ``answer(question, passages)``
            (default :class:`~agemem_gym.policies.ExtractiveReader`) or a ``Policy`` (e.g. an
            HF policy), whose turn is used when it is an ``<answer>`` and otherwise replaced
            by the extractive reader's (``info["reader_fallback"]`` is then True).
        top_k: ``top_k`` of the ``retrieve`` action.
        sketch_dim: Size of the current message's hashed sketch in the features.
        lookahead_query: Let ``focus_query_sim`` see the question in Stages 1–2
            (privileged: an upper-bound ablation, off by default).
        tasks: Draw each episode's task from these task indices (a held-out split);
            default: the env's own draw over all tasks.
        ack: The reply text of the no-op.

    Example:
        >>> import gymnasium as gym, agemem_gym
        >>> env = MemoryControlWrapper(gym.make("AgeMem/MemoryProbe-v0"))
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape == env.observation_space.shape, int(env.action_space.n)
        (True, 7)
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        reader: Reader | Any = None,
        top_k: int = 3,
        sketch_dim: int = 16,
        lookahead_query: bool = False,
        tasks: Sequence[int] | None = None,
        ack: str = "Noted.",
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, MemoryEnv):
            raise InvalidConfig(f"MemoryControlWrapper wraps a MemoryEnv, got {type(base).__name__}")
        if base.interactive:
            raise InvalidConfig(
                f"{type(base).__name__} is interactive (Stage 3 needs <action> moves); "
                "MemoryControlWrapper drives question-answering MemoryEnvs"
            )
        if not isinstance(top_k, int) or not 1 <= top_k <= base.memory_config.max_top_k:
            raise InvalidConfig(f"top_k must be an int in [1, {base.memory_config.max_top_k}], got {top_k!r}")
        if not isinstance(sketch_dim, int) or not 0 <= sketch_dim <= 384:
            raise InvalidConfig(f"sketch_dim must be an int in [0, 384], got {sketch_dim!r}")
        if reader is not None and not (hasattr(reader, "answer") or hasattr(reader, "act")):
            raise InvalidConfig("reader must have answer(question, passages) or act(observation, info)")
        self.reader = reader if reader is not None else ExtractiveReader()
        self._fallback_reader = ExtractiveReader()
        self.top_k = top_k
        self.lookahead_query = bool(lookahead_query)
        self.ack = ack
        self._tasks = _check_tasks(tasks, base.task_ids)
        self._task_rng = np.random.default_rng()
        self.features = FeatureExtractor(sketch_dim)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.observation_space = spaces.Box(-1.0, 1.0, (self.features.size,), dtype=np.float32)
        self._focus: FocusState | None = None
        self._last_action: int | None = None
        self._reader_fallback = False

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the observation's entries, in order."""
        return self.features.names

    @property
    def memory_env(self) -> MemoryEnv:
        """The wrapped ``MemoryEnv`` (read-only use)."""
        return cast(MemoryEnv, self.env.unwrapped)  # the constructor checked that it is one

    @property
    def _text_env(self) -> gym.Env[Observation, str]:
        """The wrapped env with its own spaces' types (chat in, turn text out)."""
        # gymnasium 1.x annotates Wrapper.env with the wrapper's (numeric) types, not the inner env's
        return cast("gym.Env[Observation, str]", self.env)

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; with ``tasks`` set, the task is drawn from that split.

        Args:
            seed: Seeds the wrapped env and the split draw.
            options: Passed on (``{"task_id": ...}`` pins the task).

        Returns:
            The feature vector and the wrapped env's ``info``.
        """
        options = dict(options or {})
        if seed is not None:
            self._task_rng = np.random.default_rng(stable_seed("memory-control", seed))
        if self._tasks is not None and options.get("task_id") is None:
            options["task_id"] = self._tasks[int(self._task_rng.integers(len(self._tasks)))]
        chat, info = self._text_env.reset(seed=seed, options=options or None)
        self._chat, self._info = chat, info
        self._last_action = None
        self._refresh_focus()
        return self._observe(), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Turn ``action`` into one assistant turn and step the wrapped env.

        Args:
            action: An index into :data:`ACTIONS` (int or a NumPy integer scalar / 1-element array).

        Returns:
            ``(features, reward, terminated, truncated, info)``.
        """
        index = _action_index(action)
        turn = self.turn_for(index)
        chat, reward, terminated, truncated, info = self._text_env.step(turn)
        self._chat, self._info = chat, info
        self._last_action = index
        if not (terminated or truncated) and int(info.get("round", 0)) == 0:
            self._refresh_focus()
        info = dict(info)
        info["control_action"] = ACTIONS[index]
        info["control_turn"] = turn
        if index == 0 and int(self._info.get("stage", 0)) == 3:
            info["reader_fallback"] = self._reader_fallback
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    # ------------------------------------------------------------------ actions
    def turn_for(self, action: int) -> str:
        """The assistant turn (text in the turn grammar) that ``action`` stands for now."""
        if self._focus is None:
            raise ResetNeeded("call reset() before step() or turn_for()")
        base = self.memory_env
        text = self._focus.text
        content = text[: base.memory_config.max_content_chars]
        query = text[: base.memory_config.max_query_chars]
        name = ACTIONS[_action_index(action)]
        if name == "reply":
            if int(self._info.get("stage", 1)) == 3:
                return format_answer(self._answer(), "Answer from what memory gave back.")
            return format_answer(self.ack, "Nothing more to do with this message.")
        if name == "add":
            call = {"name": ADD_MEMORY, "arguments": {"content": content}}
        elif name == "update":
            call = {"name": UPDATE_MEMORY, "arguments": {"memory_id": self._nearest(), "content": content}}
        elif name == "delete":
            call = {"name": DELETE_MEMORY, "arguments": {"memory_id": self._least_useful(), "confirmation": True}}
        elif name == "retrieve":
            call = {"name": RETRIEVE_MEMORY, "arguments": {"query": query, "top_k": self.top_k}}
        elif name == "summary":
            call = {"name": SUMMARY_CONTEXT, "arguments": {"span": "all"}}
        else:
            call = {"name": FILTER_CONTEXT, "arguments": {"criteria": query}}
        return format_tool_call([call], f"Memory controller: {name}.")

    def _nearest(self) -> str:
        assert self._focus is not None
        found = self.memory_env.ltm.search_vector(self._focus.vector, top_k=1)
        return found[0].id if found else _NO_MEMORY

    def _least_useful(self) -> str:
        assert self._focus is not None
        ltm = self.memory_env.ltm
        found = ltm.search_vector(self._focus.vector, top_k=len(ltm)) if len(ltm) else []
        return found[-1].id if found else _NO_MEMORY

    def _answer(self) -> str:
        base = self.memory_env
        question = base.task.query if base.task is not None else ""
        passages = self._passages(question)
        self._reader_fallback = False
        if hasattr(self.reader, "answer"):
            return str(self.reader.answer(question, passages))
        policy = cast(Policy, self.reader)  # no answer(): the constructor checked that it has act()
        parsed = parse_turn(policy.act(self._chat, self._info))
        if parsed.kind == "answer" and parsed.answer:
            return parsed.answer
        self._reader_fallback = True
        return self._fallback_reader.answer(question, passages)

    def _passages(self, question: str) -> list[str]:
        """Memories retrieved since the question, else everything visible (the no-memory reader)."""
        after = _after_last(self._chat, question)
        _, retrieved = count_retrieved(after)
        if retrieved:
            return retrieved
        return [m["content"] for m in self._chat if m["role"] in ("user", "tool") and m["content"] != question]

    # ------------------------------------------------------------------ features
    def _refresh_focus(self) -> None:
        base = self.memory_env
        text = next((m.content for m in reversed(base.stm.messages) if m.role == "user"), "")
        vector = _unit(base.embedder([text])[0])
        stage = int(self._info.get("stage", 1))
        query_sim = 0.0
        if base.task is not None and (stage == 3 or self.lookahead_query):
            query_sim = float(vector @ _unit(base.embedder([base.task.query])[0]))
        self._focus = FocusState(text, vector, self.features.sketch(text), query_sim, base.counter.count(text))

    def _observe(self) -> np.ndarray:
        assert self._focus is not None
        base = self.memory_env
        n_retrieved, _ = count_retrieved(_after_last(self._chat, self._focus.text))
        return self.features(
            self._info,
            self._focus,
            base.ltm,
            retrieved_items=n_retrieved,
            max_rounds=base.config.max_rounds,
            max_context_tokens=base.config.max_context_tokens,
            last_action=self._last_action,
        )


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _after_last(chat: Observation, user_text: str) -> list[Mapping[str, str]]:
    """Messages after the last user message with this content ([] when it is not visible)."""
    for i in range(len(chat) - 1, -1, -1):
        if chat[i]["role"] == "user" and chat[i]["content"] == user_text:
            return list(chat[i + 1 :])
    return []


def _action_index(action: Any) -> int:
    value = np.asarray(action)
    if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
        raise InvalidConfig(f"action must be one integer in [0, {len(ACTIONS)}), got {action!r}")
    index = int(value.reshape(()))
    if not 0 <= index < len(ACTIONS):
        raise InvalidConfig(f"action must be an integer in [0, {len(ACTIONS)}) ({', '.join(ACTIONS)}), got {index}")
    return index


def _check_tasks(tasks: Sequence[int] | None, task_ids: Sequence[str]) -> list[int] | None:
    if tasks is None:
        return None
    chosen = [int(t) for t in tasks]
    if not chosen:
        raise InvalidConfig("tasks must name at least one task index")
    bad = [t for t in chosen if not 0 <= t < len(task_ids)]
    if bad:
        raise InvalidConfig(f"task indices {bad[:5]} are out of range for {len(task_ids)} tasks")
    return chosen


def make_control_env(
    env_id: str, *, env_kwargs: Mapping[str, Any] | None = None, **wrapper_kwargs: Any
) -> MemoryControlWrapper:
    """``gym.make(env_id, **env_kwargs)`` wrapped in a :class:`MemoryControlWrapper`.

    Args:
        env_id: A registered non-interactive id, e.g. ``"AgeMem/HotpotQA-v0"``.
        env_kwargs: Arguments of the environment.
        **wrapper_kwargs: Arguments of the wrapper (``reader``, ``top_k``, ``tasks``...).

    Returns:
        The wrapped env.
    """
    import agemem_gym  # noqa: F401 - registers the ids (subprocess workers start bare)

    return MemoryControlWrapper(gym.make(env_id, **dict(env_kwargs or {})), **wrapper_kwargs)
