import ast
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo import losses  # noqa: E402
from agemem_gym.adapters.grpo.losses import (  # noqa: E402
    AdvantageNorm,
    broadcast_to_steps,
    broadcast_to_tokens,
    group_advantages,
    kl_penalty,
    policy_surrogate,
    sequence_mean,
    token_mean,
)


def test_group_advantages_use_the_sample_std():
    r = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])  # (N,) = G=2 groups of K=3
    adv = group_advantages(r, 3, eps=0.0 + 1e-12)  # (N,)
    # group 1: mean 2, sample std 1 -> (-1, 0, 1); group 2: all equal -> zeros
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]), atol=1e-6)
    k4 = group_advantages(torch.tensor([0.0, 0.0, 0.0, 4.0]), 4, eps=1e-6)  # (4,) = one group of K=4
    std = math.sqrt(((3 * 1.0**2) + 3.0**2) / 3)  # deviations -1,-1,-1,3; unbiased /(K-1)
    assert torch.allclose(k4, torch.tensor([-1.0, -1.0, -1.0, 3.0]) / (std + 1e-6))
    with pytest.raises(ValueError, match="K=4"):
        group_advantages(torch.ones(6), 4)  # (6,) is not G groups of 4


def test_broadcast_gives_every_step_its_trajectory_advantage():
    adv = torch.tensor([0.5, -0.5])  # (N,)
    steps = torch.tensor([0, 0, 0, 1, 1])  # (S,) trajectory of each step
    assert broadcast_to_steps(adv, steps).tolist() == [0.5, 0.5, 0.5, -0.5, -0.5]  # (S,)


def test_broadcast_gives_every_token_its_sample_value():
    values = torch.tensor([0.5, -1.0, 2.0])  # (S,)
    lengths = torch.tensor([2, 1, 3])  # (S,) -> P = 6
    assert broadcast_to_tokens(values, lengths).tolist() == [0.5, 0.5, -1.0, 2.0, 2.0, 2.0]  # (P,)


def test_unclipped_surrogate_is_ratio_times_advantage():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))  # (S, T) = (1, 2)
    old = torch.log(torch.tensor([[0.25, 0.25]]))  # (1, 2)
    loss, clipped = policy_surrogate(logp, old, torch.tensor([2.0]), clip=None)  # (S,) advantage -> (1, 2)
    assert torch.allclose(loss, torch.tensor([[-4.0, -2.0]]))  # -(ratio 2, 1) * A=2
    assert not clipped.any()


def test_clipped_surrogate_by_hand():
    old = torch.zeros(1, 4)  # (S, T)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.9]]))  # (1, 4): the ratios
    loss, clipped = policy_surrogate(logp, old, torch.tensor([1.0]), clip=0.2)
    # A > 0: min(r, clip(r)) -> 1.2, 0.5, 1.1, 0.9
    assert torch.allclose(loss, -torch.tensor([[1.2, 0.5, 1.1, 0.9]]))
    assert clipped.tolist() == [[True, False, False, False]]
    loss, clipped = policy_surrogate(logp, old, torch.tensor([-1.0]), clip=0.2)
    # A < 0: max(-r, -clip(r)) -> 1.5, 0.8, 1.1, 0.9
    assert torch.allclose(loss, torch.tensor([[1.5, 0.8, 1.1, 0.9]]))
    assert clipped.tolist() == [[False, True, False, False]]
    per_token_adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])  # (S, T): the trainer's packed (1, P) layout
    loss, _ = policy_surrogate(logp, old, per_token_adv, clip=0.2, clip_high=0.3)
    assert torch.allclose(loss, torch.tensor([[-1.3, -0.5, 1.1, 0.9]]))


def test_ratio_is_one_at_zero_update():
    logp = torch.randn(3, 5)  # (S, T)
    loss, clipped = policy_surrogate(logp, logp.clone(), torch.tensor([1.0, -2.0, 0.5]), clip=0.2)  # (S, T)
    assert torch.allclose(loss, -torch.tensor([1.0, -2.0, 0.5]).unsqueeze(1).expand(3, 5))
    assert not clipped.any()


def test_kl_estimators_by_hand():
    logp = torch.log(torch.tensor([[0.5]]))  # (S, T) = (1, 1)
    ref = torch.log(torch.tensor([[0.25]]))  # (1, 1)
    log_r = math.log(2.0)
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(log_r)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * log_r**2)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 - 1 + log_r)
    assert kl_penalty(logp, logp, "k3").item() == 0.0
    assert (kl_penalty(torch.randn(4, 4), torch.randn(4, 4), "k3") >= 0).all()  # (S, T) -> (S, T)
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k4")


def test_token_mean_is_the_share_of_the_minibatch_mean():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # (1, P): two samples (3 + 1 tokens) packed
    assert token_mean(values, total_tokens=4).item() == pytest.approx(10 / 4)
    # two micro-batches of an 8-token minibatch add up to its token mean
    other = torch.tensor([[2.0, 2.0, 2.0, 2.0]])
    parts = token_mean(values, total_tokens=8) + token_mean(other, total_tokens=8)
    assert parts.item() == pytest.approx((10 + 8) / 8)


def test_sequence_mean_is_the_share_of_the_mean_of_sample_means():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # (1, P)
    lengths = torch.tensor([3, 1])  # (S,): sample means 2 and 4
    assert sequence_mean(values, lengths, num_sequences=2).item() == pytest.approx((2.0 + 4.0) / 2)
    # a third sample (mean 6) in another micro-batch of the same 3-sample minibatch
    parts = sequence_mean(values, lengths, 3) + sequence_mean(torch.tensor([[6.0, 6.0]]), torch.tensor([2]), 3)
    assert parts.item() == pytest.approx((2.0 + 4.0 + 6.0) / 3)


def test_aggregations_match_the_float32_weights_bit_for_bit():
    """Each token's weight is rounded to float32 once (as Python floats put in a tensor would be)."""
    g = torch.Generator().manual_seed(0)
    values = torch.randn(1, 37, generator=g)  # (1, P)
    lengths = torch.tensor([5, 13, 1, 18])  # (S,)
    expected = (values * torch.full((1, 37), 1.0 / 91.0)).sum()
    assert torch.equal(token_mean(values, 91.0), expected)
    weights = torch.cat([torch.full((int(n),), 1.0 / (int(n) * 7.0)) for n in lengths]).unsqueeze(0)  # (1, P)
    assert torch.equal(sequence_mean(values, lengths, 7.0), (values * weights).sum())


def test_the_trainer_uses_every_loss():
    """losses.py holds the trainer's math and nothing else (no second copy to drift)."""
    package = Path(losses.__file__).parent
    used = set()
    for module in ("trainer.py", "update.py"):
        for node in ast.walk(ast.parse((package / module).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "agemem_gym.adapters.grpo.losses":
                used |= {alias.name for alias in node.names}
    # ... or through a name the trainer uses (AdvantageNorm calls group_advantages)
    definitions = {n.name: n for n in ast.parse(Path(losses.__file__).read_text()).body if hasattr(n, "name")}
    for name in list(used):
        used |= {n.id for n in ast.walk(definitions[name]) if isinstance(n, ast.Name) and n.id in losses.__all__}
    assert used == set(losses.__all__)


def test_one_context_token_is_not_a_full_size_advantage():
    one_token = torch.tensor([0.5, 0.5 + 1.36e-5] * 4, dtype=torch.float64)  # 4 groups of K=2
    paper = AdvantageNorm("paper")(one_token, 2)
    assert paper.abs().max().item() == pytest.approx(0.64, abs=0.01)  # the paper's form amplifies noise
    floored = AdvantageNorm("std-floor", std_floor=0.02)(one_token, 2)
    assert floored.abs().max().item() < 1e-3
    centred = one_token - one_token.view(-1, 2).mean(1).repeat_interleave(2)
    assert torch.allclose(AdvantageNorm("mean-only")(one_token, 2), centred)
    # a real difference (one binary term of the default reward in one rollout of 8) is untouched by the floor
    real = torch.tensor([0.5] * 7 + [0.5 + 1 / 12], dtype=torch.float64)
    assert torch.equal(AdvantageNorm("std-floor", std_floor=0.02)(real, 8), AdvantageNorm("paper")(real, 8))
    assert torch.equal(group_advantages(one_token, 2), paper)  # "paper" is group_advantages as it was


def test_the_trainer_config_names_the_normalisation_and_warns_on_k1():
    from agemem_gym.adapters.grpo.config import GRPOConfig
    from agemem_gym.error import InvalidConfig

    assert (GRPOConfig().advantage, GRPOConfig().adv_std_floor) == ("std-floor", 0.02)
    with pytest.raises(InvalidConfig, match="advantage must be"):
        GRPOConfig(advantage="z-score")
    with pytest.warns(UserWarning, match="zero gradient"):
        GRPOConfig(kl_estimator="k1")


@pytest.mark.parametrize("k", [3, 6])
@pytest.mark.parametrize("reward", [0.1, 1 / 3, -0.7, 123.456, 0.0])
def test_identical_rewards_get_exactly_zero_advantage(k, reward):
    """K = 3 or 6 equal rewards: their float mean is not the reward, but the advantage is exactly 0."""
    for dtype in (torch.float64, torch.float32):
        rewards = torch.tensor([reward] * k + list(range(k)), dtype=dtype)  # (2K,): an equal group, then a spread one
        adv = group_advantages(rewards, k)
        assert adv[:k].tolist() == [0.0] * k
        assert (adv[k:] != 0).sum() >= k - 1  # the spread group keeps its advantages


def test_rewards_equal_up_to_float_noise_count_as_equal():
    rewards = torch.tensor([0.1 + 0.2, 0.3, 0.3], dtype=torch.float64)  # 0.30000000000000004, 0.3, 0.3
    assert group_advantages(rewards, 3).tolist() == [0.0, 0.0, 0.0]
    assert group_advantages(torch.tensor([0.3, 0.3, 0.31]), 3).abs().min() > 0.5  # a real difference stays
