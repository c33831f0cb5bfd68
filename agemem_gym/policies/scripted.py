"""Scripted baselines that speak the turn grammar (so every run exercises the parser).

They decide from the observation and ``info``: ``info["round"] == 0`` means a new message
has just arrived; later rounds see the results of their own calls. All answer with the
:class:`~agemem_gym.policies.reader.ExtractiveReader` over what they can see.

* ``no-memory``: never uses tools; answers from the visible context (Stage 3 cannot see
  Stage 1).
* ``store-all``: adds every Stage-1 message whole; retrieves with the query; answers.
* ``rag``: stores Stage-1 messages sentence by sentence and retrieves with the newest
  message on every turn (the paper's AgeMem-RAG shape: automatic top-k retrieval, no
  context tools).
* ``oracle``: the privileged upper bound. It reads ``info["privileged"]``; stores exactly the
  gold facts as the messages word them (and keeps them current with ``Update_memory`` /
  ``Delete_memory`` when the env lists ``revisions``), filters each distractor, retrieves and
  answers with the **gold answer**, whatever its memory holds. Its task score is the env's
  ceiling, not a measure of memory; ``demonstrator``
  (:mod:`agemem_gym.policies.demonstrator`) is the same memory management answering from
  memory alone.

In interactive tasks (``info["world_steps"]`` present) Stage 3 is a world: ``no-memory``
picks a seeded random valid action; ``store-all`` and ``rag`` first retrieve with the goal
and follow any action sequence the retrieved memories spell out (e.g. a stored
walkthrough), falling back to random valid actions; ``oracle`` plays the env's expert
action from ``info["privileged"]["expert_action"]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from agemem_gym.policies.base import BasePolicy, Observation, last_message, messages_since_last_turn
from agemem_gym.policies.reader import ExtractiveReader
from agemem_gym.text import find_stated, split_sentences
from agemem_gym.tools import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FILTER_CONTEXT,
    RETRIEVE_MEMORY,
    UPDATE_MEMORY,
    format_action,
    format_answer,
    format_tool_call,
)
from agemem_gym.tools.results import added_memory_ids, retrieved_items
from agemem_gym.typecheck import NonNegativeInt, PositiveInt

__all__ = ["NoMemoryPolicy", "StoreAllPolicy", "RAGPolicy", "OraclePolicy", "retrieved_memories"]

ACK = "Thanks, noted."


def _visible_text(observation: Observation) -> list[str]:
    return [m["content"] for m in observation if m["role"] in ("user", "tool")]


def retrieved_memories(observation: Observation) -> list[str]:
    """Memory contents shown by retrievals since the policy's last turn."""
    out = []
    for m in messages_since_last_turn(observation):
        if m["role"] == "tool":
            out += [content for _, content in retrieved_items(m["content"])]
    return out


_PLAN_SPLIT = re.compile(r"[;\n]|\bthen\b|(?<=[.!?])\s")


def _goal(observation: Observation) -> str:
    """The pinned task goal of an interactive Stage 3 (the last user message that is no observation)."""
    for m in reversed(observation):
        if m["role"] == "user" and not m["content"].startswith("Observation:"):
            return m["content"]
    return ""


def _plan_from(texts: list[str]) -> list[str]:
    """Short imperative pieces of retrieved text, in order: candidate actions to replay."""
    pieces = [p.strip(" -*>.\t").lower() for t in texts for p in _PLAN_SPLIT.split(t)]
    return [p for p in pieces if p and len(p.split()) <= 10]


class _Scripted(BasePolicy):
    def __init__(self, top_k: PositiveInt = 3, seed: NonNegativeInt = 0) -> None:
        self.top_k = int(top_k)
        self.reader = ExtractiveReader()
        self.rng = np.random.default_rng(seed)
        self._plan: list[str] = []
        self._retrieved_goal = False

    def reset(self) -> None:
        """Forget the per-episode plan."""
        self._plan, self._retrieved_goal = [], False

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        stage, fresh = int(info.get("stage", 1)), int(info.get("round", 0)) == 0
        if int(info.get("step", 0)) == 0:
            self.reset()
        message = last_message(observation, "user")
        if stage == 3 and "world_steps" in info:
            return self.world_turn(observation, info)
        if stage == 3:
            return self.stage3(observation, info, message, fresh)
        if fresh:
            turn = self.on_message(stage, message, info)
            if turn is not None:
                return turn
        return format_answer(ACK, "Nothing else to do with this message.")

    def on_message(self, stage: int, message: str, info: Mapping[str, Any]) -> str | None:
        """Turn for a newly arrived Stage-1/2 message; ``None`` to just acknowledge it."""
        return None

    def world_turn(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Turn in an interactive Stage 3: follow the plan, else a seeded random valid action."""
        return self._next_action(info)

    def _next_action(self, info: Mapping[str, Any]) -> str:
        valid = list(info.get("valid_actions") or [])
        lowered = {a.lower(): a for a in valid}
        while self._plan:
            step = self._plan.pop(0)
            if not valid or step in lowered:
                return format_action(lowered.get(step, step), "Next step of what I remember.")
        if valid:
            return format_action(valid[int(self.rng.integers(len(valid)))], "Try something.")
        return format_answer("I am done.", "No action is listed.")

    def _retrieve_then_follow(self, observation: Observation, info: Mapping[str, Any]) -> str:
        if not self._retrieved_goal:
            self._retrieved_goal = True
            call = {"name": RETRIEVE_MEMORY, "arguments": {"query": _goal(observation), "top_k": self.top_k}}
            return format_tool_call([call], "Recall what I stored about this task.")
        if int(info.get("world_steps", 0)) == 0 and not self._plan:
            self._plan = _plan_from(retrieved_memories(observation))
        return self._next_action(info)

    def stage3(self, observation: Observation, info: Mapping[str, Any], query: str, fresh: bool) -> str:
        """Turn in Stage 3: retrieve first, then answer."""
        if fresh:
            call = {"name": RETRIEVE_MEMORY, "arguments": {"query": query, "top_k": self.top_k}}
            return format_tool_call([call], "Retrieve what I stored about the question.")
        passages = retrieved_memories(observation) or _visible_text(observation)
        return format_answer(self.reader.answer(query, passages), "Answer from the retrieved memories.")


class NoMemoryPolicy(_Scripted):
    """Never calls a tool; answers from the visible context."""

    name = "no-memory"

    def stage3(self, observation: Observation, info: Mapping[str, Any], query: str, fresh: bool) -> str:
        """Turn in Stage 3: retrieve first, then answer."""
        passages = [t for t in _visible_text(observation) if t != query]
        return format_answer(self.reader.answer(query, passages), "Answer from what I can see.")


class StoreAllPolicy(_Scripted):
    """Adds every Stage-1 message whole, retrieves with the query, answers."""

    name = "store-all"

    def world_turn(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Retrieve with the goal once, then replay the remembered steps."""
        return self._retrieve_then_follow(observation, info)

    def on_message(self, stage: int, message: str, info: Mapping[str, Any]) -> str | None:
        """Turn for a newly arrived Stage-1/2 message; ``None`` acknowledges it."""
        if stage != 1 or not message:
            return None
        return format_tool_call([{"name": ADD_MEMORY, "arguments": {"content": message}}], "Store everything.")


class RAGPolicy(_Scripted):
    """Sentence-chunk storage plus automatic retrieval with the newest message on every turn."""

    name = "rag"

    def world_turn(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Retrieve with the goal once, then replay the remembered steps."""
        return self._retrieve_then_follow(observation, info)

    def on_message(self, stage: int, message: str, info: Mapping[str, Any]) -> str | None:
        """Turn for a newly arrived Stage-1/2 message; ``None`` acknowledges it."""
        if not message:
            return None
        calls: list[dict[str, Any]] = []
        if stage == 1:
            calls += [{"name": ADD_MEMORY, "arguments": {"content": s}} for s in split_sentences(message)][:15]
        calls.append({"name": RETRIEVE_MEMORY, "arguments": {"query": message[:1500], "top_k": self.top_k}})
        return format_tool_call(calls, "Chunk, store and retrieve.")


class OraclePolicy(_Scripted):
    """The privileged upper bound: stores the gold facts, keeps them current, answers with the gold answer.

    Its answer does not depend on what it stored (see ``demonstrator`` for one that answers
    from memory). Facts are stored as they arrive, matched to messages with
    :func:`~agemem_gym.text.find_stated` (case and spacing aside) and stored as the message
    words them. When the env lists ``info["privileged"]["revisions"]``
    (``{"trigger", "old", "new"}``: a message containing ``trigger`` makes the stored sentence
    ``old`` stale), the oracle rewrites that memory with ``Update_memory`` (or removes it
    with ``Delete_memory`` when ``new`` is ``None``), using the id ``Add_memory`` returned.
    """

    name = "oracle"
    needs_privileged_info = True

    def __init__(self, top_k: PositiveInt = 3, seed: NonNegativeInt = 0) -> None:
        super().__init__(top_k=top_k, seed=seed)
        self._ids: dict[str, str] = {}  # stored content -> memory id
        self._awaiting: list[str] = []  # contents added by the last turn, ids not read yet

    def reset(self) -> None:
        """Forget the per-episode plan and memory ids."""
        super().reset()
        self._ids, self._awaiting = {}, []

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        if int(info.get("step", 0)) == 0:
            self.reset()
        self._learn_ids(observation)
        return super().act(observation, info)

    def _learn_ids(self, observation: Observation) -> None:
        """Read the ids of the memories the last turn added (results come back in call order)."""
        if not self._awaiting:
            return
        added = [
            found
            for m in messages_since_last_turn(observation)
            if m["role"] == "tool"
            for found in added_memory_ids(m["content"])
        ]
        self._ids.update(zip(self._awaiting, added))
        self._awaiting = []

    def _privileged(self, info: Mapping[str, Any]) -> Mapping[str, Any]:
        priv = info.get("privileged")
        if not isinstance(priv, Mapping):
            raise RuntimeError("the oracle policy needs the env created with privileged_info=True")
        return priv

    def on_message(self, stage: int, message: str, info: Mapping[str, Any]) -> str | None:
        """Turn for a newly arrived Stage-1/2 message; ``None`` acknowledges it."""
        if stage == 2:
            call = {"name": FILTER_CONTEXT, "arguments": {"criteria": message}}
            return format_tool_call([call], "This is unrelated to anything stored; drop it.")
        priv = self._privileged(info)
        revisions = [r for r in priv.get("revisions", []) if isinstance(r, Mapping)]
        calls, settled = self._revise(message, revisions)
        candidates = [*priv.get("facts", []), *(r.get("old") for r in revisions), *(r.get("new") for r in revisions)]
        # the fact as this message words it (a task's gold facts may differ in case or spacing)
        stated = {str(c): find_stated(str(c), message) for c in dict.fromkeys(candidates) if c}
        fresh = [c for c, span in stated.items() if span and c not in settled and c not in self._ids]
        calls += [{"name": ADD_MEMORY, "arguments": {"content": stated[c], "memory_type": "knowledge"}} for c in fresh]
        self._awaiting = fresh  # keyed by the fact as listed: revisions name it that way
        return format_tool_call(calls, "Store what matters; keep it current.") if calls else None

    def _revise(self, message: str, revisions: list[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
        """Update or delete the stored sentences this message makes stale.

        Returns:
            The calls, and the sentences already taken care of (rewritten into an existing
            memory, or stale before they were ever stored).
        """
        calls: list[dict[str, Any]] = []
        settled: set[str] = set()
        for rev in revisions:
            old, new = str(rev.get("old") or ""), rev.get("new")
            if not rev.get("trigger") or find_stated(str(rev["trigger"]), message) is None:
                continue
            if old not in self._ids:
                settled.add(old)  # stated and replaced before it was stored: only the current one matters
                continue
            memory_id = self._ids.pop(old)
            if new:
                calls.append({"name": UPDATE_MEMORY, "arguments": {"memory_id": memory_id, "content": str(new)}})
                self._ids[str(new)] = memory_id
                settled.add(str(new))
            else:
                calls.append({"name": DELETE_MEMORY, "arguments": {"memory_id": memory_id, "confirmation": True}})
        return calls, settled

    def world_turn(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Play the env's expert action."""
        expert = self._privileged(info).get("expert_action")
        if expert:
            return format_action(str(expert), "The expert move.")
        return self._retrieve_then_follow(observation, info)

    def stage3(self, observation: Observation, info: Mapping[str, Any], query: str, fresh: bool) -> str:
        """Turn in Stage 3: retrieve first, then answer."""
        priv = self._privileged(info)
        if fresh:
            k = max(1, min(20, len(priv.get("facts", [])) or self.top_k))
            call = {"name": RETRIEVE_MEMORY, "arguments": {"query": query, "top_k": k}}
            return format_tool_call([call], "Bring back the stored facts.")
        answers = list(priv.get("answers", []))
        return format_answer(
            answers[0] if answers else self.reader.answer(query, retrieved_memories(observation)), "I know the answer."
        )
