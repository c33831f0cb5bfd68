"""Memory-state credit: hand-computed advantages, the fork's snapshots, and a real trainer step."""

import math

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.config import load_config  # noqa: E402
from agemem_gym.adapters.grpo.credit import (  # noqa: E402
    credit_stats,
    fork_step_advantages,
    local_advantages,
    memory_state_advantages,
    mix,
    trajectory_advantages,
)
from agemem_gym.adapters.grpo.fork import collect_forked  # noqa: E402
from agemem_gym.adapters.grpo.rollout import make_rollout_envs  # noqa: E402
from agemem_gym.adapters.grpo.trainer import train  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402

S = 1 / math.sqrt(2)  # two values a and b > a normalise to ±1/√2 (sample std)


def returns_one_task():
    # K = 2 memory states, M = 2 continuations: state 0 scored 1 and 0, state 1 scored 0 and 0
    return torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])


def test_memory_state_advantage_normalises_the_values_over_k():
    # V = (0.5, 0): mean 0.25, sample std 0.25·√2
    assert memory_state_advantages(returns_one_task())[0].tolist() == pytest.approx([S, -S], abs=1e-5)


def test_local_advantage_normalises_within_a_memory_state_and_ties_are_exact_zeros():
    local = local_advantages(returns_one_task())
    assert local[0, 0].tolist() == pytest.approx([S, -S], abs=1e-5)
    assert local[0, 1].tolist() == [0.0, 0.0]  # exact, not rounding


def test_trajectory_advantage_normalises_over_all_k_times_m_trajectories():
    # returns 1, 0, 0, 0: mean 0.25, sample std 0.5
    assert trajectory_advantages(returns_one_task()).flatten().tolist() == pytest.approx(
        [1.5, -0.5, -0.5, -0.5], abs=1e-5
    )


def test_equal_values_give_exact_zero_memory_advantage():
    returns = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[3.0, 3.0], [3.0, 3.0]]])
    assert memory_state_advantages(returns).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert local_advantages(returns)[1].abs().sum() == 0.0


def test_fork_step_advantages_mix_by_hand():
    returns = returns_one_task()
    # samples: prefix of rollout 0, prefix of rollout 1 (named by any of its trajectories),
    # continuation (0, 0), continuation (0, 1), continuation (1, 1)
    traj = torch.tensor([0, 3, 0, 1, 3])
    prefix = torch.tensor([True, True, False, False, False])
    w = 0.5
    # prefix 0: mean_c A_traj = (1.5 - 0.5)/2 = 0.5 ; A_mem = S ; prefix 1: -0.5, -S
    # continuation (0,0): A_traj 1.5, A_loc S ; (0,1): -0.5, -S ; (1,1): -0.5, 0
    expected = [0.5 * 0.5 + w * S, -0.5 * 0.5 - w * S, 0.5 * 1.5 + w * S, -0.5 * 0.5 - w * S, -0.25]
    got = fork_step_advantages(returns, traj, prefix, w)
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    # w = 0 is trajectory credit over the K·M trajectories, w = 1 the memory-state part alone
    assert fork_step_advantages(returns, traj, prefix, 0.0).tolist() == pytest.approx(
        [0.5, -0.5, 1.5, -0.5, -0.5], abs=1e-5
    )
    assert fork_step_advantages(returns, traj, prefix, 1.0).tolist() == pytest.approx([S, -S, S, -S, 0.0], abs=1e-5)


def test_mix_and_stats_edges():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
    assert mix(a, b, 0.25).tolist() == [1.5, 2.75]
    with pytest.raises(ValueError, match="weight"):
        mix(a, b, 1.5)
    with pytest.raises(ValueError, match="G, K, M"):
        memory_state_advantages(torch.zeros(4))
    stats = credit_stats(returns_one_task())
    assert stats["credit/local_zero_fraction"] == 0.5
    assert stats["credit/value_std"] == pytest.approx(0.25 * math.sqrt(2))
    assert stats["credit/local_std"] == pytest.approx(S / 2)


def test_config_validates_the_credit_fields():
    assert load_config("cpu-smoke").credit == "trajectory"
    for bad in (
        {"credit": "state"},
        {"fork_continuations": 1},
        {"credit_weight": 1.5},
        {"fork_stage": 1},
        {"credit": "memory-state", "env_backend": "ray"},
    ):
        with pytest.raises(InvalidConfig):
            load_config("cpu-smoke", **bad)


def _tiny_policy():
    from agemem_gym.policies.llm.hf_policy import HFPolicy
    from agemem_gym.policies.llm.models import load_model

    model, tokenizer = load_model("tiny-vocab", seed=0)
    return HFPolicy(model, tokenizer, max_new_tokens=8, temperature=1.0, batch_size=16), tokenizer


def test_continuations_of_one_memory_state_share_its_stage1_context():
    policy, tokenizer = _tiny_policy()
    kwargs = {"tokenizer": tokenizer, "num_tasks": 2, "max_rounds": 2, "tools_in_system_prompt": False}
    envs = make_rollout_envs("AgeMem/Probe-Recall-v0", 2, kwargs)
    fork_envs = make_rollout_envs("AgeMem/Probe-Recall-v0", 6, kwargs)
    seen = []
    real_generate = policy.generate

    def generate(observations, infos):  # record what each continuation saw first
        seen.append((list(observations), [dict(i) for i in infos]))
        return real_generate(observations, infos)

    policy.generate = generate
    try:
        batch = collect_forked(envs, fork_envs, policy, [0], 2, 3, seed=5)
    finally:
        envs.close()
        fork_envs.close()
    n_phase1 = next(k for k, (_, infos) in enumerate(seen) if infos[0]["stage"] >= 2)
    first_obs, first_infos = seen[n_phase1]  # the first continuation turn of all 6 slots
    assert len(first_obs) == 6 and all(info["stage"] >= 2 for info in first_infos)  # no distractors: 3
    for i in range(2):  # same snapshot → same context (Stage-1 memory included)
        assert first_obs[3 * i] == first_obs[3 * i + 1] == first_obs[3 * i + 2]
        assert first_infos[3 * i]["memory_ids"] == first_infos[3 * i + 2]["memory_ids"]
        assert first_infos[3 * i]["step"] == first_infos[3 * i + 1]["step"] >= 1  # resumed mid-episode, not reset
    assert all(all(info["stage"] == 1 for info in infos) for _, infos in seen[:n_phase1])
    assert len(batch.trajectories) == 6 and batch.continuations == 3
    assert len(batch.samples) == batch.stage1_samples + sum(not p for p in batch.prefix)
    assert batch.stage1_samples == sum(len(o) for o, _ in seen[:n_phase1])
    assert {s.traj for s, p in zip(batch.samples, batch.prefix) if p} == {0, 3}
    assert {s.traj for s, p in zip(batch.samples, batch.prefix) if not p} == set(range(6))


def test_memory_state_training_step_runs_end_to_end(tmp_path):
    env_kwargs = {"num_tasks": 2, "max_rounds": 2, "tools_in_system_prompt": False}
    config = load_config(
        "cpu-smoke",
        output_dir=str(tmp_path),
        tensorboard=False,
        env_kwargs=env_kwargs,
        tasks_per_step=2,
        group_size=2,
        num_steps=1,
        credit="memory-state",
        fork_continuations=2,
    )
    row = train(config, progress=False).metrics[0]
    for key in ("losses/policy", "losses/kl", "reward/mean"):
        assert math.isfinite(row[key]), (key, row)
    assert row["perf/samples"] == row["credit/stage1_samples"] + row["credit/continuation_samples"]
    assert row["credit/stage1_samples"] >= 4 and row["credit/continuation_samples"] >= 8  # ≥ 1 turn per part
    assert row["perf/generated_tokens"] > 0
    for key in ("credit/value_std", "credit/local_std", "credit/local_zero_fraction"):
        assert math.isfinite(row[key])
