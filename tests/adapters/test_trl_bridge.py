"""The TRL bridge: GRPOTrainer(rollout_func=AgeMemRollout(...)) on the tiny model, offline."""

import math
import time

import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.trl import (  # noqa: E402
    AgeMemRollout,
    env_reward,
    make_dataset,
    parse_task_prompt,
    task_prompt,
    task_score,
)
from agemem_gym.error import InvalidConfig  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402

# a short Probe-Recall: Stage 1 in one message, one distractor (so a Stage-2 reset happens),
# the schemas given to the grammar but not printed in every prompt (short sequences)
ENV_KWARGS = {"stage1_mode": "single", "max_rounds": 2, "num_distractors": 1, "tools_in_system_prompt": False}


def test_dataset_rows_name_the_task_and_seed():
    data = make_dataset([3, "probe-5"], seeds=[7, 8])
    assert data.column_names == ["prompt", "task_id", "seed"]
    assert [parse_task_prompt(p) for p in data["prompt"]] == [(3, 7), ("probe-5", 8)]
    assert parse_task_prompt(task_prompt(0, 1)) == (0, 1)
    with pytest.raises(InvalidConfig, match="make_dataset"):
        parse_task_prompt("What is the capital of France?")
    with pytest.raises(InvalidConfig, match="one seed per task"):
        make_dataset([1, 2], seeds=[0])
    with pytest.raises(InvalidConfig, match="AgeMemRollout"):
        env_reward(["c"])
    assert env_reward(["a", "b"], env_reward=[0.5, -1]) == [0.5, -1.0]
    assert task_score(["a"], task_score=[1]) == [1.0]


def test_grpo_trainer_trains_on_whole_episodes(tmp_path, monkeypatch):
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.manual_seed(0)
    model, tok = load_model("tiny")
    before = [p.detach().clone() for p in model.parameters()]
    rollout = AgeMemRollout(
        "AgeMem/Probe-Recall-v0", env_kwargs=ENV_KWARGS, max_new_tokens=24, constrained=True, tools=False, max_turns=12
    )
    k = 2
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=k,
        num_generations=k,
        max_steps=2,
        learning_rate=1e-3,
        temperature=1.0,
        beta=0.0,
        reward_weights=[1.0, 0.0],  # task_score is logged, not trained on
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        reward_funcs=[env_reward, task_score],
        args=args,
        train_dataset=make_dataset(range(4)),
        rollout_func=rollout,
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 2
    for h in steps:
        assert math.isfinite(h["loss"]) and math.isfinite(h["rewards/env_reward/mean"])
        assert "agemem/context_differs" in h and "agemem/task_score" in h
    assert any(h["reward_std"] > 0 for h in steps)  # the grammar makes the K rollouts differ
    change = sum(float((p.detach() - b).abs().sum()) for p, b in zip(model.parameters(), before))
    assert change > 0
    # every turn of every episode is there; the Stage-2 reset restarted each episode's sequence once
    summary = rollout.last_alignment
    assert summary["episodes"] == k and summary["restart"] >= k
    # the contract TRL reads, checked on a fresh call with the trained model
    prompts = [task_prompt(1, 0)] * k
    out = rollout(prompts, trainer)
    for key in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward", "task_score"):
        assert len(out[key]) == len(prompts)
    for ids, mask, lps in zip(out["completion_ids"], out["env_mask"], out["logprobs"]):
        assert len(ids) == len(mask) == len(lps) and set(mask) == {0, 1}
        assert ids[-1] == tok.eos_token_id  # TRL reads a missing end token as a truncated completion
        assert all(lp == 0.0 for lp, m in zip(lps, mask) if m == 0) and all(lp <= 0 for lp in lps)
    rollout.close()
    assert seconds < 600
