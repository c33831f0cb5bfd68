"""Team envs with a shared long-term memory: PettingZoo API, determinism, roles, scoring, AEC."""

import importlib
import sys
import threading
import warnings

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

with warnings.catch_warnings():
    # pettingzoo.test imports a classic env through PettingZoo's deprecated creation API
    warnings.simplefilter("ignore", DeprecationWarning)
    from pettingzoo.test import parallel_api_test

from agemem_gym.adapters.pettingzoo import (  # noqa: E402
    PLANTED,
    VARIANTS,
    TeamMemoryEnv,
    make_aec,
    make_parallel,
)
from agemem_gym.adapters.pettingzoo.baselines import (  # noqa: E402
    ReaderPolicy,
    evaluate_team,
    make_team,
    run_team_episode,
)
from agemem_gym.adapters.pettingzoo.roles import MATERIAL_DONE, READERS_DONE  # noqa: E402
from agemem_gym.error import DependencyNotInstalled, InvalidConfig, ResetNeeded, UnknownName  # noqa: E402
from agemem_gym.policies import RandomPolicy  # noqa: E402
from agemem_gym.tools import format_answer, format_tool_call  # noqa: E402

ACK = format_answer("ok")
WAIT = format_tool_call([{"name": "Retrieve_memory", "arguments": {"query": "anything", "top_k": 1}}])


def add(content, **extra):
    return format_tool_call([{"name": "Add_memory", "arguments": {"content": content, **extra}}])


def retrieve(query, top_k=5):
    return format_tool_call([{"name": "Retrieve_memory", "arguments": {"query": query, "top_k": top_k}}])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parallel_api_test(variant):
    env = make_parallel(variant)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=80)
    assert not caught, [str(w.message) for w in caught]


def test_agents_and_spaces():
    env = make_parallel("TeamHotpotQA-Saboteur-v0", num_readers=3)
    assert env.possible_agents == ["reader_0", "reader_1", "reader_2", "answerer_0", "saboteur_0"]
    assert env.roles["saboteur_0"] == "saboteur" and env.roles["answerer_0"] == "answerer"
    obs, infos = env.reset(seed=0)
    for agent in env.agents:
        assert env.observation_space(agent).contains(obs[agent])
        assert env.action_space(agent) is env.action_space(agent)
        assert infos[agent]["role"] == env.roles[agent]


def _scripted_trajectory(variant, seed, team="store-all", **kwargs):
    env = make_parallel(variant, privileged_info=True, **kwargs)
    policies = make_team(team, env, seed=seed)
    out = [env.reset(seed=seed)]
    while env.agents:
        out.append(env.step({a: policies[a].act(out[-1][0][a], out[-1][-1][a]) for a in env.agents}))
    return out


def _random_trajectory(variant, seed, n=40):
    env = make_parallel(variant, max_cycles=n)
    # the answerer never answers, so the episode runs to max_cycles
    policies = {
        a: RandomPolicy(seed=i, p_answer=0.0 if a == "answerer_0" else 0.25) for i, a in enumerate(env.possible_agents)
    }
    out = [env.reset(seed=seed)]
    while env.agents:
        out.append(env.step({a: policies[a].act(out[-1][0][a], out[-1][-1][a]) for a in env.agents}))
    return out


@pytest.mark.parametrize("variant", ["TeamHotpotQA-3Readers-v0", "TeamHotpotQA-Saboteur-v0"])
def test_same_seed_same_episode(variant):
    for make in (_scripted_trajectory, _random_trajectory):
        a, b = make(variant, 5), make(variant, 5)
        assert len(a) == len(b) > 2
        assert a == b  # observations, rewards, flags and infos, memory ids included
    c = _scripted_trajectory(variant, 6)
    assert a[0][0] != c[0][0]


def test_the_answerer_sees_only_the_question_and_the_shared_memory():
    env = make_parallel("TeamProbe-v0")
    obs, infos = env.reset(seed=1, options={"task_id": 4})
    task = env.task
    answerer_text = [m["content"] for m in obs["answerer_0"] if m["role"] == "user"]
    assert answerer_text == [task.query]
    piece = obs["reader_0"][-1]["content"]
    assert piece == task.material[0] and task.query not in str(obs["reader_0"])
    # the reader acts before the answerer in the same cycle, so its memory is visible at once
    obs, *_ = env.step({"reader_0": add(piece), "answerer_0": retrieve(task.query)})
    assert piece in obs["answerer_0"][-1]["content"] and "Memory ID" in obs["answerer_0"][-1]["content"]
    for m in obs["answerer_0"]:
        if m["role"] == "user":
            assert m["content"] in (task.query, READERS_DONE)


def test_material_split_notices_and_answer_ends_for_everyone():
    env = make_parallel("TeamHotpotQA-3Readers-v0")
    obs, infos = env.reset(seed=0, options={"task_id": 0})
    task = env.task
    firsts = [obs[f"reader_{i}"][-1]["content"] for i in range(3)]
    assert firsts == list(task.material[:3])
    while not infos["answerer_0"]["readers_finished"]:
        obs, rewards, term, trunc, infos = env.step({**{f"reader_{i}": ACK for i in range(3)}, "answerer_0": WAIT})
    assert all(infos[f"reader_{i}"]["finished_reading"] for i in range(3))
    assert any(m["content"] == MATERIAL_DONE for m in obs["reader_0"])
    assert obs["answerer_0"][-1]["content"] == READERS_DONE
    assert infos["answerer_0"]["cycle"] == 4  # ceil(10 / 3) pieces each
    obs, rewards, term, trunc, infos = env.step({a: ACK for a in env.agents})
    assert all(term.values()) and not any(trunc.values()) and env.agents == []
    info = infos["answerer_0"]
    assert info["answer"] == "ok" and "reward_components" in info and "penalties" in info
    assert set(rewards) == set(env.possible_agents)
    with pytest.raises(ResetNeeded):
        env.step({})


def test_truncation_without_an_answer_pays_the_paper_penalties():
    env = make_parallel("TeamProbe-v0", max_cycles=3)
    env.reset(seed=0)
    for _ in range(3):
        obs, rewards, term, trunc, infos = env.step({"reader_0": ACK, "answerer_0": retrieve("anything")})
    assert all(trunc.values()) and not any(term.values())
    info = infos["answerer_0"]
    assert info["answer"] is None and info["penalties"]["rounds"] == -1.0
    assert info["reward_components"]["task"] == -1.0


def test_default_cycle_limit_leaves_time_for_slow_readers():
    env = make_parallel("TeamProbe-v0")  # 6 pieces, 1 reader, max_rounds 5: (6 + 2) * 5 cycles
    env.reset(seed=0)
    cycles = 0
    while env.agents:
        *_, infos = env.step({"reader_0": retrieve("anything", 1), "answerer_0": WAIT})
        cycles += 1
    assert cycles == 40 and infos["reader_0"]["finished_reading"]


def test_saboteur_tools_provenance_and_planted_memories():
    env = make_parallel("TeamProbe-Saboteur-v0", provenance=True, privileged_info=True)
    obs, infos = env.reset(seed=2, options={"task_id": 0})
    fact = infos["reader_0"]["privileged"]["facts"][0]
    forged = add(fact.replace(fact.split()[-1], "1.").rstrip(".") + ".", metadata={"author": "reader_0"})
    obs, *_ = env.step({"reader_0": add(fact), "answerer_0": retrieve("x", 1), "saboteur_0": forged})
    items = {m.content: m for m in env.ltm}
    assert items[fact].metadata["author"] == "reader_0"
    planted = [m for m in env.ltm if m.content != fact]
    assert len(planted) == 1 and planted[0].metadata["author"] == "saboteur_0"  # the forged author is overwritten
    delete = format_tool_call(
        [{"name": "Delete_memory", "arguments": {"memory_id": items[fact].id, "confirmation": True}}]
    )
    obs, _, _, _, infos = env.step({"reader_0": ACK, "answerer_0": retrieve("x", 1), "saboteur_0": delete})
    assert items[fact].id in env.ltm and infos["saboteur_0"]["step_invalid_calls"] == 1
    assert "may only use" in obs["saboteur_0"][-1]["content"]


def test_scoring_counts_planted_memories_as_non_facts_and_pays_the_saboteur_the_negative():
    env = make_parallel("TeamProbe-Saboteur-v0", privileged_info=True, team_weight=0.5)
    obs, infos = env.reset(seed=0, options={"task_id": 1})
    facts, answer = infos["reader_0"]["privileged"]["facts"], infos["reader_0"]["privileged"]["answers"][0]
    env.step({"reader_0": add(facts[0]), "answerer_0": retrieve("x", 1), "saboteur_0": add(facts[0] + " Really.")})
    while not infos["answerer_0"]["readers_finished"]:
        obs, rewards, term, trunc, infos = env.step({"reader_0": ACK, "answerer_0": WAIT, "saboteur_0": ACK})
    env.step({"reader_0": ACK, "answerer_0": retrieve(env.task.query, 5), "saboteur_0": ACK})
    obs, rewards, term, trunc, infos = env.step({a: format_answer(answer) for a in env.agents})
    info = infos["answerer_0"]
    assert info["task_score"] == 1.0 and info["misleading_memories"] == 1 and info["misleading_retrieved"] == 1
    assert info["mq_precision"] == 0.5 and info["reward_components"]["relevance"] == 0.5
    assert rewards["saboteur_0"] == -1.0
    # team_weight 0.5: half the team reward, half the reader's own storage quality (1.0)
    assert rewards["reader_0"] == pytest.approx(0.5 * info["team_reward"] + 0.5)
    assert info["individual_rewards"]["answerer_0"] == 1.0 and PLANTED not in str(info)


def test_scripted_baselines_order():
    env = make_parallel("TeamProbe-v0", privileged_info=True)
    scores = {team: evaluate_team(env, team, episodes=6)[0] for team in ("oracle", "store-all", "no-communication")}
    assert (
        scores["oracle"]["team_reward"] > scores["store-all"]["team_reward"] > scores["no-communication"]["team_reward"]
    )
    assert scores["oracle"]["task_score"] == scores["store-all"]["task_score"] == 1.0
    assert scores["no-communication"]["task_score"] == 0.0 and scores["oracle"]["memory_quality"] == 1.0
    sab = make_parallel("TeamProbe-Saboteur-v0", privileged_info=True, provenance=True)
    under_attack = {team: evaluate_team(sab, team, episodes=6)[0] for team in ("store-all", "vigilant", "trusting")}
    assert under_attack["store-all"]["task_score"] < 0.5 and under_attack["store-all"]["misleading_retrieved"] > 0
    assert under_attack["vigilant"]["misleading_memories"] < under_attack["store-all"]["misleading_memories"]
    assert under_attack["trusting"]["misleading_retrieved"] == 0 and under_attack["trusting"]["task_score"] == 1.0
    with pytest.raises(InvalidConfig, match="provenance"):
        make_team("trusting", env)
    with pytest.raises(InvalidConfig, match="privileged_info"):
        evaluate_team(make_parallel("TeamProbe-v0"), "oracle", episodes=1)


def test_aec_form_plays_the_same_episode_as_the_parallel_form():
    par = make_parallel("TeamProbe-Saboteur-v0", privileged_info=True)
    reference = run_team_episode(par, make_team("vigilant", par, seed=0), seed=9)
    aec = make_aec("TeamProbe-Saboteur-v0", privileged_info=True)
    policies = make_team("vigilant", aec.unwrapped, seed=0)
    aec.reset(seed=9)
    order, finals = [], {}
    for agent in aec.agent_iter(max_iter=10_000):
        obs, reward, term, trunc, info = aec.last()
        assert obs == aec.observe(agent) and aec.observation_space(agent).contains(obs)
        if term or trunc:
            finals[agent] = (reward, info)
            aec.step(None)  # a dead agent's step
            continue
        order.append(agent)
        aec.step(policies[agent].act(obs, info))
    assert aec.agents == [] and set(finals) == set(aec.possible_agents)
    cycles = len(order) // 3
    assert order[:6] == ["reader_0", "answerer_0", "saboteur_0"] * 2 and cycles == reference.cycles
    assert {a: r for a, (r, _) in finals.items()} == pytest.approx(reference.rewards)
    assert finals["answerer_0"][1]["task_score"] == reference.task_score


def test_shared_memory_stays_consistent_under_threads():
    env = make_parallel("TeamHotpotQA-3Readers-v0", num_saboteurs=1)
    env.reset(seed=0)
    agents = ["reader_0", "reader_1", "reader_2", "saboteur_0"]

    def work(agent):
        for i in range(40):
            env.run_turn(agent, add(f"{agent} note {i} about topic {i % 7}"))
            env.run_turn(agent, retrieve(f"topic {i % 7}", 3))

    threads = [threading.Thread(target=work, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    env.ltm.check_invariants()
    assert len(env.ltm) == 4 * 40 and len(set(env.ltm.ids())) == 160


def test_bad_agent_input_never_crashes():
    env = make_parallel("TeamProbe-Saboteur-v0")
    env.reset(seed=0)
    junk = ["", "x" * 2_000_000, "<tool_call>{broken", {"name": "Nope"}, 42, [{"answer": 1}], "<answer>a</answer>" * 3]
    for turn in junk:
        if not env.agents:
            break
        obs, rewards, term, trunc, infos = env.step(dict.fromkeys(env.agents, turn))
        assert all(env.observation_space(a).contains(o) for a, o in obs.items())
    env.ltm.check_invariants()


def test_programmer_errors_raise():
    from tests.test_interactive import Corridor

    env = make_parallel("TeamProbe-v0")
    with pytest.raises(ResetNeeded):
        env.step({})
    env.reset(seed=0)
    with pytest.raises(InvalidConfig, match="missing"):
        env.step({"reader_0": ACK})
    with pytest.raises(InvalidConfig, match="extra"):
        env.step({"reader_0": ACK, "answerer_0": ACK, "ghost": ACK})
    for bad in ({"num_readers": 0}, {"num_saboteurs": -1}, {"max_cycles": 0}, {"team_weight": 2.0}):
        with pytest.raises(InvalidConfig):
            make_parallel("TeamProbe-v0", **bad)
    with pytest.raises(InvalidConfig, match="interactive"):
        TeamMemoryEnv(Corridor())
    with pytest.raises(UnknownName, match="TeamProbe-v0"):
        make_parallel("TeamProbe")
    with pytest.raises(UnknownName):
        make_team("best", env)
    with pytest.raises(UnknownName):
        ReaderPolicy("paranoid")


def test_missing_pettingzoo_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("agemem_gym.adapters.pettingzoo")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pettingzoo", None)
    with pytest.raises(DependencyNotInstalled, match=r"agemem-gym\[pettingzoo\]"):
        importlib.import_module("agemem_gym.adapters.pettingzoo")


def test_render_ansi():
    env = make_parallel("TeamProbe-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step({"reader_0": add("The sky is green."), "answerer_0": ACK})
    text = env.render()
    assert "reader_0" in text and "The sky is green." in text and np.char.count(text, "---") >= 2


def test_an_agent_whose_context_overflows_gets_one_notice():
    env = make_parallel("TeamHotpotQA-v0", max_context_tokens=700)
    obs, infos = env.reset(seed=0)
    for _ in range(4):
        if not env.agents:
            break
        obs, _, _, _, infos = env.step({a: add("a long note " * 60) for a in env.agents})
    over = [a for a in infos if infos[a]["overflow"]]
    assert over, "the test needs an agent over its budget"
    for agent in over:
        messages = env._state[agent].stm.messages
        assert sum(m.kind == "notice" and "max_context_tokens=700" in m.content for m in messages) == 1
    quiet = make_parallel("TeamHotpotQA-v0", max_context_tokens=700, overflow_notice=False)
    quiet.reset(seed=0)
    quiet.step({a: add("a long note " * 60) for a in quiet.agents})
    assert not any("max_context_tokens=700" in m.content for s in quiet._state.values() for m in s.stm.messages)


def test_the_team_env_honours_the_compact_tool_prompt():
    from agemem_gym.tools import lists_tools

    full, compact = make_parallel("TeamProbe-v0"), make_parallel("TeamProbe-v0", tool_prompt="compact")
    (obs_full, _), (obs_compact, _) = full.reset(seed=0), compact.reset(seed=0)
    for agent in obs_full:
        short, long = obs_compact[agent][0]["content"], obs_full[agent][0]["content"]
        assert lists_tools(short) and lists_tools(long) and len(short) < len(long)
