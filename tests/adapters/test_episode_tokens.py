"""The single-sequence rule shared by the TRL bridge and the verl recipe: ids, masks, rewrites."""

import asyncio

import gymnasium as gym
import pytest

pytest.importorskip("transformers")

import agemem_gym  # noqa: E402,F401
from agemem_gym.adapters.episode_tokens import (  # noqa: E402
    EpisodeAssembler,
    alignment_summary,
    turn_close_text,
)
from agemem_gym.adapters.token_episodes import (  # noqa: E402
    measure_rewrites,
    play_episode_async,
)
from agemem_gym.error import InvalidConfig  # noqa: E402
from agemem_gym.policies import make  # noqa: E402
from agemem_gym.policies.llm.hf_policy import render_prompt  # noqa: E402
from agemem_gym.policies.llm.models import load_tokenizer  # noqa: E402

SYSTEM = {"role": "system", "content": "You manage your memory."}
USER = {"role": "user", "content": "Remember: the key is under the mat."}
ACTION = "<think>Store it.</think><answer>Noted.</answer>"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("smollm2")


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _prompt(tok, messages):
    return _ids(tok, render_prompt(tok, messages, tools=False))


def test_append_turns_are_exact_and_env_tokens_are_masked(tok):
    ctx0 = [SYSTEM, USER]
    ctx1 = [*ctx0, {"role": "assistant", "content": ACTION}, {"role": "tool", "content": "Stored."}]
    p0, p1, resp = _prompt(tok, ctx0), _prompt(tok, ctx1), _ids(tok, ACTION)
    asm = EpisodeAssembler(tok)
    first = asm.add_turn(p0, resp, [-0.5] * len(resp))
    second = asm.add_turn(p1, resp)
    out = asm.finish()
    assert (first.kind, first.exact) == ("first", True)
    assert (second.kind, second.exact, second.segment_exact) == ("append", True, True)
    assert out.prompt_ids == p0
    env = p1[len(p0) + len(resp) :]  # the env's new messages, as the policy saw them
    assert out.completion_ids == resp + env + resp
    assert out.env_mask == [1] * len(resp) + [0] * len(env) + [1] * len(resp)
    assert out.logprobs[: len(resp)] == [-0.5] * len(resp) and set(out.logprobs[len(resp) :]) == {0.0}
    # the training context of turn 2 is exactly its sampling context
    assert (out.prompt_ids + out.completion_ids)[: len(p1)] == p1


def test_a_rewrite_restarts_the_segment_with_the_whole_sampled_context(tok):
    ctx0 = [SYSTEM, USER]
    rewritten = [SYSTEM, {"role": "user", "content": "Unrelated: what's a good pasta recipe?"}]  # Stage-2 reset
    p0, p1, resp = _prompt(tok, ctx0), _prompt(tok, rewritten), _ids(tok, ACTION)
    asm = EpisodeAssembler(tok, end_token=tok.eos_token_id)
    asm.add_turn(p0, resp)
    turn = asm.add_turn(p1, resp)
    out = asm.finish()
    assert turn.kind == "restart" and turn.segment_exact and not turn.exact
    close = _ids(tok, turn_close_text(tok))
    assert turn_close_text(tok) == "<|im_end|>\n"
    # turn 1 is closed with the template's end of turn, then the whole rewritten context, then turn 2
    assert out.completion_ids == resp + close + p1 + resp + [tok.eos_token_id]
    assert out.env_mask == [1] * len(resp) + [0] * (len(close) + len(p1)) + [1] * len(resp) + [0]
    # the rewritten context starts with the env's own system message (no injected default one)
    assert tok.decode(p1).startswith("<|im_start|>system\nYou manage your memory.")


def test_a_differently_tokenised_turn_keeps_the_text_and_is_reported(tok):
    ctx0 = [SYSTEM, USER]
    ctx1 = [*ctx0, {"role": "assistant", "content": ACTION}, {"role": "tool", "content": "Stored."}]
    p0, p1 = _prompt(tok, ctx0), _prompt(tok, ctx1)
    sampled = [i for ch in ACTION for i in _ids(tok, ch)]  # a non-canonical tokenisation of the same text
    assert sampled != _ids(tok, ACTION)
    asm = EpisodeAssembler(tok)
    asm.add_turn(p0, sampled)
    turn = asm.add_turn(p1, sampled)
    out = asm.finish()
    assert turn.kind == "retokenized" and not turn.exact and not turn.segment_exact
    assert tok.decode(out.prompt_ids + out.completion_ids[: -len(sampled)]) == tok.decode(p1)


def test_assembler_errors_and_summary(tok):
    asm = EpisodeAssembler(tok)
    with pytest.raises(InvalidConfig, match="no turns"):
        asm.finish()
    with pytest.raises(InvalidConfig, match="one per token"):
        asm.add_turn([1, 2], [3, 4], [0.0])
    asm.add_turn([1, 2], [3])
    summary = alignment_summary([asm.finish().turns])
    assert summary["turns"] == 1 and summary["first"] == 1 and summary["fraction_differs"] == 0.0
    fields = asm.finish().agent_loop_fields(reward_score=0.5)
    assert fields["response_ids"] == [3] and fields["response_mask"] == [1] and fields["num_turns"] == 2


@pytest.mark.parametrize(
    "env_id, policy",
    [("AgeMem/MemoryProbe-v0", "store-all"), ("AgeMem/Probe-Recall-v0", "oracle"), ("AgeMem/MemoryProbe-v0", "random")],
)
def test_measure_rewrites_with_scripted_policies(tok, env_id, policy):
    report = measure_rewrites(env_id, make(policy), tok, episodes=2)
    assert report["episodes"] == 2 and report["first"] == 2
    assert report["restart"] >= 2  # at least the Stage-2 reset of each episode
    # scripted actions are canonically tokenised: every turn's segment is its sampled context
    assert report["retokenized"] == 0 and report["segment_differs"] == 0
    assert 0 < report["fraction_differs"] < 1
    assert report["differs"] >= report["restart"]


def test_async_episode_core_matches_direct_play(tok):
    """The verl recipe's core: one episode from an async token generator (a stub server)."""
    kwargs = {"tokenizer": tok}
    policy = make("store-all")
    env = gym.make("AgeMem/MemoryProbe-v0", **kwargs)
    pending = {}

    async def generate(prompt_ids):  # what verl's server_manager.generate returns
        assert prompt_ids == pending["prompt"]
        ids = _ids(tok, policy.act(pending["obs"], pending["info"]))
        return ids, [-0.1] * len(ids)

    class Recording(gym.Wrapper):  # lets the stub see the observation the prompt was rendered from
        def _keep(self, obs, info):
            pending.update(obs=obs, info=info, prompt=_prompt_auto(tok, obs))

        def reset(self, **kw):
            obs, info = self.env.reset(**kw)
            self._keep(obs, info)
            return obs, info

        def step(self, action):
            out = self.env.step(action)
            self._keep(out[0], out[4])
            return out

    tokens, ret, info = asyncio.run(play_episode_async(Recording(env), generate, tok, task_id=1, seed=3))
    direct = gym.make("AgeMem/MemoryProbe-v0", **kwargs)
    policy.reset()
    obs, inf = direct.reset(seed=3, options={"task_id": 1})
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, inf = direct.step(policy.act(obs, inf))
        total, done = total + r, term or trunc
    assert ret == pytest.approx(total) and info["task_score"] == inf["task_score"]
    fields = tokens.agent_loop_fields(reward_score=ret)
    assert len(fields["response_ids"]) == len(fields["response_mask"]) == len(fields["response_logprobs"])
    assert fields["num_turns"] == 2 * inf["turns"]
    assert {x for x, m in zip(fields["response_logprobs"], fields["response_mask"]) if m} == {-0.1}


def _prompt_auto(tok, messages):
    return _ids(tok, render_prompt(tok, messages))
