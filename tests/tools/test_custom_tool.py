"""A seventh tool, declared in one place, works end to end: prompt, parser, executor, info, grammar."""

import sys
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.policies import RandomPolicy
from agemem_gym.tools import DEFAULT_TOOLS, Tool, ToolResult, format_tool_call, parse_turn


def count_memory(ctx, *, memory_type=None):
    """How many memories are stored (of one ``memory_type``, when given)."""
    items = [ctx.ltm.get(i) for i in ctx.ltm.ids()]
    n = sum(1 for m in items if memory_type is None or m.metadata.get("type") == memory_type)
    return ToolResult(ctx.name, True, f"[memory tool result]\nmemory_count: {n}")


COUNT = Tool(
    "Count_memory",
    "Count the memories in long-term memory, optionally of one memory_type.",
    {"memory_type": {"type": "string", "description": "Only memories of this kind, e.g. 'knowledge'."}},
    handler=count_memory,
    touches=frozenset({"ltm_read"}),
)
TABLE = DEFAULT_TOOLS.with_tools(COUNT)


def _turn(*calls):
    return format_tool_call(list(calls), "count")


def test_a_seventh_tool_runs_in_the_env():
    env = gym.make("AgeMem/Probe-Recall-v0", tools=TABLE)
    assert env.unwrapped.tools is TABLE
    obs, info = env.reset(seed=0)
    assert '"name":"Count_memory"' in obs[0]["content"]  # listed in the system prompt, with its schema
    assert info["tool_calls"] == {name: 0 for name in TABLE.names}
    add = {"name": "Add_memory", "arguments": {"content": "The code word is lantern.", "memory_type": "knowledge"}}
    count = {"name": "Count_memory", "arguments": {"memory_type": "knowledge"}}
    obs, _, _, _, info = env.step(_turn(add, count))
    assert obs[-1] == {"role": "tool", "content": "[memory tool result]\nmemory_count: 1"}
    assert info["tool_calls"]["Count_memory"] == 1 and info["step_invalid_calls"] == 0
    results = env.unwrapped.last_tool_results
    assert results[-1].name == "Count_memory" and results[-1].touches == {"ltm_read"}
    obs, _, _, _, info = env.step(_turn({"name": "Count_memory", "arguments": {"kind": "x"}}))
    assert info["step_invalid_calls"] == 1 and "expected Count_memory(memory_type?)" in obs[-1]["content"]


def test_the_default_env_does_not_know_the_seventh_tool():
    env = gym.make("AgeMem/Probe-Recall-v0")
    obs, _ = env.reset(seed=0)
    assert "Count_memory" not in obs[0]["content"]
    obs, _, _, _, info = env.step(_turn({"name": "Count_memory", "arguments": {}}))
    assert info["step_invalid_calls"] == 1 and "unknown tool 'Count_memory'" in obs[-1]["content"]
    assert "Count_memory" not in info["tool_calls"]


def test_the_random_policy_and_the_fuzzer_call_the_seventh_tool():
    policy = RandomPolicy(seed=0, p_answer=0.0, p_malformed=0.0, tools=TABLE)
    obs = ({"role": "user", "content": "hi"},)
    names = {c.name for _ in range(60) for c in parse_turn(policy.act(obs, {}), tools=TABLE).calls}
    assert names == set(TABLE.names)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from fuzz_actions import TurnFuzzer

    fuzzer = TurnFuzzer(0, tools=TABLE)
    calls = [fuzzer.valid_call([]) for _ in range(200)]
    assert {c["name"] for c in calls} == set(TABLE.names)
    assert all(parse_turn(c, tools=TABLE).kind == "tool_call" for c in calls)


def test_the_turn_grammar_allows_the_seventh_tool_and_no_unknown_one():
    pytest.importorskip("transformers")
    pytest.importorskip("llguidance")
    pytest.importorskip("torch")
    from agemem_gym.policies.llm.constrained import TurnGrammar
    from agemem_gym.policies.llm.models import load_model

    model, tok = load_model("tiny")
    grammar = TurnGrammar(tok, model.config.vocab_size, tools=TABLE, max_think_chars=40, max_string_chars=24)
    text = grammar.text()
    good = _turn({"name": "Count_memory", "arguments": {"memory_type": "knowledge"}})
    ids = tok(good, add_special_tokens=False)["input_ids"]
    assert grammar.masks(text, ids).shape == (len(ids), model.config.vocab_size)
    unknown = tok('<think>x</think><tool_call>[{"name": "Zap_memory", ', add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="not allowed"):
        grammar.masks(text, unknown)
    default = TurnGrammar(tok, model.config.vocab_size, max_think_chars=40, max_string_chars=24)
    with pytest.raises(ValueError, match="not allowed"):
        default.masks(default.text(), ids)


def test_a_custom_table_crosses_into_async_vector_envs():
    def make():
        return gym.make("AgeMem/Probe-Recall-v0", tools=TABLE)

    envs = gym.vector.AsyncVectorEnv([make], shared_memory=False)  # the worker unpickles the table
    try:
        _, info = envs.reset(seed=0)
        assert info["tool_calls"]["Count_memory"].tolist() == [0]
    finally:
        envs.close()
