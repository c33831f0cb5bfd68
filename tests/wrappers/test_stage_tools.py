"""ToolCallsByStage: per-stage tool counts that add up to the env's own totals."""

import gymnasium as gym

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.policies import make
from agemem_gym.tools import ADD_MEMORY, RETRIEVE_MEMORY, format_answer, format_tool_call
from agemem_gym.wrappers import ToolCallsByStage
from agemem_gym.wrappers.stage_tools import count_calls


def play(env, policy, seed=0):
    obs, info = env.reset(seed=seed)
    assert info["tool_calls_by_stage"] == {}
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        done = terminated or truncated
    return info


def test_counts_per_stage_add_up_to_the_episode_totals():
    env = ToolCallsByStage(gym.make("AgeMem/MemoryProbe-v0", privileged_info=True))
    info = play(env, make("oracle"))
    by_stage = info["tool_calls_by_stage"]
    totals = {name: n for name, n in info["tool_calls"].items() if n}
    summed: dict[str, int] = {}
    for tools in by_stage.values():
        for name, n in tools.items():
            summed[name] = summed.get(name, 0) + n
    assert summed == totals and totals  # the oracle calls tools, and every call is counted once
    assert by_stage["1"].get(ADD_MEMORY, 0) > 0  # the oracle stores while the facts arrive
    assert by_stage["3"].get(RETRIEVE_MEMORY, 0) > 0  # and retrieves when the question comes
    assert ADD_MEMORY not in by_stage.get("3", {})


def test_a_turn_counts_under_the_stage_it_was_played_in():
    env = ToolCallsByStage(gym.make("AgeMem/Probe-Recall-v0", max_rounds=1))
    _, info = env.reset(seed=0)
    store = format_tool_call([{"name": ADD_MEMORY, "arguments": {"content": "the secret colour is red"}}])
    _, _, _, _, info = env.step(store)  # Stage 1's only round: the env moves on to Stage 3
    assert info["stage"] == 3 and info["tool_calls_by_stage"] == {"1": {ADD_MEMORY: 1}}
    ask = format_tool_call([{"name": RETRIEVE_MEMORY, "arguments": {"query": "secret colour"}}])
    _, _, terminated, truncated, info = env.step(ask)
    assert info["tool_calls_by_stage"] == {"1": {ADD_MEMORY: 1}, "3": {RETRIEVE_MEMORY: 1}}
    if not (terminated or truncated):
        _, _, _, _, info = env.step(format_answer("red"))
        assert info["tool_calls_by_stage"]["3"] == {RETRIEVE_MEMORY: 1}


def test_count_calls_is_pure_and_counts_invalid_calls_too():
    before = {"1": {ADD_MEMORY: 1}}
    turn = {"calls": [{"name": ADD_MEMORY, "ok": False}, {"name": "Nope", "ok": False}]}
    after = count_calls(before, 1, turn)
    assert after == {"1": {ADD_MEMORY: 2, "Nope": 1}}
    assert before == {"1": {ADD_MEMORY: 1}}
    assert count_calls(after, 3, None) == after


def test_the_counts_survive_a_vector_env():
    from agemem_gym.runner import play_episodes
    from agemem_gym.vector import make_slot_envs

    policy = make("oracle")
    make_env = lambda: ToolCallsByStage(gym.make("AgeMem/MemoryProbe-v0", privileged_info=True))  # noqa: E731
    envs = make_slot_envs(make_env, num_envs=2)
    ends = play_episodes(
        envs, [(0, 0), (1, 1), (2, 2)], lambda _s, obs, infos: [policy.act(o, i) for o, i in zip(obs, infos)]
    )
    envs.close()
    direct = play(ToolCallsByStage(gym.make("AgeMem/MemoryProbe-v0", privileged_info=True)), make("oracle"))
    first = {s: {k: int(v) for k, v in tools.items()} for s, tools in ends[0].info["tool_calls_by_stage"].items()}
    assert first == direct["tool_calls_by_stage"]
