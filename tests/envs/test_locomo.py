import json
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.data.locomo import LOCOMO_ENV_VAR, load_locomo
from agemem_gym.envs.locomo import LoCoMoEnv
from agemem_gym.error import DataFormatError, DataNotFound, InvalidConfig
from agemem_gym.evaluation import run_episodes
from agemem_gym.graders.locomo import REFUSAL, locomo_score, scores_by_category
from agemem_gym.policies import make
from agemem_gym.tools import format_answer

FIXTURE = Path(__file__).parent.parent / "data" / "locomo_mini.json"
ACK = format_answer("ok")


def answer(env, task_id, text):
    obs, info = env.reset(seed=0, options={"task_id": task_id})
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(ACK)
    return env.step(format_answer(text))[-1]


def test_loader_reads_the_official_layout():
    convs = load_locomo(FIXTURE)
    assert [c.sample_id for c in convs] == ["mini-1", "mini-2"]
    assert convs[0].speakers == ("Rosa", "Dev") and [s.index for s in convs[0].sessions] == [1, 2, 3]
    assert convs[0].sessions[1].date_time == "6:40 pm on 3 June, 2023"
    assert "[shares a photo: a grey cat sleeping on a blue sofa]" in convs[0].sessions[1].turns[0].text
    assert convs[0].qa[7].answer == "2"  # an integer answer, as in the official file
    assert convs[0].qa[6].category == 5 and convs[0].qa[6].answer == ""


@pytest.mark.parametrize(
    "payload,match",
    [
        ({"not": "a list"}, "JSON list"),
        ([{"sample_id": "x"}], "conversation object"),
        ([{"conversation": {"speaker_a": "A"}}], "no session_<n>"),
        ([{"conversation": {"session_1": [{"speaker": "A"}]}}], "string fields"),
        ([{"conversation": {"session_1": []}, "qa": [{"question": "q", "answer": "a", "category": 9}]}], "category"),
        ([{"conversation": {"session_1": []}, "qa": [{"question": "q", "category": 4}]}], "needs an answer"),
    ],
)
def test_loader_rejects_malformed_files(tmp_path, payload, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DataFormatError, match=match):
        load_locomo(path)


def test_missing_data_names_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv(LOCOMO_ENV_VAR, raising=False)
    with pytest.raises(DataNotFound, match="snap-research/LoCoMo.*data_path"):
        gym.make("AgeMem/LoCoMo-v0")
    with pytest.raises(DataNotFound, match="no LoCoMo file at"):
        LoCoMoEnv(data_path=tmp_path / "locomo10.json")
    monkeypatch.setenv(LOCOMO_ENV_VAR, str(FIXTURE))
    assert len(gym.make("AgeMem/LoCoMo-v0").unwrapped.task_ids) == 13


def test_stage1_is_the_sessions_and_facts_are_the_evidence():
    env = LoCoMoEnv(data_path=FIXTURE)
    env.reset(seed=0, options={"task_id": "mini-1/q3"})
    task = env.task
    assert len(task.material) == 3 and task.material[1].startswith(
        "Conversation between Rosa and Dev, session 2, 6:40 pm on 3 June, 2023:"
    )
    assert task.query == "What outdoor activities has Rosa done?" and task.extra["category_name"] == "multi-hop"
    assert all(any(f in m for m in task.material) for f in task.facts)
    assert "Rosa: The hiking trip was wonderful, we camped two nights by a lake." in task.facts
    env.reset(seed=0, options={"task_id": "mini-2/q4"})  # one evidence id does not exist: skipped
    assert env.task.facts == ("Milo: My fingers hurt, but my teacher Mr. Aldous is patient.",)


def test_long_sessions_are_split_between_turns():
    env = LoCoMoEnv(data_path=FIXTURE, max_message_chars=250)
    env.reset(seed=0, options={"task_id": 0})
    parts = env.task.material
    assert len(parts) > 3 and any("(part 2 of" in p for p in parts)
    lines = [ln for p in parts for ln in p.splitlines()[1:]]
    assert len(lines) == 16  # every turn exactly once
    with pytest.raises(InvalidConfig):
        LoCoMoEnv(data_path=FIXTURE, max_message_chars=10)


def test_grading_by_category():
    env = LoCoMoEnv(data_path=FIXTURE)
    info = answer(env, "mini-1/q3", "camping, hiking")
    assert info["category"] == 1 and info["f1"] == 1.0 and info["success"] == 0.0  # right parts, other order
    assert info["groups"] == ["multi-hop"]  # agemem eval / run report scores by category
    info = answer(env, "mini-1/q6", "That is not mentioned anywhere.")
    assert info["category"] == 5 and info["f1"] == 1.0 and info["success"] == 1.0
    info = answer(env, "mini-1/q6", "teal")
    assert info["f1"] == 0.0
    info = answer(env, "mini-1/q4", "likely yes")  # open-domain: only the text before ';' counts
    assert info["f1"] == 1.0 and info["success"] == 1.0
    assert locomo_score("2 June 2023", "2 June 2023", 2) == 1.0 and locomo_score("June", "2 June 2023", 2) == 0.5
    rows = [{"category": 1, "score": 1.0}, {"category": 1, "score": 0.0}, {"category": 5, "score": 1.0}]
    assert scores_by_category(rows) == {"adversarial": 1.0, "multi-hop": 0.5, "overall": 2 / 3}


def test_categories_filter():
    env = LoCoMoEnv(data_path=FIXTURE, categories=[5])
    assert env.task_ids == ["mini-1/q6", "mini-2/q3"]
    env.reset(seed=0)
    assert env.task.answers == (REFUSAL,)
    with pytest.raises(InvalidConfig, match="categories"):
        LoCoMoEnv(data_path=FIXTURE, categories=[6])


def test_baselines_on_the_fixture():
    kwargs = {"data_path": str(FIXTURE)}
    scores = {
        p: [r.task_score or 0.0 for r in run_episodes("AgeMem/LoCoMo-v0", make(p), episodes=13, env_kwargs=kwargs)]
        for p in ("oracle", "store-all", "no-memory", "random")
    }
    mean = {p: sum(v) / len(v) for p, v in scores.items()}
    assert mean["oracle"] >= 0.95
    assert mean["no-memory"] < mean["store-all"] < mean["oracle"] and mean["random"] < 0.2
