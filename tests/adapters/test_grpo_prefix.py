"""Prefix-tree rows: shared prefixes computed once, with the log-probs and gradients of unshared rows.

The reference is the former layout (:func:`row_logprobs`: samples back to back under a dense
block-diagonal mask, every sample's prefix computed for itself), which
``tests/adapters/test_grpo_logprobs.py`` checks against the model's own forward pass.
"""

from contextlib import nullcontext

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo import update  # noqa: E402
from agemem_gym.adapters.grpo.batching import Sample, pack_samples, row_logprobs  # noqa: E402
from agemem_gym.adapters.grpo.config import GRPOConfig  # noqa: E402
from agemem_gym.adapters.grpo.prefix import (  # noqa: E402
    pack_prefix_rows,
    segment_attention,
    shared_fraction,
    tree_attention,
    tree_logprobs,
)
from agemem_gym.adapters.grpo.state import build_models  # noqa: E402

pytestmark = pytest.mark.train
CPU = torch.device("cpu")


def episodes(vocab, n_episodes=4, turns=3, group=2, system=12, seed=0, masked=False):
    """Multi-turn samples: a shared system prompt, a task per group, the history so far; a few loners."""
    rng = np.random.default_rng(seed)
    sys_prompt = rng.integers(5, vocab, system).tolist()
    tasks = [rng.integers(5, vocab, 4).tolist() for _ in range(n_episodes // group)]
    samples = []
    for e in range(n_episodes):
        history = sys_prompt + tasks[e // group]
        for _ in range(turns):
            response = rng.integers(5, vocab, int(rng.integers(1, 6))).tolist()
            samples.append(Sample(list(history), response, traj=e, advantage=float(rng.normal())))
            history = history + response + rng.integers(5, vocab, int(rng.integers(1, 4))).tolist()
    samples.append(Sample(rng.integers(5, vocab, 6).tolist(), [7, 8], traj=98, advantage=1.0))  # shares nothing
    first = samples[0]
    samples.append(Sample(list(first.prompt_ids), list(first.response_ids), traj=99, advantage=-1.0))  # a duplicate
    whole = samples[2]  # a sample that is all prefix: its prompt and response inside the next turn's prompt
    samples.append(Sample(list(whole.prompt_ids), list(whole.response_ids[:1]), traj=97, advantage=0.5))
    if masked:
        for t, s in enumerate(samples):
            if t % 2 == 0:
                bits = rng.random((len(s.response_ids), vocab)) < 0.4
                bits[np.arange(len(s.response_ids)), s.response_ids] = True
                s.allowed = np.packbits(bits, axis=1)
    return samples


def tiny(lora_rank=0):
    config = GRPOConfig(model="tiny-vocab", lora_rank=lora_rank, lora_alpha=8, temperature=1.0)
    model, _, tok = build_models(config, None, CPU)  # gradient checkpointing on, as in a run
    if lora_rank:  # B = 0 at init would give the adapter no gradient through A
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return model, tok


def grads_of(model, lp):
    """Gradients of a loss that weighs each sample differently (so a mix-up of samples shows)."""
    model.zero_grad(set_to_none=True)
    sum((v * (1.0 + 0.5 * i)).sum() for i, v in lp.items()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def test_prefix_rows_hold_every_sample_and_share_its_prefixes():
    samples = episodes(50)
    rows = pack_prefix_rows(samples, 60)
    assert sorted(i for r in rows for i in r.samples) == list(range(len(samples)))
    assert all(r.length <= 60 for r in rows)
    assert shared_fraction(rows) > 0.4  # the system prompt and histories count once per row
    for row in rows:
        tokens = np.zeros(row.length, dtype=np.int64)
        for seg in row.segments:
            s = samples[seg.sample]
            tokens[seg.start : seg.end] = (list(s.prompt_ids) + list(s.response_ids))[seg.first :][
                : seg.end - seg.start
            ]
            assert all(b <= seg.start for _, b in seg.context)  # a segment only reads earlier positions
        assert [seg.start for seg in row.segments] == [0] + [seg.end for seg in row.segments[:-1]]
        for i, path in zip(row.samples, row.paths):  # each sample's tokens, read along its path
            read = np.concatenate([tokens[a:b] for a, b in path])
            assert read.tolist() == list(samples[i].prompt_ids) + list(samples[i].response_ids)
    with pytest.raises(ValueError, match="raise row_len"):
        pack_prefix_rows(samples, 10)


@pytest.mark.parametrize("lora_rank", [0, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_prefix_tree_logprobs_and_gradients_equal_the_unshared_rows(lora_rank, masked):
    model, tok = tiny(lora_rank)
    model.train()
    samples = episodes(len(tok), masked=masked)
    with tree_attention(model):
        shared, entropy = tree_logprobs(model, pack_prefix_rows(samples, 48)[:3], samples, with_entropy=True)
        shared_grads = grads_of(model, shared)
    rows = pack_samples([samples[i] for i in sorted(shared)], 64)
    index = sorted(shared)
    unshared, _ = row_logprobs(model, rows, [samples[i] for i in index], pad_id=tok.pad_token_id)
    unshared = {index[k]: v for k, v in unshared.items()}
    assert set(unshared) == set(shared) and len(shared) >= 4
    for i in shared:
        assert torch.allclose(shared[i], unshared[i], atol=1e-5), i
    unshared_grads = grads_of(model, unshared)
    assert shared_grads.keys() == unshared_grads.keys() and shared_grads
    if lora_rank:
        assert all("lora_" in name for name in shared_grads)
    for name, g in shared_grads.items():  # float32 sums in another order: relative to the gradient's scale
        ref = unshared_grads[name]
        assert float((g - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max())), name
    assert entropy is not None and torch.isfinite(entropy)


def test_the_update_gives_the_same_losses_and_step_with_either_packing():
    def run(packing):
        model, tok = tiny()
        samples = episodes(len(tok), n_episodes=6)
        config = GRPOConfig(
            model="tiny-vocab",
            lora_rank=0,
            temperature=1.0,
            kl_beta=0.1,
            row_tokens=64,
            rows_per_micro_batch=2,
            update_epochs=2,
            packing=packing,
        )
        old = update.score_logprobs(model, samples, config, tok.pad_token_id)
        for s, o in zip(samples, old):
            s.old_logprobs, s.ref_logprobs = o, o + 0.05
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        stats = update.update_policy(
            model, optimizer, samples, config, tok.pad_token_id, np.random.default_rng(0), nullcontext
        )
        return stats, old, {n: p.detach().clone() for n, p in model.named_parameters()}

    (tree, old_tree, w_tree), (mask, old_mask, w_mask) = run("prefix-tree"), run("block-mask")
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(old_tree, old_mask))
    for key in ("losses/policy", "losses/kl", "losses/clipfrac", "losses/entropy", "losses/grad_norm"):
        assert tree[key] == pytest.approx(mask[key], rel=1e-4, abs=1e-6), key
    assert tree["perf/padding"] == 0.0  # rows run back to back
    for name, w in w_tree.items():
        assert torch.allclose(w, w_mask[name], rtol=1e-4, atol=1e-5), name


def test_prefix_tree_attention_needs_its_layout():
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="layout"):
        segment_attention(torch.nn.Module(), q, q, q, None)


def test_tree_attention_is_switched_on_for_the_block_only():
    model, _ = tiny()
    before = model.get_decoder().config._attn_implementation
    with pytest.raises(KeyError), tree_attention(model):
        assert model.get_decoder().config._attn_implementation == "agemem_prefix_tree"
        raise KeyError("a failing forward pass")
    assert model.get_decoder().config._attn_implementation == before  # generation gets its own back
