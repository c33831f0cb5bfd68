"""WipeMemoryBeforeStage3: the LTM-wiped ablation empties the memory as Stage 3 begins, and only then."""

import gymnasium as gym

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.policies import make
from agemem_gym.wrappers import WipeMemoryBeforeStage3


def play(env, policy, task):
    policy.reset()
    obs, info = env.reset(seed=task, options={"task_id": task})
    seen, done = [], False
    while not done:
        before = len(env.unwrapped.ltm)
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        seen.append((int(info.get("stage", 0)), before, len(env.unwrapped.ltm), info.get("ltm_wiped")))
        done = terminated or truncated
    return info, seen


def test_the_demonstrator_scores_with_its_memory_and_fails_without_it():
    kwargs = {"num_tasks": 64, "max_rounds": 2, "privileged_info": True}
    tasks = range(48, 56)
    plain = [play(gym.make("AgeMem/Probe-Recall-v0", **kwargs), make("demonstrator"), t)[0] for t in tasks]
    assert all(i["task_score"] == 1.0 for i in plain)  # it stores the fact, retrieves it and answers
    wiped_env = WipeMemoryBeforeStage3(gym.make("AgeMem/Probe-Recall-v0", **kwargs))
    for task in tasks:
        info, seen = play(wiped_env, make("demonstrator"), task)
        assert info["task_score"] < 1.0  # the answer came from the memory, now gone
        wipes = [s for s in seen if s[3] is not None]
        assert len(wipes) == 1 and wipes[0][0] == 3 and wipes[0][3] >= 1  # once, as Stage 3 starts
        assert wipes[0][2] == 0  # the LTM is empty when the agent's first Stage-3 turn comes
        assert all(s[0] < 3 for s in seen[: seen.index(wipes[0])])  # nothing is wiped before Stage 3


def test_reset_arms_the_wipe_again_and_memories_outlive_earlier_stages():
    env = WipeMemoryBeforeStage3(gym.make("AgeMem/Probe-Recall-v0", num_tasks=64, max_rounds=2, privileged_info=True))
    for _ in range(2):  # a second episode on the same env wipes again
        _, seen = play(env, make("demonstrator"), 50)
        stage1_end = max(i for i, s in enumerate(seen) if s[0] < 3)
        assert seen[stage1_end][2] >= 1  # the stored fact is there until Stage 3 begins
        assert sum(s[3] is not None for s in seen) == 1
