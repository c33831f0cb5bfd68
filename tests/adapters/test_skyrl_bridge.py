"""The skyrl-gym bridge: AgeMem ids through skyrl_gym.make, played like direct Gymnasium play."""

import gymnasium as gym
import pytest

skyrl_gym = pytest.importorskip("skyrl_gym")

import agemem_gym  # noqa: E402,F401
from agemem_gym.adapters.skyrl import AgeMemTextEnv, new_messages, register_all  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402
from agemem_gym.policies import make  # noqa: E402


def _direct(env_id, policy_name, task_id, seed):
    env, policy = gym.make(env_id), make(policy_name)
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    total, done, turns = 0.0, False, 0
    while not done:
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        total, done, turns = total + r, term or trunc, turns + 1
    env.close()
    return total, info, turns


def _through_skyrl(env_id, policy_name, task_id, seed):
    env = skyrl_gym.make(env_id, extras={"extra_info": {"task_id": task_id, "seed": seed}})
    policy = make(policy_name)
    history, metadata = env.init([{"role": "user", "content": "ignored: the env owns the conversation"}])
    assert history == metadata["context"]
    total, done, rewritten = 0.0, False, 0
    info = metadata["info"]
    while not done:
        action = policy.act(metadata["context"], info)  # a step-wise policy reads the full context
        out = env.step(action)
        history = [*history, {"role": "assistant", "content": action}, *out["observations"]]
        metadata, info = out["metadata"], out["metadata"]["info"]
        rewritten += metadata["context_rewritten"]
        if not rewritten:  # before any rewrite, the appended history is the env's context
            assert history == metadata["context"]
        # the observations are the tail of the env's context (what it gained)
        assert metadata["context"][len(metadata["context"]) - len(out["observations"]) :] == out["observations"]
        total, done = total + out["reward"], out["done"]
    metrics = env.get_metrics()
    env.close()
    return total, info, metrics, rewritten


@pytest.mark.parametrize(
    "env_id, policy", [("AgeMem/MemoryProbe-v0", "store-all"), ("AgeMem/Probe-Recall-v0", "store-all")]
)
def test_skyrl_play_matches_direct_play(env_id, policy):
    register_all()
    assert env_id in skyrl_gym.registry
    direct_return, direct_info, turns = _direct(env_id, policy, task_id=2, seed=5)
    total, info, metrics, rewritten = _through_skyrl(env_id, policy, task_id=2, seed=5)
    assert total == pytest.approx(direct_return) and info["task_score"] == direct_info["task_score"]
    assert metrics["episode_return"] == pytest.approx(direct_return) and metrics["turns"] == turns
    assert metrics["task_score"] == direct_info["task_score"] and "tool_calls" in metrics
    assert rewritten >= 1  # the Stage-2 reset
    summary = AgeMemTextEnv.aggregate_metrics([metrics, {**metrics, "task_score": 0.0}])
    assert summary["task_score"] == pytest.approx(direct_info["task_score"] / 2)


def test_register_all_is_idempotent_and_covers_every_id():
    register_all()
    assert register_all() == []
    ids = [i for i in gym.registry if i.startswith("AgeMem/")]
    assert ids and all(i in skyrl_gym.registry for i in ids)


def test_new_messages_and_errors():
    a, b, c = ({"role": "user", "content": x} for x in "abc")
    assert new_messages([a, b], [a, b, c]) == ([c], False)
    assert new_messages([a, b], [a, c]) == ([c], True)
    env = AgeMemTextEnv(env_config={"stage1_mode": "single"}, extras={}, env_id="AgeMem/Probe-Recall-v0")
    with pytest.raises(InvalidConfig, match="init"):
        env.step("<answer>x</answer>")
    env.close()
    with pytest.raises(InvalidConfig, match="max_turns"):
        AgeMemTextEnv(extras={"max_turns": -1}, env_id="AgeMem/Probe-Recall-v0")


def test_max_turns_ends_the_episode():
    register_all()
    env = skyrl_gym.make("AgeMem/MemoryProbe-v0", extras={"extra_info": {"task_id": 0, "seed": 0}, "max_turns": 2})
    env.init([])
    assert not env.step("no tags at all")["done"]
    assert env.step("still nothing")["done"]
    env.close()
