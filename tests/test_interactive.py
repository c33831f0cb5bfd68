"""The interactive base with a tiny world: a corridor whose exit is three steps to the right."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from agemem_gym.interactive import InteractiveMemoryEnv, WorldStep
from agemem_gym.task import Task
from agemem_gym.tools import format_action, format_answer, format_tool_call

ACK = format_answer("ok")


class Corridor(InteractiveMemoryEnv):
    """A corridor: 'right' three times reaches the exit, 'left' at the start falls into a pit."""

    def _num_tasks(self):
        return 2

    def _make_task(self, index):
        return Task(
            task_id=f"corridor-{index}",
            query="Reach the exit of the corridor.",
            material=("Last time, the exit was three steps to the right.",),
            facts=("The exit is three steps to the right.",),
        )

    def _world_reset(self, task):
        self.pos = 0
        return "You are at the start of a corridor."

    def _valid_actions(self):
        return ["left", "right"]

    def _world_step(self, action):
        if action not in ("left", "right"):
            return WorldStep("Nothing happens.")
        self.pos += 1 if action == "right" else -1
        if self.pos < 0:
            return WorldStep("You fell into a pit.", done=True)
        return WorldStep(f"You are {self.pos} steps in.", done=self.pos == 3, success=self.pos == 3)

    def _world_grade(self):
        return {"task_score": float(self.pos >= 3), "success": float(self.pos >= 3)}

    def _expert_action(self):
        return "right"


def play(env, turns):
    out = None
    for t in turns:
        out = env.step(t)
        if out[2] or out[3]:
            break
    return out


def test_stages_then_world():
    env = Corridor(num_distractors=1)
    obs, info = env.reset(seed=0)
    assert info["stage"] == 1
    obs, _, _, _, info = env.step(format_action("right"))
    assert "no world to act in yet" in obs[-1]["content"] and info["step_invalid_calls"] == 1
    obs, *_ = env.step(ACK)  # stage 1 done -> stage 2
    obs, _, _, _, info = env.step(ACK)  # stage 2 done -> stage 3
    assert info["stage"] == 3 and info["valid_actions"] == ["left", "right"]
    assert obs[-2]["content"] == "Reach the exit of the corridor."
    assert "Valid actions: left, right" in obs[-1]["content"]
    retrieve = format_tool_call([{"name": "Retrieve_memory", "arguments": {"query": "exit"}}])
    obs, r, term, trunc, info = env.step(retrieve)
    assert info["world_steps"] == 0 and not term  # memory tools do not move the world
    obs, r, term, trunc, info = play(env, [format_action("right")] * 3)
    assert term and not trunc and info["success"] == 1.0 and info["task_score"] == 1.0 and r == info["episode_reward"]


def test_plain_mode_lost_world_and_truncation():
    env = Corridor(plain=True)
    obs, info = env.reset(seed=0)
    assert info["stage"] == 3 and obs[1]["content"].startswith("Reach the exit")
    obs, r, term, trunc, info = env.step(format_action("left"))
    assert term and info["success"] == 0.0
    env = Corridor(plain=True, max_world_steps=2)
    env.reset(seed=0)
    obs, r, term, trunc, info = play(env, [format_action("wait")] * 2)
    assert trunc and not term and "reward_components" in info


def test_answer_ends_and_rounds_exhausted_and_privileged_expert():
    env = Corridor(plain=True, max_rounds=2, privileged_info=True)
    obs, info = env.reset(seed=0)
    assert info["privileged"]["expert_action"] == "right"
    obs, r, term, trunc, info = play(env, [format_answer("done")])
    assert term and info["success"] == 0.0
    env.reset(seed=0)
    obs, r, term, trunc, info = play(env, ["garbage", "garbage"])
    assert term and info["penalties"]["rounds"] == -1.0


def test_check_env_and_bad_arguments():
    check_env(Corridor(), skip_render_check=True)
    with pytest.raises(Exception, match="max_world_steps"):
        Corridor(max_world_steps=0)
    assert isinstance(Corridor(), gym.Env)


@pytest.mark.parametrize("name,success", [("oracle", 1.0), ("store-all", 1.0), ("rag", 1.0)])
def test_scripted_policies_in_a_world(name, success):
    from agemem_gym import policies

    class RememberedCorridor(Corridor):
        def _make_task(self, index):
            return Task(
                task_id=f"c{index}",
                query="Reach the exit of the corridor.",
                material=("Walkthrough of this corridor: right; right; right",),
            )

    env = RememberedCorridor(privileged_info=True, num_distractors=1)
    policy = policies.make(name)
    obs, info = env.reset(seed=0)
    for _ in range(60):
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            break
    assert info["success"] == success and info["invalid_calls"] == 0


def test_no_memory_acts_randomly_but_validly():
    from agemem_gym import policies

    env = Corridor(plain=True, max_world_steps=10)
    policy = policies.make("no-memory", seed=3)
    obs, info = env.reset(seed=0)
    for _ in range(20):
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            break
    assert info["invalid_calls"] == 0 and info["world_steps"] >= 1
