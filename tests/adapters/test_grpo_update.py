"""The update on a real tiny model: one precision for scoring and update, clipping over several
epochs and minibatches, token weighting, zero-advantage samples and LoRA's reference."""

import copy
from contextlib import nullcontext

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo import trainer, update  # noqa: E402
from agemem_gym.adapters.grpo.batching import Sample  # noqa: E402
from agemem_gym.adapters.grpo.config import GRPOConfig  # noqa: E402
from agemem_gym.adapters.grpo.rollout import RolloutBatch, Trajectory  # noqa: E402
from agemem_gym.adapters.grpo.state import build_models  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402

pytestmark = pytest.mark.train
CPU = torch.device("cpu")


def tiny(seed=0):
    return load_model("tiny-vocab", seed=seed)


def random_samples(tok, n=6, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    for t in range(n):
        prompt = rng.integers(5, len(tok), int(rng.integers(4, 12))).tolist()
        response = rng.integers(5, len(tok), int(rng.integers(2, 7))).tolist()
        samples.append(Sample(prompt, response, traj=t, advantage=float(rng.choice([-1.0, 1.0]) * (1 + t / n))))
    return samples


def tiny_config(**changes):
    base = {"model": "tiny-vocab", "lora_rank": 0, "temperature": 1.0, "row_tokens": 512, "max_grad_norm": 0.0}
    return GRPOConfig(**{**base, **changes})


def score(model, reference, samples, config, pad_id, autocast=nullcontext):
    old = update.score_logprobs(model, samples, config, pad_id, autocast)
    refs = update.reference_logprobs(model, reference, samples, config, pad_id, autocast)
    for s, o, r in zip(samples, old, refs):
        s.old_logprobs, s.ref_logprobs = o, r


@pytest.fixture
def recorder(monkeypatch):
    """Records the log-ratio and per-token KL of every micro-batch the update computes."""
    seen = {"logratio": [], "kl": []}
    surrogate, kl_penalty = update.policy_surrogate, update.kl_penalty

    def recording_surrogate(logp, old, adv, clip, clip_high):
        seen["logratio"].append((logp - old).detach().flatten())
        return surrogate(logp, old, adv, clip, clip_high)

    def recording_kl(logp, ref, estimator):
        out = kl_penalty(logp, ref, estimator)
        seen["kl"].append(out.detach().flatten())
        return out

    monkeypatch.setattr(update, "policy_surrogate", recording_surrogate)
    monkeypatch.setattr(update, "kl_penalty", recording_kl)
    return seen


def all_zero(parts):
    return bool(parts) and all(torch.equal(p, torch.zeros_like(p)) for p in parts)


# ---------------------------------------------------------------- item 6: one precision
def test_bf16_scoring_reference_and_update_share_one_precision(recorder):
    """bf16 autocast on CPU: π_old, π_ref and the update's forward agree bit for bit at zero update."""
    model, tok = tiny()
    reference = copy.deepcopy(model).requires_grad_(False)
    samples = random_samples(tok)
    config = tiny_config(kl_beta=0.1, learning_rate=0.0, precision="bf16", update_epochs=2)
    autocast = update.make_autocast(config.precision, CPU)
    score(model, reference, samples, config, tok.pad_token_id, autocast)
    fp32 = update.score_logprobs(model, samples, config, tok.pad_token_id)
    # the defect's size: fp32 scoring against a bf16 update is far from ratio 1
    assert max(float((s.old_logprobs - f).abs().max()) for s, f in zip(samples, fp32)) > 1e-4
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    stats = update.update_policy(
        model, optimizer, samples, config, tok.pad_token_id, np.random.default_rng(0), autocast
    )
    assert all_zero(recorder["logratio"])  # ratio exactly 1, both epochs
    assert all_zero(recorder["kl"])  # KL exactly 0
    assert stats["losses/kl"] == 0.0 and stats["losses/clipfrac"] == 0.0


def test_make_autocast_resolves_the_precision():
    assert update.make_autocast("fp32", CPU) is nullcontext
    assert update.make_autocast("auto", CPU) is nullcontext  # bf16 only on a GPU that supports it
    with update.make_autocast("bf16", CPU)():
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError):
        update.make_autocast("fp16", CPU)


# ---------------------------------------------------------------- items 6, 7: lr-0 control run
def smoke(tmp_path, **changes):
    from agemem_gym.adapters.grpo.config import load_config

    return load_config("cpu-smoke", output_dir=str(tmp_path), tensorboard=False, **{"save_every": 1000, **changes})


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_zero_learning_rate_bf16_run_keeps_the_weights_and_the_ratio_at_one(tmp_path, recorder):
    from transformers import AutoModelForCausalLM

    config = smoke(tmp_path, learning_rate=0.0, precision="bf16", num_steps=1, update_epochs=2, clip=None)
    before = weights(tiny()[0])
    result = trainer.train(config, progress=False)
    after = AutoModelForCausalLM.from_pretrained(str(result.checkpoint / "model"), local_files_only=True)
    assert before.keys() == weights(after).keys()
    assert all(torch.equal(before[k], v) for k, v in weights(after).items())  # bit-identical
    assert all_zero(recorder["logratio"]) and all_zero(recorder["kl"])
    assert [row["losses/kl"] for row in result.metrics] == [0.0]
    assert [row["losses/clipfrac"] for row in result.metrics] == [0.0]


# ---------------------------------------------------------------- item 8: zero-advantage samples
def equal_group_batch():
    """Two groups of K = 3: rewards (1, 0, 3) and three equal 0.1s (whose float mean is not 0.1)."""
    rewards = [1.0, 0.0, 3.0, 0.1, 0.1, 0.1]
    samples = [Sample([5, 6, 7], [8, 9], traj=t) for t in (0, 1, 2, 3, 4, 5, 3, 4)]
    owned = [[i for i, s in enumerate(samples) if s.traj == t] for t in range(6)]
    trajs = [
        Trajectory(group=t // 3, task_id=t // 3, reward=r, info={}, samples=owned[t]) for t, r in enumerate(rewards)
    ]
    return RolloutBatch(samples, trajs, 3, [[] for _ in samples], 0, 0.0)


def test_trainer_gives_an_equal_reward_group_exactly_zero_advantage_and_keeps_it():
    batch = equal_group_batch()
    config = tiny_config(group_size=3, kl_beta=0.1)
    trainer._attach_advantages(batch, config)
    equal = [s for s in batch.samples if s.traj >= 3]
    assert [s.advantage for s in equal] == [0.0] * len(equal)
    assert all(s.advantage != 0.0 for s in batch.samples if s.traj < 3)
    kept = trainer._training_samples(batch, config)
    assert all(any(k is s for k in kept) for s in equal)  # in the loss by default: they carry the KL term
    dropped = trainer._training_samples(batch, config.replace(drop_zero_advantage=True))
    assert {s.traj for s in dropped} == {0, 1, 2}  # the option: only the non-zero advantages


def test_an_equal_reward_group_still_pulls_towards_the_reference(recorder):
    batch = equal_group_batch()
    config = tiny_config(group_size=3, kl_beta=0.1)
    trainer._attach_advantages(batch, config)
    samples = [s for s in trainer._training_samples(batch, config) if s.traj >= 3]
    model, tok = tiny(seed=0)
    reference = tiny(seed=1)[0].requires_grad_(False)  # the policy has drifted from its reference
    score(model, reference, samples, config, tok.pad_token_id)
    before = weights(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    stats = update.update_policy(
        model, optimizer, samples, config, tok.pad_token_id, np.random.default_rng(0), nullcontext
    )
    assert stats["losses/kl"] > 0.0
    assert all(float(kl.min()) >= 0 for kl in recorder["kl"]) and any(float(kl.max()) > 0 for kl in recorder["kl"])
    assert any(not torch.equal(before[k], v) for k, v in weights(model).items())  # the KL term has a gradient


# ---------------------------------------------------------------- item 9: clipping, weighting, LoRA
def test_clipping_binds_over_several_epochs_and_minibatches():
    def run(clip):
        model, tok = tiny()
        samples = random_samples(tok, n=8)
        config = tiny_config(clip=clip, kl_beta=0.0, update_epochs=3, minibatches=2)
        for s, o in zip(samples, update.score_logprobs(model, samples, config, tok.pad_token_id)):
            s.old_logprobs = o
        optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
        stats = update.update_policy(
            model, optimizer, samples, config, tok.pad_token_id, np.random.default_rng(0), nullcontext
        )
        return stats, weights(model)

    (clipped, w_clipped), (unclipped, w_unclipped) = run(0.2), run(None)
    assert clipped["losses/clipfrac"] > 0.0
    assert unclipped["losses/clipfrac"] == 0.0
    assert any(not torch.equal(w_clipped[k], v) for k, v in w_unclipped.items())  # the clip changed the gradient


@pytest.mark.parametrize("aggregation", ["token-mean", "sequence-mean"])
def test_policy_loss_at_zero_update_is_the_weighted_mean_advantage(aggregation):
    """Ratio 1: the loss is −A weighted by tokens (token-mean) or by samples (sequence-mean)."""
    model, tok = tiny()
    samples = random_samples(tok)
    config = tiny_config(
        kl_beta=0.0, learning_rate=0.0, loss_aggregation=aggregation, rows_per_micro_batch=2, row_tokens=24
    )
    for s, o in zip(samples, update.score_logprobs(model, samples, config, tok.pad_token_id)):
        s.old_logprobs = o
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    stats = update.update_policy(
        model, optimizer, samples, config, tok.pad_token_id, np.random.default_rng(0), nullcontext
    )
    adv = np.array([s.advantage for s in samples])
    n = np.array([len(s.response_ids) for s in samples])
    expected = -(adv * n).sum() / n.sum() if aggregation == "token-mean" else -adv.mean()
    assert stats["losses/policy"] == pytest.approx(expected, rel=1e-6)


def test_lora_reference_is_the_model_with_its_adapter_disabled():
    config = tiny_config(lora_rank=4, lora_alpha=8, kl_beta=0.1)
    model, reference, tok = build_models(config, None, CPU)
    assert reference is None  # no second copy: the base model is the reference
    samples = random_samples(tok)
    base = update.score_logprobs(tiny()[0], samples, config, tok.pad_token_id)
    at_init = update.score_logprobs(model, samples, config, tok.pad_token_id)
    assert all(torch.equal(a, b) for a, b in zip(at_init, base))  # B = 0: the adapter adds nothing yet
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    moved = update.score_logprobs(model, samples, config, tok.pad_token_id)
    assert max(float((m - b).abs().max()) for m, b in zip(moved, base)) > 1e-3
    ref = update.reference_logprobs(model, None, samples, config, tok.pad_token_id)
    assert all(torch.equal(r, b) for r, b in zip(ref, base))


def test_lora_run_starts_at_ratio_one_and_resumes_from_its_adapter(tmp_path, recorder):
    lora = {"lora_rank": 4, "lora_alpha": 8, "learning_rate": 1e-2, "save_every": 1}
    straight = trainer.train(smoke(tmp_path / "a", num_steps=3, **lora), progress=False)
    first = recorder["logratio"][0], recorder["kl"][0]  # step 0, before any optimizer step
    assert all_zero([first[0]]) and all_zero([first[1]])
    assert straight.metrics[0]["losses/kl"] == 0.0
    assert straight.metrics[-1]["losses/kl"] > 0.0  # the adapter moved away from the base model
    assert (straight.checkpoint / "model" / "adapter_config.json").is_file()
    trainer.train(smoke(tmp_path / "b", num_steps=2, **lora), progress=False)
    resumed = trainer.train(smoke(tmp_path / "b", num_steps=3, **lora), progress=False)
    assert [r["step"] for r in resumed.metrics] == [0.0, 1.0, 2.0]
    for key in ("reward/mean", "losses/policy", "losses/kl"):
        assert resumed.metrics[2][key] == pytest.approx(straight.metrics[2][key], rel=1e-5, abs=1e-7), key


def test_several_minibatches_bf16_ratio_is_exactly_one_before_the_first_step(tmp_path, recorder):
    """Scoring packs each minibatch as the update's first epoch does, so repacking moves nothing."""
    config = smoke(
        tmp_path, learning_rate=0.0, precision="bf16", num_steps=1, update_epochs=1, minibatches=3, clip=None
    )
    result = trainer.train(config, progress=False)
    assert len(recorder["logratio"]) >= 3  # three minibatches of one epoch, each checked
    assert all_zero(recorder["logratio"]) and all_zero(recorder["kl"])
    assert [row["losses/clipfrac"] for row in result.metrics] == [0.0]


# ---------------------------------------------------------------- π_old from the update's own pass
@pytest.mark.parametrize("bf16", [False, True])
def test_one_epoch_one_minibatch_update_without_old_scoring_is_identical(bf16):
    """π_old = the update's detached log-probs: the same losses, metrics and weights as scoring it first."""
    autocast = update.make_autocast("bf16" if bf16 else "fp32", CPU)

    def run(scored):
        model, tok = tiny()
        samples = random_samples(tok, n=8)
        config = tiny_config(kl_beta=0.1, row_tokens=40, rows_per_micro_batch=2)
        assert update.old_is_current(config)
        score(model, tiny(seed=1)[0], samples, config, tok.pad_token_id, autocast)
        if not scored:
            for s in samples:
                s.old_logprobs = None
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        stats = update.update_policy(
            model, optimizer, samples, config, tok.pad_token_id, np.random.default_rng(0), autocast
        )
        return stats, weights(model), [s.old_logprobs for s in samples]

    (scored, w_scored, old_scored), (skipped, w_skipped, old_skipped) = run(True), run(False)
    assert scored == skipped  # every loss and metric, bit for bit
    assert all(torch.equal(w_scored[k], v) for k, v in w_skipped.items())
    assert all(torch.equal(a, b) for a, b in zip(old_scored, old_skipped))  # and the π_old it recorded


def test_trainer_scores_pi_old_only_when_the_update_cannot_give_it(tmp_path, monkeypatch):
    calls = []
    score_logprobs = trainer.score_logprobs
    monkeypatch.setattr(trainer, "score_logprobs", lambda *a, **k: calls.append(1) or score_logprobs(*a, **k))
    one = trainer.train(smoke(tmp_path / "one", num_steps=1), progress=False)
    assert calls == [] and np.isfinite(one.metrics[0]["losses/logprob_mismatch"])
    trainer.train(smoke(tmp_path / "two", num_steps=1, update_epochs=2), progress=False)
    assert calls  # two epochs: π_old must be fixed before the first optimizer step
    with pytest.raises(ValueError, match="no old or reference"):  # several epochs never guess π_old
        model, tok = tiny()
        samples = random_samples(tok, n=2)
        config = tiny_config(kl_beta=0.0, update_epochs=2)
        update.update_policy(
            model,
            torch.optim.SGD(model.parameters(), lr=0.0),
            samples,
            config,
            tok.pad_token_id,
            np.random.default_rng(0),
            nullcontext,
        )
