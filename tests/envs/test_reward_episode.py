"""Episode-level reward regressions (issue 15, reward items 1, 2, 3 and 5)."""

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.tools import format_answer, format_tool_call

HOTPOT = "AgeMem/HotpotQA-v0"
MALFORMED = "<tool_call>{not json</tool_call>"
WRONG = format_answer("Zzyzx")


def call(name, **arguments):
    return format_tool_call([{"name": name, "arguments": arguments}])


def to_stage3(env, info):
    while info["stage"] < 3:
        _, _, _, _, info = env.step(format_answer("ok"))
    return info


def play(env_id, stage3_turns, *, task_id=0, before=None, **kwargs):
    """Reset, optionally act in Stage 1 (``before``), answer "ok" until Stage 3, then play the turns."""
    env = gym.make(env_id, **kwargs)
    _, info = env.reset(seed=0, options={"task_id": task_id})
    total = 0.0
    for turn in before or ():
        _, r, _, _, info = env.step(turn)
        total += r
    while info["stage"] < 3:
        _, r, _, _, info = env.step(format_answer("ok"))
        total += r
    query = env.unwrapped.task.query
    for turn in stage3_turns(query):
        _, r, term, trunc, info = env.step(turn)
        total += r
        if term or trunc:
            break
    assert term or trunc
    return env, info, total


# ---------------------------------------------------------------- item 1
@pytest.mark.parametrize("mode", ["terminal", "dense"])
def test_last_turns_invalid_calls_are_charged(mode):
    env, info, total = play(
        "AgeMem/Probe-Recall-v0", lambda q: [MALFORMED, MALFORMED], max_rounds=2, reward={"mode": mode}
    )
    assert info["invalid_calls"] == 2 and info["step_invalid_calls"] == 1
    assert info["penalties"]["invalid"] == pytest.approx(-0.10)
    assert info["penalties"]["rounds"] == -1.0
    assert total == pytest.approx(info["episode_reward"])


def test_dense_and_terminal_totals_agree_when_the_last_turn_is_invalid():
    totals = [
        play("AgeMem/Probe-Recall-v0", lambda q: [MALFORMED, MALFORMED], max_rounds=2, reward={"mode": m})[2]
        for m in ("terminal", "dense")
    ]
    assert totals[0] == pytest.approx(totals[1])


# ---------------------------------------------------------------- item 2
PROBES = {
    "silent": lambda q: [WRONG],
    "retrieve the question": lambda q: [call("Retrieve_memory", query=q), WRONG],
    "restate + summary": lambda q: [
        f"<think>The question is: {q}</think>" + call("Summary_context", span="all"),
        WRONG,
    ],
    "restate, then summarise it": lambda q: [
        f"<think>The question is: {q}</think>" + call("Retrieve_memory", query="x"),
        call("Summary_context", span="all"),
        WRONG,
    ],
    "echo it through a tool error": lambda q: [
        call("Delete_memory", memory_id="Theodore Roosevelt, Mount Rushmore", confirmation=True),
        WRONG,
    ],
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_repeating_the_question_preserves_nothing(probe):
    _, info, _ = play(HOTPOT, PROBES[probe])
    assert info["reward_components"]["preservation"] == 0.0


def test_preservation_through_a_retrieved_memory_and_a_summary_still_counts():
    fact = "Mount Rushmore shows Theodore Roosevelt and three other presidents."

    def turns(q):
        return [
            call("Retrieve_memory", query="Mount Rushmore Theodore Roosevelt"),
            call("Summary_context", span="all"),
            WRONG,
        ]

    _, info, _ = play(HOTPOT, turns, before=[call("Add_memory", content=fact)])
    assert info["reward_components"]["preservation"] == 1.0


def test_team_answerer_repeating_the_question_preserves_nothing():
    pytest.importorskip("pettingzoo")
    from agemem_gym.adapters.pettingzoo import make_parallel

    env = make_parallel("TeamHotpotQA-v0")
    env.reset(seed=0, options={"task_id": 0})
    query = env.unwrapped._task.query if hasattr(env, "unwrapped") else env._task.query
    idle = format_answer("done")
    restate = f"<think>The question is: {query}</think>" + call("Retrieve_memory", query=query)
    infos = env.step({"reader_0": idle, "answerer_0": restate})[4]
    infos = env.step({"reader_0": idle, "answerer_0": WRONG})[4]
    assert infos["answerer_0"]["reward_components"]["preservation"] == 0.0


# ---------------------------------------------------------------- item 3
def _update_episode(content_of, reward=None, metadata=None):
    def turns(q):
        return [WRONG]

    env = gym.make("AgeMem/Probe-Recall-v0", reward=reward)
    _, info = env.reset(seed=0, options={"task_id": 0})
    _, _, _, _, info = env.step(call("Add_memory", content="the secret colour is red"))
    mid = info["turn"]["calls"][0]["memory_ids"][0]
    args = {"memory_id": mid, "content": content_of("the secret colour is red")}
    if metadata is not None:
        args["metadata"] = metadata
    _, _, _, _, info = env.step(call("Update_memory", **args))
    update_call = info["turn"]["calls"][0]
    info = to_stage3(env, info)
    _, _, _, _, info = env.step(format_answer("red"))
    return update_call, info


def test_an_update_that_changes_no_word_earns_no_maintenance():
    changed = {"maintenance": "changed"}
    for content_of, metadata in [
        (lambda c: "  the secret   colour is red ", None),
        (lambda c: c + " .", None),  # a punctuation edit
        (lambda c: c.upper(), None),
        (lambda c: c, {"source": "user"}),  # a metadata-only edit
    ]:
        shown, info = _update_episode(content_of, reward=changed, metadata=metadata)
        assert shown["ok"] and shown["memory_op"] == "updated"  # the agent sees the same result
        assert shown["message"].startswith("[memory tool result]\nmemory_updated: ")
        assert info["reward_components"]["maintenance"] == 0.0


def test_a_real_update_earns_maintenance_only_where_it_is_asked_for():
    reworded = lambda c: "the secret colour is red (stated in Stage 1)"  # noqa: E731
    _, info = _update_episode(reworded, reward={"maintenance": "changed"})
    assert info["reward_components"]["maintenance"] == 1.0
    # by default maintenance pays for removing what went stale; nothing goes stale in Probe-Recall
    _, info = _update_episode(reworded)
    assert info["reward_components"]["maintenance"] is None


def test_the_papers_literal_indicator_stays_available():
    _, info = _update_episode(lambda c: c, reward={"maintenance": "any_update"})
    assert info["reward_components"]["maintenance"] == 1.0


# ---------------------------------------------------------------- item 5
def _silent_stage12(**reward):
    env = gym.make(HOTPOT, max_rounds=1, reward=reward or None)
    _, info = env.reset(seed=0, options={"task_id": 0})
    while info["stage"] < 3:
        _, _, _, _, info = env.step("<think>hmm</think>")
    _, _, _, _, info = env.step(WRONG)
    return info


def test_stage12_round_caps_are_recorded_and_unpenalised_by_default():
    info = _silent_stage12()
    assert info["rounds_exceeded_stages"] == [1, 2]
    assert info["penalties"]["rounds"] == 0.0


def test_stage12_round_caps_can_be_charged_once():
    info = _silent_stage12(rounds_penalty_early_stages=True)
    assert info["penalties"]["rounds"] == -1.0


def test_answering_every_message_exceeds_no_cap():
    _, info, _ = play("AgeMem/Probe-Recall-v0", lambda q: [format_answer("red")])
    assert info["rounds_exceeded_stages"] == [] and info["penalties"]["rounds"] == 0.0
    _, info, _ = play("AgeMem/Probe-Recall-v0", lambda q: ["<think>x</think>"] * 5)
    assert info["rounds_exceeded_stages"] == [3] and info["penalties"]["rounds"] == -1.0
