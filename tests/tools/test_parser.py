import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agemem_gym.tools import TOOL_NAMES, format_answer, format_tool_call, parse_turn, system_prompt, tool_schemas

ADD = {"name": "Add_memory", "arguments": {"content": "Paris is the capital of France."}}
RETRIEVE = {"name": "Retrieve_memory", "arguments": {"query": "capital", "top_k": 3}}


def tc(*calls, think="t"):
    return f"<think>{think}</think><tool_call>{json.dumps(list(calls))}</tool_call>"


def test_schemas_are_the_six_paper_tools_in_hf_format():
    schemas = tool_schemas()
    assert (
        [s["function"]["name"] for s in schemas]
        == list(TOOL_NAMES)
        == ["Add_memory", "Update_memory", "Delete_memory", "Retrieve_memory", "Summary_context", "Filter_context"]
    )
    req = {s["function"]["name"]: s["function"]["parameters"]["required"] for s in schemas}
    assert req == {
        "Add_memory": ["content"],
        "Update_memory": ["memory_id", "content"],
        "Delete_memory": ["memory_id", "confirmation"],
        "Retrieve_memory": ["query"],
        "Summary_context": ["span"],
        "Filter_context": ["criteria"],
    }
    for s in schemas:
        assert s["type"] == "function" and s["function"]["parameters"]["type"] == "object"
    schemas[0]["function"]["name"] = "mutated"
    assert tool_schemas()[0]["function"]["name"] == "Add_memory"  # a fresh copy each call


def test_schemas_render_through_a_real_chat_template():
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    hf.chat_template = (
        "{% for t in tools %}TOOL {{ t.function.name }}({{ t.function.parameters.required | join(',') }})\n{% endfor %}"
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
    )
    text = hf.apply_chat_template([{"role": "user", "content": "hi"}], tools=tool_schemas(), tokenize=False)
    assert "TOOL Delete_memory(memory_id,confirmation)" in text and "<user>hi" in text


def test_system_prompt_lists_tools_and_grammar():
    prompt = system_prompt()
    for name in TOOL_NAMES:
        assert name in prompt
    assert "<think>" in prompt and "<tool_call>" in prompt and "<answer>" in prompt and "<action>" not in prompt
    assert "<action>" in system_prompt(interactive=True)
    assert '"required"' not in system_prompt(include_schemas=False)


PARSE_CASES = [
    # (turn, kind, n_calls, n_errors)
    (tc(ADD), "tool_call", 1, 0),
    (tc(ADD, RETRIEVE), "tool_call", 2, 0),
    (tc(ADD, ADD), "tool_call", 1, 0),  # duplicate dropped
    (f"<think>t</think><tool_call>{json.dumps(ADD)}</tool_call>", "tool_call", 1, 0),  # single object
    (f"<tool_call>{json.dumps([ADD, RETRIEVE])[:-40]}", "tool_call", 1, 0),  # truncated, repaired
    (f"<think>t</think>{json.dumps([ADD])}</tool_call>", "tool_call", 1, 0),  # missing opening tag
    ("<think>t</think><tool_call>```json\n" + json.dumps([ADD]) + "\n```</tool_call>", "tool_call", 1, 0),
    (format_answer("Paris"), "answer", 0, 0),
    ("<answer>Paris</answer>", "answer", 0, 0),  # think is optional
    ("plain prose, no tags", "invalid", 0, 1),
    ("", "invalid", 0, 1),
    (format_answer("x") + tc(ADD), "invalid", 0, 1),  # mixed kinds
    ("<think>x</think><action>go north</action>", "invalid", 0, 1),  # no world here
    ("<tool_call>[]</tool_call>", "invalid", 0, 1),
    ("<tool_call>{oops</tool_call>", "invalid", 0, 1),
    (tc({"name": "Add_memry", "arguments": {"content": "x"}}), "invalid", 0, 1),
    (tc({"name": "Add_memory", "arguments": {}}), "invalid", 0, 1),
    (tc({"name": "Add_memory", "arguments": {"content": 5.5}}), "tool_call", 1, 0),  # number -> string
    (tc({"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": "many"}}), "invalid", 0, 1),
    (tc({"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": "4"}}), "tool_call", 1, 0),
    (tc({"name": "Add_memory", "arguments": {"content": "x", "colour": "red"}}), "invalid", 0, 1),
    (tc({"name": "Add_memory", "arguments": {"content": "x"}}, 7, "s"), "tool_call", 1, 2),
    (tc({"name": "Add_memory", "arguments": json.dumps({"content": "x"})}), "tool_call", 1, 0),
    (tc({"name": "Add_memory", "parameters": {"content": "x"}}), "tool_call", 1, 0),
    ("<tool_call>" + "[" * 5000 + "</tool_call>", "invalid", 0, 1),
    ("<think><answer>inside think</answer></think><answer>real</answer>", "answer", 0, 0),
]


@pytest.mark.parametrize("turn,kind,n_calls,n_errors", PARSE_CASES)
def test_parse_table(turn, kind, n_calls, n_errors):
    parsed = parse_turn(turn)
    assert parsed.kind == kind
    assert len(parsed.calls) == n_calls
    assert len(parsed.errors) == n_errors, parsed.errors


def test_error_messages_say_what_is_expected():
    e = parse_turn(tc({"name": "Add_memry", "arguments": {}})).errors[0]
    assert "Did you mean Add_memory" in e
    e = parse_turn(tc({"name": "Delete_memory", "arguments": {"memory_id": "m"}})).errors[0]
    assert "confirmation" in e and "Delete_memory(memory_id, confirmation)" in e
    e = parse_turn("nothing").errors[0]
    assert "<tool_call>" in e and "<answer>" in e


def test_aliases_and_coercions():
    t = parse_turn(tc({"name": "Delete_memory", "arguments": {"memory_id": "mem_1", "confirmed": "true"}}))
    assert t.calls[0].arguments == {"memory_id": "mem_1", "confirmation": True}
    t = parse_turn(tc({"name": "Summary_context", "arguments": {"span": "FULL"}}))
    assert t.calls[0].arguments == {"span": "all"}
    t = parse_turn(tc({"name": "Summary_context", "arguments": {"span": 5}}))
    assert t.calls[0].arguments == {"span": "5"}


def test_truncated_array_keeps_only_complete_calls():
    full = json.dumps([ADD, RETRIEVE, {"name": "Filter_context", "arguments": {"criteria": "cake"}}])
    t = parse_turn("<tool_call>" + full[: full.index("Filter") + 3])
    assert [c.name for c in t.calls] == ["Add_memory", "Retrieve_memory"]
    assert any("repaired" in n for n in t.notes)


def test_max_calls_limit_is_one_error():
    calls = [{"name": "Add_memory", "arguments": {"content": f"fact {i}"}} for i in range(3000)]
    t = parse_turn(tc(*calls), max_calls=16)
    assert len(t.calls) == 16 and len(t.errors) == 1 and "limit of 16" in t.errors[0]


def test_structured_actions():
    assert parse_turn(ADD).calls[0].name == "Add_memory"
    assert [c.name for c in parse_turn([ADD, RETRIEVE]).calls] == ["Add_memory", "Retrieve_memory"]
    assert parse_turn({"answer": " Paris "}).answer == "Paris"
    assert parse_turn({"action": "go"}, allow_action=True).action == "go"
    assert parse_turn({"action": "go"}).kind == "invalid"
    assert parse_turn(42).kind == "invalid"
    assert parse_turn(None).kind == "invalid"


def test_format_helpers_round_trip():
    text = format_tool_call([ADD, RETRIEVE], "plan")
    parsed = parse_turn(text)
    assert parsed.think == "plan" and [c.to_json() for c in parsed.calls] == [ADD, RETRIEVE]
    assert parse_turn(format_answer("42")).answer == "42"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        json_values,
        st.builds(lambda v: "<tool_call>" + json.dumps(v) + "</tool_call>", json_values),
        st.builds(
            lambda name, v: tc({"name": name, "arguments": v}), st.sampled_from(TOOL_NAMES + ("X",)), json_values
        ),
    )
)
def test_parser_never_raises(turn):
    parsed = parse_turn(turn)
    assert parsed.kind in ("tool_call", "answer", "action", "invalid")
    assert parsed.kind != "invalid" or parsed.errors
