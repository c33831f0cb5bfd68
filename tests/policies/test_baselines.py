import gymnasium as gym
import pytest

from agemem_gym import policies
from agemem_gym.harness import run_panel
from agemem_gym.policies.baselines import LangMemPolicy, heuristic_decision
from agemem_gym.policies.baselines import heuristics as H
from agemem_gym.policies.baselines.amem import note_links

BASELINES = ["mem0-style", "mem0g-style", "langmem-style", "amem-style"]
HOTPOT = "AgeMem/HotpotQA-NoDistractors-v0"


def _play(env_id, policy, seed=0, task=0):
    env = gym.make(env_id)
    obs, info = env.reset(seed=seed, options={"task_id": task})
    policy.reset()
    calls = []
    while True:
        turn = policy.act(obs, info)
        calls.append((info["stage"], turn))
        obs, reward, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            return env.unwrapped, info, calls


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("env_id", [HOTPOT, "AgeMem/BabyAI-v0", "AgeMem/FactUpdate-v0"])
def test_baselines_finish_episodes_with_valid_calls(name, env_id):
    results = run_panel(env_id, lambda: policies.make(name), episodes=2)
    assert len(results) == 2
    for r in results:
        assert r.invalid_calls == 0
        assert r.answer is not None or "BabyAI" in env_id
        assert r.tool_calls["Add_memory"] > 0 and r.tool_calls["Retrieve_memory"] > 0


def test_mem0_decision_rule():
    stored = [("mem_1", "Casimir Oyelaran plays for the Northgate Foxes."), ("mem_2", "Casimir's dog is Noodle.")]
    update = "Casimir Oyelaran switched teams and now plays for the Millbrook Herons."
    assert heuristic_decision(update, stored, retraction=False) == ("UPDATE", "mem_1")
    assert heuristic_decision(stored[0][1], stored, retraction=False) == ("NOOP", None)
    assert heuristic_decision("Clio Brannagh lives in Tamsworth.", stored, retraction=False) == ("ADD", None)
    forget = "Ignore what I told you about which team Casimir Oyelaran plays for, that was wrong."
    assert heuristic_decision(forget, stored, retraction=H.has_delete_cue(forget)) == ("DELETE", "mem_1")
    assert heuristic_decision(forget, [], retraction=True) == ("NOOP", None)


def test_mem0_updates_and_deletes_in_the_update_task():
    results = run_panel("AgeMem/FactUpdate-v0", lambda: policies.make("mem0-style"), episodes=6)
    assert sum(r.tool_calls["Update_memory"] for r in results) > 0
    rag = run_panel("AgeMem/FactUpdate-v0", lambda: policies.make("rag"), episodes=6)
    assert sum(r.tool_calls["Update_memory"] + r.tool_calls["Delete_memory"] for r in rag) == 0
    # the current value, not the stale one, is what the store holds after an update
    env, info, _ = _play("AgeMem/FactUpdate-v0", policies.make("mem0-style"), seed=1, task=1)
    contents = [m.content for m in env.ltm]
    assert not any("works at Tidewell Energy" in c for c in contents)


def test_mem0g_stores_triples_and_expands_retrieval():
    policy = policies.make("mem0g-style")
    env, info, calls = _play(HOTPOT, policy)
    triples = [m for m in env.ltm if m.metadata.get("kind") == "triple"]
    assert triples and all(m.content.count(" | ") == 2 for m in triples)
    stage3 = [turn for stage, turn in calls if stage == 3]
    assert len(stage3) == 3 and "metadata_filter" in stage3[0]  # triples, expansion, answer
    assert "Retrieve_memory" in stage3[1] and "<answer>" in stage3[2]


def test_amem_links_notes_and_evolves_neighbours():
    env, info, calls = _play(HOTPOT, policies.make("amem-style"))
    notes = list(env.ltm)
    linked = [n for n in notes if note_links(n.content)]
    assert linked, "no note was linked"
    ids = {n.id for n in notes}
    assert all(mid in ids for n in linked for mid, _ in note_links(n.content))
    assert info["tool_calls"]["Update_memory"] > 0  # evolution wrote back-links
    assert all("| keywords:" in n.content and "| context:" in n.content for n in notes)


def test_langmem_consolidation_merges_duplicates():
    policy = LangMemPolicy()
    memories = [
        ("mem_a", "Kawartha Speedway is a paved oval in Fraserville."),
        ("mem_b", "Kawartha Speedway is a paved oval."),
    ]
    calls = policy.consolidate([*memories, ("mem_c", "Monroe is a city in Washington.")])
    assert calls == [
        {"name": "Update_memory", "arguments": {"memory_id": "mem_a", "content": memories[0][1]}},
        {"name": "Delete_memory", "arguments": {"memory_id": "mem_b", "confirmation": True}},
    ]


def test_llm_steps_are_used_and_fall_back_when_unparseable():
    replies = iter(["Paris is the capital of France.\nThe Seine flows through Paris.", "UPDATE 1", "gibberish"])
    policy = policies.make("mem0-style", chat=lambda messages: next(replies))
    assert policy.extract("Tell me about Paris") == [
        "Paris is the capital of France.",
        "The Seine flows through Paris.",
    ]
    stored = [("mem_9", "Paris is a city.")]
    assert policy.decide("Paris is the capital.", stored, False) == ("UPDATE", "mem_9")
    assert policy.decide("Lyon is a city in France.", stored, False) == ("ADD", None)  # heuristic
    assert policy.llm_fallbacks == 1


def test_bad_constructor_arguments_are_named():
    with pytest.raises(Exception, match="model= or chat="):
        policies.make("amem-style", model="tiny", chat=lambda m: "")
    with pytest.raises(Exception, match="consolidate_every"):
        policies.make("langmem-style", consolidate_every=0)


@pytest.mark.slow
def test_mem0_with_smollm2_runs_an_episode():
    results = run_panel(HOTPOT, lambda: policies.make("mem0-style", model="smollm2"), episodes=1)
    assert results[0].answer is not None and results[0].tool_calls["Retrieve_memory"] > 0
