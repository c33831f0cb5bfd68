from collections import Counter

import pytest

from agemem_gym.config import RewardConfig
from agemem_gym.error import InvalidConfig
from agemem_gym.rewards import EpisodeTrace, compute_reward, key_terms, preservation, tool_efficiency

FACTS = ["Gutzon Borglum sculpted Mount Rushmore.", "Mount Rushmore is in South Dakota."]
Q = "Who sculpted Mount Rushmore in South Dakota?"
OLD, NEW = "Ann's dog is called Rex.", "Ann adopted another dog, so Ann's dog is now called Max."


def trace(**kw):
    base = dict(
        answer="Gutzon Borglum",
        stage1_added=[FACTS[0], "noise about bread"],
        updates=1,
        revisions=[(FACTS[0], FACTS[0] + " Carved 1927-1941.")],
        retrieved_stage3={"mem_1": FACTS[0], "mem_2": "noise about bread"},
        reductions=[(3, 0.6)],
        answer_context_tokens=2048,
        answer_context=["Mount Rushmore notes", "more"],
        turns=10,
    )
    base.update(kw)
    return EpisodeTrace(**base)


def reward(t, cfg=None, score=1.0, facts=FACTS, stale=None):
    return compute_reward(
        t,
        cfg or RewardConfig(),
        task_score=score,
        question=Q,
        facts=facts,
        max_context_tokens=8192,
        max_rounds=5,
        stale=stale,
    )


def test_paper_reward_by_hand():
    r = reward(trace())
    # context: compression 1 - 2048/8192 = 0.75, preventive 1 (a reduction at pressure 0.6 >= 0.5),
    # preservation: key terms "mount rushmore", "south dakota" -> 1 of 2 found -> 0.5 >= 0.5 -> 1
    assert r.compression == pytest.approx(0.75) and r.preventive == 1.0 and r.preservation == 1.0
    assert r.context == pytest.approx((0.75 + 1 + 1) / 3)
    # memory: storage 1/2, relevance 1/2; nothing went stale, so maintenance is not scored
    assert (r.storage, r.maintenance, r.relevance) == (0.5, None, 0.5)
    assert r.memory == pytest.approx(0.5)
    assert r.total == pytest.approx(1.0 / 2 + r.context / 4 + r.memory / 4)
    paper = reward(trace(), RewardConfig.paper())
    assert paper.total == pytest.approx((1.0 + r.context + r.memory) / 3)


def test_no_answer_round_and_invalid_penalties():
    t = trace(answer=None, rounds_exceeded=True, invalid_calls=30)
    r = reward(t, score=None)
    assert r.task == -1.0 and r.compression == 0.0 and r.preservation == 0.0
    assert r.rounds_penalty == -1.0 and r.invalid_penalty == -1.0  # 30 * -0.05 floored at -1
    assert r.total == pytest.approx(-1 / 2 + r.context / 4 + r.memory / 4 - 2.0)


def test_overflow_penalty_and_preventive_after_overflow():
    r = reward(trace(answer_context_tokens=9000, first_overflow_step=2, reductions=[(5, 0.9)]))
    assert r.overflow_penalty == -0.5 and r.preventive == 0.0 and r.compression == 0.0


def test_preventive_needs_a_reduction_under_pressure():
    assert reward(trace(reductions=[])).preventive == 0.0
    low = trace(reductions=[(2, 0.1), (4, 0.49)])  # trimming a near-empty context prevents nothing
    assert reward(low).preventive == 0.0
    assert reward(trace(reductions=[(2, 0.1), (4, 0.5)])).preventive == 1.0
    assert reward(low, RewardConfig(preventive_threshold=0.0)).preventive == 1.0
    assert reward(low, RewardConfig.released_code()).preventive == 1.0
    with pytest.raises(InvalidConfig, match="preventive_threshold"):
        RewardConfig(preventive_threshold=1.5)


def test_released_code_preset_clips_and_adds_tool_efficiency():
    t = trace(tool_calls=Counter({"Add_memory": 2, "Retrieve_memory": 1, "Filter_context": 1}), stage3_rounds=2)
    r = reward(t, RewardConfig.released_code())
    assert r.tool_efficiency == pytest.approx(tool_efficiency(t, 5))
    assert -1.0 <= r.total <= 1.0
    none = reward(trace(answer=None, rounds_exceeded=True), RewardConfig.released_code(), score=None)
    assert none.total == -1.0  # -1 no answer unweighted, -1 rounds, clipped


def test_answer_only_and_missing_facts():
    r = reward(trace(), RewardConfig.answer_only(), score=0.4)
    assert r.total == pytest.approx(0.4)
    r = reward(trace(), facts=None)
    assert r.storage is None and r.relevance is None and r.maintenance is None
    assert r.memory == 0.0  # no term has a score
    r = reward(trace(), RewardConfig(maintenance="changed"), facts=None)
    assert r.memory == pytest.approx(1.0)  # maintenance alone, renormalised


def test_tool_efficiency_by_hand():
    t = EpisodeTrace(
        tool_calls=Counter({"Retrieve_memory": 2, "Summary_context": 1, "Add_memory": 1}), turns=4, stage3_rounds=1
    )
    # ratio 1.0 -> +0.2; retrieve +0.2; summary +0.2; add +0.1; 0.2 * (1 - 1/5) = 0.16
    assert tool_efficiency(t, 5) == pytest.approx(0.86)


def test_key_terms_and_preservation():
    assert key_terms("Which city did Gutzon Borglum live in after 1927?") == ["gutzon borglum", "1927"]
    assert key_terms("what is love") == ["love"]
    assert preservation("Where is Mount Rushmore?", ["mount rushmore is here"]) == 1.0
    assert preservation("Where is Mount Rushmore?", ["nothing"]) == 0.0


def test_config_validation_and_presets():
    with pytest.raises(InvalidConfig, match="mode"):
        RewardConfig(mode="sparse")
    with pytest.raises(InvalidConfig, match="clip"):
        RewardConfig(clip=(1.0, -1.0))
    with pytest.raises(InvalidConfig):
        RewardConfig(invalid_call_penalty=0.5)
    assert RewardConfig.released_code().w_tool_efficiency == 0.2


def test_maintenance_pays_for_removing_what_went_stale():
    facts, stale = [NEW], [OLD]
    cases = {
        "updated to the new value": ([(OLD, NEW)], 1.0),
        "deleted": ([(OLD, None)], 1.0),
        "stale part cut from a longer memory": ([(OLD + " Ann lives in Oslo.", "Ann lives in Oslo.")], 1.0),
        "rephrased, still stale": ([(OLD, "Rex is the name of Ann's dog.")], 0.0),
        "current memory churned": ([(NEW, "Ann's dog is now called Max.")], 0.0),
        "junk deleted": ([("I like bread.", None)], 0.0),
        "nothing": ([], 0.0),
    }
    for name, (revisions, expected) in cases.items():
        t = trace(updates=len(revisions), revisions=revisions)
        assert reward(t, facts=facts, stale=stale).maintenance == expected, name
    # where nothing went stale there is nothing to maintain: the term is left out
    assert reward(trace(revisions=[(OLD, NEW)]), facts=facts, stale=None).maintenance is None


def test_maintenance_presets_that_count_edits():
    noop = trace(updates=0, noop_updates=1, revisions=[])
    assert reward(noop, RewardConfig(maintenance="changed")).maintenance == 0.0
    assert reward(noop, RewardConfig(maintenance="any_update")).maintenance == 1.0
    assert reward(noop, RewardConfig.released_code()).maintenance == 1.0  # the code counts the calls
    assert reward(trace(updates=0, deletes=1), RewardConfig(maintenance="changed")).maintenance == 1.0
    with pytest.raises(InvalidConfig):
        RewardConfig(maintenance="sometimes")


def test_early_stage_round_caps_charge_p_rounds_once_only_when_asked():
    capped = trace(rounds_exceeded_stages=[1, 2])
    assert reward(capped).rounds_penalty == 0.0
    assert reward(capped, RewardConfig(rounds_penalty_early_stages=True)).rounds_penalty == -1.0
    both = trace(rounds_exceeded_stages=[1, 3], rounds_exceeded=True)
    assert reward(both, RewardConfig(rounds_penalty_early_stages=True)).rounds_penalty == -1.0
