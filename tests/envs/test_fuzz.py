"""Adversarial turns never crash the env, never corrupt memory, and are always counted."""

import json

import gymnasium as gym
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agemem_gym  # noqa: F401
from agemem_gym.tools import TOOL_NAMES

INFO_KEYS = {
    "stage",
    "round",
    "step",
    "tool_calls",
    "invalid_calls",
    "prompt_tokens",
    "context_tokens",
    "overflow",
    "ltm_size",
    "task_id",
    "step_invalid_calls",
}
_ENV = {}


def env():
    if "e" not in _ENV:
        _ENV["e"] = gym.make("AgeMem/HotpotQA-v0", num_distractors=2, max_rounds=3).unwrapped
    return _ENV["e"]


safe_text = st.text(alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=200)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | safe_text,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(safe_text, c, max_size=4),
    max_leaves=15,
)


def tc(payload):
    return "<think>fuzz</think><tool_call>" + payload + "</tool_call>"


# Each strategy yields (turn, known_bad): known_bad turns must raise invalid_calls.
bad_turns = st.one_of(
    safe_text.map(lambda t: (t, True)),  # prose without tags
    st.just(("", True)),
    st.just(("\x00" * 100, True)),
    safe_text.map(lambda t: (tc("[{" + t), True)),  # broken JSON
    st.builds(
        lambda n: (tc(json.dumps([{"name": n, "arguments": {}}])), True),
        safe_text.filter(lambda n: n not in TOOL_NAMES),
    ),  # unknown tool
    st.builds(
        lambda v: (tc(json.dumps([{"name": "Retrieve_memory", "arguments": {"query": v}}])), True),
        json_value.filter(lambda v: not isinstance(v, (str, int, float)) or isinstance(v, bool)),
    ),
    st.builds(
        lambda mid: (
            tc(json.dumps([{"name": "Delete_memory", "arguments": {"memory_id": mid, "confirmation": True}}])),
            True,
        ),
        st.from_regex(r"mem_[0-9a-f]{8}", fullmatch=True) | safe_text,
    ),  # unknown ids
    st.just((tc(json.dumps([{"name": "Add_memory", "arguments": {"content": "x" * 1_000_000}}])), True)),
    st.just(("<answer>" + "y" * 1_000_000 + "</answer>", True)),  # megabyte turn
    st.just(("<answer>a</answer><tool_call>[]</tool_call>", True)),  # mixed
    st.just((tc(json.dumps([{"name": "Add_memory", "arguments": {"content": f"c{i}"}} for i in range(3000)])), True)),
    st.builds(
        lambda v: (tc(json.dumps([{"name": "Summary_context", "arguments": {"span": v}}])), True),
        safe_text.filter(
            lambda s: s.strip().lower() not in ("all", "full") and not s.strip().isdigit() and "-" not in s
        ),
    ),
    st.just((tc(json.dumps([{"name": "Add_memory", "arguments": {"content": "   "}}])), True)),
    st.just(({"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": 10_000}}, True)),
    st.just((["not", "calls"], True)),
    st.just((12345, True)),
)
any_turns = st.one_of(
    bad_turns,
    json_value.map(lambda v: (tc(json.dumps(v)), False)),
    st.builds(
        lambda n, v: (tc(json.dumps([{"name": n, "arguments": v}])), False), st.sampled_from(TOOL_NAMES), json_value
    ),
    st.builds(
        lambda n, t: (
            tc(json.dumps([{"name": n, "arguments": {"content": t, "query": t, "criteria": t, "span": t}}])),
            False,
        ),
        st.sampled_from(TOOL_NAMES),
        st.text(max_size=300),
    ),
    st.text(max_size=300).map(lambda t: (f"<answer>{t}</answer>", False)),
    st.text(max_size=300).map(lambda t: (t, False)),  # arbitrary unicode, tags allowed
)


def check(env_, obs, info, before):
    env_.ltm.check_invariants()
    env_.stm.check_invariants()
    assert INFO_KEYS <= set(info)
    assert env_.observation_space.contains(obs)
    assert info["invalid_calls"] >= before
    assert info["prompt_tokens"] <= max(env_.config.max_context_tokens, info["context_tokens"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.integers(0, 2**16), st.lists(any_turns, min_size=1, max_size=25))
def test_random_and_adversarial_turns(seed, turns):
    e = env()
    obs, info = e.reset(seed=seed)
    for turn, known_bad in turns:
        before = info["invalid_calls"]
        obs, reward, term, trunc, info = e.step(turn)
        check(e, obs, info, before)
        if known_bad:
            assert info["step_invalid_calls"] >= 1 and info["invalid_calls"] > before, (
                turn if isinstance(turn, str) and len(turn) < 300 else type(turn)
            )
        if term:
            assert isinstance(reward, float) and "reward_components" in info
            obs, info = e.reset(seed=seed + 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(bad_turns, min_size=1, max_size=10))
def test_every_bad_turn_is_counted_and_memory_survives(turns):
    e = env()
    obs, info = e.reset(seed=0, options={"task_id": 0})
    obs, _, _, _, info = e.step(tc(json.dumps([{"name": "Add_memory", "arguments": {"content": "keep me"}}])))
    kept = [m.id for m in e.ltm]
    for turn, _ in turns:
        before = info["invalid_calls"]
        obs, _, term, _, info = e.step(turn)
        assert info["invalid_calls"] > before
        if term:
            break
        assert [m.id for m in e.ltm][: len(kept)] == kept and e.ltm.get(kept[0]).content == "keep me"
