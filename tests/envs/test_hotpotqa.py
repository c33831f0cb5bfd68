import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.config import RewardConfig
from agemem_gym.envs.hotpotqa import HotpotQAEnv
from agemem_gym.error import DataFormatError, DataNotFound, InvalidConfig, ResetNeeded, UnknownName
from agemem_gym.evaluation import run_episodes, summarize
from agemem_gym.policies import make
from agemem_gym.text import content_words
from agemem_gym.tools import format_answer, format_tool_call

DATA = Path(__file__).parent.parent / "data"
ACK = format_answer("ok")


def call(name, **arguments):
    return format_tool_call([{"name": name, "arguments": arguments}])


def play_until(env, stage, action=ACK):
    obs, info = env.unwrapped._observe(), None
    while env.unwrapped._stage < stage:
        obs, _, term, _, info = env.step(action)
        assert not term
    return obs, info


@pytest.fixture(scope="module")
def panel():
    policies = ["oracle", "no-memory", "store-all", "rag"]
    return {p: summarize(run_episodes("AgeMem/HotpotQA-v0", make(p), episodes=20, seed=0)) for p in policies}


def test_baseline_ordering_on_the_bundled_panel(panel):
    oracle, none, store, rag = (panel[p] for p in ("oracle", "no-memory", "store-all", "rag"))
    assert oracle["f1"] >= 0.95 and oracle["memory_quality"] >= 0.9
    assert none["f1"] < 0.3 and none["memory_quality"] == 0.0  # Stage 3 cannot see Stage 1
    for mid in (store, rag):
        assert none["f1"] < mid["f1"] < oracle["f1"]
        assert none["memory_quality"] < mid["memory_quality"] < oracle["memory_quality"]
        assert none["reward"] < mid["reward"] < oracle["reward"]
    for p in panel.values():
        assert p["invalid_calls"] == 0.0


def test_episode_structure_per_message():
    env = gym.make("AgeMem/HotpotQA-v0")
    obs, info = env.reset(seed=0, options={"task_id": 0})
    task = env.unwrapped.task
    assert obs[0]["role"] == "system" and obs[-1]["role"] == "user" and info["stage"] == 1
    stage1 = 1
    while env.unwrapped._stage == 1:
        obs, _, _, _, info = env.step(ACK)
        stage1 += info["stage"] == 1
    assert stage1 == len(task.material)  # one message per paragraph
    # context reset: no Stage-1 material left, a distractor is showing
    assert [m["role"] for m in obs] == ["system", "user"] and info["stage"] == 2
    distractors = [obs[-1]["content"]]
    while env.unwrapped._stage == 2:
        obs, _, _, _, info = env.step(ACK)
        if info["stage"] == 2:
            distractors.append(obs[-1]["content"])
    assert len(distractors) == 5
    assert obs[-1]["content"] == task.query and info["stage"] == 3
    assert any(m["content"] in distractors for m in obs)  # no reset between Stage 2 and 3
    for d in distractors:
        assert not set(content_words(d)) & set(content_words(task.query))
    obs, reward, term, trunc, info = env.step(format_answer(task.answers[0]))
    assert term and not trunc and info["f1"] == 1.0 and info["em"] == 1.0 and reward == info["episode_reward"]


def test_single_mode_and_no_distractors():
    env = gym.make("AgeMem/HotpotQA-Single-v0")
    obs, info = env.reset(seed=1)
    assert len(obs) == 2 and obs[1]["content"].startswith("Just chatting")
    obs, _, _, _, info = env.step(ACK)
    assert info["stage"] == 2
    env = gym.make("AgeMem/HotpotQA-NoDistractors-v0", stage1_mode="single")
    env.reset(seed=1)
    obs, _, _, _, info = env.step(ACK)
    assert info["stage"] == 3 and [m["role"] for m in obs] == ["system", "user"]


def test_rollouts_of_a_group_share_task_and_distractors():
    env = gym.make("AgeMem/HotpotQA-v0")
    seen = []
    for seed in range(3):
        env.reset(seed=seed, options={"task_id": "5a737ef85542992d56e7e336"})
        seen.append(env.unwrapped._distractor_messages(env.unwrapped.task))
    assert seen[0] == seen[1] == seen[2]
    env.reset(seed=0, options={"task_id": 5})
    assert env.unwrapped._distractor_messages(env.unwrapped.task) != seen[0]


def test_same_seed_same_ids_and_different_seed_different_ids():
    def first_id(seed):
        env = gym.make("AgeMem/HotpotQA-v0")
        env.reset(seed=seed, options={"task_id": 0})
        obs, *_ = env.step(call("Add_memory", content="a fact"))
        return obs[-1]["content"]

    assert first_id(0) == first_id(0) != first_id(1)


def test_memory_tools_through_the_env():
    env = gym.make("AgeMem/HotpotQA-v0")
    env.reset(seed=0, options={"task_id": 0})
    obs, *_, info = env.step(call("Add_memory", content="The Danube flows through Vienna.", memory_type="geo"))
    mid = obs[-1]["content"].split("memory_added: ")[1]
    assert info["ltm_size"] == 1 and info["tool_calls"]["Add_memory"] == 1
    obs, *_, info = env.step(call("Retrieve_memory", query="Danube Vienna"))
    assert f"(Memory ID: {mid})" in obs[-1]["content"]
    obs, *_, info = env.step(call("Update_memory", memory_id=mid, content="The Danube flows through Budapest."))
    assert (
        env.unwrapped.ltm.get(mid).content.endswith("Budapest.")
        and env.unwrapped.ltm.get(mid).metadata["type"] == "geo"
    )
    obs, *_, info = env.step(call("Delete_memory", memory_id=mid, confirmation=False))
    assert "confirmation_required" in obs[-1]["content"] and info["ltm_size"] == 1
    obs, *_, info = env.step(call("Delete_memory", memory_id=mid, confirmation=True))
    assert info["ltm_size"] == 0 and info["invalid_calls"] == 0
    obs, *_, info = env.step(call("Update_memory", memory_id=mid, content="gone"))
    assert "unknown memory_id" in obs[-1]["content"] and info["invalid_calls"] == 1
    env.unwrapped.ltm.check_invariants()


def test_stage1_auto_retrieval_shows_related_memories_with_ids():
    env = gym.make("AgeMem/HotpotQA-v0")
    obs, _ = env.reset(seed=0, options={"task_id": 0})
    paragraph = obs[-1]["content"]
    obs, *_ = env.step(call("Add_memory", content=paragraph))
    obs, *_ = env.step(ACK)  # the next paragraph arrives with a retrieval of what is stored
    assert obs[-1]["role"] == "tool" and "Memory ID: mem_" in obs[-1]["content"]


def test_filter_and_summary_context_tools():
    env = gym.make("AgeMem/HotpotQA-v0", num_distractors=3)
    env.reset(seed=0, options={"task_id": 0})
    obs, _ = play_until(env, 2)
    distractor = obs[-1]["content"]
    obs, *_, info = env.step(call("Filter_context", criteria=distractor))
    assert all(m["content"] != distractor for m in obs) and "removed 1 messages" in obs[-1]["content"]
    assert info["tool_calls"]["Filter_context"] == 1
    obs, *_ = env.step(ACK)
    obs, *_ = env.step(ACK)
    before = env.unwrapped.stm.tokens
    obs, *_, info = env.step(call("Summary_context", span="all"))
    assert any(m["content"].startswith("[summary of") for m in obs)
    assert obs[0]["role"] == "system"
    obs, *_, info = env.step(call("Summary_context", span="every other one"))
    assert "span must be" in obs[-1]["content"] and info["invalid_calls"] == 1
    assert env.unwrapped.stm.tokens < before + 200
    env.unwrapped.stm.check_invariants()


def test_stage3_without_answer_ends_with_penalties():
    env = gym.make("AgeMem/HotpotQA-v0", num_distractors=0, max_rounds=2, stage1_mode="single")
    env.reset(seed=0)
    env.step(ACK)
    obs, r, term, _, info = env.step(call("Retrieve_memory", query="x"))
    assert not term
    obs, r, term, _, info = env.step(call("Retrieve_memory", query="y"))
    assert term and info["answer"] is None and info["task_score"] is None
    assert info["penalties"]["rounds"] == -1.0 and info["reward_components"]["task"] == -1.0
    with pytest.raises(ResetNeeded):
        env.step(ACK)


def test_overflow_is_packed_reported_and_penalised():
    env = gym.make("AgeMem/HotpotQA-v0", max_context_tokens=1200, stage1_mode="single", num_distractors=0)
    obs, info = env.reset(seed=0)
    assert info["overflow"] and info["prompt_tokens"] <= 1200 < info["context_tokens"]
    assert obs[0]["role"] == "system"
    obs, _, _, _, info = env.step(ACK)
    obs, r, term, _, info = env.step(format_answer("x"))
    assert term and "overflow" in info["penalties"]


def test_overlong_turn_is_cut_and_counted():
    env = gym.make("AgeMem/HotpotQA-v0", max_response_tokens=64)
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<answer>" + "x" * 1_000_000 + "</answer>")
    assert info["step_invalid_calls"] >= 1 and "max_response_tokens" in obs[-1]["content"]
    assert len(obs[-2]["content"]) <= 64 * 4


def test_dense_mode_sums_to_the_terminal_reward():
    def play(mode):
        env = gym.make("AgeMem/HotpotQA-v0", reward=RewardConfig(mode=mode), privileged_info=True, num_distractors=2)
        policy = make("oracle")
        obs, info = env.reset(seed=4, options={"task_id": 4})
        rewards = []
        while True:
            obs, r, term, _, info = env.step(policy.act(obs, info) if len(rewards) % 7 else "garbage")
            rewards.append(r)
            if term:
                return rewards

    terminal, dense = play("terminal"), play("dense")
    assert sum(terminal) == pytest.approx(terminal[-1]) and sum(dense) == pytest.approx(terminal[-1])
    assert sum(1 for r in dense[:-1] if r != 0) > 0  # credit arrives before the end


def test_reward_presets_by_name():
    env = gym.make("AgeMem/HotpotQA-v0", reward="released_code")
    assert env.unwrapped.reward_config.w_tool_efficiency == 0.2
    with pytest.raises(UnknownName, match="Did you mean 'paper'"):
        gym.make("AgeMem/HotpotQA-v0", reward="papr")


def test_programmer_errors_are_clear():
    with pytest.raises(UnknownName, match="num_distractors"):
        gym.make("AgeMem/HotpotQA-v0", num_distractor=3)
    with pytest.raises(InvalidConfig, match="max_rounds"):
        gym.make("AgeMem/HotpotQA-v0", max_rounds=0)
    with pytest.raises(InvalidConfig, match="render_mode"):
        HotpotQAEnv(render_mode="human")
    env = gym.make("AgeMem/HotpotQA-v0")
    with pytest.raises(ResetNeeded):
        env.unwrapped.step(ACK)
    with pytest.raises(InvalidConfig, match="out of range"):
        env.reset(options={"task_id": 10_000})
    with pytest.raises(UnknownName):
        env.reset(options={"task_id": "not-an-id"})
    with pytest.raises(InvalidConfig, match="unknown reset option"):
        env.reset(options={"taskid": 1})


def test_official_hotpotqa_json_and_bad_data(tmp_path):
    env = HotpotQAEnv(data_path=DATA / "hotpot_official_format.json")
    assert env.task_ids == ["5ae63e3255429929b0807aff", "5a77c3d55542995d831812af", "5a7dcdea5542990b8f503abc"]
    obs, info = env.reset(seed=0, options={"task_id": "5a77c3d55542995d831812af"})
    assert env.task.facts and env.task.answers
    with pytest.raises(DataNotFound, match="hotpotqa.github.io"):
        HotpotQAEnv(data_path=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "q?"}]))
    with pytest.raises(DataFormatError, match="supporting_facts"):
        HotpotQAEnv(data_path=bad)
    wrong_fact = json.loads((DATA / "hotpot_official_format.json").read_text())[:1]
    wrong_fact[0]["supporting_facts"] = [["No Such Title", 0]]
    bad.write_text(json.dumps(wrong_fact))
    with pytest.raises(DataFormatError, match="not in the context"):
        HotpotQAEnv(data_path=bad)
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in json.loads((DATA / "hotpot_official_format.json").read_text())))
    assert len(HotpotQAEnv(data_path=jsonl, num_tasks=2).task_ids) == 2


def test_render_ansi_and_structured_actions():
    env = gym.make("AgeMem/HotpotQA-v0", render_mode="ansi")
    env.reset(seed=0)
    obs, *_, info = env.step({"name": "Add_memory", "arguments": {"content": "structured!"}})
    assert info["ltm_size"] == 1
    text = env.render()
    assert "stage 1" in text and "[assistant]" in text and "structured!" in text
    obs, *_, info = env.step({"answer": "fine"})
    assert info["round"] == 0  # the answer moved on to the next message


def test_hf_tokenizer_counts_tokens():
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    env = gym.make("AgeMem/HotpotQA-v0", tokenizer=hf)
    obs, info = env.reset(seed=0)
    words = sum(len(tok.pre_tokenizer.pre_tokenize_str(m["content"])) for m in obs)
    assert info["context_tokens"] == words + 4 * len(obs)
    assert np.isfinite(info["prompt_tokens"])


def test_configure_between_episodes():
    env = gym.make("AgeMem/HotpotQA-v0", stage1_mode="single")
    env.unwrapped.configure(num_distractors=0)
    env.reset(seed=0)
    obs, *_, info = env.step(ACK)
    assert info["stage"] == 3
    with pytest.raises(UnknownName):
        env.unwrapped.configure(max_response_tokens=10)
