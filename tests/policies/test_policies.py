import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym import policies
from agemem_gym.error import UnknownName
from agemem_gym.policies import ExtractiveReader, Policy, RandomPolicy
from agemem_gym.tools import parse_turn


def test_lookup_and_suggestions():
    assert policies.names() == [
        "amem-style",
        "demonstrator",
        "hf",
        "langmem-style",
        "mem0-style",
        "mem0g-style",
        "no-memory",
        "openai",
        "oracle",
        "rag",
        "random",
        "store-all",
    ]
    # hf loads a model (tests/adapters covers it); openai needs a server (test_openai_policy.py)
    for name in set(policies.names()) - {"hf", "openai"}:
        p = policies.make(name)
        assert isinstance(p, Policy) and p.name == name
    with pytest.raises(UnknownName, match="Did you mean 'store-all'"):
        policies.make("store_all")


@pytest.mark.parametrize("name", ["no-memory", "store-all", "rag", "oracle", "demonstrator"])
def test_scripted_policies_speak_the_grammar(name):
    env = gym.make("AgeMem/HotpotQA-v0", privileged_info=True)
    policy = policies.make(name)
    obs, info = env.reset(seed=2, options={"task_id": 2})
    while True:
        turn = policy.act(obs, info)
        assert parse_turn(turn).kind in ("tool_call", "answer")
        obs, r, term, trunc, info = env.step(turn)
        if term:
            break
    assert info["invalid_calls"] == 0 and info["answer"]


def test_oracle_needs_privileged_info():
    env = gym.make("AgeMem/HotpotQA-v0")
    obs, info = env.reset(seed=0)
    with pytest.raises(RuntimeError, match="privileged_info=True"):
        policies.make("oracle").act(obs, info)


def test_random_policy_is_seeded_and_mostly_malformed_or_varied():
    env = gym.make("AgeMem/HotpotQA-v0")
    obs, info = env.reset(seed=0)
    a = [RandomPolicy(seed=5).act(obs, info) for _ in range(1)]
    p1, p2 = RandomPolicy(seed=5), RandomPolicy(seed=5)
    turns1 = [p1.act(obs, info) for _ in range(50)]
    turns2 = [p2.act(obs, info) for _ in range(50)]
    assert turns1 == turns2 and a[0] == turns1[0]
    kinds = {parse_turn(t).kind for t in turns1}
    assert {"tool_call", "answer", "invalid"} <= kinds


@pytest.mark.parametrize(
    "question,passages,answer",
    [
        (
            "Which band released Brothers in Arms?",
            ["Brothers in Arms is the fifth studio album by the British rock band Dire Straits."],
            "Dire Straits",
        ),
        ("Are both Cadillac and Ford car makers?", ["irrelevant"], "yes"),
        (
            "Who was born first, Alan Turing or John von Neumann?",
            ["Alan Turing was born in 1912 in London.", "John von Neumann was born in 1903 in Budapest."],
            "John von Neumann",
        ),
        ("How many studio albums did the band release?", ["The band released 9 studio albums in total."], "9"),
        ("In what year did the memorial open?", ["The memorial opened to visitors in 1941."], "1941"),
    ],
)
def test_extractive_reader(question, passages, answer):
    assert ExtractiveReader().answer(question, passages) == answer
