"""Behaviour cloning (``agemem sft``): the shared-prefix loss, the demonstrations, the saved folder."""

import dataclasses
import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")

import agemem_gym  # noqa: E402,F401
from agemem_gym import cli, policies  # noqa: E402
from agemem_gym.adapters.sft.demos import play_demonstrations, recorded_demonstrations  # noqa: E402
from agemem_gym.adapters.sft.loss import (  # noqa: E402
    common_prefix,
    encode_demonstrations,
    split_rows,
    turn_loss,
)
from agemem_gym.adapters.sft.train import SFT_FILE, SFTConfig, run_sft  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402
from agemem_gym.tools import parse_turn  # noqa: E402

PROBE = "AgeMem/Probe-Recall-v0"
KWARGS = {"num_tasks": 16, "max_rounds": 2, "tools_in_system_prompt": False}


@pytest.fixture(scope="module")
def tiny_vocab():
    return load_model("tiny-vocab")


def _demos(tokenizer, tasks=range(4)):
    demos, kept = play_demonstrations(
        PROBE, policies.make("demonstrator"), list(tasks), env_kwargs=KWARGS, tokenizer=tokenizer
    )
    assert kept == len(tasks)
    return demos


def _unshared_loss(model, samples):
    """Each sample alone through the model's ordinary forward pass: the reference."""
    total = 0.0
    for s in samples:
        ids = torch.tensor([list(s.prompt_ids) + list(s.response_ids)])
        logits = model(input_ids=ids).logits[0, len(s.prompt_ids) - 1 : -1].float()
        total = total + torch.nn.functional.cross_entropy(logits, torch.tensor(s.response_ids), reduction="sum")
    return total


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_shared_prefix_gives_the_loss_and_gradients_of_separate_sequences(tiny_vocab):
    model, tok = tiny_vocab
    samples = encode_demonstrations(tok, _demos(tok))
    prefix = common_prefix(samples)
    assert prefix > 50  # the system prompt, at least
    shared, n = turn_loss(model, samples, shared_prefix=True)
    segments, n2 = turn_loss(model, samples, shared_prefix=False)
    reference = _unshared_loss(model, samples)
    assert n == n2 == sum(len(s.response_ids) for s in samples)
    torch.testing.assert_close(shared, reference, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(segments, reference, rtol=1e-5, atol=1e-4)
    g_shared, g_ref = _grads(model, shared), _grads(model, _unshared_loss(model, samples))
    assert g_shared.keys() == g_ref.keys() and len(g_shared) > 5
    for name in g_ref:
        torch.testing.assert_close(g_shared[name], g_ref[name], rtol=1e-4, atol=1e-5, msg=name)


def test_rows_respect_their_token_budget_and_keep_every_sample(tiny_vocab):
    _, tok = tiny_vocab
    samples = encode_demonstrations(tok, _demos(tok))
    longest = max(len(s) for s in samples)
    rows = split_rows(samples, longest + 40)
    assert [s for r in rows for s in r] == samples and len(rows) > 1
    for r in rows:
        p = common_prefix(r)
        assert len(r) == 1 or p + sum(len(s) - p for s in r) <= longest + 40


def test_cloned_turns_speak_the_turn_grammar():
    pytest.importorskip("llguidance")
    from agemem_gym.policies.llm.constrained import TurnGrammar

    model, tok = load_model("tiny")  # SmolLM2's byte-level tokenizer, which the grammar engine drives
    demos = _demos(tok, range(2))
    grammar = TurnGrammar(tok, model.config.vocab_size)
    for demo, sample in zip(demos, encode_demonstrations(tok, demos)):
        turn = parse_turn(demo.turn)
        assert turn.kind in ("tool_call", "answer") and not turn.notes
        assert sample.response_ids[-1] == tok.eos_token_id
        grammar.masks(grammar.text(), sample.response_ids[:-1])  # raises on a token the grammar rejects
        matcher = grammar.matcher(grammar.text())
        assert matcher.consume_tokens(list(sample.response_ids)) and matcher.is_accepting()  # the turn ends there


def test_recorded_episodes_give_the_played_demonstrations(tmp_path):
    record = tmp_path / "rec"
    args = ["run", PROBE, "--policy", "demonstrator", "--episodes", "3", "--env-kwargs", json.dumps(KWARGS)]
    assert cli.main([*args, "--no-progress", "--record", str(record)]) == 0
    failed = tmp_path / "failed"
    args = ["run", PROBE, "--policy", "no-memory", "--episodes", "8", "--env-kwargs", json.dumps(KWARGS)]
    assert cli.main([*args, "--no-progress", "--record", str(failed)]) == 0
    recorded, kept = recorded_demonstrations([record, failed], env_id=PROBE)
    played, _ = play_demonstrations(PROBE, policies.make("demonstrator"), [0, 1, 2], env_kwargs=KWARGS, seed=0)
    assert kept == 3  # the no-memory episodes all failed (seed 0): none is cloned
    assert all("/rec/" in d.episode for d in recorded)
    assert [(d.messages, d.turn) for d in recorded] == [(d.messages, d.turn) for d in played]


def test_the_loss_goes_down(tmp_path):
    # full fine-tuning: a random 64-wide model has little for a LoRA adapter to steer
    # (the LoRA path is the end-to-end test's; on SmolLM2 it is the measured recipe)
    config = SFTConfig(
        model="tiny-vocab",
        env_kwargs=KWARGS,
        tasks=tuple(range(8)),
        num_steps=20,
        batch_size=8,
        learning_rate=1e-2,
        lora_rank=0,
        output_dir=str(tmp_path / "model"),
    )
    result = run_sft(config)
    assert result.turns == 32 and result.episodes == 8
    assert sum(result.losses[-3:]) / 3 < 0.7 * sum(result.losses[:3]) / 3


def test_agemem_sft_writes_a_folder_that_agemem_run_loads(tmp_path, capsys):
    out = tmp_path / "cloned"
    args = ["sft", "--config", "cpu-smoke", "--tasks", "0:2", "--steps", "2", "--batch-size", "4", "--lora-rank", "4"]
    assert cli.main([*args, "--output-dir", str(out), "--no-progress"]) == 0
    assert "continue with: agemem train --config cpu-smoke --model" in capsys.readouterr().out
    report = json.loads((out / SFT_FILE).read_text())
    assert report["turns"] == 8 and len(report["losses"]) == 2
    assert not (out / "adapter_config.json").exists()  # merged: a plain model folder
    cloned, _ = load_model(str(out))
    base, _ = load_model("tiny-vocab", seed=0)
    changed = [n for n, p in cloned.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed  # the merged LoRA update is in the weights
    run = ["run", PROBE, "--policy", "hf", "--model", str(out), "--episodes", "1", "--no-progress"]
    kwargs = json.dumps({"num_tasks": 2, "max_rounds": 2, "tools_in_system_prompt": False})
    assert cli.main([*run, "--env-kwargs", kwargs, "--policy-kwargs", '{"max_new_tokens": 8}']) == 0
    grpo = ["train", "--config", "cpu-smoke", "--model", str(out), "--steps", "1", "--no-progress"]
    assert cli.main([*grpo, "--output-dir", str(tmp_path / "grpo")]) == 0  # the warm start trains on
    with pytest.raises(SystemExit):  # a used folder is refused
        raise SystemExit(cli.main([*args, "--output-dir", str(out), "--no-progress"]))
    assert "pass --overwrite" in capsys.readouterr().err


def test_a_mix_policy_plays_its_share_of_the_tasks_and_is_cloned_whatever_it_scores(tiny_vocab):
    from agemem_gym.adapters.sft.train import collect_demonstrations, split_tasks
    from agemem_gym.error import InvalidConfig

    config = SFTConfig(model="tiny-vocab", env_id=PROBE, env_kwargs=KWARGS, tasks=tuple(range(8)),
                       mix_policy="no-memory", mix_fraction=0.5, seed=3)  # fmt: skip
    (main, mine, floor), (mix, mixed, anything) = split_tasks(config, config.tasks)
    assert (main, mix, floor, anything) == ("demonstrator", "no-memory", 1.0, float("-inf"))
    assert len(mine) == len(mixed) == 4 and sorted(mine + mixed) == list(range(8))
    assert split_tasks(config, config.tasks) == split_tasks(dataclasses.replace(config), config.tasks)  # a fixed draw
    demos, kept = collect_demonstrations(config, tiny_vocab[1])
    assert kept == 8  # the no-memory episodes are kept although they rarely score
    by_episode = {}
    for d in demos:
        by_episode.setdefault(d.episode, []).append(d.turn)
    memory = {e for e, turns in by_episode.items() if any("Add_memory" in t for t in turns)}
    assert len(by_episode) == 8 and len(memory) == 4  # half store the fact, half never call a tool
    assert split_tasks(SFTConfig(tasks=(0, 1)), (0, 1)) == [("demonstrator", (0, 1), 1.0)]
    with pytest.raises(InvalidConfig):
        SFTConfig(mix_policy="no-memory")  # a mix needs its share
    with pytest.raises(InvalidConfig):
        SFTConfig(mix_fraction=0.5)
