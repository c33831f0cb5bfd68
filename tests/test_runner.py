"""The shared episode loop (agemem_gym.runner) and its vector-env slot (agemem_gym.vector)."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.error import InvalidConfig
from agemem_gym.runner import EpisodeEnd, env_kwargs_for, play_episodes
from agemem_gym.tools import format_answer
from agemem_gym.vector import EpisodeSlot, Idle, make_slot_envs, unbatch_info


class CountdownEnv(gym.Env):
    """Episode length = the task id; reward = the step number; counts every step it takes."""

    observation_space = gym.spaces.Discrete(1000)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.total_steps = 0
        self.resets = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.length = int((options or {}).get("task_id", 3))
        self.t = 0
        self.resets.append((self.length, seed))
        return 0, {"task_id": self.length, "seed": seed}

    def step(self, action):
        self.total_steps += 1
        self.t += 1
        return self.t, float(self.t), self.t >= self.length, False, {"t": self.t, "action": int(action)}


def _always(action):
    return lambda slots, observations, infos: [action] * len(slots)


def test_slot_reports_the_end_in_info_then_freezes():
    env = EpisodeSlot(CountdownEnv())
    env.pinned_task = 2
    obs, info = env.reset(seed=5)
    assert (obs, info) == (0, {"task_id": 2, "seed": 5, "slot_done": False})
    assert env.step(1)[:4] == (1, 1.0, False, False)
    obs, reward, term, trunc, info = env.step(1)
    assert (obs, reward, term, trunc) == (2, 2.0, False, False)
    assert info["slot_done"] and info["slot_terminated"] and not info["slot_truncated"]
    again = env.step(1)
    assert again[:4] == (2, 0.0, False, False) and again[4] is info
    assert env.unwrapped.total_steps == 2


def test_slot_idle_action_steps_nothing_and_step_before_reset_reaches_the_env():
    env = EpisodeSlot(CountdownEnv())
    env.reset(seed=0)
    env.step(0)
    obs, reward, term, trunc, info = env.step(Idle())
    assert (obs, reward, term, trunc, info["t"]) == (1, 0.0, False, False, 1) and env.unwrapped.total_steps == 1
    fresh = EpisodeSlot(gym.make("AgeMem/Probe-Recall-v0"))
    with pytest.raises(Exception, match="reset"):
        fresh.step(format_answer("x"))


def test_play_episodes_schedules_slots_in_order_and_returns_the_plan_order():
    envs = make_slot_envs(CountdownEnv, num_envs=2)
    plan = [(3, 10), (1, 11), (2, 12), (1, 13)]
    starts, ends_seen = [], []
    ends = play_episodes(
        envs, plan, _always(1), on_start=lambda slot, index: starts.append((slot, index)), on_end=ends_seen.append
    )
    # slot 1 finishes episode 1 first and takes episode 2; both finish at step 3, and the
    # freed slots take what is left in slot order: slot 0 gets episode 3, slot 1 idles
    assert starts == [(0, 0), (1, 1), (1, 2), (0, 3)]
    assert [e.index for e in ends] == [0, 1, 2, 3] and [e.index for e in ends_seen] == [1, 0, 2, 3]
    assert [(e.slot, e.steps, e.reward, e.episode_return, e.finished) for e in ends] == [
        (0, 3, 3.0, 6.0, True),
        (1, 1, 1.0, 1.0, True),
        (1, 2, 2.0, 3.0, True),
        (0, 1, 1.0, 1.0, True),
    ]
    assert [e.info["t"] for e in ends] == [3, 1, 2, 1]
    assert envs.envs[1].unwrapped.resets == [(1, 11), (2, 12)]  # task pinned, seed per episode
    assert [env.unwrapped.total_steps for env in envs.envs] == [4, 3]  # idle and frozen slots never step
    envs.close()


def test_play_episodes_caps_steps_and_idles_a_capped_slot_with_nothing_left():
    envs = make_slot_envs(CountdownEnv, num_envs=2)
    ends = play_episodes(envs, [(9, 0), (9, 1), (4, 2)], _always(0), max_steps=4)
    assert [(e.slot, e.steps, e.finished) for e in ends] == [(0, 4, False), (1, 4, False), (0, 4, True)]
    # slot 1 was cut mid-episode and had nothing left: it was not stepped while slot 0 played on
    assert envs.envs[1].unwrapped.total_steps == 4 and envs.envs[0].unwrapped.total_steps == 8
    envs.close()


def test_play_episodes_rejects_bad_arguments():
    envs = make_slot_envs(CountdownEnv, num_envs=2)
    with pytest.raises(InvalidConfig, match="max_steps"):
        play_episodes(envs, [(1, 0), (1, 1)], _always(0), max_steps=0)
    with pytest.raises(InvalidConfig, match="2 sub-envs"):
        play_episodes(envs, [(1, 0)], _always(0))
    envs.close()
    with pytest.raises(InvalidConfig, match="vector mode"):
        make_slot_envs(CountdownEnv, 1, mode="threads")


def test_results_do_not_depend_on_the_number_of_slots_or_the_vector_mode():
    def answer(slots, observations, infos):
        return [format_answer("purple" if info.get("stage") == 3 else "ok") for info in infos]

    plan = [(i % 4, 100 + i) for i in range(5)]
    runs = []
    for n, mode in [(1, "sync"), (3, "sync"), (2, "async")]:
        envs = make_slot_envs(lambda: gym.make("AgeMem/Probe-Recall-v0"), n, mode)
        try:
            ends = play_episodes(envs, plan, answer)
        finally:
            envs.close()
        runs.append([{**dataclasses.asdict(e), "slot": None} for e in ends])
    assert runs[0] == runs[1] == runs[2]
    assert [e["info"]["task_id"] for e in runs[0]] == ["probe-0", "probe-1", "probe-2", "probe-3", "probe-0"]
    assert all(e["finished"] for e in runs[0]) and isinstance(runs[0][0]["reward"], float)


def test_env_kwargs_for_adds_what_the_policy_needs():
    class Needy:
        needs_privileged_info = True
        tokenizer = "tok"

    assert env_kwargs_for(Needy(), {"tokenizer": "mine", "x": 1}) == {
        "tokenizer": "mine",
        "x": 1,
        "privileged_info": True,
    }
    assert env_kwargs_for(object(), None) == {}


def test_unbatch_info_drops_masked_keys_and_unwraps_numpy_scalars():
    infos = {"a": np.array([1, 2]), "_a": np.array([True, False]), "d": {"b": np.array([0.5, 1.5])}}
    assert unbatch_info(infos, 0) == {"a": 1, "d": {"b": 0.5}}
    assert unbatch_info(infos, 1) == {"d": {"b": 1.5}}
    assert type(unbatch_info(infos, 0)["a"]) is int


def test_episode_end_is_a_frozen_record():
    end = EpisodeEnd(0, 0, 1.0, 1.0, {}, 1, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        end.reward = 2.0  # type: ignore[misc]
