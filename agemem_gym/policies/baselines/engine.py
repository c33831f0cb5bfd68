"""The shared engine of the baseline memory systems: multi-round programs over the six tools.

A memory system is written as generator "programs". For each incoming Stage-1/2 message
:meth:`MemorySystemPolicy.memorize` yields lists of tool calls; each yield is one turn, and
the tool results of that turn are sent back into the generator (the tool messages since
the policy's last turn, in call order). When it returns, the policy acknowledges the message
and the env moves on. In Stage 3 :meth:`MemorySystemPolicy.recall` does the same and finally
yields an :class:`Answer`. Interactive Stage 3 reuses the scripted "retrieve the goal, replay
the remembered steps" behaviour.

The optional LLM (``model="smollm2"``, a local folder, or ``chat=`` any ``list[dict] -> str``)
is used for the extraction and decision steps; every LLM step falls back to the deterministic
heuristic when the reply cannot be parsed, so a small model never breaks a run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from agemem_gym.error import InvalidConfig
from agemem_gym.memory.context_ops import ChatFn
from agemem_gym.policies.base import Observation, last_message, messages_since_last_turn
from agemem_gym.policies.baselines import heuristics as H
from agemem_gym.policies.scripted import ACK, _Scripted
from agemem_gym.tools import RETRIEVE_MEMORY, format_answer, format_tool_call
from agemem_gym.tools.results import added_memory_ids, retrieved_items
from agemem_gym.typecheck import NonNegativeInt, PositiveInt

__all__ = [
    "Answer",
    "MemorySystemPolicy",
    "Program",
    "added_ids",
    "call",
    "chunks",
    "heuristic_decision",
    "parse_retrievals",
]


EXTRACT_PROMPT = """Extract the facts worth remembering from the message below, one short self-contained
sentence per line. Reply with the facts only; reply NONE if there is nothing to remember.

Message: {message}"""

DECIDE_PROMPT = """You manage a memory store. A new fact arrived:
{fact}
Stored memories similar to it:
{memories}
Choose one operation: ADD (new information), UPDATE <n> (the fact replaces memory n),
DELETE <n> (the fact says memory n is wrong), NOOP (already known). Reply with the operation only."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """The final Stage-3 turn of a program."""

    text: str


Turn = list[dict[str, Any]] | Answer
Program = Generator[Turn, list[str], None]


MAX_CALLS = 16  # the env's default max_calls_per_turn


def chunks(calls: Sequence[dict[str, Any]], size: int = MAX_CALLS) -> list[list[dict[str, Any]]]:
    """Split calls into turns of at most ``size`` calls."""
    return [list(calls[i : i + size]) for i in range(0, len(calls), size)]


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """One tool call."""
    return {"name": name, "arguments": arguments}


def parse_retrievals(results: Sequence[str]) -> list[list[tuple[str, str]]]:
    """``(id, content)`` lists, one per ``Retrieve_memory`` result in ``results`` (tool messages)."""
    out = []
    for text in results:
        if text.startswith("[retrieved memories]"):
            out.append(retrieved_items(text))
        elif text.startswith("[no related memories found]"):
            out.append([])
    return out


def added_ids(results: Sequence[str]) -> list[str]:
    """Ids of the memories ``Add_memory`` created, in call order."""
    return [found for text in results for found in added_memory_ids(text)]


class MemorySystemPolicy(_Scripted):
    """Base of the baseline memory systems (see the module docstring).

    Args:
        top_k: Memories per retrieval.
        seed: Seeds the random valid actions of interactive tasks.
        model: A local chat model for the LLM steps (``"smollm2"``, ``"tiny"`` or a folder).
        chat: Any chat callable instead of ``model``.
        max_facts: Most facts extracted from one message.
    """

    def __init__(
        self,
        top_k: PositiveInt = 3,
        seed: NonNegativeInt = 0,
        model: str | None = None,
        chat: ChatFn | None = None,
        max_facts: PositiveInt = 8,
    ) -> None:
        super().__init__(top_k=top_k, seed=seed)
        if top_k < 1 or max_facts < 1:
            raise InvalidConfig(f"top_k and max_facts must be >= 1, got {top_k} and {max_facts}")
        if model is not None and chat is not None:
            raise InvalidConfig("give model= or chat=, not both")
        if model is not None:
            from agemem_gym.policies.llm.chat import HFChat

            chat = HFChat(model, max_new_tokens=96)
        if chat is not None and not callable(chat):
            raise InvalidConfig("chat must be a callable list[dict] -> str")
        self.chat = chat
        self.max_facts = int(max_facts)
        self.llm_fallbacks = 0  # LLM replies that could not be parsed (the heuristic decided)
        self._program: Program | None = None

    def reset(self) -> None:
        """Forget the running program and the per-episode plan."""
        super().reset()
        self._program = None

    # ------------------------------------------------------------------ turn loop
    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        if int(info.get("step", 0)) == 0:
            self.reset()
        stage, fresh = int(info.get("stage", 1)), int(info.get("round", 0)) == 0
        if stage == 3 and "world_steps" in info:
            return self._retrieve_then_follow(observation, info)
        results = [m["content"] for m in messages_since_last_turn(observation) if m["role"] == "tool"]
        turn: Turn | None = None
        try:
            if fresh:
                message = last_message(observation, "user")
                self._program = self.recall(message) if stage == 3 else self.memorize(stage, message, observation)
                turn = next(self._program)
            elif self._program is not None:
                turn = self._program.send(results)
        except StopIteration:
            self._program = None
        if isinstance(turn, Answer):
            return format_answer(turn.text, "Answer from the retrieved memories.")
        if turn:
            return format_tool_call(turn, f"{self.name}: manage memory.")
        if stage == 3:  # a program that ended without answering: answer from what is visible
            passages = [m["content"] for m in observation if m["role"] in ("user", "tool")]
            return format_answer(self.reader.answer(last_message(observation, "user"), passages), "Best guess.")
        return format_answer(ACK, "Memory is up to date.")

    # ------------------------------------------------------------------ programs
    def memorize(self, stage: int, message: str, observation: Observation) -> Program:
        """The program for a new Stage-1/2 message (yields tool-call lists)."""
        raise NotImplementedError

    def recall(self, query: str) -> Program:
        """The Stage-3 program: retrieve, then yield an :class:`Answer`."""
        results = yield [call(RETRIEVE_MEMORY, query=query, top_k=self.top_k)]
        found = [c for group in parse_retrievals(results) for _, c in group]
        yield Answer(self.read(query, found))

    def read(self, query: str, contents: Sequence[str]) -> str:
        """Answer ``query`` from memory contents (note metadata stripped)."""
        return self.reader.answer(query, [H.strip_note(c) for c in contents])

    # ------------------------------------------------------------------ LLM steps with fallbacks
    def extract(self, message: str) -> list[str]:
        """Facts of ``message``: the LLM's lines when it gives usable ones, else the heuristic."""
        facts = H.extract_facts(message, self.max_facts)
        if self.chat is not None:
            reply = self.chat([{"role": "user", "content": EXTRACT_PROMPT.format(message=message[:2000])}])
            lines = [ln.strip(" -*•\t") for ln in str(reply).splitlines()]
            lines = [ln for ln in lines if len(ln.split()) >= 3 and ln.upper() != "NONE"]
            if lines:
                return lines[: self.max_facts]
            if "NONE" not in str(reply).upper():
                self.llm_fallbacks += 1
        if not facts and len(message.split()) >= 3:
            facts = [message.strip()]  # nothing fact-shaped (e.g. a walkthrough): keep the message
        return facts

    def decide(self, fact: str, candidates: Sequence[tuple[str, str]], retraction: bool) -> tuple[str, str | None]:
        """Mem0's operation for ``fact`` given similar stored memories: ``(op, memory_id)``.

        ``op`` is ``ADD``, ``UPDATE``, ``DELETE`` or ``NOOP``; the LLM decides when there is
        one and its reply parses, else the heuristic: an equal memory → NOOP; a retraction
        about a stored subject and relation → DELETE it; the same subject and relation with an
        update cue (or a near-duplicate) → UPDATE it; otherwise ADD (a retraction with nothing
        to retract → NOOP).
        """
        if self.chat is not None and candidates:
            listing = "\n".join(f"{i + 1}. {H.strip_note(c)}" for i, (_, c) in enumerate(candidates))
            reply = str(self.chat([{"role": "user", "content": DECIDE_PROMPT.format(fact=fact, memories=listing)}]))
            found = re.search(r"\b(ADD|UPDATE|DELETE|NOOP)\b(?:\s*(\d+))?", reply.upper())
            if found:
                op, index = found.group(1), found.group(2)
                if op in ("ADD", "NOOP"):
                    return op, None
                if index and 1 <= int(index) <= len(candidates):
                    return op, candidates[int(index) - 1][0]
            self.llm_fallbacks += 1
        return heuristic_decision(fact, candidates, retraction)


def heuristic_decision(fact: str, candidates: Sequence[tuple[str, str]], retraction: bool) -> tuple[str, str | None]:
    """The deterministic ADD / UPDATE / DELETE / NOOP rule (see :meth:`MemorySystemPolicy.decide`)."""
    for _, content in candidates:
        text = H.strip_note(content)
        if fact.lower() in text.lower() or H.overlap(fact, text) >= 0.9:
            return "NOOP", None
    match = H.best_match(fact, candidates)
    if retraction:
        return ("DELETE", match[0]) if match else ("NOOP", None)
    if match and (H.has_update_cue(fact) or H.overlap(fact, H.strip_note(match[1])) >= 0.5):
        return "UPDATE", match[0]
    return "ADD", None
