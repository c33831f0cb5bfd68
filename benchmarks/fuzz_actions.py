"""Fuzz every registered env with generated turns; count crashes, invariant violations and steps/s.

    python benchmarks/fuzz_actions.py --turns 1000000 --json results/fuzz_actions.json
    python benchmarks/fuzz_actions.py --ids AgeMem/HotpotQA-v0 --turns 20000 --hypothesis 200
    python benchmarks/fuzz_actions.py --budget-s 1800 --workers 2     # time-boxed run

Two generators drive each env:

* a **grammar-aware mutator** (:class:`TurnFuzzer`, seeded ``random.Random``): it writes a valid
  turn of the paper's grammar (tool calls that use the ids the memory really holds, answers,
  world actions) and then mutates it: broken JSON, wrong argument types, unknown and deleted
  ids, deep nesting, huge / unicode / NUL strings, thousands of calls in one turn,
  ``<answer>`` and ``<tool_call>`` mixed, structured actions and arbitrary Python objects;
* **hypothesis** strategies (:func:`turn_strategy`, ``--hypothesis N`` examples per id), which
  shrink a failing turn to a minimal one. ``tests/envs/test_fuzz_registry.py`` runs a small
  subset of both on every CI run.

After every step :func:`check_step` verifies the invariants: the LTM index agrees with its
entries (``LongTermMemory.check_invariants``), the STM's cached token counts agree with a
recount, every documented ``info`` key is present, the observation lies in
``observation_space``, ``invalid_calls`` never decreases and grows on a turn the fuzzer knows
is bad, ``ltm_size`` matches the memory and respects ``max_entries``. An exception from
``step``/``reset`` is a crash. Target: 0 and 0.

The ``--turns`` total is split evenly over the ids; ``--budget-s`` caps the wall time (split
evenly too), so slow engine-backed ids report how many turns they reached.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import format_table, run_metadata, write_json

from agemem_gym.tools import (
    ADD_MEMORY,
    DEFAULT_TOOLS,
    DELETE_MEMORY,
    FILTER_CONTEXT,
    RETRIEVE_MEMORY,
    SUMMARY_CONTEXT,
    TOOL_NAMES,
    UPDATE_MEMORY,
    Tool,
    ToolTable,
)

INFO_KEYS = frozenset(
    {
        "task_id",
        "stage",
        "round",
        "step",
        "tool_calls",
        "invalid_calls",
        "step_invalid_calls",
        "prompt_tokens",
        "context_tokens",
        "overflow",
        "ltm_size",
    }
)
FAMILIES = (
    "valid",
    "broken_json",
    "wrong_types",
    "unknown_id",
    "deleted_id",
    "nested",
    "huge",
    "unicode",
    "many_calls",
    "mixed",
    "structured",
    "noise",
)
_WORDS = "the a memory fact paris capital river blue seven update delete store query answer look go north".split()
_UNICODE = [
    "\x00",
    "\ud800",  # lone surrogate
    "\udfff",
    "\u202e",  # right-to-left override
    "\u0301",  # combining accent
    "\ufeff",
    "\U0001f600",
    "\u4e2d\u6587",
    "\u05e9\u05dc\u05d5\u05dd",
    "\n",
    "\t",
    "\\",
    '"',
    "<",
    ">",
    "</think>",
    "<answer>",
    "</tool_call>",
    "<tool_call>",
    "<action>",
]
_JSON_BREAKERS = list('{}[]",:\\') + ["NaN", "Infinity", "-", "1e999", "null", "tru", "\x00", "9" * 5000]


class TurnFuzzer:
    """Seeded generator of valid and mutated turns for one env.

    Args:
        seed: Seed of the generator (the run is reproducible from it).
        interactive: Whether ``<action>`` belongs to the env's grammar.
        tools: The env's tool table (valid calls use its tools; default: the six).
    """

    def __init__(self, seed: int, interactive: bool = False, tools: ToolTable = DEFAULT_TOOLS) -> None:
        self.rng = random.Random(seed)
        self.interactive = interactive
        self.tools = tools
        self.deleted: list[str] = []  # ids the env really deleted (the fuzzer re-uses them)

    # ---------------------------------------------------------------- pieces
    def word_text(self, lo: int = 1, hi: int = 12) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(lo, hi)))

    def unicode_text(self, n: int = 40) -> str:
        pieces = []
        for _ in range(n):
            roll = self.rng.random()
            if roll < 0.4:
                pieces.append(self.rng.choice(_UNICODE))
            elif roll < 0.7:
                pieces.append(chr(self.rng.randint(0, 0x10FFFF)))
            else:
                pieces.append(self.rng.choice(_WORDS))
        return "".join(pieces)

    def json_value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if depth > 3 or roll < 0.5:
            return self.rng.choice(
                [
                    None,
                    True,
                    False,
                    0,
                    -1,
                    self.rng.randint(-(10**12), 10**12),
                    3.5,
                    float("nan"),
                    float("inf"),
                    "",
                    self.word_text(),
                    "5",
                    "true",
                    "1-3",
                    "all",
                ]
            )
        if roll < 0.75:
            return [self.json_value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.word_text(1, 2): self.json_value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def memory_id(self, known: list[str]) -> str:
        if known and self.rng.random() < 0.8:
            return self.rng.choice(known)
        return f"mem_{self.rng.getrandbits(32):08x}"

    def valid_call(self, known: list[str]) -> dict[str, Any]:
        """One well-formed call; Update/Delete use ids the memory holds when it holds any."""
        name = self.rng.choice(self.tools.names)
        if name == ADD_MEMORY:
            args: dict[str, Any] = {"content": self.word_text()}
            if self.rng.random() < 0.3:
                args["metadata"] = {"topic": self.rng.choice(_WORDS)}
            if self.rng.random() < 0.3:
                args["memory_type"] = self.rng.choice(["knowledge", "user_info", "task_pipeline"])
        elif name == UPDATE_MEMORY:
            args = {"memory_id": self.memory_id(known), "content": self.word_text()}
        elif name == DELETE_MEMORY:
            args = {"memory_id": self.memory_id(known), "confirmation": self.rng.random() < 0.8}
        elif name == RETRIEVE_MEMORY:
            args = {"query": self.word_text(), "top_k": self.rng.randint(1, 8)}
            if self.rng.random() < 0.2:
                args["metadata_filter"] = {"type": "knowledge"}
        elif name == SUMMARY_CONTEXT:
            a = self.rng.randint(1, 6)
            args = {"span": self.rng.choice(["all", str(a), f"{a}-{a + self.rng.randint(0, 4)}", "full"])}
        elif name == FILTER_CONTEXT:
            args = {"criteria": self.word_text()}
        else:  # a tool of a custom table: values of the declared types
            args = self.schema_arguments(self.tools[name], known)
        return {"name": name, "arguments": args}

    def schema_arguments(self, tool: Tool, known: list[str]) -> dict[str, Any]:
        """Well-typed values for the required arguments of ``tool`` (ids for ``memory_id``)."""
        draw = {
            "string": self.word_text,
            "integer": lambda: self.rng.randint(1, 8),
            "boolean": lambda: self.rng.random() < 0.5,
            "object": lambda: {"topic": self.rng.choice(_WORDS)},
        }
        return {
            k: self.memory_id(known) if k == "memory_id" else draw[tool.parameters[k]["type"]]() for k in tool.required
        }

    def valid_calls(self, known: list[str], n: int | None = None) -> list[dict[str, Any]]:
        return [self.valid_call(known) for _ in range(n or self.rng.randint(1, 4))]

    @staticmethod
    def tool_text(payload: str, think: str = "fuzz") -> str:
        return f"<think>{think}</think><tool_call>{payload}</tool_call>"

    def valid_turn(self, known: list[str], actions: list[str] | None) -> str:
        roll = self.rng.random()
        if self.interactive and roll < 0.35:
            act = self.rng.choice(actions) if actions and self.rng.random() < 0.8 else self.word_text(1, 4)
            return f"<think>act</think><action>{act}</action>"
        if roll < 0.5:
            return f"<think>done</think><answer>{self.word_text(1, 5)}</answer>"
        return self.tool_text(json.dumps(self.valid_calls(known), ensure_ascii=False))

    # ---------------------------------------------------------------- families
    def turn(self, known: list[str], actions: list[str] | None = None) -> tuple[str, Any, bool]:
        """One generated turn: ``(family, action, known_bad)``.

        ``known_bad`` turns must count at least one invalid call.
        """
        family = self.rng.choices(FAMILIES, weights=(30, 12, 10, 6, 6, 4, 2, 8, 2, 8, 6, 6))[0]
        action, bad = getattr(self, f"_f_{family}")(known, actions)
        return family, action, bad

    def _f_valid(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        return self.valid_turn(known, actions), False

    def _f_broken_json(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        text = json.dumps(self.valid_calls(known), ensure_ascii=False)
        for _ in range(self.rng.randint(1, 4)):
            pos = self.rng.randint(0, len(text))
            op = self.rng.random()
            if op < 0.35:
                text = text[:pos] + text[pos + self.rng.randint(1, 5) :]
            elif op < 0.7:
                text = text[:pos] + self.rng.choice(_JSON_BREAKERS) + text[pos:]
            else:
                text = text[:pos]
        return self.tool_text(text), False  # some edits still parse (or are repaired)

    def _f_wrong_types(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        calls = self.valid_calls(known)
        call = self.rng.choice(calls)
        roll = self.rng.random()
        if roll < 0.6 and call["arguments"]:
            key = self.rng.choice(list(call["arguments"]))
            call["arguments"][key] = self.json_value()
        elif roll < 0.75:
            call["arguments"] = self.json_value()
        elif roll < 0.9:
            call["name"] = self.json_value()
        else:
            call["arguments"][self.word_text(1, 1) + "_x"] = self.json_value()
        text = json.dumps(calls, ensure_ascii=False, default=str)
        return (self.tool_text(text) if self.rng.random() < 0.7 else calls), False

    @staticmethod
    def _id_call(name: str, mid: str) -> str:
        args: dict[str, Any] = {"memory_id": mid}
        args.update({"content": "new"} if name == UPDATE_MEMORY else {"confirmation": True})
        return json.dumps([{"name": name, "arguments": args}])

    def _f_unknown_id(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        mid = self.rng.choice(
            [f"mem_{self.rng.getrandbits(32):08x}", self.word_text(1, 2), "", "mem_", "MEM_0000000G", "x" * 5000]
        )
        mid = mid if mid not in known else "mem_zzzzzzzz"
        name = self.rng.choice([UPDATE_MEMORY, DELETE_MEMORY])
        args = (
            {"memory_id": mid, "content": "new"} if name == UPDATE_MEMORY else {"memory_id": mid, "confirmation": True}
        )
        return self.tool_text(json.dumps([{"name": name, "arguments": args}])), True

    def _f_deleted_id(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        gone = [d for d in self.deleted if d not in known]
        if not gone:
            if known:  # delete one now, so a later turn can reuse the id
                call = {
                    "name": DELETE_MEMORY,
                    "arguments": {"memory_id": self.rng.choice(known), "confirmation": True},
                }
                return self.tool_text(json.dumps([call])), False
            return self._f_unknown_id(known, actions)
        mid = self.rng.choice(gone)
        name = self.rng.choice([UPDATE_MEMORY, DELETE_MEMORY])
        args = (
            {"memory_id": mid, "content": "back"} if name == UPDATE_MEMORY else {"memory_id": mid, "confirmation": True}
        )
        return self.tool_text(json.dumps([{"name": name, "arguments": args}])), True

    def _f_nested(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        depth = self.rng.choice([9, 20, 100, 1000, 5000])
        roll = self.rng.random()
        if roll < 0.35:  # deep JSON text
            open_, close = ("[", "]") if self.rng.random() < 0.5 else ('{"a":', "}")
            inner = json.dumps(self.valid_call(known))
            return self.tool_text(open_ * depth + inner + close * depth), True
        nested: Any = {"leaf": 1}
        for _ in range(depth):
            nested = {"k": nested} if self.rng.random() < 0.5 else [nested]
        name = self.rng.choice([ADD_MEMORY, RETRIEVE_MEMORY])
        key = "metadata" if name == ADD_MEMORY else "metadata_filter"
        args = {"content": "x", key: {"deep": nested}} if name == ADD_MEMORY else {"query": "x", key: {"d": nested}}
        call = {"name": name, "arguments": args}
        if roll < 0.7:  # structured: json.dumps/repr of the whole action may hit the recursion limit
            return call, True
        try:
            return self.tool_text(json.dumps([call])), True
        except RecursionError:
            return [call], True

    def _f_huge(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        n = self.rng.choice([5_000, 50_000, 1_000_000])
        blob = self.rng.choice(["x", "ab ", "\u00e9", "\U0001f600", "\x00"]) * n
        where = self.rng.random()
        if where < 0.3:
            return self.tool_text(json.dumps([{"name": ADD_MEMORY, "arguments": {"content": blob}}])), True
        if where < 0.5:
            return {"name": RETRIEVE_MEMORY, "arguments": {"query": blob}}, True
        if where < 0.7:
            return f"<think>{blob}</think><answer>a</answer>", n > 40_000
        if where < 0.85 and self.interactive:
            return f"<think>t</think><action>{blob}</action>", n > 40_000
        return f"<think>t</think><answer>{blob}</answer>", n > 40_000

    def _f_unicode(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        text = self.unicode_text(self.rng.randint(1, 60))
        roll = self.rng.random()
        if roll < 0.3:
            call = {"name": ADD_MEMORY, "arguments": {"content": text, "metadata": {text[:20]: text}}}
            return self.tool_text(json.dumps([call], ensure_ascii=self.rng.random() < 0.5)), False
        if roll < 0.5:
            return {"name": self.rng.choice([RETRIEVE_MEMORY, FILTER_CONTEXT]), "arguments": {"query": text}}, False
        if roll < 0.7:
            return f"<think>{text}</think><answer>{text}</answer>", False
        if roll < 0.85 and self.interactive:
            return f"<think>u</think><action>{text}</action>", False
        return text, False

    def _f_many_calls(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        n = self.rng.choice([17, 100, 1000, 5000])
        calls = [{"name": ADD_MEMORY, "arguments": {"content": f"fact {i} {self.word_text(1, 3)}"}} for i in range(n)]
        if self.rng.random() < 0.5:
            return calls, True  # structured: never cut by max_response_tokens
        return self.tool_text(json.dumps(calls)), True

    def _f_mixed(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        call = self.tool_text(json.dumps(self.valid_calls(known)))
        answer = f"<answer>{self.word_text(1, 3)}</answer>"
        options = [
            (call + answer, True),
            (answer + call, True),
            ("<think>" + answer + "</think>" + call, False),  # tags inside <think> are reasoning
            (call.replace("</tool_call>", ""), False),  # unclosed: repaired
            (call.replace("<tool_call>", "", 1), False),  # unopened: repaired
            (answer + answer, False),
            ("<think>only thinking</think>", True),
            ("<tool_call></tool_call>", True),
            ("<tool_call>[]</tool_call>", True),
            ("<answer><tool_call>[]</tool_call></answer>", False),
            (call + call, False),
        ]
        if self.interactive:
            options.append((answer + "<action>look</action>", True))
        else:
            options.append(("<action>look</action>", True))
        return self.rng.choice(options)

    def _f_structured(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        options: list[tuple[Any, bool]] = [
            (self.valid_call(known), False),
            (self.valid_calls(known), False),
            ({"answer": self.word_text(1, 3)}, False),
            ({"answer": self.json_value()}, False),
            ({"action": "look"}, not self.interactive),
            (None, True),
            (12345, True),
            (3.5, True),
            (b"\x00bytes", True),
            ({1, 2, 3}, True),
            ([], True),
            ({}, True),
            ([None, 1, "x"], True),
            ({"name": ADD_MEMORY, "arguments": {1: "x", (2,): "y"}}, True),
            ({"name": ADD_MEMORY, "arguments": {"content": object()}}, True),
            ({"name": ADD_MEMORY, "arguments": {"content": "x", "metadata": {"s": {1, 2}}}}, True),
            ({"name": RETRIEVE_MEMORY, "arguments": {"query": "q", "top_k": 10**30}}, True),
            ({"name": RETRIEVE_MEMORY, "arguments": {"query": "q", "top_k": float("nan")}}, True),
            ({"name": ADD_MEMORY, "arguments": {"content": "x", "metadata": {"n": 10**5000}}}, True),
        ]
        return self.rng.choice(options)

    def _f_noise(self, known: list[str], actions: list[str] | None) -> tuple[Any, bool]:
        alphabet = '<>/{}[]":,think tool_call answer action \x00\n'
        n = self.rng.randint(0, 400)
        return "".join(self.rng.choice(alphabet) for _ in range(n)), False


# ------------------------------------------------------------------------------- invariants
def check_step(
    env: Any, obs: Any, info: dict[str, Any], before: int | None = None, known_bad: bool = False
) -> list[str]:
    """Invariants after one ``step`` (or ``reset``); returns the violations found.

    Args:
        env: The env (wrapped or not).
        obs: The observation returned.
        info: The info returned.
        before: ``info["invalid_calls"]`` before the step (``None`` after a reset).
        known_bad: The turn must have counted an invalid call.

    Returns:
        One text per violation (empty when all hold).
    """
    base = env.unwrapped
    out = []
    for name, check in (("ltm", base.ltm.check_invariants), ("stm", base.stm.check_invariants)):
        try:
            check()
        except AssertionError as exc:
            out.append(f"{name}: {exc}")
    missing = INFO_KEYS - set(info)
    if missing:
        out.append(f"info misses {sorted(missing)}")
        return out
    if not base.observation_space.contains(obs):
        out.append("observation outside observation_space")
    if info["ltm_size"] != len(base.ltm):
        out.append(f"info ltm_size {info['ltm_size']} != LTM size {len(base.ltm)}")
    if len(base.ltm) > base.memory_config.max_entries:
        out.append(f"LTM holds {len(base.ltm)} entries, over max_entries={base.memory_config.max_entries}")
    if info["context_tokens"] != base.stm.tokens:
        out.append(f"info context_tokens {info['context_tokens']} != STM tokens {base.stm.tokens}")
    if info["prompt_tokens"] > max(base.config.max_context_tokens, info["context_tokens"]):
        out.append(f"prompt_tokens {info['prompt_tokens']} over the budget")
    if before is not None:
        if info["invalid_calls"] < before:
            out.append(f"invalid_calls went down {before} -> {info['invalid_calls']}")
        if known_bad and info["invalid_calls"] == before:
            out.append("a known-bad turn counted no invalid call")
        if info["invalid_calls"] - before != info["step_invalid_calls"]:
            out.append("step_invalid_calls does not match the invalid_calls increase")
    return out


# ------------------------------------------------------------------------------- hypothesis
def turn_strategy() -> Any:
    """A hypothesis strategy of ``(turn, known_bad)``: grammar-shaped turns with arbitrary values."""
    from hypothesis import strategies as st

    text = st.text(max_size=80)
    json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | text
    json_value = st.recursive(
        json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=10
    )
    args = st.dictionaries(
        st.sampled_from(["content", "memory_id", "confirmation", "query", "top_k", "metadata", "span", "criteria"])
        | text,
        json_value,
        max_size=4,
    )
    call = st.fixed_dictionaries({"name": st.sampled_from(TOOL_NAMES) | text, "arguments": args | json_value})
    calls = st.lists(call, max_size=5)

    def as_text(cs: list[dict[str, Any]], think: str) -> str:
        return f"<think>{think}</think><tool_call>{json.dumps(cs, ensure_ascii=False)}</tool_call>"

    return st.one_of(
        st.builds(lambda cs, t: (as_text(cs, t), False), calls, text),
        calls.map(lambda cs: (cs, False)),
        call.map(lambda c: (c, False)),
        text.map(lambda t: (f"<think>x</think><answer>{t}</answer>", False)),
        text.map(lambda t: (f"<think>x</think><action>{t}</action>", False)),
        st.text(max_size=300).map(lambda t: (t, False)),
        st.builds(lambda cs, t: (as_text(cs, "x") + f"<answer>{t}</answer>", True), calls, text),
        json_value.map(lambda v: ({"answer": v}, False)),
        json_value.map(lambda v: (v, False)),
    )


# ------------------------------------------------------------------------------- driver
def _known_ids(env: Any) -> list[str]:
    return env.unwrapped.ltm.ids()


def _actions(info: dict[str, Any]) -> list[str] | None:
    acts = info.get("valid_actions")
    return list(acts) if isinstance(acts, (list, tuple)) else None


def _short(action: Any) -> str:
    try:
        text = action if isinstance(action, str) else repr(action)
    except Exception:  # noqa: BLE001
        text = f"<{type(action).__name__}>"
    return text if len(text) < 300 else text[:300] + f"... ({len(text)} chars)"


class _Runner:
    """Steps one env, resets it at episode end and records crashes and violations."""

    def __init__(self, env_id: str, make: Callable[[], Any], seed: int) -> None:
        self.env_id, self.make, self.seed = env_id, make, seed
        self.env = make()
        self.crashes: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self.turns = self.episodes = 0
        self.families: Counter[str] = Counter()
        self.reset_rng = random.Random(seed)
        self.info: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        for attempt in range(2):
            try:
                obs, self.info = self.env.reset(seed=self.reset_rng.randrange(2**31))
                self.episodes += 1
                self._check(obs, self.info, None, False, "reset", None)
                return
            except Exception as exc:  # noqa: BLE001 - a crash is a result
                self._crash("reset", None, exc)
                if attempt == 0:
                    self.env.close()
                    self.env = self.make()
        raise RuntimeError(f"{self.env_id}: reset keeps failing; see the crashes above")

    def _crash(self, family: str, action: Any, exc: BaseException) -> None:
        self.crashes.append(
            {
                "family": family,
                "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                "turn": _short(action),
                "where": traceback.format_exception(type(exc), exc, exc.__traceback__)[-2][:400],
            }
        )

    def _check(self, obs: Any, info: dict[str, Any], before: int | None, bad: bool, family: str, action: Any) -> None:
        for v in check_step(self.env, obs, info, before, bad):
            self.violations.append({"family": family, "violation": v, "turn": _short(action)})

    def step(self, family: str, action: Any, known_bad: bool) -> None:
        before = self.info.get("invalid_calls", 0)
        self.turns += 1
        self.families[family] += 1
        try:
            obs, _, term, trunc, info = self.env.step(action)
        except Exception as exc:  # noqa: BLE001
            self._crash(family, action, exc)
            self.reset()
            return
        self._check(obs, info, before, known_bad, family, action)
        self.info = info
        if term or trunc:
            self.reset()

    def close(self) -> None:
        self.env.close()


def fuzz_env(env_id: str, turns: int, seed: int = 0, budget_s: float = math.inf) -> dict[str, Any]:
    """Drive ``env_id`` with ``turns`` mutator turns (or until ``budget_s``); return the tallies."""
    import gymnasium as gym

    import agemem_gym  # noqa: F401

    runner = _Runner(env_id, lambda: gym.make(env_id), seed)
    base = runner.env.unwrapped
    fuzzer = TurnFuzzer(
        seed, interactive=bool(getattr(base, "interactive", False)), tools=getattr(base, "tools", DEFAULT_TOOLS)
    )
    t0 = time.perf_counter()
    try:
        while runner.turns < turns and time.perf_counter() - t0 < budget_s:
            known = _known_ids(runner.env)
            family, action, bad = fuzzer.turn(known, _actions(runner.info))
            runner.step(family, action, bad)
            now = set(_known_ids(runner.env))
            fuzzer.deleted.extend(k for k in known if k not in now)
            del fuzzer.deleted[:-200]
    finally:
        runner.close()
    seconds = time.perf_counter() - t0
    return {
        "env_id": env_id,
        "generator": "mutator",
        "turns": runner.turns,
        "episodes": runner.episodes,
        "seconds": seconds,
        "steps_per_s": runner.turns / seconds if seconds else 0.0,
        "crashes": runner.crashes,
        "violations": runner.violations,
        "families": dict(runner.families),
    }


def fuzz_env_hypothesis(env_id: str, examples: int, seed: int = 0, turns_per_example: int = 8) -> dict[str, Any]:
    """Run ``examples`` hypothesis examples (lists of turns) against ``env_id``; shrinks the first failure."""
    import gymnasium as gym
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import agemem_gym  # noqa: F401

    env = gym.make(env_id)
    tally = {"turns": 0, "episodes": 0}
    failure: dict[str, Any] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.integers(0, 2**31 - 1), st.lists(turn_strategy(), min_size=1, max_size=turns_per_example))
    def drive(reset_seed: int, turns: list[tuple[Any, bool]]) -> None:
        obs, info = env.reset(seed=reset_seed)
        tally["episodes"] += 1
        problems = check_step(env, obs, info)
        assert not problems, problems
        for action, bad in turns:
            before = info["invalid_calls"]
            obs, _, term, trunc, info = env.step(action)
            tally["turns"] += 1
            problems = check_step(env, obs, info, before, bad)
            assert not problems, (problems, _short(action))
            if term or trunc:
                obs, info = env.reset(seed=reset_seed + 1)
                tally["episodes"] += 1

    t0 = time.perf_counter()
    try:
        drive()
    except Exception as exc:  # noqa: BLE001 - the shrunk failure is the result
        failure = {"error": f"{type(exc).__name__}: {str(exc)[:600]}"}
    finally:
        env.close()
    seconds = time.perf_counter() - t0
    return {
        "env_id": env_id,
        "generator": "hypothesis",
        "turns": tally["turns"],
        "episodes": tally["episodes"],
        "seconds": seconds,
        "steps_per_s": tally["turns"] / seconds if seconds else 0.0,
        "crashes": [failure] if failure and "AssertionError" not in failure["error"] else [],
        "violations": [failure] if failure and "AssertionError" in failure["error"] else [],
        "families": {},
    }


def _job(args: tuple[str, int, int, float, int]) -> list[dict[str, Any]]:
    env_id, turns, seed, budget_s, hyp = args
    out = []
    if hyp:
        out.append(fuzz_env_hypothesis(env_id, hyp, seed))
    out.append(fuzz_env(env_id, turns, seed, budget_s))
    return out


def _testable_ids() -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.envs.utils import TESTABLE_IDS  # registry ids whose optional packages are installed

    return list(TESTABLE_IDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=None, help="default: every registered id that can run here")
    parser.add_argument("--turns", type=int, default=1_000_000, help="mutator turns in total, split over the ids")
    parser.add_argument("--budget-s", type=float, default=math.inf, help="wall-time cap, split over the ids")
    parser.add_argument("--hypothesis", type=int, default=0, help="hypothesis examples per id (each up to 8 turns)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # crash records quote the turn, which may hold lone surrogates: never fail on printing them
    sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    meta = run_metadata()  # the revision the run starts from

    testable = _testable_ids()  # also points AgeMem/LoCoMo-v0 at the test fixture (LoCoMo is not bundled)
    ids = args.ids or testable
    per_id = max(1, args.turns // len(ids))
    budget = args.budget_s * args.workers / len(ids)
    jobs = [(env_id, per_id, args.seed + i, budget, args.hypothesis) for i, env_id in enumerate(ids)]
    t0 = time.perf_counter()
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            runs = [r for rs in pool.map(_job, jobs, chunksize=1) for r in rs]
    else:
        runs = []
        for job in jobs:
            runs += _job(job)
            if args.json:  # progress survives an interrupted run
                with open(f"{args.json}.partial.jsonl", "a") as fh:
                    for r in runs[-(2 if args.hypothesis else 1) :]:
                        fh.write(json.dumps({k: v for k, v in r.items()}, default=str) + "\n")
    wall = time.perf_counter() - t0

    rows = [
        [
            r["env_id"],
            r["generator"],
            r["turns"],
            r["episodes"],
            len(r["crashes"]),
            len(r["violations"]),
            r["steps_per_s"],
        ]
        for r in runs
    ]
    total_turns = sum(r["turns"] for r in runs)
    crashes = sum(len(r["crashes"]) for r in runs)
    violations = sum(len(r["violations"]) for r in runs)
    print(format_table(["env id", "generator", "turns", "episodes", "crashes", "violations", "steps/s"], rows))
    print(
        f"\n{total_turns:,} turns over {len(ids)} ids in {wall:.0f} s ({args.workers} worker(s)): "
        f"{crashes} crashes, {violations} invariant violations"
    )
    for r in runs:
        for c in r["crashes"][:5]:
            print(f"CRASH {r['env_id']} [{c.get('family')}] {c['error']}\n    turn: {c.get('turn')}")
        for v in r["violations"][:5]:
            print(f"VIOLATION {r['env_id']} [{v.get('family')}] {v.get('violation', v.get('error'))}")
    write_json(
        args.json,
        {"meta": meta, "args": vars(args), "wall_s": wall, "turns": total_turns, "runs": runs},
    )
    return 1 if crashes or violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
