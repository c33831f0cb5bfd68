import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.data import load_distractor_corpus
from agemem_gym.envs.synthetic import DIFFICULTIES, Difficulty, FactUpdateEnv, LongRecallEnv, generate
from agemem_gym.envs.synthetic.generator import UNKNOWN
from agemem_gym.error import InvalidConfig, UnknownName
from agemem_gym.evaluation import run_episodes, summarize
from agemem_gym.policies import make
from agemem_gym.tools import format_answer, format_tool_call

FILLER = load_distractor_corpus()
ACK = format_answer("ok")


def replay_truth(script):
    """Recompute the asked fact's truth by reading the messages in order (independent of the generator)."""
    current = None
    for message in script.messages:
        for rev in script.revisions:
            if rev.trigger in message:
                current = rev.new
        for fact in (script.revisions[0].old if script.revisions else script.facts[0],):
            if current is None and fact in message:
                current = fact
    return current


@pytest.mark.parametrize("difficulty", sorted(DIFFICULTIES))
@pytest.mark.parametrize("seed", range(25))
def test_fact_update_scripts_are_consistent(difficulty, seed):
    script = generate("fact_update", seed, 20, DIFFICULTIES[difficulty], FILLER)
    assert len(script.messages) == 20 and script.changes >= 1 and len(script.revisions) == script.changes
    assert generate("fact_update", seed, 20, DIFFICULTIES[difficulty], FILLER) == script  # seeded
    final = replay_truth(script)
    if script.retracted:
        assert script.answer == UNKNOWN and final is None and script.revisions[-1].new is None
        assert script.facts[0] == script.revisions[-1].trigger
    else:
        assert final == script.facts[0] and script.answer in final
    position = {m: i for i, m in enumerate(script.messages)}
    where = [next(i for m, i in position.items() if r.trigger in m) for r in script.revisions]
    assert where == sorted(where)  # changes arrive in order


@pytest.mark.parametrize("seed", range(20))
def test_long_recall_asks_about_an_early_unchanged_fact(seed):
    script = generate("long_recall", seed, 60, DIFFICULTIES["medium"], FILLER)
    assert script.changes == 0 and not script.revisions and not script.retracted
    first = next(i for i, m in enumerate(script.messages) if script.facts[0] in m)
    assert first < len(script.messages) // 2 and script.answer in script.facts[0]
    assert sum(script.facts[0] in m for m in script.messages) == 1


def test_short_horizon_packs_several_facts_per_message():
    script = generate("fact_update", 3, 4, DIFFICULTIES["hard"], FILLER)
    assert len(script.messages) == 4 and all(script.messages)
    assert any(script.facts[0] in m for m in script.messages)


def test_oracle_keeps_memory_current_with_update_and_delete():
    env = FactUpdateEnv(privileged_info=True, difficulty="hard")
    policy = make("oracle")
    updates = deletes = 0
    for task_id in range(30):
        obs, info = env.reset(seed=task_id, options={"task_id": task_id})
        for _ in range(200):
            obs, r, term, trunc, info = env.step(policy.act(obs, info))
            if term or trunc:
                break
        assert info["em"] == 1.0 and info["invalid_calls"] == 0
        assert info["memory_quality"] == 1.0  # only the current truth is stored
        memories = [m.content for m in env.unwrapped.ltm]
        assert memories == list(env.unwrapped.task.facts)
        updates += info["tool_calls"]["Update_memory"]
        deletes += info["tool_calls"]["Delete_memory"]
    assert updates > 30 and deletes > 0


def test_stale_memories_mislead_store_all():
    env = FactUpdateEnv(difficulty="hard")
    obs, info = env.reset(seed=0, options={"task_id": 0})
    # store everything, then ask: the stale and the current statement are both in memory
    policy = make("store-all")
    for _ in range(200):
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            break
    stored = [m.content for m in env.unwrapped.ltm]
    task = env.unwrapped.task
    assert any(r["old"] in s for r in task.extra["revisions"] for s in stored)


def test_single_mode_and_task_ids():
    env = gym.make("AgeMem/FactUpdate-v0", stage1_mode="single", privileged_info=True)
    obs, info = env.reset(seed=1, options={"task_id": "fact_update-medium-h20-5"})
    assert info["task_id"] == "fact_update-medium-h20-5" and obs[-1]["content"].startswith("Here is everything")
    policy = make("oracle")
    for _ in range(50):
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            break
    assert info["em"] == 1.0 and info["memory_quality"] == 1.0  # stale facts never stored when all arrive at once


def test_answers_are_exact_match():
    env = LongRecallEnv(horizon=10, num_distractors=0)
    obs, info = env.reset(seed=0, options={"task_id": 0})
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(ACK)
    gold = env.unwrapped.task.answers[0]
    obs, r, term, trunc, info = env.step(format_answer(f"The {gold.upper()}!"))
    assert term and info["em"] == 1.0 and info["success"] == 1.0
    env.reset(seed=0, options={"task_id": 0})
    while env.unwrapped._stage < 3:
        env.step(ACK)
    obs, r, term, trunc, info = env.step(format_answer(f"{gold} or maybe not"))
    assert info["em"] == 0.0 and 0.0 < info["f1"] < 1.0


def test_arguments_are_validated():
    with pytest.raises(UnknownName, match="Did you mean 'hard'"):
        FactUpdateEnv(difficulty="hrad")
    with pytest.raises(InvalidConfig, match="horizon"):
        LongRecallEnv(horizon=0)
    custom = Difficulty(
        people=2, attributes=1, noise_updates=0, target_changes=(1, 1), p_retract=1.0, shared_names=False
    )
    env = FactUpdateEnv(difficulty=custom, horizon=5)
    env.reset(seed=0)
    assert env.task.answers == (UNKNOWN,) and env.task_ids[0].startswith("fact_update-custom-h5")


@pytest.fixture(scope="module")
def panel():
    out = {}
    for env_id in ("AgeMem/FactUpdate-v0", "AgeMem/LongRecall-v0"):
        for p in ("oracle", "store-all", "no-memory", "random"):
            out[env_id, p] = summarize(run_episodes(env_id, make(p), episodes=20, seed=0))
    return out


@pytest.mark.parametrize("env_id", ["AgeMem/FactUpdate-v0", "AgeMem/LongRecall-v0"])
def test_baselines(panel, env_id):
    oracle, store, none, rnd = (panel[env_id, p] for p in ("oracle", "store-all", "no-memory", "random"))
    assert oracle["success"] >= 0.95 and oracle["memory_quality"] >= 0.95
    assert none["success"] == 0.0 and rnd["success"] <= 0.05
    assert none["success"] < store["success"] < oracle["success"] or store["success"] == oracle["success"] == 1.0
    assert oracle["invalid_calls"] == store["invalid_calls"] == 0.0


def test_fact_update_separates_store_all_from_the_oracle(panel):
    assert panel["AgeMem/FactUpdate-v0", "store-all"]["success"] <= 0.8


def test_retrieval_sees_ids_for_updates():
    env = FactUpdateEnv(difficulty="easy", num_distractors=0)
    obs, info = env.reset(seed=0, options={"task_id": 2})
    call = format_tool_call([{"name": "Add_memory", "arguments": {"content": obs[-1]["content"]}}])
    obs, *_ = env.step(call)
    assert "memory_added: mem_" in obs[-1]["content"]
