"""The SB3 control wrapper: upstream checker, action semantics, determinism, vec envs, learning."""

import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.adapters.sb3 import (
    ACTIONS,
    FIXED_FEATURES,
    MemoryControlWrapper,
    NoMemoryController,
    RandomController,
    StoreAllController,
    evaluate_controller,
    make_control_env,
    make_controller,
    require_sb3,
    summarize_episodes,
)
from agemem_gym.error import DependencyNotInstalled, InvalidConfig, ResetNeeded, UnknownName
from agemem_gym.evaluation import run_episodes
from agemem_gym.policies import StoreAllPolicy
from agemem_gym.tools import format_answer, format_tool_call, parse_turn

A = {name: i for i, name in enumerate(ACTIONS)}
F = {name: i for i, name in enumerate(FIXED_FEATURES)}
PROBE = "AgeMem/MemoryProbe-v0"
HOTPOT = "AgeMem/HotpotQA-v0"


@pytest.mark.parametrize("env_id", [HOTPOT, PROBE])
def test_sb3_check_env_passes_without_warnings(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = make_control_env(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_checker.check_env(env)
    assert not caught, [str(w.message) for w in caught]


def _question_answering_ids():
    from gymnasium.envs.registration import load_env_creator

    from tests.envs.utils import TESTABLE_IDS

    return [i for i in TESTABLE_IDS if not getattr(load_env_creator(gym.spec(i).entry_point), "interactive", True)]


@pytest.mark.parametrize("env_id", _question_answering_ids())
def test_wraps_every_registered_question_answering_env(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = make_control_env(env_id)
    sb3_checker.check_env(env)
    (episode,) = evaluate_controller(StoreAllController(), env, [0], seed=0)
    assert episode.invalid_calls == 0 and episode.actions["add"] >= 1 and episode.actions["retrieve"] == 1


def test_spaces_and_feature_layout():
    env = make_control_env(PROBE, sketch_dim=8)
    obs, info = env.reset(seed=0)
    assert env.action_space.n == len(ACTIONS) == 7
    assert obs.dtype == np.float32 and obs.shape == (len(FIXED_FEATURES) + 8,)
    assert env.feature_names[: len(FIXED_FEATURES)] == FIXED_FEATURES
    assert env.observation_space.contains(obs)
    assert obs[F["stage_1"]] == 1 and obs[F["new_message"]] == 1 and obs[F["ltm_size"]] == 0
    assert obs[F["focus_query_sim"]] == 0  # the question is not visible in Stage 1


def _play(env, actions, seed):
    out = [env.reset(seed=seed)]
    for a in actions:
        out.append(env.step(a))
        if out[-1][2] or out[-1][3]:
            break
    return out


def test_same_seed_same_trajectory():
    actions = np.random.default_rng(0).integers(0, len(ACTIONS), size=80)
    a = _play(make_control_env(HOTPOT), actions, seed=4)
    b = _play(make_control_env(HOTPOT), actions, seed=4)
    assert len(a) == len(b) > 5
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:-1] == y[1:-1]
        assert x[-1].get("control_turn") == y[-1].get("control_turn")


def test_each_action_is_one_real_tool_turn():
    env = make_control_env(PROBE)
    obs, info = env.reset(seed=1, options={"task_id": 3})
    focus = env.memory_env.stm.messages[-1].content
    obs, _, _, _, info = env.step(A["update"])  # empty memory: the env's own unknown-id error
    assert info["invalid_calls"] == 1 and info["ltm_size"] == 0
    obs, _, _, _, info = env.step(A["add"])
    assert info["tool_calls"]["Add_memory"] == 1 and info["ltm_size"] == 1
    assert [m.content for m in env.memory_env.ltm] == [focus]
    assert obs[F["focus_stored"]] == 1 and obs[F["last_add"]] == 1 and obs[F["new_message"]] == 0
    for name, tool in [("retrieve", "Retrieve_memory"), ("summary", "Summary_context"), ("filter", "Filter_context")]:
        obs, _, _, _, info = env.step(A[name])
        assert info["tool_calls"][tool] == 1, name
        assert parse_turn(info["control_turn"]).calls[0].name == tool
    assert info["control_action"] == "filter" and info["invalid_calls"] == 1


def test_reply_moves_on_and_answers_in_stage_3():
    env = make_control_env(PROBE)
    obs, info = env.reset(seed=0, options={"task_id": 0})
    obs, _, _, _, info = env.step(A["reply"])
    assert info["round"] == 0 and obs[F["new_message"]] == 1
    steps = 0
    while info["stage"] < 3:
        obs, reward, term, trunc, info = env.step(A["reply"])
        steps += 1
    assert obs[F["stage_3"]] == 1 and obs[F["focus_query_sim"]] > 0.99
    obs, reward, term, trunc, info = env.step(A["reply"])
    assert term and info["answer"] and info["task_score"] == 0.0  # nothing was stored


def test_update_and_delete_pick_nearest_and_least_useful():
    env = make_control_env(HOTPOT)
    env.reset(seed=0, options={"task_id": 0})
    ltm = env.memory_env.ltm
    env.step(A["add"])
    (first,) = ltm.ids()
    env.step(A["reply"])  # the next paragraph arrives
    env.step(A["add"])
    (second,) = set(ltm.ids()) - {first}
    _, _, _, _, info = env.step(A["delete"])  # the stored copy of the current message is the most useful
    assert info["tool_calls"]["Delete_memory"] == 1 and first not in ltm and second in ltm
    _, _, _, _, info = env.step(A["update"])
    assert parse_turn(info["control_turn"]).calls[0].arguments["memory_id"] == second
    assert info["tool_calls"]["Update_memory"] == 1 and info["invalid_calls"] == 0


def test_store_all_controller_equals_the_scripted_store_all_policy():
    scripted = run_episodes(HOTPOT, StoreAllPolicy(), episodes=4, seed=10)
    env = make_control_env(HOTPOT)
    controlled = evaluate_controller(StoreAllController(), env, range(4), seed=10)
    assert [e.task_id for e in controlled] == [e.task_id for e in scripted]
    assert [e.task_score for e in controlled] == [e.task_score for e in scripted]
    assert [e.memory_quality for e in controlled] == [e.memory_quality for e in scripted]
    # the turns' wording differs, so only the compression term (token counts) may move a little
    np.testing.assert_allclose([e.reward for e in controlled], [e.reward for e in scripted], atol=0.01)


def test_baseline_controllers_order_on_the_probe():
    env = make_control_env(PROBE)
    scores = {
        name: summarize_episodes(evaluate_controller(make_controller(name), env, range(20), seed=0))
        for name in ("random", "no-memory", "store-all")
    }
    assert scores["store-all"]["task_score"] == 1.0 and scores["no-memory"]["task_score"] == 0.0
    assert scores["store-all"]["reward"] > scores["no-memory"]["reward"] > scores["random"]["reward"]
    batch = np.stack([env.reset(seed=i)[0] for i in range(3)])
    actions, state = RandomController(seed=1).predict(batch)
    assert actions.shape == (3,) and state is None
    assert NoMemoryController().predict(batch[0])[0] == A["reply"]


def test_task_split_and_lookahead():
    env = make_control_env(PROBE, tasks=[7, 9])
    seen = {env.reset(seed=s)[1]["task_id"] for s in range(12)}
    assert seen == {"probe-7", "probe-9"}
    look = make_control_env(PROBE, lookahead_query=True)
    obs, _ = look.reset(seed=0)
    assert obs[F["focus_query_sim"]] != 0


class _AnswerPolicy:
    def __init__(self, turn):
        self.turn = turn

    def act(self, observation, info):
        return self.turn


def test_policy_reader_and_its_fallback():
    for turn, fallback in [(format_answer("1234"), False), (format_tool_call([{"name": "Summary_context"}]), True)]:
        env = make_control_env(PROBE, reader=_AnswerPolicy(turn))
        env.reset(seed=0, options={"task_id": 0})
        info = {"stage": 1}
        while info["stage"] < 3:
            *_, info = env.step(A["reply"])
        *_, term, _, info = env.step(A["reply"])
        assert term and info["reader_fallback"] is fallback
        assert (info["answer"] == "1234") is not fallback


def test_programmer_errors_raise():
    from tests.test_interactive import Corridor

    with pytest.raises(InvalidConfig, match="interactive"):
        MemoryControlWrapper(Corridor())
    with pytest.raises(InvalidConfig, match="MemoryEnv"):
        MemoryControlWrapper(gym.make("CartPole-v1"))
    with pytest.raises(InvalidConfig, match="out of range"):
        make_control_env(PROBE, tasks=[5000])
    with pytest.raises(InvalidConfig, match="top_k"):
        make_control_env(PROBE, top_k=0)
    with pytest.raises(UnknownName, match="store-all"):
        make_controller("store_all")
    env = make_control_env(PROBE)
    with pytest.raises(ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    for bad in (7, -1, 1.5, "add", [1, 2]):
        with pytest.raises(InvalidConfig, match="action"):
            env.step(bad)
    env.step(np.array([1]))  # what SB3 hands over is accepted


def test_missing_sb3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(DependencyNotInstalled, match=r"agemem-gym\[sb3\]"):
        require_sb3()


@pytest.mark.parametrize("subprocess", [False, True])
def test_vec_envs(subprocess):
    pytest.importorskip("stable_baselines3")
    from agemem_gym.adapters.sb3 import make_vec_control_env

    venv = make_vec_control_env(PROBE, n_envs=2, seed=3, subprocess=subprocess)
    obs = venv.reset()
    assert obs.shape == (2, len(FIXED_FEATURES) + 16)
    ended = 0
    for _ in range(30):
        obs, rewards, dones, infos = venv.step(np.array([A["reply"], A["add"]]))
        for done, info in zip(dones, infos):
            if done:
                ended += 1
                assert "terminal_observation" in info and "episode" in info
    venv.close()
    assert ended >= 2


def test_dqn_smoke():
    pytest.importorskip("stable_baselines3")
    from agemem_gym.adapters.sb3 import train_controller

    model, curve = train_controller(
        PROBE, algo="dqn", total_timesteps=300, algo_kwargs={"learning_starts": 100}, seed=0
    )
    assert curve.returns and len(curve.smoothed(5)) == len(curve.returns)
    action, _ = model.predict(np.zeros(len(FIXED_FEATURES) + 16, dtype=np.float32), deterministic=True)
    assert 0 <= int(action) < len(ACTIONS)


def test_ppo_beats_random_on_the_probe():
    """A real learning signal: 8k decisions of PPO (about 15 s on one core) on a fixed seed."""
    pytest.importorskip("stable_baselines3")
    from agemem_gym.adapters.sb3 import train_controller

    model, curve = train_controller(PROBE, total_timesteps=8000, seed=0, wrapper_kwargs={"tasks": range(0, 800)})
    env = make_control_env(PROBE)
    panel = range(800, 830)  # held-out tasks
    learned = summarize_episodes(evaluate_controller(model, env, panel, seed=1000))
    random = summarize_episodes(evaluate_controller(RandomController(seed=0), env, panel, seed=1000))
    silent = summarize_episodes(evaluate_controller(NoMemoryController(), env, panel, seed=1000))
    assert learned["reward"] > random["reward"] + 0.5, (learned, random)
    assert learned["reward"] > silent["reward"] and learned["task_score"] > silent["task_score"] + 0.2
    assert np.mean(curve.returns[-20:]) > np.mean(curve.returns[:20])
