"""Static-shape decoding (CUDA graphs on a GPU) must sample what the growing-cache decoder samples."""

import gymnasium as gym
import pytest

pytest.importorskip("transformers")
pytest.importorskip("llguidance")
torch = pytest.importorskip("torch")

import agemem_gym  # noqa: E402,F401
from agemem_gym.error import InvalidConfig  # noqa: E402
from agemem_gym.policies.llm.hf_policy import HFPolicy  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402
from agemem_gym.policies.llm.static_decode import StaticDecoder, bucket_length  # noqa: E402
from tests.policies.llm.test_prefix_cache import LIMITS, _envs, play  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def _turns(model, tok, static, do_sample, **kwargs):
    policy = HFPolicy(
        model, tok, seed=3, max_new_tokens=16, temperature=0.8, do_sample=do_sample, constrained=True,
        grammar_limits=LIMITS, static_decode=static, **kwargs,
    )  # fmt: skip
    return play(policy, _envs(tok, 3), [0, 0, 1]), policy


def _assert_same(a_turns, b_turns):
    assert len(a_turns) == len(b_turns) >= 13
    for a_turn, b_turn in zip(a_turns, b_turns):
        for a, b in zip(a_turn, b_turn):
            assert a.prompt_ids == b.prompt_ids and a.response_ids == b.response_ids and a.finished == b.finished
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


@pytest.mark.parametrize("do_sample, prefix_cache", [(True, True), (False, False)])
def test_static_turns_equal_the_growing_cache_through_rewrites(tiny, do_sample, prefix_cache):
    model, tok = tiny
    dynamic, _ = _turns(model, tok, False, do_sample, prefix_cache=prefix_cache)
    static, policy = _turns(model, tok, True, do_sample, prefix_cache=prefix_cache)
    _assert_same(dynamic, static)
    decoder = policy.static_decoder
    # a GRPO group and a third stream, 16-token turns: a handful of (rows, bucket) shapes, reused
    assert decoder is not None and 1 <= decoder.built < len(static)
    assert len(decoder.entries) <= decoder.max_entries


def _chunk(model, tok, static, bucket=None, **kwargs):
    """Two prompts of different lengths decoded in one batch; the records and the policy."""
    text = "<|im_start|>user\nCount to fifty.<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    policy = HFPolicy(model, tok, temperature=1.0, seed=1, stop_strings=(), static_decode=static, **kwargs)
    if bucket is not None:
        policy.static_decoder = StaticDecoder(bucket=bucket)
    return policy._generate_chunk([ids, ids[:-3]], [None, None]), policy


def _same_records(a, b):
    assert [r.response_ids for r in a] == [r.response_ids for r in b]
    assert max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra.logprobs, rb.logprobs)) < 1e-4


def test_eager_attention_takes_an_additive_mask(tiny):
    model, tok = tiny
    eager, _ = load_model("tiny")
    eager.config._attn_implementation = "eager"  # the mask is added to the scores, not read as booleans
    eager.load_state_dict(model.state_dict())
    growing = _chunk(model, tok, False, max_new_tokens=40)[0]
    static, policy = _chunk(eager, tok, True, max_new_tokens=40)
    _same_records(growing, static)  # asserts equal tokens and log-probs within 1e-4
    buffers = next(iter(policy.static_decoder.entries.values()))
    assert buffers.mask.dtype == eager.dtype and buffers.closed == torch.finfo(eager.dtype).min  # additive


def test_long_turns_cross_bucket_boundaries_and_replaced_weights_drop_the_buffers(tiny):
    model, tok = tiny
    dynamic, _ = _chunk(model, tok, False, max_new_tokens=90)
    static, policy = _chunk(model, tok, True, bucket=32, max_new_tokens=90)
    _same_records(dynamic, static)
    decoder = policy.static_decoder
    assert max(len(r.response_ids) for r in static) > 64 and decoder.built == 1  # a buffer of several buckets
    again = policy._generate_chunk([list(r.prompt_ids) for r in static], [None, None])
    assert decoder.built == 1 and len(again) == 2  # same shape: same buffers
    policy.max_new_tokens = 40
    policy._generate_chunk([list(r.prompt_ids) for r in static], [None, None])
    assert decoder.built == 1  # a shorter need fits the longer buffer
    policy.max_new_tokens = 4
    policy._generate_chunk([list(r.prompt_ids) for r in static], [None, None])
    assert decoder.built == 2  # but not one more than twice as long
    policy.max_new_tokens = 90
    head = model.lm_head.weight
    model.lm_head.weight = torch.nn.Parameter(head.detach().clone())  # new storage: graphs would read the old one
    try:
        policy._generate_chunk([list(r.prompt_ids) for r in static], [None, None])
        assert decoder.built == 3 and len(decoder.entries) == 1
    finally:
        model.lm_head.weight = head


def test_bucket_length_and_bad_arguments(tiny):
    assert bucket_length(1, 1) == 256 and bucket_length(200, 56) == 256 and bucket_length(200, 57) == 512
    assert bucket_length(10, 5, bucket=4) == 16
    model, tok = tiny
    with pytest.raises(InvalidConfig, match="static_decode"):
        HFPolicy(model, tok, static_decode="yes")
    assert HFPolicy(model, tok)._static_decoder() is None  # auto: only on a GPU


def test_flash_attention_and_fsdp_sharded_models_decode_with_the_growing_cache():
    import socket

    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from agemem_gym.policies.llm.static_decode import supports_static

    model, _ = load_model("tiny")
    assert supports_static(model)
    model.config._attn_implementation = "flash_attention_2"  # takes no 4-d mask
    assert not supports_static(model)
    model.config._attn_implementation = "sdpa"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        fully_shard(model.model.layers[0])  # gathered weights are new tensors per forward: no graphs
        assert not supports_static(model)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_turns_equal_eager_turns_on_the_gpu():
    model, tok = load_model("tiny")
    model.to("cuda")
    dynamic, _ = _turns(model, tok, False, True)
    static, policy = _turns(model, tok, True, True)
    _assert_same(dynamic, static)
    assert all(b.graph is not None for b in policy.static_decoder.entries.values())


def test_static_decoding_in_a_gym_episode_on_smollm2_tokenizer(tiny):
    """The public path: ``act_batch`` over a vector of slots with static decoding forced on the CPU."""
    model, tok = tiny
    env = gym.make("AgeMem/MemoryProbe-v0")
    obs, info = env.reset(seed=0)
    policy = HFPolicy(model, tok, max_new_tokens=8, static_decode=True, constrained=True, grammar_limits=LIMITS)
    actions = policy.act_batch([obs, obs], [info, info])
    assert len(actions) == 2 and all(isinstance(a, str) for a in actions)
