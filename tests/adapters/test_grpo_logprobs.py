"""Chunked log-probs: the same numbers and gradients as a full log-softmax, with a bounded peak.

``full_row_logprobs`` is the former implementation (the model's own forward with
``logits_to_keep``, then a full ``(n, V)`` log-softmax per sample): the reference the chunked
path must match in log-probs, entropy and gradients, with and without grammar masks.
"""

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.batching import (  # noqa: E402
    Sample,
    _row_tensors,
    chunked_logprobs,
    pack_samples,
    row_logprobs,
)
from agemem_gym.policies.llm.models import load_model  # noqa: E402

pytestmark = pytest.mark.train


def full_row_logprobs(model, rows, samples, *, pad_id, temperature=1.0, with_entropy=False):
    """The reference: every kept position's full-vocabulary logits at once."""
    param = next(model.parameters())
    ids, pos, mask, spans = _row_tensors(rows, samples, pad_id, param.dtype, param.device)
    keep = sorted({first - 1 + j for row in spans for (_, first, n) in row for j in range(n)})
    keep_t = torch.tensor(keep)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep_t, use_cache=False)
    logits = out.logits.float() / temperature  # (R, P, V)
    index_of = {p: j for j, p in enumerate(keep)}
    result, entropy_sum, entropy_n = {}, 0.0, 0
    for r, row in enumerate(spans):
        for i, first, n in row:
            logits_i = logits[r, torch.tensor([index_of[first - 1 + j] for j in range(n)])]  # (n, V)
            if samples[i].allowed is not None:
                allowed = np.unpackbits(samples[i].allowed, axis=1, count=logits_i.shape[1]).astype(bool)
                logits_i = logits_i.masked_fill(~torch.from_numpy(allowed), float("-inf"))
            lp = logits_i.log_softmax(-1)  # (n, V)
            result[i] = lp.gather(-1, ids[r, first : first + n].unsqueeze(-1)).squeeze(-1)
            with torch.no_grad():
                entropy_sum += float(-(lp.exp() * lp.masked_fill(lp == float("-inf"), 0.0)).sum())
                entropy_n += n
    return result, (torch.tensor(entropy_sum / entropy_n) if with_entropy else None)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-vocab", seed=0)


def make_samples(model, tok, masked, n=7, seed=0):
    """Random samples; with ``masked``, every other one carries random grammar masks that allow its tokens."""
    rng = np.random.default_rng(seed)
    vocab = model.get_output_embeddings().weight.shape[0]
    samples = []
    for t in range(n):
        prompt = rng.integers(5, len(tok), int(rng.integers(4, 14))).tolist()
        response = rng.integers(5, len(tok), int(rng.integers(2, 9))).tolist()
        s = Sample(prompt, response, traj=t)
        if masked and t % 2 == 0:
            bits = rng.random((len(response), vocab)) < 0.4
            bits[np.arange(len(response)), response] = True  # a sampled token was allowed
            s.allowed = np.packbits(bits, axis=1)
        samples.append(s)
    return samples


def weighted_grads(model, lp):
    """Gradients of a loss that weighs each sample differently (so a mix-up of samples shows)."""
    model.zero_grad(set_to_none=True)
    sum((v * (1.0 + 0.5 * i)).sum() for i, v in lp.items()).backward()
    grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("masked", [False, True], ids=["unconstrained", "grammar-masks"])
@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_chunked_logprobs_entropy_and_gradients_match_the_full_log_softmax(tiny, masked, chunk):
    model, tok = tiny
    model.train()
    samples = make_samples(model, tok, masked)
    rows = pack_samples(samples, 40)
    assert len(rows) > 1 and any(len(r.samples) > 1 for r in rows)  # several rows, packed ones among them
    kwargs = {"pad_id": tok.pad_token_id, "temperature": 0.7, "with_entropy": True}
    ref, ref_entropy = full_row_logprobs(model, rows, samples, **kwargs)
    new, entropy = row_logprobs(model, rows, samples, chunk_tokens=chunk, **kwargs)
    assert sorted(new) == sorted(ref) == list(range(len(samples)))
    for i in ref:
        assert new[i].shape == ref[i].shape
        torch.testing.assert_close(new[i], ref[i], atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-5, rtol=1e-6)
    ref_grads, new_grads = weighted_grads(model, ref), weighted_grads(model, new)
    assert len(new_grads) == len(ref_grads) > 0
    for g_new, g_ref in zip(new_grads, ref_grads):
        torch.testing.assert_close(g_new, g_ref, atol=1e-5, rtol=1e-4)
    model.eval()


def test_a_masked_position_really_changes_the_distribution(tiny):
    """The masks are applied: the same tokens score higher once the other tokens are masked out."""
    model, tok = tiny
    samples = make_samples(model, tok, masked=True)
    bare = [Sample(s.prompt_ids, s.response_ids, traj=s.traj) for s in samples]
    rows = pack_samples(samples, 40)
    with torch.no_grad():
        masked, _ = row_logprobs(model, rows, samples, pad_id=tok.pad_token_id, chunk_tokens=5)
        free, _ = row_logprobs(model, rows, bare, pad_id=tok.pad_token_id, chunk_tokens=5)
    for i, s in enumerate(samples):
        if s.allowed is None:
            assert torch.equal(masked[i], free[i])
        else:
            assert (masked[i] > free[i] + 1e-4).all()


def test_the_vocabulary_projection_never_sees_more_than_a_chunk(tiny):
    """The peak (tokens × vocab) block is bounded by the chunk size, forward and backward (recomputation)."""
    model, tok = tiny
    model.train()
    samples = make_samples(model, tok, masked=True, n=12)
    response_tokens = sum(len(s.response_ids) for s in samples)
    rows = pack_samples(samples, 4096)  # one row: every response position in one micro-batch
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    try:
        lp, _ = row_logprobs(model, rows, samples, pad_id=tok.pad_token_id, with_entropy=True, chunk_tokens=5)
        forward = list(seen)
        sum(v.sum() for v in lp.values()).backward()
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
        model.eval()
    vocab = model.get_output_embeddings().weight.shape[0]
    assert response_tokens > 5 * 4  # enough positions for several chunks
    assert sum(s[0] for s in forward) == response_tokens  # every response position, once
    assert all(len(s) == 2 and s[0] <= 5 and s[1] == vocab for s in seen)
    assert len(seen) == 2 * len(forward)  # backward recomputed each chunk instead of keeping its logits


def test_no_grad_scoring_does_not_recompute_and_matches_the_grad_path(tiny):
    """Scoring (no grad) and the update (checkpointed chunks) give bit-identical log-probs: ratio 1 at zero update."""
    model, tok = tiny
    samples = make_samples(model, tok, masked=True)
    rows = pack_samples(samples, 64)
    with torch.no_grad():
        scored, _ = row_logprobs(model, rows, samples, pad_id=tok.pad_token_id, chunk_tokens=4)
    model.train()
    try:
        trained, _ = row_logprobs(model, rows, samples, pad_id=tok.pad_token_id, chunk_tokens=4)
    finally:
        model.eval()
    assert all(torch.equal(scored[i], trained[i].detach()) for i in scored)
    assert all(trained[i].requires_grad for i in trained)


def test_chunked_logprobs_rejects_a_chunk_of_zero():
    states, targets = torch.zeros(3, 4), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunked_logprobs(states, targets, torch.nn.Linear(4, 8), None, 0)


def saved_bytes(fn, *args, **kwargs):
    """Bytes autograd saves for the backward while ``fn(*args, **kwargs)`` runs, and its result."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args, **kwargs)
    return total[0], out


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_gradient_checkpointing_keeps_less_for_the_backward_and_changes_no_number(lora_rank):
    from agemem_gym.adapters.grpo.config import GRPOConfig
    from agemem_gym.adapters.grpo.state import build_models

    results = {}
    for flag in (False, True):
        config = GRPOConfig(model="tiny-vocab", lora_rank=lora_rank, kl_beta=0.0, gradient_checkpointing=flag)
        torch.manual_seed(0)  # the same LoRA initialisation both times
        model, _, tok = build_models(config, None, torch.device("cpu"))
        samples = make_samples(model, tok, masked=True)
        rows = pack_samples(samples, 4096)
        model.train()
        kept, (lp, _) = saved_bytes(row_logprobs, model, rows, samples, pad_id=tok.pad_token_id)
        results[flag] = (kept, lp, weighted_grads(model, lp))
    (kept_off, lp_off, g_off), (kept_on, lp_on, g_on) = results[False], results[True]
    assert kept_on < kept_off / 2  # the layers' activations are recomputed, not kept
    assert all(torch.equal(lp_on[i], lp_off[i]) for i in lp_off)
    assert len(g_on) == len(g_off) > 0
    for a, b in zip(g_on, g_off):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_return_freed_memory_sets_glibcs_mmap_threshold():
    import ctypes
    import sys

    from agemem_gym.adapters.grpo.state import return_freed_memory

    assert return_freed_memory(0) is False  # 0: glibc's default stays
    try:
        glibc = hasattr(ctypes.CDLL("libc.so.6"), "mallopt")
    except OSError:
        glibc = False
    if not glibc:
        pytest.skip("not glibc")
    assert sys.platform.startswith("linux")
    assert return_freed_memory(131072) is True
