"""Regression tests from the hardening pass (issue 8): fuzz finds, resource bounds, untrusted files."""

import json
import os
import pickle
import threading

import gymnasium as gym
import numpy as np
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.config import EnvConfig, MemoryConfig
from agemem_gym.data import load_hotpotqa
from agemem_gym.data.locomo import load_locomo
from agemem_gym.error import DataFormatError, InvalidConfig, MemoryFileError
from agemem_gym.memory import LongTermMemory
from agemem_gym.memory.context_ops import CosineFilter, ExtractiveSummarizer
from agemem_gym.memory.stm import ApproxTokenCounter, ShortTermMemory
from agemem_gym.tools import MAX_ARGUMENT_DEPTH, ToolCall, ToolExecutor, format_answer, parse_turn, turn_text


def tc(*calls):
    return "<think>t</think><tool_call>" + json.dumps(list(calls)) + "</tool_call>"


def make(**kw):
    return gym.make("AgeMem/HotpotQA-v0", num_distractors=1, max_rounds=3, **kw).unwrapped


def step_ok(env, action):
    """Step, check the invariants, return info."""
    before = env._trace.invalid_calls
    obs, _, _, _, info = env.step(action)
    env.ltm.check_invariants()
    env.stm.check_invariants()
    assert env.observation_space.contains(obs)
    assert info["invalid_calls"] - before == info["step_invalid_calls"]
    return obs, info


def deep(depth):
    value = {"leaf": 1}
    for _ in range(depth):
        value = {"k": value}
    return value


# ------------------------------------------------------------------ parser crashes the fuzzer found
def test_over_long_integer_in_json_text_is_a_format_error():
    # json.loads raises ValueError (not JSONDecodeError) past Python's 4300-digit limit
    t = parse_turn(
        tc({"name": "Retrieve_memory", "arguments": {"query": "q"}}).replace(
            '"q"}', '"q", "top_k": ' + "9" * 5000 + "}"
        )
    )
    assert t.kind == "invalid" and "malformed JSON" in t.errors[0]


def test_non_string_argument_keys_in_a_structured_action():
    t = parse_turn({"name": "Add_memory", "arguments": {1: "x", (2,): "y"}})
    assert t.kind == "invalid" and "unexpected argument(s) 1" in t.errors[0]


def test_huge_and_non_json_object_arguments_are_rejected():
    t = parse_turn({"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": 10**5000}})
    assert "out of range" in t.errors[0]
    t = parse_turn({"name": "Add_memory", "arguments": {"content": "x", "metadata": {"n": 10**5000}}})
    assert "more than 18 digits" in t.errors[0]
    t = parse_turn({"name": "Add_memory", "arguments": {"content": "x", "metadata": {"s": {1, 2}}}})
    assert "not a JSON value" in t.errors[0]
    t = parse_turn({"name": "Add_memory", "arguments": {"content": "x", "metadata": deep(MAX_ARGUMENT_DEPTH)}})
    assert f"more than {MAX_ARGUMENT_DEPTH} levels" in t.errors[0]
    ok = parse_turn({"name": "Add_memory", "arguments": {"content": "x", "metadata": deep(MAX_ARGUMENT_DEPTH - 2)}})
    assert ok.kind == "tool_call"


def test_answer_before_think_with_a_tool_call_is_a_mixed_turn():
    t = parse_turn("<answer>Paris</answer>" + tc({"name": "Filter_context", "arguments": {"criteria": "x"}}))
    assert t.kind == "invalid" and "more than one of" in t.errors[0]
    # tags inside <think> are still reasoning
    t = parse_turn("<think><answer>draft</answer></think><answer>Paris</answer>")
    assert t.kind == "answer" and t.answer == "Paris"


def test_turn_text_never_raises():
    nested = []
    for _ in range(100_000):
        nested = [nested]

    class Bad:
        def __repr__(self):
            raise RuntimeError("no repr")

    assert turn_text("x") == "x"
    assert turn_text({"a": 1}) == '{"a": 1}'
    assert turn_text(nested).startswith("<unprintable list")
    assert "Bad" in turn_text(Bad())


@pytest.mark.parametrize(
    "action",
    [
        {"name": "Add_memory", "arguments": {"content": "x", "metadata": deep(5000)}},
        [{"name": "Retrieve_memory", "arguments": {"query": "x", "metadata_filter": {"d": deep(3000)}}}],
        {"name": "Add_memory", "arguments": {1: "x"}},
        {"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": 10**30}},
        '<tool_call>[{"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": '
        + "9" * 5000
        + "}}]</tool_call>",
    ],
    ids=["deep-metadata", "deep-filter", "int-key", "huge-top-k", "4300-digit-literal"],
)
def test_fuzz_crashers_are_answered_with_a_counted_error(action):
    env = make()
    env.reset(seed=0)
    step_ok(env, tc({"name": "Add_memory", "arguments": {"content": "keep me"}}))
    kept = env.ltm.ids()
    obs, info = step_ok(env, action)
    assert info["step_invalid_calls"] >= 1
    assert env.ltm.ids() == kept and obs[-1]["role"] == "tool" and "error" in obs[-1]["content"]


# ------------------------------------------------------------------ resource bounds
def test_every_memory_bound_is_a_message_and_a_counted_invalid_call():
    env = make(max_entries=2, max_content_chars=50, max_query_chars=20, max_metadata_chars=30, max_calls_per_turn=3)
    env.reset(seed=0)
    cases = [
        ([{"name": "Add_memory", "arguments": {"content": f"fact {i}"}} for i in range(3)], "memory is full"),
        ({"name": "Add_memory", "arguments": {"content": "y" * 51}}, "limit of 50"),
        ({"name": "Retrieve_memory", "arguments": {"query": "q" * 21}}, "limit of 20"),
        ({"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": 21}}, "top_k must be between 1 and 20"),
        ({"name": "Add_memory", "arguments": {"content": "z", "metadata": {"k": "v" * 40}}}, "limit of 30"),
        ([{"name": "Filter_context", "arguments": {"criteria": f"c{i}"}} for i in range(5)], "limit of 3 per turn"),
    ]
    for action, message in cases:
        obs, info = step_ok(env, action)
        assert info["step_invalid_calls"] >= 1, message
        assert any(message in m["content"] for m in obs if m["role"] == "tool"), message
        assert len(env.ltm) <= 2


def test_a_structured_turn_with_thousands_of_calls_costs_bounded_work_and_text():
    """20,000 junk calls in one structured action used to be 20,001 counted errors in one message."""
    env = make(max_calls_per_turn=16)
    env.reset(seed=0)
    before = env.stm.tokens
    obs, info = step_ok(env, [{"name": f"Nope{i}"} for i in range(20_000)])
    # the turn cut (its text passes max_response_tokens), 16 listed, one summary, one limit error
    assert info["step_invalid_calls"] == 1 + 16 + 2
    assert env.stm.tokens - before < 4000
    errors = [m.content for m in env.stm.messages if m.kind == "error"][-1]
    assert "more invalid call(s) not listed" in errors and "holds 20000 calls" in errors
    calls = [{"name": "Add_memory", "arguments": {"content": f"fact {i}"}} for i in range(20_000)]
    obs, info = step_ok(env, calls)
    assert len(env.ltm) == 16 and "limit of 16 per turn" in obs[-1]["content"]


def test_overlong_turn_is_cut_counted_and_never_tokenized_whole():
    env = make(max_response_tokens=64)
    env.reset(seed=0)
    obs, info = step_ok(env, format_answer("w " * 2_000_000))
    assert info["step_invalid_calls"] >= 1 and "max_response_tokens=64" in obs[-1]["content"]


def test_context_overflow_notice_once_per_overflow_and_configurable():
    env = make(max_context_tokens=1200, stage1_mode="single")
    obs, info = env.reset(seed=0)
    assert info["overflow"]
    notices = [m for m in env.stm.messages if m.kind == "notice"]
    assert len(notices) == 1 and "max_context_tokens=1200" in notices[0].content
    assert obs[-1]["content"] == notices[0].content  # the newest message: the agent sees it
    step_ok(env, tc({"name": "Retrieve_memory", "arguments": {"query": "anything"}}))
    assert len([m for m in env.stm.messages if m.kind == "notice"]) == 1  # not repeated while still over
    quiet = make(max_context_tokens=1200, stage1_mode="single", overflow_notice=False)
    quiet.reset(seed=0)
    assert not [m for m in quiet.stm.messages if m.kind == "notice"]


def test_bounds_are_programmer_errors_when_misconfigured():
    with pytest.raises(InvalidConfig, match="max_entries"):
        MemoryConfig(max_entries=0)
    with pytest.raises(InvalidConfig, match="max_calls_per_turn"):
        EnvConfig(max_calls_per_turn=0)
    with pytest.raises(InvalidConfig, match="max_context_tokens"):
        make(max_context_tokens=8)


# ------------------------------------------------------------------ shared-memory races
def _executor(ltm):
    counter = ApproxTokenCounter()
    stm = ShortTermMemory(counter)
    return ToolExecutor(ltm, stm, MemoryConfig(max_entries=50), ExtractiveSummarizer(counter), CosineFilter("hashing"))


def test_shared_memory_cap_holds_under_racing_adders():
    """The cap is enforced inside the LTM's write lock, so racing agents cannot overshoot it."""
    ltm = LongTermMemory(max_entries=50, seed=0)
    executors = [_executor(ltm) for _ in range(4)]
    results = []

    def add(ex, k):
        turn = ex.stm.append("assistant", "t")
        for i in range(40):
            results.append(
                ex.run(ToolCall("Add_memory", {"content": f"agent {k} fact {i}"}), stage=1, step=i, turn=turn)
            )

    threads = [threading.Thread(target=add, args=(ex, k)) for k, ex in enumerate(executors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ltm.check_invariants()
    assert len(ltm) == 50 and sum(r.ok for r in results) == 50
    assert all("memory is full" in r.message for r in results if not r.ok)


def test_update_or_delete_of_an_id_deleted_meanwhile_is_an_error_not_a_success():
    ltm = LongTermMemory(seed=0)
    ex = _executor(ltm)
    turn = ex.stm.append("assistant", "t")
    mid = ltm.add("x")
    ltm.delete(mid)  # what a second agent's Delete does between the check and the write
    for call in (
        ToolCall("Update_memory", {"memory_id": mid, "content": "y"}),
        ToolCall("Delete_memory", {"memory_id": mid, "confirmation": True}),
    ):
        result = ex.run(call, stage=1, step=0, turn=turn)
        assert not result.ok and "unknown memory_id" in result.message


# ------------------------------------------------------------------ untrusted files never unpickle
class _Boom:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_memory_file_with_a_pickled_payload_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    ltm = LongTermMemory(seed=0)
    ltm.add("x")
    good = ltm.save(tmp_path / "good.npz")
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["vectors"] = np.array([_Boom(str(marker))], dtype=object)  # an object array: stored as a pickle
    np.savez(tmp_path / "evil.npz", **arrays)
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    with pytest.raises(MemoryFileError, match="truncated or corrupt"):
        LongTermMemory.load(tmp_path / "evil.npz")
    assert calls == [False] and not marker.exists()
    # a bare pickle renamed to .npz is not a zip archive either
    (tmp_path / "raw.npz").write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(MemoryFileError):
        LongTermMemory.load(tmp_path / "raw.npz")
    assert not marker.exists()


def test_dataset_files_are_json_only(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.json").write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(DataFormatError):
        load_hotpotqa(tmp_path / "evil.json")
    with pytest.raises(DataFormatError):
        load_locomo(tmp_path / "evil.json")
    assert not marker.exists()
    # JSON the stdlib refuses with ValueError/RecursionError rather than JSONDecodeError
    (tmp_path / "big.jsonl").write_text('{"_id": ' + "9" * 5000 + "}\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for name in ("big.jsonl", "deep.json"):
        with pytest.raises(DataFormatError, match="invalid JSON"):
            load_hotpotqa(tmp_path / name)
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_locomo(tmp_path / "deep.json")
    assert not os.path.exists(marker)


# ------------------------------------------------------------------ world actions the engines cannot take
@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("go \udfff north", "lone surrogates"),
        ("r" * 501, "more than the limit of 500"),
    ],
)
def test_unsendable_world_actions_are_counted_and_never_reach_the_world(action, message):
    from tests.test_interactive import Corridor

    env = Corridor(plain=True, max_action_chars=500)
    env.reset(seed=0)
    obs, _, term, _, info = env.step(f"<think>t</think><action>{action}</action>")
    assert not term and info["step_invalid_calls"] == 1 and info["world_steps"] == 0
    assert message in obs[-1]["content"]
    obs, _, term, _, info = env.step("<think>t</think><action>right</action>")
    assert info["world_steps"] == 1
    with pytest.raises(InvalidConfig, match="max_action_chars"):
        Corridor(max_action_chars=0)


@pytest.mark.slow
def test_sciworld_survives_a_lone_surrogate_action():
    """Found by the fuzzer: py4j raised UnicodeEncodeError and the env died mid-step."""
    pytest.importorskip("scienceworld")
    env = gym.make("AgeMem/SciWorld-v0", plain=True)
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<think>t</think><action>open \udfff door</action>")
    assert info["step_invalid_calls"] == 1 and "lone surrogates" in obs[-1]["content"]
    obs, _, _, _, info = env.step("<think>t</think><action>look around</action>")
    assert info["world_steps"] == 1
    env.close()


def test_recorded_episode_files_are_json_only(tmp_path):
    from agemem_gym.wrappers.episode import read_episode

    marker = tmp_path / "pwned"
    (tmp_path / "evil.jsonl").write_bytes(pickle.dumps(_Boom(str(marker))))
    (tmp_path / "big.jsonl").write_text('{"n": ' + "9" * 5000 + "}\n")
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    for name in ("evil.jsonl", "big.jsonl", "deep.jsonl"):
        with pytest.raises(DataFormatError):
            read_episode(tmp_path / name)
    assert not marker.exists()


class _WrongShapeEmbedder:
    """An embedder that promises 8 dimensions and returns 3: a programmer's mistake."""

    dim = 8

    def __call__(self, texts):
        return np.zeros((len(texts), 3), dtype=np.float32)


def test_an_embedder_of_the_wrong_shape_is_a_configuration_error_not_a_full_memory():
    """Before MemoryFull existed, the executor read any InvalidConfig from add() as "memory is full"."""
    ltm = LongTermMemory(embedder=_WrongShapeEmbedder(), dim=8, seed=0)
    ex = _executor(ltm)
    turn = ex.stm.append("assistant", "t")
    with pytest.raises(InvalidConfig, match="embedder returned shape"):
        ex.run(ToolCall("Add_memory", {"content": "a fact"}), stage=1, step=0, turn=turn)
    assert len(ltm) == 0
