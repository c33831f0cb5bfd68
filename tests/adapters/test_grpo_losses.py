import math

import pytest

torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.losses import (  # noqa: E402
    broadcast_to_steps,
    group_advantages,
    kl_penalty,
    masked_entropy,
    policy_surrogate,
    sequence_mean,
    token_mean,
)


def test_group_advantages_use_the_sample_std():
    r = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    adv = group_advantages(r, 3, eps=0.0 + 1e-12)
    # group 1: mean 2, sample std 1 -> (-1, 0, 1); group 2: all equal -> zeros
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]), atol=1e-6)
    k4 = group_advantages(torch.tensor([0.0, 0.0, 0.0, 4.0]), 4, eps=1e-6)
    std = math.sqrt(((3 * 1.0**2) + 3.0**2) / 3)  # deviations -1,-1,-1,3; unbiased /(K-1)
    assert torch.allclose(k4, torch.tensor([-1.0, -1.0, -1.0, 3.0]) / (std + 1e-6))
    with pytest.raises(ValueError, match="K=4"):
        group_advantages(torch.ones(6), 4)


def test_broadcast_gives_every_step_its_trajectory_advantage():
    adv = torch.tensor([0.5, -0.5])
    steps = torch.tensor([0, 0, 0, 1, 1])
    assert broadcast_to_steps(adv, steps).tolist() == [0.5, 0.5, 0.5, -0.5, -0.5]


def test_unclipped_surrogate_is_ratio_times_advantage():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    old = torch.log(torch.tensor([[0.25, 0.25]]))
    loss, clipped = policy_surrogate(logp, old, torch.tensor([2.0]), clip=None)
    assert torch.allclose(loss, torch.tensor([[-4.0, -2.0]]))  # -(ratio 2, 1) * A=2
    assert not clipped.any()


def test_clipped_surrogate_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.9]]))  # ratios
    loss, clipped = policy_surrogate(logp, old, torch.tensor([1.0]), clip=0.2)
    # A > 0: min(r, clip(r)) -> 1.2, 0.5, 1.1, 0.9
    assert torch.allclose(loss, -torch.tensor([[1.2, 0.5, 1.1, 0.9]]))
    assert clipped.tolist() == [[True, False, False, False]]
    loss, clipped = policy_surrogate(logp, old, torch.tensor([-1.0]), clip=0.2)
    # A < 0: max(-r, -clip(r)) -> 1.5, 0.8, 1.1, 0.9
    assert torch.allclose(loss, torch.tensor([[1.5, 0.8, 1.1, 0.9]]))
    assert clipped.tolist() == [[False, True, False, False]]
    per_token_adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, _ = policy_surrogate(logp, old, per_token_adv, clip=0.2, clip_high=0.3)
    assert torch.allclose(loss, torch.tensor([[-1.3, -0.5, 1.1, 0.9]]))


def test_ratio_is_one_at_zero_update():
    logp = torch.randn(3, 5)
    loss, clipped = policy_surrogate(logp, logp.clone(), torch.tensor([1.0, -2.0, 0.5]), clip=0.2)
    assert torch.allclose(loss, -torch.tensor([1.0, -2.0, 0.5]).unsqueeze(1).expand(3, 5))
    assert not clipped.any()


def test_kl_estimators_by_hand():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    log_r = math.log(2.0)
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(log_r)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * log_r**2)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 - 1 + log_r)
    assert kl_penalty(logp, logp, "k3").item() == 0.0
    assert (kl_penalty(torch.randn(4, 4), torch.randn(4, 4), "k3") >= 0).all()
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k4")


def test_aggregations():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert token_mean(values, mask).item() == pytest.approx(10 / 4)
    assert token_mean(values, mask, total_tokens=8).item() == pytest.approx(10 / 8)
    assert sequence_mean(values, mask).item() == pytest.approx((2.0 + 4.0) / 2)
    uniform = torch.zeros(1, 2, 8)
    assert masked_entropy(uniform, torch.ones(1, 2)).item() == pytest.approx(math.log(8))
