import gymnasium as gym
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import agemem_gym  # noqa: E402,F401
from agemem_gym.adapters.grpo.rollout import GroupSlot, collect_groups, make_rollout_envs  # noqa: E402
from agemem_gym.policies.llm.hf_policy import HFPolicy  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402
from agemem_gym.tools import format_answer  # noqa: E402


def test_group_slot_pins_the_task_and_freezes_after_the_end():
    env = GroupSlot(gym.make("AgeMem/Probe-Recall-v0", stage1_mode="single"))
    env.pinned_task = 3
    obs, info = env.reset(seed=0)
    assert env.unwrapped.task.task_id == "probe-3" and info["slot_done"] is False
    env.step(format_answer("ok"))  # Stage 1 done; Stage 2 is off -> the question
    obs, r, term, trunc, info = env.step(format_answer("purple"))
    assert info["slot_done"] and info["slot_terminated"] and not (term or trunc) and r != 0.0
    again = env.step("anything at all")
    assert again[0] == obs and again[1] == 0.0 and again[4] is info


def test_collect_groups_shares_tasks_within_groups_and_keeps_every_turn():
    model, tok = load_model("tiny-vocab")
    policy = HFPolicy(model, tok, max_new_tokens=8, temperature=1.0, seed=0)
    kwargs = {"tokenizer": tok, "tools_in_system_prompt": False, "max_rounds": 2, "num_distractors": 1}
    envs = make_rollout_envs("AgeMem/Probe-Recall-v0", 2 * 3, kwargs)
    batch = collect_groups(envs, policy, task_ids=[1, 6], group_size=3, seed=10)
    assert len(batch.trajectories) == 6
    assert [t.group for t in batch.trajectories] == [0, 0, 0, 1, 1, 1]
    assert [t.task_id for t in batch.trajectories] == [1, 1, 1, 6, 6, 6]
    assert [t.info["task_id"] for t in batch.trajectories] == ["probe-1"] * 3 + ["probe-6"] * 3
    for t in batch.trajectories:
        assert len(t.samples) == t.info["turns"]  # every turn of every stage is a sample
        assert all(batch.samples[i].traj == batch.trajectories.index(t) for i in t.samples)
        assert t.reward == pytest.approx(t.info["episode_reward"])
    assert sum(len(s.response_ids) for s in batch.samples) == batch.generated_tokens
    # the K rollouts of a group saw the same distractor
    distractors = envs.get_attr("unwrapped")
    assert distractors[0]._distractor_messages(distractors[0].task) == distractors[2]._distractor_messages(
        distractors[2].task
    )
    with pytest.raises(ValueError, match="need 9"):
        collect_groups(envs, policy, [1, 2, 3], group_size=3, seed=0)
    envs.close()
