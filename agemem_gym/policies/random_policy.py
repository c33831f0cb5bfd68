"""A seeded random policy: random tool calls and text, malformed turns included."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from agemem_gym.policies.base import BasePolicy, Observation
from agemem_gym.tools import (
    ADD_MEMORY,
    DEFAULT_TOOLS,
    DELETE_MEMORY,
    FILTER_CONTEXT,
    RETRIEVE_MEMORY,
    SUMMARY_CONTEXT,
    UPDATE_MEMORY,
    Tool,
    ToolTable,
    format_action,
    format_answer,
    format_tool_call,
)
from agemem_gym.typecheck import NonNegativeInt, Probability

__all__ = ["RandomPolicy"]


def tc(payload: str) -> str:
    """Wrap raw text in a tool_call block (no validation: malformed payloads are the point)."""
    return f"<tool_call>{payload}</tool_call>"


_WORDS = "memory the answer paris france river album band born year city sea moon song 1985 yes no".split()

# plausible arguments for the six tools; a tool of a custom table gets arguments from its schema
_Sampler = Callable[["RandomPolicy", str], dict[str, Any]]
_ARGUMENTS: dict[str, _Sampler] = {
    ADD_MEMORY: lambda p, mid: {"content": p._text(8)},
    UPDATE_MEMORY: lambda p, mid: {"memory_id": mid, "content": p._text(8)},
    DELETE_MEMORY: lambda p, mid: {"memory_id": mid, "confirmation": bool(p.rng.random() < 0.8)},
    RETRIEVE_MEMORY: lambda p, mid: {"query": p._text(), "top_k": int(p.rng.integers(1, 6))},
    SUMMARY_CONTEXT: lambda p, mid: {"span": str(p.rng.choice(["all", "3", "1-2", "full"]))},
    FILTER_CONTEXT: lambda p, mid: {"criteria": p._text()},
}


class RandomPolicy(BasePolicy):
    """Picks a random kind of turn each step.

    About half the turns are well-formed (random tool calls with plausible arguments, or a
    random answer); the rest are malformed in the ways LLMs get it wrong (broken JSON,
    unknown tools, wrong argument types, no tags, mixed blocks, made-up memory ids). A
    lower bound for every env, and a smoke test of the env's input handling.

    Args:
        seed: Seeds the policy's own generator.
        p_answer: Probability of an answer turn.
        p_malformed: Probability of a malformed turn.
        tools: The tool table to call (default: the six tools).
    """

    name = "random"

    def __init__(
        self,
        seed: NonNegativeInt = 0,
        p_answer: Probability = 0.25,
        p_malformed: Probability = 0.3,
        tools: ToolTable = DEFAULT_TOOLS,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.tools = tools
        self.p_answer = float(p_answer)
        self.p_malformed = float(p_malformed)

    def _text(self, n: int = 4) -> str:
        return " ".join(self.rng.choice(_WORDS, size=int(self.rng.integers(1, n + 1))))

    def _schema_arguments(self, tool: Tool, mid: str) -> dict[str, Any]:
        """Random values of the declared types for the required arguments of ``tool``."""
        draw: dict[str, Callable[[], Any]] = {
            "string": self._text,
            "integer": lambda: int(self.rng.integers(1, 6)),
            "boolean": lambda: bool(self.rng.random() < 0.5),
            "object": dict,
        }
        return {k: mid if k == "memory_id" else draw[tool.parameters[k]["type"]]() for k in tool.required}

    def _call(self, observation: Observation) -> dict[str, Any]:
        name = str(self.rng.choice(self.tools.names))
        ids = [w.strip("(),.") for m in observation for w in m["content"].split() if w.strip("(),.").startswith("mem_")]
        mid = (
            str(self.rng.choice(ids)) if ids and self.rng.random() < 0.7 else f"mem_{int(self.rng.integers(2**32)):08x}"
        )
        # every tool's arguments are drawn, the chosen tool's kept: the draws do not depend on the choice
        args = {
            t.name: _ARGUMENTS[t.name](self, mid) if t.name in _ARGUMENTS else self._schema_arguments(t, mid)
            for t in self.tools
        }[name]
        return {"name": name, "arguments": args}

    def _malformed(self, observation: Observation) -> str:
        good = json.dumps([self._call(observation)])
        wrong_types = {"name": RETRIEVE_MEMORY, "arguments": {"query": 42, "top_k": "many"}}
        made_up_id = {"name": DELETE_MEMORY, "arguments": {"memory_id": "mem_deadbeef", "confirmation": True}}
        options = [
            lambda: f"<think>hmm</think><tool_call>{good[: max(1, len(good) // 2)]}",
            lambda: '<tool_call>[{"name": "Forget_everything", "arguments": {}}]</tool_call>',
            lambda: tc(json.dumps([wrong_types])),
            lambda: self._text(10),
            lambda: f"<answer>{self._text()}</answer><tool_call>{good}</tool_call>",
            lambda: tc(json.dumps([made_up_id])),
            lambda: "<tool_call>{not json at all}</tool_call>",
            lambda: "",
        ]
        return options[int(self.rng.integers(len(options)))]()

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """A random turn (in a world, half the time an action: mostly valid, sometimes made up)."""
        actions = list(info.get("valid_actions") or [])
        if actions and self.rng.random() < 0.5:
            if self.rng.random() < 0.8:
                return format_action(str(actions[int(self.rng.integers(len(actions)))]), "random")
            return format_action(self._text(3), "random")
        u = self.rng.random()
        if u < self.p_answer:
            return format_answer(self._text(), "random")
        if u < self.p_answer + self.p_malformed:
            return self._malformed(observation)
        calls = [self._call(observation) for _ in range(int(self.rng.integers(1, 4)))]
        return format_tool_call(calls, "random")
