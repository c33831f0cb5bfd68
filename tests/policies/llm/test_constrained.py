import json

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("llguidance")
torch = pytest.importorskip("torch")

import gymnasium as gym  # noqa: E402

import agemem_gym  # noqa: E402,F401
from agemem_gym.adapters.grpo.batching import Sample, pack_samples, row_logprobs  # noqa: E402
from agemem_gym.adapters.grpo.config import GRPOConfig  # noqa: E402
from agemem_gym.adapters.grpo.prefix import pack_prefix_rows, tree_attention, tree_logprobs  # noqa: E402
from agemem_gym.adapters.grpo.trainer import _attach_masks  # noqa: E402
from agemem_gym.adapters.grpo.update import score_logprobs  # noqa: E402
from agemem_gym.policies.llm.constrained import TurnGrammar, budget_limits, calls_schema, turn_lark  # noqa: E402
from agemem_gym.policies.llm.hf_policy import HFPolicy  # noqa: E402
from agemem_gym.policies.llm.models import load_model  # noqa: E402
from agemem_gym.tools import DEFAULT_TOOLS, TOOL_NAMES, parse_turn  # noqa: E402

LIMITS = {"max_think_chars": 40, "max_text_chars": 24, "max_string_chars": 24, "max_calls": 2}


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny")  # the SmolLM2 byte-level tokenizer, random tiny weights
    return model, tok


def test_grammar_follows_the_tool_schemas():
    schema = calls_schema(max_calls=3)
    names = [v["properties"]["name"]["const"] for v in schema["items"]["anyOf"]]
    assert names == list(TOOL_NAMES) and schema["maxItems"] == 3
    delete = schema["items"]["anyOf"][2]["properties"]["arguments"]
    assert delete["required"] == ["memory_id", "confirmation"] and delete["additionalProperties"] is False
    assert delete["properties"]["confirmation"] == {"type": "boolean"}
    text = turn_lark(["go north", 'say "hi"'])
    assert '"<action>" ("go north" | ' in text and json.dumps('say "hi"') in text
    assert "action" not in turn_lark(None).split("start:")[1].split("\n")[0]


def test_masks_replay_a_valid_turn_and_reject_an_invalid_one(tiny):
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    text = grammar.text()
    good = '<think>store it</think><tool_call>[{"name": "Add_memory", "arguments": {"content": "Paris"}}]</tool_call>'
    ids = tok(good, add_special_tokens=False)["input_ids"]
    masks = grammar.masks(text, ids)
    assert masks.shape == (len(ids), model.config.vocab_size)
    assert all(masks[t, tok_id] for t, tok_id in enumerate(ids))
    assert masks[0].sum() < 50  # "<think>" is forced: few tokens can start it
    bad = tok('<think>x</think><tool_call>[{"name": "Forget", ', add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="not allowed"):
        grammar.masks(text, bad)


def test_constrained_turns_are_always_well_formed(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=160, temperature=1.0, seed=1, constrained=True, grammar_limits=LIMITS)
    env = gym.make("AgeMem/Probe-Recall-v0", tokenizer=tok, tools_in_system_prompt=False)
    obs, info = env.reset(seed=0)
    records = policy.generate([obs] * 6, [info] * 6)
    finished = [r for r in records if r.finished]
    assert len(finished) >= 4
    for r in finished:
        parsed = parse_turn(r.text)
        assert parsed.kind in ("tool_call", "answer") and not parsed.errors, r.text
    unconstrained = HFPolicy(model, tok, max_new_tokens=40, temperature=1.0, seed=1).generate([obs] * 6)
    assert all(parse_turn(r.text).kind == "invalid" for r in unconstrained)  # a random model never manages alone


def test_actions_are_limited_to_the_valid_ones(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=120, temperature=1.0, seed=4, constrained=True, grammar_limits=LIMITS)
    obs = ({"role": "user", "content": "Observation: a corridor."},)
    info = {"valid_actions": ["go north", "go south", "open door"]}
    kinds = set()
    for rec in policy.generate([obs] * 8, [info] * 8):
        parsed = parse_turn(rec.text, allow_action=True)
        kinds.add(parsed.kind)
        if parsed.kind == "action":
            assert parsed.action in info["valid_actions"]
    assert kinds <= {"tool_call", "answer", "action"}


def _train_mode_logprobs(model, samples, packing, pad_id):
    """The update's forward of these samples, in train mode, in the packing the config names."""
    model.train()
    try:
        if packing == "prefix-tree":
            with tree_attention(model):
                return tree_logprobs(model, pack_prefix_rows(samples, 4096), samples, temperature=0.7)[0]
        return row_logprobs(model, pack_samples(samples, 4096), samples, pad_id=pad_id, temperature=0.7)[0]
    finally:
        model.eval()


@pytest.mark.parametrize("packing", ["prefix-tree", "block-mask"])
def test_training_uses_the_constrained_distribution_and_the_ratio_is_exactly_one(tiny, packing):
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=160, temperature=0.7, seed=2, constrained=True, grammar_limits=LIMITS)
    env = gym.make("AgeMem/Probe-Recall-v0", tokenizer=tok, tools_in_system_prompt=False)
    obs, info = env.reset(seed=0)
    records = policy.generate([obs] * 4, [info] * 4)
    samples = [Sample(r.prompt_ids, r.response_ids, traj=i, grammar=r.grammar) for i, r in enumerate(records)]
    _attach_masks(samples, policy.grammar)
    config = GRPOConfig(temperature=0.7, row_tokens=4096, lora_rank=0, packing=packing)
    old = score_logprobs(model, samples, config, tok.pad_token_id)
    for rec, lp in zip(records, old):
        assert torch.allclose(lp, torch.tensor(rec.logprobs), atol=1e-4)  # rollout == trainer distribution
        assert lp.max() <= 0 and (lp > -1e-6).any()  # forced tokens (tags, JSON punctuation) have log-prob 0
    # the update's forward (train mode, same rows) gives bit-identical log-probs: ratio exactly 1
    new = _train_mode_logprobs(model, samples, packing, tok.pad_token_id)
    for i, lp in enumerate(old):
        assert torch.equal(torch.exp(new[i].detach() - lp), torch.ones_like(lp))
    unmasked = [Sample(s.prompt_ids, s.response_ids, traj=s.traj) for s in samples]
    plain = score_logprobs(model, unmasked, config, tok.pad_token_id)
    assert all((p <= o + 1e-6).all() for p, o in zip(plain, old))  # masking only renormalises upwards
    assert float(np.mean([(o - p).max() for p, o in zip(plain, old)])) > 1.0


IDS = ["mem_0000000a", "mem_0badcafe"]


def _delete(memory_id):
    call = {"name": "Delete_memory", "arguments": {"memory_id": memory_id, "confirmation": True}}
    return f"<think>x</think><tool_call>{json.dumps([call])}</tool_call>"


def _update(memory_id):
    call = {"name": "Update_memory", "arguments": {"memory_id": memory_id, "content": "Rome"}}
    return f"<think>x</think><tool_call>{json.dumps([call])}</tool_call>"


def _accepts(grammar, text, turn, tok):
    try:
        grammar.masks(text, [*tok(turn, add_special_tokens=False)["input_ids"], tok.eos_token_id])
    except ValueError:
        return False
    return True


def test_memory_ids_are_limited_to_the_live_ones(tiny):
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    text = grammar.text(memory_ids=IDS)
    assert _accepts(grammar, text, _delete(IDS[1]), tok) and _accepts(grammar, text, _update(IDS[0]), tok)
    for invented in ("n", "mem_0000000b", "mem_0000000", "mem_0000000aa", ""):
        assert not _accepts(grammar, text, _delete(invented), tok), invented
        assert not _accepts(grammar, text, _update(invented), tok), invented
    free = grammar.text()  # ids unknown (an env that does not list them): any non-empty string
    assert _accepts(grammar, free, _delete("n"), tok)


def test_an_empty_store_offers_no_update_or_delete(tiny):
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    text = grammar.text_for({"memory_ids": [], "ltm_size": 0})
    assert not _accepts(grammar, text, _delete("n"), tok) and not _accepts(grammar, text, _update("n"), tok)
    add = '<think>x</think><tool_call>[{"name": "Add_memory", "arguments": {"content": "Paris"}}]</tool_call>'
    assert _accepts(grammar, text, add, tok)
    names = [v["properties"]["name"]["const"] for v in calls_schema(memory_ids=[])["items"]["anyOf"]]
    assert names == [n for n in TOOL_NAMES if n not in ("Update_memory", "Delete_memory")]
    # a cut list (a store larger than the cap) allows the listed (newest) ids, never free text
    assert grammar.text_for({"memory_ids": IDS, "ltm_size": 5000}) == grammar.text(memory_ids=IDS)


def test_only_live_ids_the_agent_was_shown_are_offered(tiny):
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    obs = [
        {"role": "system", "content": "You manage memory."},
        {"role": "tool", "content": f"[memory tool result]\nmemory_added: {IDS[0]}"},
        {"role": "assistant", "content": f"<think>maybe {IDS[1]}</think><answer>ok</answer>"},  # its own guess
    ]
    info = {"memory_ids": IDS, "ltm_size": 2}
    assert grammar.memory_ids_for(info, obs) == [IDS[0]]  # live, but never shown: privileged
    text = grammar.text_for(info, obs)
    assert _accepts(grammar, text, _delete(IDS[0]), tok) and not _accepts(grammar, text, _delete(IDS[1]), tok)
    assert grammar.memory_ids_for({"memory_ids": [IDS[1]], "ltm_size": 1}, obs) == []  # shown, since deleted
    big = {"memory_ids": [IDS[1]], "ltm_size": 5000}  # the live list was cut at the cap
    assert grammar.memory_ids_for(big, obs) == [IDS[0]]
    assert not _accepts(grammar, grammar.text_for(big, obs), _delete("mem_12345678"), tok)


def test_stage1_ids_are_not_offered_once_the_context_reset_hid_them(tiny):
    model, tok = tiny
    env = gym.make("AgeMem/Probe-Recall-v0", tokenizer=tok, tools_in_system_prompt=False)
    obs, info = env.reset(seed=0)
    add = {"name": "Add_memory", "arguments": {"content": "The code is 4711."}}
    obs, *_, info = env.step(f"<think>store</think><tool_call>{json.dumps([add])}</tool_call>")
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    assert grammar.memory_ids_for(info, obs) == info["memory_ids"] != []
    while info["stage"] == 1:
        obs, *_, info = env.step("<think>next</think><answer>ok</answer>")
    assert info["memory_ids"] and grammar.memory_ids_for(info, obs) == []


def test_a_constrained_policy_never_invents_a_memory_id(tiny):
    model, tok = tiny
    env = gym.make("AgeMem/Probe-Recall-v0", tokenizer=tok, tools_in_system_prompt=False)
    obs, info = env.reset(seed=0)
    for content in ("Anna's birthday is March 14.", "The code is 4711."):
        add = {"name": "Add_memory", "arguments": {"content": content}}
        obs, *_, info = env.step(f"<think>store</think><tool_call>{json.dumps([add])}</tool_call>")
    live = set(env.unwrapped.ltm.ids())
    assert len(live) == 2
    # only the two id tools, so that every sampled call has to name a memory
    limits = {**LIMITS, "tools": DEFAULT_TOOLS.select(["Update_memory", "Delete_memory"])}
    policy = HFPolicy(model, tok, max_new_tokens=160, temperature=1.0, seed=3, constrained=True, grammar_limits=limits)
    named = []
    for rec in policy.generate([obs] * 8, [info] * 8):
        named += [c.arguments["memory_id"] for c in parse_turn(rec.text).calls if "memory_id" in c.arguments]
    assert len(named) >= 3  # the random model does call them: the check below means something
    assert set(named) <= live, named


def _summary(span):
    call = {"name": "Summary_context", "arguments": {"span": span}}
    return f"<think>x</think><tool_call>{json.dumps([call])}</tool_call>"


def test_summary_spans_follow_what_the_handler_parses(tiny):
    """SmolLM2 wrote spans such as "Same_stream_id_12345.67": the grammar allows only real spans."""
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    text = grammar.text()
    for span in ("all", "full", "3", "2-5"):
        assert _accepts(grammar, text, _summary(span), tok), span
    for span in ("Same_stream_id_12345.67", "last three", "2 to 5", ""):
        assert not _accepts(grammar, text, _summary(span), tok), span


def test_grammar_limits_fit_the_token_budget(tiny):
    """With the default 400/300-character bounds a 160-token turn was cut mid-string (a format error)."""
    model, tok = tiny
    small = budget_limits(160)
    assert small["max_think_chars"] + small["max_calls"] * small["max_string_chars"] <= 3 * 160
    assert budget_limits(2048) == {
        "max_think_chars": 400,
        "max_string_chars": 300,
        "max_text_chars": 300,
        "max_calls": 4,
    }
    policy = HFPolicy(model, tok, max_new_tokens=160, constrained=True)
    assert policy.grammar.limits == small
    wide = HFPolicy(model, tok, max_new_tokens=160, constrained=True, grammar_limits={"max_calls": 3})
    assert wide.grammar.limits["max_calls"] == 3  # explicit limits win


def test_the_last_round_of_the_query_stage_must_answer(tiny):
    """With one round left in Stage 3 a tool call would end the episode unanswered: only an answer fits."""
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    add = '<think>x</think><tool_call>[{"name": "Add_memory", "arguments": {"content": "Paris"}}]</tool_call>'
    answer = "<think>x</think><answer>Paris</answer>"
    last = grammar.text_for({"stage": 3, "rounds_left": 1})
    assert _accepts(grammar, last, answer, tok) and not _accepts(grammar, last, add, tok)
    for info in ({"stage": 3, "rounds_left": 2}, {"stage": 1, "rounds_left": 1}, {}):
        text = grammar.text_for(info)
        assert _accepts(grammar, text, add, tok) and _accepts(grammar, text, answer, tok), info


def test_the_env_reports_the_rounds_left_in_a_stage():
    env = gym.make("AgeMem/Probe-Recall-v0", max_rounds=2)
    _, info = env.reset(seed=0)
    assert (info["stage"], info["rounds_left"]) == (1, 2)
    store = '<tool_call>[{"name": "Add_memory", "arguments": {"content": "the secret colour is red"}}]</tool_call>'
    _, _, _, _, info = env.step(store)
    assert (info["stage"], info["rounds_left"]) == (1, 1)
    _, _, _, _, info = env.step(store)  # the round cap moves Stage 1 on (Stage 2 is off here)
    assert (info["stage"], info["rounds_left"]) == (3, 2)


def test_a_grammar_engine_that_misreads_the_tokens_is_refused(tiny):
    """Token bytes must agree between the engine and the tokenizer (a non-byte-level decoder breaks every mask)."""
    from agemem_gym.error import InvalidConfig
    from agemem_gym.policies.llm.constrained import check_token_bytes

    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)  # the real engine agrees
    check_token_bytes(tok, grammar.lltok)

    class LatinOne:  # reads each token's text as Latin-1 bytes of its vocabulary string ("Ġ" stays "Ġ")
        def decode_bytes(self, ids):
            return tok.convert_ids_to_tokens(ids[0]).encode("utf-8")

    with pytest.raises(InvalidConfig, match="decoder"):
        check_token_bytes(tok, LatinOne())


def test_a_decoder_chain_over_a_byte_level_vocabulary_is_repaired():
    """Seen with one transformers release's GGUF conversion: a decoder chain the grammar engine misreads."""
    from tokenizers import decoders

    from agemem_gym.error import InvalidConfig
    from agemem_gym.policies.llm.constrained import check_token_bytes
    from agemem_gym.policies.llm.models import byte_level_decoder, load_tokenizer

    llg_hf = pytest.importorskip("llguidance.hf")
    tok = load_tokenizer("smollm2")
    text = ' "name": "x", the answer'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    tok.backend_tokenizer.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Fuse(), decoders.Replace("▁", " "), decoders.ByteLevel()]
    )
    assert tok.decode(ids) == text  # the tokenizer itself still decodes right
    with pytest.raises(InvalidConfig, match="decoder"):
        check_token_bytes(tok, llg_hf.from_tokenizer(tok))
    byte_level_decoder(tok)
    check_token_bytes(tok, llg_hf.from_tokenizer(tok))
    assert tok.decode(ids) == text


def test_parallel_row_masks_equal_one_row_at_a_time(tiny):
    """The batched, thread-pooled mask of every live row is exactly the row's own mask."""
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    text = grammar.text()
    prefixes = ["", "<think>a", "<think>ab</think><answer>P", '<think>x</think><tool_call>[{"name": "Add_memory"']
    matchers = [grammar.matcher(text) for _ in prefixes]
    for m, prefix in zip(matchers, prefixes):
        for t in tok(prefix, add_special_tokens=False)["input_ids"]:
            assert m.consume_token(t)
    done = [False, True, False, False]
    width = model.config.vocab_size + 3  # logits wider than the grammar's vocabulary
    rows = grammar.allowed_rows(matchers, done, width)
    assert rows.shape == (len(prefixes), width)
    assert rows[1].all()  # a finished row is left unmasked
    for i in (0, 2, 3):
        own = grammar.allowed(matchers[i])
        assert torch.equal(rows[i, : grammar.vocab_size], own) and not rows[i, grammar.vocab_size :].any()
    assert not torch.equal(rows[0], rows[2])  # different states, different masks


def test_masks_of_many_turns_at_once_equal_one_turn_at_a_time(tiny):
    model, tok = tiny
    grammar = TurnGrammar(tok, model.config.vocab_size, **LIMITS)
    turns = [
        "<think>ab</think><answer>Paris</answer>",
        '<think>x</think><tool_call>[{"name": "Add_memory", "arguments": {"content": "Paris"}}]</tool_call>',
        "<think></think><answer>no</answer>",
    ]
    texts = [grammar.text(), grammar.text(), grammar.text_for({"stage": 3, "rounds_left": 1})]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in turns]
    many = grammar.masks_many(texts, ids)
    for text, tokens, got in zip(texts, ids, many):
        assert torch.equal(got, grammar.masks(text, tokens))
    assert grammar.masks_many([], []) == []
    with pytest.raises(ValueError, match="not allowed"):  # a tool call where only an answer fits
        grammar.masks_many([texts[2]], [ids[1]])
