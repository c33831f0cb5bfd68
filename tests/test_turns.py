"""The shared turn engine: MemoryEnv and the team env run turns alike; info["turn"] says what ran."""

import json
import re

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.tools import format_action, format_answer, format_tool_call
from agemem_gym.turns import TurnEngine, cut_notice
from tests.test_interactive import Corridor

HOTPOT = "AgeMem/HotpotQA-v0"
FACT = "The Eiffel Tower stands in Paris."


def call(name, **arguments):
    return format_tool_call([{"name": name, "arguments": arguments}])


# the same turns for both envs: a cut turn, a failed and a good retrieval, a summary
TURNS = [
    call("Add_memory", content=FACT),
    "<think>" + "very long thinking " * 2000 + "</think>",
    call("Retrieve_memory", query="Eiffel Tower", top_k=999),
    call("Retrieve_memory", query="Eiffel Tower", top_k=3),
    call("Summary_context", span="2"),
]


def _new_messages(stm, before):
    """What a turn left in the context, memory ids normalised (each env draws its own)."""
    return [(m.role, m.kind, re.sub(r"mem_[0-9a-f]{8}", "mem_X", m.content)) for m in stm.messages[before:]]


def _memory_env_deltas():
    env = gym.make(HOTPOT, max_rounds=10).unwrapped
    env.reset(seed=0)
    deltas = []
    for turn in TURNS:
        before = len(env.stm)
        env.step(turn)
        deltas.append(_new_messages(env.stm, before))
    return deltas


def _team_deltas():
    from agemem_gym.adapters.pettingzoo import make_parallel

    env = make_parallel("TeamHotpotQA-v0", max_rounds=10)
    env.reset(seed=0)
    reader = env._state["reader_0"]
    deltas = []
    for turn in TURNS:
        before = len(reader.stm)
        env.step({"reader_0": turn, "answerer_0": call("Filter_context", criteria="nothing at all")})
        deltas.append(_new_messages(reader.stm, before))
    return deltas


def test_memory_env_and_team_env_leave_the_same_context_for_the_same_turns():
    pytest.importorskip("pettingzoo")
    single, team = _memory_env_deltas(), _team_deltas()
    assert single == team
    cut, failed, good, summary = single[1:]
    assert cut[-1][:2] == ("tool", "error") and cut[-1][2].startswith(cut_notice(2048) + "\n")
    assert [kind for _, kind, _ in failed] == ["turn", "tool"] and failed[1][2].startswith("[tool error]")
    assert [kind for _, kind, _ in good] == ["turn", "retrieval"] and FACT in good[1][2]
    assert "summary_context_applied: 2 messages" in summary[-1][2]


def test_both_envs_run_turns_through_a_turn_engine():
    pytest.importorskip("pettingzoo")
    from agemem_gym.adapters.pettingzoo import make_parallel

    single = gym.make(HOTPOT).unwrapped
    team = make_parallel("TeamProbe-v0")
    team.reset(seed=0)
    assert isinstance(single.turns, TurnEngine)
    assert all(isinstance(state.turns, TurnEngine) for state in team._state.values())


# ------------------------------------------------------------------ info["turn"]
def test_info_turn_of_a_good_and_a_bad_call():
    env = gym.make(HOTPOT)
    env.reset(seed=0)
    turn = env.step(
        format_tool_call(
            [
                {"name": "Add_memory", "arguments": {"content": FACT}},
                {"name": "Delete_memory", "arguments": {"memory_id": "mem_ffffffff", "confirmation": True}},
            ]
        )
    )[4]["turn"]
    assert turn["kind"] == "tool_call" and turn["errors"] == [] and turn["cut"] is False
    assert "answer" not in turn and "action" not in turn
    good, bad = turn["calls"]
    mid = env.unwrapped.ltm.ids()[0]
    assert good == {
        "name": "Add_memory",
        "arguments": {"content": FACT},
        "ok": True,
        "memory_op": "added",
        "memory_ids": [mid],
        "message": f"[memory tool result]\nmemory_added: {mid}",
    }
    assert bad["ok"] is False and bad["memory_op"] is None and bad["memory_ids"] == []
    assert bad["message"].startswith("[tool error] Delete_memory: unknown memory_id")
    json.dumps(turn)


def test_info_turn_follows_one_memory_through_add_update_retrieve_delete():
    env = gym.make(HOTPOT, max_rounds=10)
    env.reset(seed=0)
    added = env.step(call("Add_memory", content=FACT))[4]["turn"]["calls"][0]
    mid = added["memory_ids"][0]
    assert added["memory_op"] == "added" and mid in env.unwrapped.ltm
    updated = env.step(call("Update_memory", memory_id=mid, content="The Eiffel Tower is in Paris, France."))
    assert updated[4]["turn"]["calls"][0] | {"message": ""} == {
        "name": "Update_memory",
        "arguments": {"memory_id": mid, "content": "The Eiffel Tower is in Paris, France."},
        "ok": True,
        "memory_op": "updated",
        "memory_ids": [mid],
        "message": "",
    }
    read = env.step(call("Retrieve_memory", query="Eiffel Tower Paris"))[4]["turn"]["calls"][0]
    assert read["memory_op"] is None and read["memory_ids"] == [mid]
    deleted = env.step(call("Delete_memory", memory_id=mid, confirmation=True))[4]["turn"]["calls"][0]
    assert deleted["memory_op"] == "deleted" and deleted["memory_ids"] == [mid] and mid not in env.unwrapped.ltm
    cancelled = env.step(call("Add_memory", content="x"))[4]["turn"]["calls"][0]["memory_ids"][0]
    kept = env.step(call("Delete_memory", memory_id=cancelled, confirmation=False))[4]["turn"]["calls"][0]
    assert (
        kept["ok"] is True and kept["memory_op"] is None and kept["memory_ids"] == [] and cancelled in env.unwrapped.ltm
    )


def test_info_turn_of_answers_cut_turns_format_errors_and_hook_rejections():
    env = gym.make(HOTPOT, num_distractors=0)
    env.reset(seed=0)
    cut = env.step("<answer>" + "word " * 20_000 + "</answer>")[4]
    assert cut["turn"]["cut"] and cut["turn"]["errors"][0] == cut_notice(2048)
    assert cut["step_invalid_calls"] == len(cut["turn"]["errors"])
    broken = env.step('<tool_call>[{"name": "Add_memory", "arguments": {"content": 3.5j}}]</tool_call>')[4]
    assert broken["turn"]["kind"] == "invalid" and broken["turn"]["calls"] == [] and broken["turn"]["errors"]
    answered = env.step({"answer": "Paris"})[4]["turn"]
    assert answered["kind"] == "answer" and answered["answer"] == "Paris"

    world = Corridor(num_distractors=0)
    world.reset(seed=0)
    info = world.step(format_action("right"))[4]  # no world yet in Stage 1: the hook rejects it
    assert info["turn"]["kind"] == "action" and info["turn"]["action"] == "right"
    assert len(info["turn"]["errors"]) == 1 and "no world to act in yet" in info["turn"]["errors"][0]
    assert info["step_invalid_calls"] == 1
    json.dumps(info["turn"])


def test_reset_info_has_no_turn_and_the_last_turn_is_kept():
    env = gym.make(HOTPOT)
    obs, info = env.reset(seed=0)
    assert "turn" not in info and env.unwrapped.last_turn is None and env.unwrapped.last_tool_results == ()
    env.step(call("Add_memory", content=FACT))
    last = env.unwrapped.last_turn
    assert last.parsed.kind == "tool_call" and last.results[0].memory_op == "added"
    assert env.unwrapped.last_tool_results == last.results


def test_team_infos_carry_each_agents_turn():
    pytest.importorskip("pettingzoo")
    from agemem_gym.adapters.pettingzoo import make_parallel

    env = make_parallel("TeamProbe-Saboteur-v0")
    _, infos = env.reset(seed=0)
    assert all("turn" not in info for info in infos.values())
    actions = {
        "reader_0": call("Add_memory", content=FACT),
        "answerer_0": call("Retrieve_memory", query="tower"),
        "saboteur_0": call("Filter_context", criteria="x"),
    }
    infos = env.step(actions)[4]
    assert infos["reader_0"]["turn"]["calls"][0]["memory_op"] == "added"
    refused = infos["saboteur_0"]["turn"]["calls"][0]
    assert refused["ok"] is False and "a saboteur may only use" in refused["message"]
    json.dumps({a: i["turn"] for a, i in infos.items()})
    infos = env.step({a: format_answer("Paris") for a in env.agents})[4]
    # the answer ends the cycle: the saboteur's turn is not applied
    assert infos["answerer_0"]["turn"]["answer"] == "Paris" and infos["saboteur_0"]["turn"] is None


# ------------------------------------------------------------------ grading
def test_grade_is_public_and_covers_the_unanswered_case():
    env = gym.make(HOTPOT).unwrapped
    env.reset(seed=0)
    task = env.task
    assert env.grade(task, task.answers[0]) == env._grade(task, task.answers[0])
    assert env.grade(task, task.answers[0])["success"] == 1.0
    assert env.grade(task, None) == env._grade_unanswered(task) == {"task_score": None, "success": 0.0}
    world = Corridor(plain=True)  # the world starts at reset
    world.reset(seed=0)
    assert world.grade(world.task, None) == {"task_score": 0.0, "success": 0.0}


# ------------------------------------------------------------------ preservation's view
def test_environment_view_leaves_out_the_agents_own_words():
    from agemem_gym.turns import shared_words

    env = gym.make(HOTPOT).unwrapped
    env.reset(seed=0, options={"task_id": 0})
    env.step(f"<think>{FACT}</think>" + call("Delete_memory", memory_id="Eiffel Tower", confirmation=True))
    env.step(call("Summary_context", span="all"))
    view = env.turns.environment_view()
    contents = [m.content for m in env.stm.messages]
    assert any("Eiffel" in c for c in contents)  # the summary kept the agent's sentence...
    assert not any("eiffel" in v.lower() for v in view)  # ...but it is not the environment's
    assert shared_words("Tower of Paris, 1889.", "paris tower") == "Tower Paris"
