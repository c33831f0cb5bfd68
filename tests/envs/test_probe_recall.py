"""Probe-Recall: the colour grader and the held-out objects."""

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.envs.probe import COLOURS, OBJECTS
from agemem_gym.tools import format_answer


def answer(text, task_id=0):
    env = gym.make("AgeMem/Probe-Recall-v0", max_rounds=1, num_tasks=64)
    env.reset(seed=0, options={"task_id": task_id})
    env.step("ok")  # Stage 1's only round
    _, _, terminated, _, info = env.step(format_answer(text))
    assert terminated
    return info


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("red", 1.0),
        ("The secret colour is red.", 1.0),
        ("RED!", 1.0),
        ("red or blue", 0.0),
        ("blue", 0.0),
        ("reddish", 0.0),
    ],
)
def test_the_answer_must_name_the_colour_and_no_other(text, score):
    info = answer(text)
    assert info["task_score"] == score == info["success"]


def test_exact_match_is_still_reported():
    assert answer("The secret colour is red.")["em"] == 0.0 and answer("red")["em"] == 1.0


def test_later_tasks_name_an_object_and_keep_the_eight_answers():
    env = gym.make("AgeMem/Probe-Recall-v0", num_tasks=64)
    seen = set()
    for task_id in range(64):
        obs, _ = env.reset(seed=0, options={"task_id": task_id})
        material = obs[-1]["content"]
        thing = OBJECTS[task_id // 8]
        assert COLOURS[task_id % 8] in material
        assert (
            (f"of the {thing} is" in material)
            if thing
            else material == f"Remember this: the secret colour is {COLOURS[task_id]}."
        )
        seen.add(material)
    assert len(seen) == 64  # every task is its own prompt: tasks 48-63 are a real held-out panel
