import json
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.cli import main
from agemem_gym.data.longmemeval import LONGMEMEVAL_ENV_VAR, QUESTION_TYPES, load_longmemeval
from agemem_gym.envs.longmemeval import LongMemEvalEnv
from agemem_gym.error import DataFormatError, DataNotFound, InvalidConfig
from agemem_gym.evaluation import run_episodes, summarize
from agemem_gym.graders.abstention import ABSTAIN
from agemem_gym.graders.judges import LLMJudge
from agemem_gym.policies import make
from agemem_gym.tools import format_answer

FIXTURE = Path(__file__).parent.parent / "data" / "longmemeval_tiny.json"
ACK = format_answer("ok")


def answer(env, task_id, text):
    obs, info = env.reset(seed=0, options={"task_id": task_id})
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(ACK)
    return env.step(format_answer(text))[-1]


def test_loader_reads_the_official_schema():
    questions = load_longmemeval(FIXTURE)
    assert len(questions) == 8 and {q.question_type for q in questions} == set(QUESTION_TYPES)
    assert [q.question_id for q in questions if q.abstention] == ["ssu_007_abs", "ms_008_abs"]
    ms = questions[3]
    assert ms.answer == "3"  # an integer answer, as in the official files
    assert [t.has_answer for t in ms.sessions[0].turns] == [True, False]
    ku = questions[5]  # the file lists the newer session first (the oracle file is unsorted)
    assert [s.date for s in ku.sessions] == ["2023/03/04 (Sat) 15:00", "2023/11/15 (Wed) 10:00"]
    assert ku.sessions[1].session_id == "answer_ku_006_2"


def _valid():
    return json.loads(FIXTURE.read_text())[0]


@pytest.mark.parametrize(
    "change,match",
    [
        ({"question_type": "abstention"}, "question_type must be one of"),
        ({"answer": None}, "answer must be a string or a number"),
        ({"question_date": 7}, "question_date must be a string"),
        ({"haystack_dates": ["2023/05/10 (Wed) 18:02"]}, "same length, got 2, 1 and 2"),
        ({"haystack_sessions": [[{"role": "system", "content": "x"}], []]}, r"haystack_sessions\[0\]\[0\].*role"),
        ({"haystack_session_ids": "s1"}, "haystack_session_ids must be a list of strings"),
    ],
)
def test_loader_rejects_malformed_questions(tmp_path, change, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{**_valid(), **change}]))
    with pytest.raises(DataFormatError, match=match):
        load_longmemeval(path)


def test_loader_rejects_files_that_are_not_a_question_list(tmp_path):
    path = tmp_path / "bad.json"
    for payload, match in (({"q": 1}, "JSON list of questions"), ([_valid(), _valid()], "appears twice")):
        path.write_text(json.dumps(payload))
        with pytest.raises(DataFormatError, match=match):
            load_longmemeval(path)
    path.write_text("[{")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_longmemeval(path)


def test_missing_data_names_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv(LONGMEMEVAL_ENV_VAR, raising=False)
    with pytest.raises(DataNotFound, match="xiaowu0162/LongMemEval.*data_path.*AGEMEM_LONGMEMEVAL"):
        gym.make("AgeMem/LongMemEval-v0")
    with pytest.raises(DataNotFound, match="no LongMemEval file at"):
        LongMemEvalEnv(data_path=tmp_path / "longmemeval_s.json")
    monkeypatch.setenv(LONGMEMEVAL_ENV_VAR, str(FIXTURE))
    assert len(gym.make("AgeMem/LongMemEval-v0").unwrapped.task_ids) == 8


def test_stages_show_dated_sessions_then_the_dated_question():
    env = LongMemEvalEnv(data_path=FIXTURE, num_distractors=1)
    obs, info = env.reset(seed=0, options={"task_id": "ku_006"})
    assert obs[-1]["content"].startswith("Chat session 1 of 2, 2023/03/04 (Sat) 15:00:\nuser: I work as a data")
    assert "answer_" not in " ".join(env.task.material)  # the ids would give the evidence away
    assert env.task.facts == (  # oldest first
        "user: I work as a data engineer at Corvid Labs and the commute is long.",
        "user: Today was my first day at Brightline Analytics, my new employer.",
    )
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(ACK)
    assert [m["content"] for m in obs[-2:]] == [
        "Current date: 2023/12/01 (Fri) 09:30",
        "Which company do I work for now?",
    ]
    env.reset(seed=0, options={"task_id": "ms_008_abs"})
    assert env.task.facts is None and env.task.answers == (ABSTAIN,)


def test_long_sessions_are_split_between_turns(tmp_path):
    long_turns = [{"role": r, "content": f"turn {k} " + "word " * 30} for k, r in enumerate(["user", "assistant"] * 2)]
    path = tmp_path / "long.json"
    path.write_text(json.dumps([{**_valid(), "haystack_sessions": [long_turns, []]}]))
    env = LongMemEvalEnv(data_path=path, max_message_chars=400)  # two turns a part
    env.reset(seed=0)
    parts = env.task.material
    assert [p.split("\n")[0] for p in parts] == [
        "Chat session 1 of 2, 2023/05/10 (Wed) 18:02 (part 1 of 2):",
        "Chat session 1 of 2, 2023/05/10 (Wed) 18:02 (part 2 of 2):",
        "Chat session 2 of 2, 2023/05/20 (Sat) 02:21:",
    ]
    assert [ln.split()[:2] for p in parts[:2] for ln in p.splitlines()[1:]] == [
        ["user:", "turn"],
        ["assistant:", "turn"],
        ["user:", "turn"],
        ["assistant:", "turn"],
    ]  # every turn exactly once, whole
    with pytest.raises(InvalidConfig, match="max_message_chars"):
        LongMemEvalEnv(data_path=FIXTURE, max_message_chars=10)


def test_grading_answers_and_abstentions():
    env = LongMemEvalEnv(data_path=FIXTURE)
    info = answer(env, "ssa_002", "Tram 28")
    assert (info["task_score"], info["success"], info["question_type"]) == (1.0, 1.0, "single-session-assistant")
    assert info["groups"] == ["single-session-assistant"] and info["abstention"] is False
    assert answer(env, "ms_004", "3")["success"] == 1.0  # the integer answer
    assert answer(env, "ku_006", "Corvid Labs")["task_score"] == 0.0  # the outdated fact
    info = answer(env, "ssu_007_abs", "You never told me about a cat.")
    assert (info["task_score"], info["success"], info["groups"]) == (1.0, 1.0, ["single-session-user", "abstention"])
    assert answer(env, "ssu_007_abs", "A golden retriever")["task_score"] == 0.0
    assert answer(env, "ssu_001", "I don't know")["task_score"] == 0.0  # declining an answerable question


def test_an_llm_judge_grades_answers_but_not_abstentions():
    prompts = []

    def chat(messages):
        prompts.append(messages[0]["content"])
        return "0.7"

    env = LongMemEvalEnv(data_path=FIXTURE, judge=LLMJudge(chat, name="fixed"))
    info = answer(env, "ssp_003", "Try a tofu stir-fry in your cast-iron skillet.")
    assert info["task_score"] == 0.7 and "Ground truth: The user would prefer a vegetarian dish" in prompts[0]
    assert answer(env, "ms_008_abs", "There is no information about violin lessons.")["task_score"] == 1.0
    assert len(prompts) == 1


def test_filters():
    env = LongMemEvalEnv(data_path=FIXTURE, question_types=["multi-session"])
    assert env.task_ids == ["ms_004", "ms_008_abs"]
    assert LongMemEvalEnv(data_path=FIXTURE, abstention=True).task_ids == ["ssu_007_abs", "ms_008_abs"]
    assert len(LongMemEvalEnv(data_path=FIXTURE, abstention=False).task_ids) == 6
    for bad in ({"question_types": ["abstention"]}, {"question_types": "multi-session"}, {"abstention": "yes"}):
        with pytest.raises(InvalidConfig):
            LongMemEvalEnv(data_path=FIXTURE, **bad)
    with pytest.raises(InvalidConfig, match="no questions"):
        LongMemEvalEnv(data_path=FIXTURE, question_types=["knowledge-update"], abstention=True)


def test_baselines_play_it_and_scores_group_by_type():
    kwargs = {"data_path": str(FIXTURE)}
    summary = {
        p: summarize(run_episodes("AgeMem/LongMemEval-v0", make(p), episodes=8, env_kwargs=kwargs))
        for p in ("oracle", "rag", "no-memory")
    }
    assert summary["oracle"]["task_score"] == 1.0 and summary["oracle"]["invalid_calls"] == 0.0
    assert summary["no-memory"]["task_score"] < summary["rag"]["task_score"] < 1.0
    groups = summary["oracle"]["by_group"]
    assert list(groups) == [*QUESTION_TYPES, "abstention"]
    assert groups["abstention"] == {"episodes": 2, "task_score": 1.0, "success": 1.0}
    assert groups["multi-session"]["episodes"] == 2 and groups["knowledge-update"]["episodes"] == 1


def test_eval_suite_longmemeval_reports_scores_by_type(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(LONGMEMEVAL_ENV_VAR, raising=False)
    out = tmp_path / "eval"
    args = [
        "eval",
        "--suite",
        "longmemeval",
        "--policy",
        "no-memory",
        "--policy",
        "oracle",
        "--episodes",
        "8",
        "--env-kwargs",
        json.dumps({"data_path": str(FIXTURE)}),
        "--out",
        str(out),
        "--no-plots",
        "--no-progress",
    ]
    assert main(args) == 0
    report = capsys.readouterr().out
    assert "#### LongMemEval by group (task score, %)" in report
    assert "| abstention | 2 | 0.00 | 100.00 |" in report and "| temporal-reasoning | 1 | 0.00 | 100.00 |" in report
    result = json.loads((out / "results.json").read_text())
    assert result["scores"]["LongMemEval"]["oracle"] == 1.0
    assert result["results"]["LongMemEval"]["oracle"]["by_group"]["single-session-user"]["episodes"] == 2
    # without the data the panel fails: reported, saved as failed (never complete), exit status 1
    assert main([*args[:-4], "--out", str(tmp_path / "none"), "--env-kwargs", "{}", "--no-plots", "--no-progress"]) == 1
    assert "DataNotFound: LongMemEval is not bundled" in capsys.readouterr().out
    assert json.loads((tmp_path / "none" / "results.json").read_text())["status"] == "failed"


def test_agemem_run_prints_the_scores_by_type(capsys):
    args = ["run", "AgeMem/LongMemEval-v0", "--policy", "oracle", "--episodes", "8", "--no-progress"]
    assert main([*args, "--env-kwargs", json.dumps({"data_path": str(FIXTURE)})]) == 0
    out = capsys.readouterr().out
    assert "### Task score by group" in out and "| abstention | 1.000 (n=2) |" in out
