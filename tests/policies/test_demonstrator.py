"""The oracle stores the facts it is given however a message words them; the demonstrator answers from memory."""

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym import policies
from agemem_gym.text import find_stated
from agemem_gym.tools import parse_turn


def _play(policy, env_id, task, wipe_before_stage3=False, **env_kwargs):
    env = gym.make(env_id, privileged_info=True, **env_kwargs)
    obs, info = env.reset(seed=task, options={"task_id": task})
    turns = []
    while True:
        if wipe_before_stage3 and info.get("stage") == 3 and info.get("round") == 0:
            ltm = env.unwrapped.ltm
            for memory_id in ltm.ids():
                ltm.delete(memory_id)
        turn = policy.act(obs, info)
        turns.append(turn)
        obs, _, term, trunc, info = env.step(turn)
        if term or trunc:
            return info, turns


def test_find_stated_matches_case_space_and_final_punctuation():
    message = "Remember this: the secret  colour is red."
    assert find_stated("The secret colour is red.", message) == "the secret  colour is red."
    assert find_stated("The secret colour is red", message) == "the secret  colour is red."
    assert find_stated("the secret colour is blue.", message) is None
    assert find_stated("colour is red", "the colour is redder") is None  # whole words only
    assert find_stated("", message) is None


@pytest.mark.parametrize("task", [0, 9])
def test_oracle_stores_the_probe_recall_fact(task):
    info, _ = _play(policies.make("oracle"), "AgeMem/Probe-Recall-v0", task, num_tasks=16)
    assert info["tool_calls"]["Add_memory"] == 1
    assert info["memory_quality"] > 0.5 and info["task_score"] == 1.0


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [("AgeMem/Probe-Recall-v0", {"num_tasks": 64}), ("AgeMem/MemoryProbe-v0", {})]
)
def test_demonstrator_solves_probes_from_memory(env_id, kwargs):
    tasks = range(0, 64, 3)  # Probe-Recall: with and without an object ("the secret colour of the box")
    scores = [_play(policies.make("demonstrator"), env_id, t, **kwargs)[0]["task_score"] for t in tasks]
    assert sum(scores) / len(scores) >= 0.99


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [("AgeMem/Probe-Recall-v0", {"num_tasks": 64}), ("AgeMem/MemoryProbe-v0", {})]
)
def test_demonstrator_fails_without_its_memory(env_id, kwargs):
    scores = [_play(policies.make("demonstrator"), env_id, t, True, **kwargs)[0]["task_score"] for t in range(8)]
    assert sum(scores) / len(scores) <= 0.2


def test_demonstrator_stores_the_fact_as_stated_and_speaks_the_grammar():
    info, turns = _play(policies.make("demonstrator"), "AgeMem/Probe-Recall-v0", 9, num_tasks=16)
    parsed = [parse_turn(t) for t in turns]
    assert [p.kind for p in parsed] == ["tool_call", "answer", "tool_call", "answer"]
    assert parsed[0].calls[0].arguments["content"] == "the secret colour of the box is blue."
    assert parsed[2].calls[0].arguments["query"] == "What is the secret colour of the box?"
    assert info["invalid_calls"] == 0 and info["memory_quality"] > 0.5
