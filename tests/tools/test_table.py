"""The tool table: declarations, the derived constants, and what the parser and executor take from it."""

import json
from pathlib import Path

import pytest

from agemem_gym.config import MemoryConfig
from agemem_gym.error import InvalidConfig, MemoryFull, UnknownName
from agemem_gym.memory import LongTermMemory
from agemem_gym.memory.context_ops import CosineFilter, ExtractiveSummarizer
from agemem_gym.memory.stm import ApproxTokenCounter, ShortTermMemory
from agemem_gym.tools import (
    DEFAULT_TOOLS,
    LTM_TOOLS,
    STM_TOOLS,
    TOOL_NAMES,
    TOOL_SCHEMAS,
    Tool,
    ToolCall,
    ToolExecutor,
    ToolResult,
    ToolTable,
    histogram_names,
    parse_turn,
    system_prompt,
    tool_schemas,
)

SNAPSHOT = Path(__file__).parent.parent / "data" / "default_tool_schemas.json"


def _ok(ctx, **arguments):
    return ToolResult(ctx.name, True, f"[memory tool result]\nran with {sorted(arguments)}")


def test_default_table_gives_the_schemas_of_before_the_table_key_for_key():
    before = json.loads(SNAPSHOT.read_text())
    assert json.dumps(list(TOOL_SCHEMAS)) == json.dumps(before)  # same content, same key order
    assert json.dumps(DEFAULT_TOOLS.schemas()) == json.dumps(before)
    assert json.dumps(tool_schemas()) == json.dumps(before)


def test_derived_constants():
    assert TOOL_NAMES == DEFAULT_TOOLS.names
    assert LTM_TOOLS == ("Add_memory", "Update_memory", "Delete_memory") == DEFAULT_TOOLS.touching("ltm_write")
    assert STM_TOOLS == ("Retrieve_memory", "Summary_context", "Filter_context")
    assert DEFAULT_TOOLS.touching("ltm_read") == ("Retrieve_memory",)
    assert DEFAULT_TOOLS.touching("context") == ("Summary_context", "Filter_context")
    assert DEFAULT_TOOLS["Delete_memory"].aliases == {"confirmed": "confirmation"}
    assert DEFAULT_TOOLS["Delete_memory"].signature() == "Delete_memory(memory_id, confirmation)"
    with pytest.raises(UnknownName, match="touch kind"):
        DEFAULT_TOOLS.touching("disk")


def test_table_is_an_ordered_immutable_mapping_of_tools():
    assert len(DEFAULT_TOOLS) == 6 and [t.name for t in DEFAULT_TOOLS] == list(TOOL_NAMES)
    assert "Add_memory" in DEFAULT_TOOLS and "Forget" not in DEFAULT_TOOLS
    with pytest.raises(UnknownName, match="Did you mean 'Add_memory'"):
        DEFAULT_TOOLS["Add_memry"]
    with pytest.raises(AttributeError):
        DEFAULT_TOOLS.extra = 1
    tool = DEFAULT_TOOLS["Add_memory"]
    with pytest.raises(TypeError):
        tool.parameters["content"] = {"type": "integer"}
    schema = tool.schema()
    schema["function"]["parameters"]["properties"]["content"]["type"] = "integer"  # a copy
    assert tool.parameters["content"]["type"] == "string"
    assert hash(tool) == hash(DEFAULT_TOOLS["Add_memory"])


def test_with_tools_appends_new_names_and_replaces_same_names_in_place():
    extra = Tool("Ping", "Answers pong.", handler=_ok, touches=frozenset())
    other_add = Tool(
        "Add_memory",
        "A different add.",
        {"text": {"type": "string"}},
        ("text",),
        handler=_ok,
        touches=frozenset({"ltm_write"}),
    )
    table = DEFAULT_TOOLS.with_tools(extra, other_add)
    assert table.names == (*TOOL_NAMES, "Ping")
    assert table["Add_memory"] is other_add and DEFAULT_TOOLS["Add_memory"] is not other_add  # a new table
    assert table.select(["Ping", "Filter_context"]).names == ("Ping", "Filter_context")
    assert table != DEFAULT_TOOLS and DEFAULT_TOOLS.with_tools() == DEFAULT_TOOLS


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "bad name!"}, "tool name"),
        ({"parameters": {"x": {"type": "float"}}}, "needs a type"),
        ({"parameters": {"x": {"type": "string"}}, "required": ("y",)}, "required"),
        ({"touches": frozenset({"disk"})}, "touches"),
        ({"parameters": {"x": {"type": "string"}}, "aliases": {"x": "y"}}, "aliases"),
        ({"parameters": {"x": {"type": "integer"}}, "value_aliases": {"x": {"a": "b"}}}, "value_aliases"),
        ({"handler": "not callable"}, "callable"),
    ],
)
def test_inconsistent_declarations_are_configuration_errors(kwargs, match):
    fields = {"name": "Ping", "description": "d", "handler": _ok, "touches": frozenset(), **kwargs}
    with pytest.raises(InvalidConfig, match=match):
        Tool(**fields)


def test_a_table_holds_tools_with_unique_names():
    ping = Tool("Ping", "d", handler=_ok, touches=frozenset())
    with pytest.raises(InvalidConfig, match="unique"):
        ToolTable([ping, ping])
    with pytest.raises(InvalidConfig, match="Tool objects"):
        ToolTable([{"name": "Ping"}])


def test_system_prompt_takes_a_table_or_default_names():
    names = ["Add_memory", "Filter_context"]
    assert system_prompt(names) == system_prompt(DEFAULT_TOOLS.select(names))
    listed = system_prompt(names, include_schemas=False)
    assert "Add_memory, Filter_context" in listed and '"name":"Update_memory"' not in system_prompt(names)


def test_parser_validates_against_the_given_table():
    echo = Tool(
        "Echo",
        "Echo a word.",
        {"word": {"type": "string"}, "times": {"type": "integer"}, "mode": {"type": "string"}},
        ("word",),
        handler=_ok,
        touches=frozenset({"context"}),
        aliases={"text": "word"},
        value_aliases={"mode": {"loud": "LOUD"}},
    )
    table = ToolTable([echo])
    turn = {"name": "Echo", "arguments": {"text": "hi", "times": "3", "mode": " Loud "}}
    parsed = parse_turn(turn, tools=table)
    assert parsed.calls == (ToolCall("Echo", {"word": "hi", "times": 3, "mode": "LOUD"}),)
    error = parse_turn({"name": "Add_memory", "arguments": {"content": "x"}}, tools=table).errors[0]
    assert "unknown tool 'Add_memory'" in error and "Tools: Echo." in error
    assert "expected Echo(word, times?, mode?)" in parse_turn({"name": "Echo", "arguments": {}}, tools=table).errors[0]
    assert parse_turn({"name": "Echo", "arguments": {"word": "x"}}).kind == "invalid"  # not a default tool


def _executor(tools, ltm=None):
    counter = ApproxTokenCounter()
    stm = ShortTermMemory(counter)
    ltm = ltm or LongTermMemory(seed=0)
    return ToolExecutor(
        ltm, stm, MemoryConfig(max_entries=3), ExtractiveSummarizer(counter), CosineFilter("hashing"), tools
    )


def test_executor_dispatches_through_the_table_and_fills_touches_from_it():
    def full(ctx, **_):
        raise MemoryFull("no room")

    stuffer = Tool("Stuff", "Adds too much.", handler=full, touches=frozenset({"ltm_write"}))
    ex = _executor(DEFAULT_TOOLS.with_tools(stuffer))
    turn = ex.stm.append("assistant", "t")
    added = ex.run(ToolCall("Add_memory", {"content": "a fact"}), stage=1, step=0, turn=turn)
    assert added.ok and added.touches == {"ltm_write"} and added.memory_op == "added"
    result = ex.run(ToolCall("Stuff", {}), stage=1, step=1, turn=turn)
    assert not result.ok and result.touches == {"ltm_write"}
    assert (
        result.message
        == "[tool error] Stuff: long-term memory is full (3 entries); delete or update memories instead of adding"
    )
    with pytest.raises(InvalidConfig, match="ToolTable"):
        _executor(["Add_memory"])


def test_histogram_names_keep_the_six_first_then_what_else_was_counted():
    assert histogram_names([]) == TOOL_NAMES
    counts = [{"Add_memory": 1, "Count_memory": 2}, {"Zap": 0, "Count_memory": 1}]
    assert histogram_names(counts) == (*TOOL_NAMES, "Count_memory", "Zap")


def test_tables_pickle_and_copy():
    """Vector envs pickle the env arguments; a table must survive it."""
    import copy
    import pickle

    for table in (DEFAULT_TOOLS, DEFAULT_TOOLS.with_tools(Tool("Ping", "d", handler=_ok, touches=frozenset()))):
        assert pickle.loads(pickle.dumps(table)) == table
        assert copy.deepcopy(table) == table
    assert pickle.loads(pickle.dumps(DEFAULT_TOOLS["Summary_context"])).value_aliases == {"span": {"full": "all"}}


def test_patterns_must_name_string_parameters():
    from agemem_gym.error import InvalidConfig
    from agemem_gym.tools import DEFAULT_TOOLS, Tool

    base = DEFAULT_TOOLS["Retrieve_memory"]
    with pytest.raises(InvalidConfig, match="patterns"):
        Tool(
            "Probe_memory",
            "x",
            {"top_k": {"type": "integer"}},
            handler=base.handler,
            touches=frozenset({"ltm_read"}),
            patterns={"top_k": "^[0-9]$"},
        )
    assert DEFAULT_TOOLS["Summary_context"].patterns["span"].startswith("^(all|")
