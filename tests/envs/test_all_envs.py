"""Checks every registered id gets for free: check_env, determinism, pickling, vectorisation."""

import json
import pickle
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

from agemem_gym.policies import RandomPolicy
from tests.envs.utils import TESTABLE_IDS, rollout

CHECK_ENV_ALLOWED = ()  # no warning is expected from check_env


@pytest.mark.parametrize("env_id", TESTABLE_IDS)
def test_check_env_without_warnings(env_id):
    env = gym.make(env_id).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [w for w in caught if not any(a in str(w.message) for a in CHECK_ENV_ALLOWED)]
    assert not unexpected, [str(w.message) for w in unexpected]
    env.close()


def _policy_actions(env_id, seed, n=60):
    """Actions of the random policy along one episode (malformed turns included)."""
    env = gym.make(env_id, privileged_info=True)
    policy = RandomPolicy(seed=seed)
    obs, info = env.reset(seed=seed)
    actions = []
    for _ in range(n):
        a = policy.act(obs, info)
        actions.append(a)
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            break
    env.close()
    return actions


@pytest.mark.parametrize("env_id", TESTABLE_IDS)
@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_trajectory(env_id, seed):
    actions = _policy_actions(env_id, seed)
    a = rollout(gym.make(env_id), actions, seed)
    b = rollout(gym.make(env_id), actions, seed)
    assert len(a) == len(b) > 1
    for x, y in zip(a, b):
        assert data_equivalence(x, y, exact=True)


@pytest.mark.parametrize("env_id", TESTABLE_IDS)
def test_pickle_round_trip_mid_episode(env_id):
    actions = _policy_actions(env_id, 3, n=40)
    env = gym.make(env_id)
    env.reset(seed=3)
    for a in actions[:10]:
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    for a in actions[10:]:
        x, y = env.step(a), clone.step(a)
        assert data_equivalence(x, y, exact=True)
        if x[2] or x[3]:
            break


@pytest.mark.parametrize("env_id", TESTABLE_IDS)
def test_make_vec_four_envs(env_id):
    envs = gym.make_vec(env_id, num_envs=4, vectorization_mode="sync")
    obs, infos = envs.reset(seed=[0, 1, 2, 3])
    assert len(obs) == 4 and all(isinstance(o, tuple) for o in obs)
    actions = ["<think>x</think><answer>ok</answer>"] * 4
    for _ in range(5):
        obs, rewards, term, trunc, infos = envs.step(actions)
        assert rewards.shape == (4,) and term.shape == (4,)
        assert "stage" in infos and len(infos["stage"]) == 4
    envs.close()


@pytest.mark.parametrize("env_id", TESTABLE_IDS)
def test_spec_serialises_and_docstring_has_sections(env_id):
    spec = gym.spec(env_id)
    assert json.loads(spec.to_json())["id"] == env_id
    doc = gym.make(env_id).unwrapped.__doc__
    for section in (
        "## Description",
        "## Action Space",
        "## Observation Space",
        "## Rewards",
        "## Episode End",
        "## Arguments",
        "## Version History",
    ):
        assert section in doc, section
